// CI mode's guard (src/git/spec-repo.ts checkCiRevision) on real git
// repositories: a bare "origin", a clone as CI makes it (detached HEAD).

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCiRevision, specRevision } from '../../src/git/spec-repo.js';
import { BerthError } from '../../src/util/errors.js';
import { tempDir } from './helpers.js';

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@berth.invalid', '-c', 'init.defaultBranch=main', '-c', 'advice.detachedHead=false', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
    .toString()
    .trim();
}

/** origin (bare) with main at one commit, and a work clone of it. */
function repos(): { origin: string; work: string; main: string } {
  const origin = tempDir('berth-origin-');
  git(origin, 'init', '-q', '--bare');
  const seed = tempDir('berth-seed-');
  git(seed, 'init', '-q');
  writeFileSync(join(seed, 'spec.yml'), 'a: 1\n');
  git(seed, 'add', '-A');
  git(seed, 'commit', '-q', '-m', 'one');
  git(seed, 'push', '-q', origin, 'main');
  const work = tempDir('berth-work-');
  git(work, 'clone', '-q', origin, '.');
  return { origin, work, main: git(work, 'rev-parse', 'HEAD') };
}

async function refusal(root: string, branch = 'main'): Promise<string> {
  try {
    await checkCiRevision(root, branch);
  } catch (e) {
    if (e instanceof BerthError) return e.format();
    throw e;
  }
  return 'no refusal';
}

describe('CI mode`s guard before an apply', () => {
  it('passes a clean checkout of main, also detached (as CI checks out), and returns its commit', async () => {
    const { work, main } = repos();
    await expect(checkCiRevision(work, 'main')).resolves.toMatchObject({ commit: main, dirty: false });
    git(work, 'checkout', '-q', '--detach', main);
    await expect(checkCiRevision(work, 'main')).resolves.toMatchObject({ commit: main, dirty: false });
    expect(await specRevision(work)).toMatchObject({ commit: main, dirty: false });
  });

  it('refuses uncommitted changes, untracked files included, naming them', async () => {
    const { work } = repos();
    writeFileSync(join(work, 'spec.yml'), 'a: 2\n');
    expect(await refusal(work)).toBe(
      'CI mode: refusing to apply: the spec has uncommitted changes (spec.yml) (CI applies only what is committed; commit or remove them, and keep plan files outside the checkout or in .gitignore)',
    );
    git(work, 'checkout', '-q', '--', 'spec.yml');
    for (const f of ['p1.json', 'p2.json', 'p3.json', 'p4.json']) writeFileSync(join(work, f), '{}');
    expect(await refusal(work)).toMatch(/^CI mode: refusing to apply: the spec has uncommitted changes \(p1\.json, p2\.json, p3\.json and 1 more\)/);
    // ignored files are not changes
    writeFileSync(join(work, '.git', 'info', 'exclude'), '*.json\n');
    await expect(checkCiRevision(work, 'main')).resolves.toMatchObject({ dirty: false });
  });

  it('refuses a commit that is not on the branch, and says how to name another', async () => {
    const { work } = repos();
    git(work, 'checkout', '-q', '-b', 'feature');
    writeFileSync(join(work, 'spec.yml'), 'a: 3\n');
    git(work, 'commit', '-q', '-am', 'feature work');
    const head = git(work, 'rev-parse', 'HEAD');
    expect(await refusal(work)).toBe(
      `CI mode: refusing to apply: commit ${head.slice(0, 12)} is not on branch main (CI applies what was merged to main; another branch is set with --ci-branch or BERTH_CI_BRANCH)`,
    );
    expect(await refusal(work, 'feature')).toBe('no refusal');
  });

  it('an older commit of main is on main (origin/main moved on)', async () => {
    const { work, origin, main } = repos();
    const other = tempDir('berth-other-');
    git(other, 'clone', '-q', origin, '.');
    writeFileSync(join(other, 'spec.yml'), 'a: 4\n');
    git(other, 'commit', '-q', '-am', 'two');
    git(other, 'push', '-q', 'origin', 'main');
    git(work, 'fetch', '-q', 'origin');
    git(work, 'checkout', '-q', '--detach', main);
    git(work, 'branch', '-q', '-D', 'main');
    await expect(checkCiRevision(work, 'main')).resolves.toMatchObject({ commit: main });
  });

  it('refuses a branch the clone does not have, and a directory that is not a checkout', async () => {
    const { work } = repos();
    expect(await refusal(work, 'release')).toBe('CI mode: refusing to apply: branch release is not in this clone (fetch it first: git fetch origin release)');
    const plain = tempDir('berth-plain-');
    expect(await refusal(plain)).toBe('CI mode: refusing to apply: the spec is not a git checkout, so there is no commit to apply (run it in a clone of the spec repository)');
  });
});
