// The dex_client role and its dex_static_client module on real git
// repositories (a bare "cluster values" origin on disk, a seed clone that
// plays the other people pushing to it), without hosts: the program is built
// from a spec tree, the controller facts are gathered for real (simple-git,
// the cache in a temp BERTH_CACHE_DIR), the plan is the pure planner's, and
// the apply step is the module's own.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSection, ratio, type Row } from '../reliability/table.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { prepare } from '../../src/engine.js';
import { gatherControllerFacts } from '../../src/facts/controller.js';
import { cacheDirFor, repoLocation } from '../../src/git/values-repo.js';
import { getModule } from '../../src/modules/registry.js';
import { planHost } from '../../src/plan/planner.js';
import { buildProgram, hostsInScope } from '../../src/plan/program.js';
import { loadSpec } from '../../src/spec/load.js';
import { BerthError } from '../../src/util/errors.js';
import type { Change, ModuleApplyContext, ModuleContext, Transport } from '../../src/types.js';
import { REPO, writeTree } from './helpers.js';

// each test runs some 30 git commands: give them room on a loaded machine
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

// this file's temporary directories (git repositories: many files), removed with a hook that has that room too
const scratch: string[] = [];
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(d);
  return d;
}
afterAll(() => {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

const VALUES = readFileSync(join(REPO, 'test/fixtures/dex/values.yaml'), 'utf8');
const PATH = 'helmfile/values/dex.yaml';
const SECRET = 'dex-unit-Zm9vYmFyIGJheiBxdXV4';
const ITEM = [
  '    - id: harbor-cache-oidc-dex',
  '      name: Harbor (harbor-cache.example.com)',
  '      redirectURIs:',
  '        - https://harbor-cache.example.com/c/oidc/callback',
  `      secret: ${SECRET}`,
  '',
].join('\n');

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=someone', '-c', 'user.email=someone@berth.invalid', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GIT_DIR: undefined, GIT_INDEX_FILE: undefined },
  }).toString();
}

const saved: Record<string, string | undefined> = {};
beforeAll(() => {
  for (const k of ['BERTH_CACHE_DIR', 'OIDC_SECRET']) saved[k] = process.env[k];
  process.env.OIDC_SECRET = SECRET;
});
afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

interface World {
  /** The bare origin, a clone others push from, the spec root. */
  origin: string;
  other: string;
  root: string;
  seed: string;
}

/** A values origin holding the realistic dex values file, and a spec (a git checkout) whose cache host runs dex_client. */
function world(dexValues: Record<string, unknown> = {}, file = VALUES): World {
  process.env.BERTH_CACHE_DIR = tempDir('berth-cache-');
  const origin = tempDir('berth-values-origin-');
  git(origin, 'init', '-q', '--bare');
  const other = tempDir('berth-values-other-');
  git(other, 'init', '-q');
  writeTree({ [PATH]: '' }, other);
  // (writeTree dedents: the fixture is written byte for byte)
  writeFileSync(join(other, PATH), file);
  git(other, 'add', '-A');
  git(other, 'commit', '-q', '-m', 'dex values');
  git(other, 'push', '-q', origin, 'HEAD:main');
  const root = writeTree(
    {
      'inventories/t/hosts.yml': 'all:\n  children:\n    cache:\n      hosts:\n        harbor-cache-01:\n',
      'playbooks/site.yml': '- name: cache\n  hosts: cache\n  roles: [dex_client]\n',
    },
    tempDir('berth-dex-spec-'),
  );
  const vars = {
    harbor: { hostname: 'harbor-cache.example.com' },
    oidc: { client_id: 'harbor-cache-oidc-dex', client_secret: { secret_env: 'OIDC_SECRET' }, dex_values: { repo: origin, path: PATH, ...dexValues } },
  };
  writeTree({ 'inventories/t/group_vars/all.yml': JSON.stringify(vars, null, 2) + '\n' }, root);
  git(root, 'init', '-q');
  git(root, 'add', '-A');
  git(root, 'commit', '-q', '-m', 'spec');
  return { origin, other, root, seed: git(origin, 'rev-parse', 'main').trim() };
}

function setVars(w: World, dexValues: Record<string, unknown>, more: Record<string, unknown> = {}): void {
  const vars = {
    harbor: { hostname: 'harbor-cache.example.com' },
    oidc: { client_id: 'harbor-cache-oidc-dex', client_secret: { secret_env: 'OIDC_SECRET' }, dex_values: { repo: w.origin, path: PATH, ...dexValues } },
    ...more,
  };
  writeFileSync(join(w.root, 'inventories/t/group_vars/all.yml'), JSON.stringify(vars, null, 2) + '\n');
}

interface Planned {
  changes: Change[];
  warnings: string[];
  fingerprints: Record<string, string>;
  requests: number;
}

async function planNow(w: World): Promise<Planned> {
  const spec = loadSpec({ root: w.root, inventory: 'inventories/t' });
  const [host] = hostsInScope(spec, {});
  const prog = buildProgram(spec, host!, {});
  const g = await gatherControllerFacts(prog.controllerQueries, prog.host);
  const p = planHost(prog, g.facts);
  return { changes: p.changes, warnings: p.warnings, fingerprints: p.fingerprints, requests: g.requests };
}

const noTransport = {} as Transport;

async function applyAll(changes: Change[]): Promise<void> {
  for (const c of changes) {
    const p = c.payload as { become: boolean; data: unknown; ctx: ModuleContext };
    const ctx: ModuleApplyContext = { ...p.ctx, transport: noTransport, become: p.become };
    await getModule(c.module)!.apply({ resource: c.resource, action: c.action, attrs: c.attrs, payload: p.data }, ctx);
  }
}

async function applyError(changes: Change[]): Promise<string> {
  try {
    await applyAll(changes);
  } catch (e) {
    if (e instanceof BerthError) return e.format();
    throw e;
  }
  return 'no error';
}

const log = (w: World, ref = 'main') => git(w.origin, 'log', '--format=%H %P %an|%s', ref).trim().split('\n');
const fileAt = (w: World, ref = 'main') => git(w.origin, 'show', `${ref}:${PATH}`);

/** Another clone pushes a commit to main: `edit` rewrites the values file. */
function pushFromOther(w: World, edit: (text: string) => string, subject = 'someone else'): string {
  git(w.other, 'pull', '-q', '--ff-only', w.origin, 'main');
  writeFileSync(join(w.other, PATH), edit(readFileSync(join(w.other, PATH), 'utf8')));
  git(w.other, 'commit', '-q', '-am', subject);
  git(w.other, 'push', '-q', w.origin, 'HEAD:main');
  return git(w.origin, 'rev-parse', 'main').trim();
}

/**
 * A pre-push hook in berth's cache of the origin: right before berth's push
 * reaches the origin, the other clone pushes (`times` times at most), as a
 * colleague pushing at that very moment would. `edit` is a shell command
 * that changes the values file ($n: how many times the hook ran before).
 */
function raceOnPush(w: World, edit: string, times: number): string {
  const counter = join(tempDir('berth-race-'), 'count');
  writeFileSync(counter, '0');
  const hook = join(cacheDirFor(repoLocation(w.origin, w.root)), 'hooks', 'pre-push');
  writeFileSync(
    hook,
    [
      '#!/bin/sh',
      'unset GIT_DIR GIT_INDEX_FILE GIT_WORK_TREE',
      `n=$(cat ${counter}); [ "$n" -ge ${times} ] && exit 0; echo $((n + 1)) > ${counter}`,
      `cd ${w.other} && git pull -q --ff-only ${w.origin} main && ${edit} && git -c user.name=someone -c user.email=someone@berth.invalid commit -q -am "race $n" && git push -q ${w.origin} HEAD:main`,
      '',
    ].join('\n'),
  );
  chmodSync(hook, 0o755);
  return counter;
}

describe('the dex client in the cluster values repository', () => {
  it('plans the client as created with the YAML diff (secret masked), applies it as exactly one commit naming the spec commit, and then has nothing to do', async () => {
    const w = world();
    const p = await planNow(w);
    expect(p.changes).toHaveLength(1);
    const c = p.changes[0]!;
    expect(c).toMatchObject({ host: 'harbor-cache-01', role: 'dex_client', module: 'dex_static_client', resource: 'dex static client harbor-cache-oidc-dex', action: 'create', sensitive: true, tags: ['dex_client'] });
    expect(c.attrs).toEqual([
      { name: 'values', after: `${w.origin} main:${PATH} @ ${w.seed.slice(0, 12)}` },
      { name: 'push', after: 'main' },
      { name: 'secret', after: '(sensitive)' },
    ]);
    expect(c.diff).toContain('+      secret: (sensitive)\n');
    expect(c.diff).toContain('       secret: (sensitive)   # do not reuse\n');
    expect(JSON.stringify({ ...c, payload: undefined })).not.toContain(SECRET);
    expect(JSON.stringify({ ...c, payload: undefined })).not.toContain('Zm9vYmFyLWdyYWZhbmEtc2VjcmV0');
    // the fact's fingerprint names the branch and file
    expect(Object.keys(p.fingerprints)).toEqual([`dex_values:${w.origin} main:${PATH}`]);

    await applyAll(p.changes);
    const commits = log(w);
    expect(commits).toHaveLength(2);
    const [sha, parent] = commits[0]!.split(' ');
    expect(parent).toBe(w.seed);
    const after = fileAt(w);
    const at = after.indexOf(ITEM);
    expect(at).toBeGreaterThan(0);
    expect(after.slice(0, at) + after.slice(at + ITEM.length)).toBe(VALUES);
    const message = git(w.origin, 'log', '-1', '--format=%B', sha!);
    const specCommit = git(w.root, 'rev-parse', 'HEAD').trim();
    expect(message).toBe(`dex: add static client harbor-cache-oidc-dex\n\nWritten by berth 0.1.0 for harbor-cache-01 from spec commit ${specCommit}.\n\nBerth-Spec-Commit: ${specCommit}\n\n`);
    // only that file changed
    expect(git(w.origin, 'diff', '--name-only', w.seed, 'main').trim()).toBe(PATH);

    const again = await planNow(w);
    expect(again.changes).toEqual([]);
    expect(again.warnings).toEqual([]);
    // the cache already holds the tip: one ls-remote, no fetch
    expect(again.requests).toBe(1);
    expect(log(w)).toHaveLength(2);
  });

  it('updates a changed secret or name in place: the diff shows the changed lines, masked', async () => {
    const w = world();
    await applyAll((await planNow(w)).changes);
    process.env.OIDC_SECRET = 'rotated-unit-secret-value';
    try {
      setVars(w, { client_name: 'Harbor cache' });
      const p = await planNow(w);
      expect(p.changes.map((c) => [c.action, c.attrs])).toEqual([
        [
          'update',
          [
            { name: 'values', after: expect.stringMatching(/ main:helmfile\/values\/dex\.yaml @ [0-9a-f]{12}$/) },
            { name: 'push', after: 'main' },
            { name: 'secret', before: '(sensitive)', after: '(sensitive)' },
          ],
        ],
      ]);
      const d = p.changes[0]!.diff!;
      expect(d.split('\n').filter((l) => /^[-+] /.test(l))).toEqual(['-      name: Harbor (harbor-cache.example.com)', '+      name: Harbor cache', '-      secret: (sensitive)', '+      secret: (sensitive)']);
      expect(d).not.toContain('rotated-unit-secret-value');
      await applyAll(p.changes);
      expect((parse(fileAt(w)) as { config: { staticClients: { id: string; secret?: string; name: string }[] } }).config.staticClients[2]).toMatchObject({ name: 'Harbor cache', secret: 'rotated-unit-secret-value' });
      expect(log(w)[0]).toMatch(/\|dex: update static client harbor-cache-oidc-dex$/);
    } finally {
      process.env.OIDC_SECRET = SECRET;
    }
  });

  it('secret_env: dex reads the secret from its environment; the file names the variable, never the secret', async () => {
    const w = world({ secret_env: 'HARBOR_OIDC_CLIENT_SECRET' });
    const p = await planNow(w);
    expect(p.changes[0]!.attrs.at(-1)).toEqual({ name: 'secretEnv', after: 'HARBOR_OIDC_CLIENT_SECRET' });
    expect(p.changes[0]!.sensitive).toBeUndefined();
    await applyAll(p.changes);
    expect(fileAt(w)).toContain('      secretEnv: HARBOR_OIDC_CLIENT_SECRET\n');
    expect(fileAt(w)).not.toContain(SECRET);
  });
});

describe('git\'s environment', () => {
  it('berth run from a git hook (GIT_DIR and GIT_INDEX_FILE set to the spec repository) still works on its own cache', async () => {
    const w = world();
    const before = { dir: process.env.GIT_DIR, index: process.env.GIT_INDEX_FILE };
    process.env.GIT_DIR = join(w.root, '.git');
    process.env.GIT_INDEX_FILE = join(w.root, '.git', 'index');
    try {
      await applyAll((await planNow(w)).changes);
    } finally {
      for (const [k, v] of [['GIT_DIR', before.dir], ['GIT_INDEX_FILE', before.index]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(log(w)).toHaveLength(2);
    // the spec repository was not touched
    expect(git(w.root, 'log', '--format=%s').trim()).toBe('spec');
    expect(git(w.root, 'status', '--porcelain').trim()).toBe('');
  });
});

// the rows of docs/RELIABILITY.md this file owns, recorded by the tests that pass
const pushRows: Row[] = [];
const pushRow = (what: string, outcome: string, kept: string) => pushRows.push({ what, tried: 1, outcome: `${outcome}: ${ratio(1, 1)}`, kept });

describe('a branch that moved after the plan', () => {
  it('moved before the push (stale info): fetched again, the same edit made on the new tip, pushed once more', async () => {
    const w = world();
    const p = await planNow(w);
    const theirs = pushFromOther(w, (t) => t.replace('replicaCount: 2', 'replicaCount: 3'), 'scale dex to 3');
    await applyAll(p.changes);
    const commits = log(w);
    expect(commits).toHaveLength(3);
    expect(commits[0]!.split(' ')[1]).toBe(theirs);
    // their change and berth's client, nothing else
    const want = VALUES.replace('replicaCount: 2', 'replicaCount: 3');
    const after = fileAt(w);
    expect(after.replace(ITEM, '')).toBe(want);
    expect((await planNow(w)).changes).toEqual([]);
    pushRow('a rejected git push: the values branch moved between plan and push', 'fetched again, the same edit made on the new tip, pushed once more', 'their commit is the parent of berth\'s; every other byte kept');
  });

  it('moved while pushing (the remote lost its compare-and-swap): retried on the new tip', async () => {
    const w = world();
    const p = await planNow(w);
    const counter = raceOnPush(w, `sed -i 's/^replicaCount: 2/replicaCount: 4/' ${PATH}`, 1);
    await applyAll(p.changes);
    expect(readFileSync(counter, 'utf8').trim()).toBe('1');
    const commits = log(w);
    expect(commits.map((l) => l.split('|')[1])).toEqual(['dex: add static client harbor-cache-oidc-dex', 'race 0', 'dex values']);
    expect(fileAt(w).replace(ITEM, '')).toBe(VALUES.replace('replicaCount: 2', 'replicaCount: 4'));
    pushRow('a rejected git push: the branch moved during the push (lost compare-and-swap)', 'retried once on the new tip, pushed', 'their change and berth\'s client, nothing else');
  });

  it('moved again on the retry: one clear line, nothing of berth pushed', async () => {
    const w = world();
    const p = await planNow(w);
    raceOnPush(w, `echo "# race $n" >> ${PATH}`, 2);
    const e = await applyError(p.changes);
    expect(e).toMatch(new RegExp(`^harbor-cache-01: dex static client harbor-cache-oidc-dex: the push to main of ${w.origin.replace(/[.]/g, '\\.')} was rejected again \\((failed to update ref|stale info|fetch first)\\): someone keeps pushing to it; berth pushed nothing \\(run berth apply again once the branch is quiet\\)$`));
    expect(log(w).map((l) => l.split('|')[1])).toEqual(['race 1', 'race 0', 'dex values']);
    expect(fileAt(w)).not.toContain('harbor-cache-oidc-dex');
    pushRow('a rejected git push, rejected again on the retry', 'one clear line, the apply fails', 'berth pushed nothing; both of their commits intact');
  });

  it('the client itself changed on the new tip: refused, the plan must be made again', async () => {
    const w = world();
    const p = await planNow(w);
    // a colleague added a client with the same id meanwhile, with another name
    pushFromOther(w, (t) => t.replace('  enablePasswordDB: false', `${ITEM.replace('Harbor (harbor-cache.example.com)', 'Harbor by hand').replace(SECRET, 'by-hand')}\n  enablePasswordDB: false`));
    const tip = git(w.origin, 'rev-parse', 'main').trim();
    const e = await applyError(p.changes);
    expect(e).toBe(
      `harbor-cache-01: dex static client harbor-cache-oidc-dex: main of ${w.origin} moved since the plan (now at ${tip.slice(0, 12)}), and client harbor-cache-oidc-dex changed there too: the planned edit no longer applies as shown (run berth plan again and review the new diff)`,
    );
    expect(git(w.origin, 'rev-parse', 'main').trim()).toBe(tip);
    pushRow('the branch moved and the client itself changed on the new tip', 'refused: the plan must be made again', 'the branch as they left it');
  });

  it('someone made the very same edit meanwhile: nothing to push, no commit of berth', async () => {
    const w = world();
    const p = await planNow(w);
    const theirs = pushFromOther(w, (t) => t.replace('\n  enablePasswordDB: false', `${ITEM}\n  enablePasswordDB: false`));
    await applyAll(p.changes);
    expect(git(w.origin, 'rev-parse', 'main').trim()).toBe(theirs);
  });
});

describe('review branches', () => {
  it('pushes one commit on top of the branch to the review branch, leaves the branch, waits for the merge, rebuilds the review on a moved branch', async () => {
    const w = world({ review_branch: 'berth/harbor-oidc-client' });
    const p = await planNow(w);
    expect(p.changes[0]!.attrs[1]).toEqual({ name: 'push', after: 'berth/harbor-oidc-client (review branch; main stays as it is)' });
    await applyAll(p.changes);
    expect(git(w.origin, 'rev-parse', 'main').trim()).toBe(w.seed);
    const review = log(w, 'berth/harbor-oidc-client');
    expect(review).toHaveLength(2);
    expect(review[0]!.split(' ')[1]).toBe(w.seed);
    expect(fileAt(w, 'berth/harbor-oidc-client').replace(ITEM, '')).toBe(VALUES);

    // not merged yet: nothing to do, and the plan says what it waits for
    const waiting = await planNow(w);
    expect(waiting.changes).toEqual([]);
    expect(waiting.warnings).toEqual([`dex static client harbor-cache-oidc-dex: the change waits for review on branch berth/harbor-oidc-client of ${w.origin} (not in main yet)`]);
    expect(Object.keys(waiting.fingerprints)).toEqual([`dex_values:${w.origin} main:${PATH} (review branch berth/harbor-oidc-client)`]);

    // main moved in that file: the review is rebuilt on the new tip (the branch is berth's)
    const moved = pushFromOther(w, (t) => t.replace('replicaCount: 2', 'replicaCount: 3'));
    const again = await planNow(w);
    expect(again.changes[0]!.attrs[1]).toEqual({ name: 'push', after: 'berth/harbor-oidc-client (review branch, replaced; main stays as it is)' });
    await applyAll(again.changes);
    expect(log(w, 'berth/harbor-oidc-client')[0]!.split(' ')[1]).toBe(moved);

    // merged (fast-forward): nothing to do, no warning
    git(w.origin, 'update-ref', 'refs/heads/main', git(w.origin, 'rev-parse', 'berth/harbor-oidc-client').trim());
    const merged = await planNow(w);
    expect(merged.changes).toEqual([]);
    expect(merged.warnings).toEqual([]);
  });
});

/** line:col of the value after `key` in the spec's group_vars (as the vars file was written). */
function at(w: World, key: string): string {
  const lines = readFileSync(join(w.root, 'inventories/t/group_vars/all.yml'), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(key));
  return `${i + 1}:${lines[i]!.indexOf(key) + key.length + 1}`;
}

describe('mistakes, with the line that made them', () => {
  it('a branch or file that is not there: a plan error at the spec value', async () => {
    const w = world();
    setVars(w, { branch: 'production' });
    await expect(planNow(w)).rejects.toThrow(/^branch production does not exist in /);
    const b = await planNow(w).catch((x: BerthError) => x.format());
    expect(b).toBe(`inventories/t/group_vars/all.yml:${at(w, '"branch": ')}: branch production does not exist in ${w.origin} (oidc.dex_values.branch names the branch that holds dex's values)`);
    setVars(w, { path: 'values/dex.yaml' });
    const e = await planNow(w).catch((x: BerthError) => x.format());
    expect(e).toBe(`inventories/t/group_vars/all.yml:${at(w, '"path": ')}: values/dex.yaml does not exist on branch main of ${w.origin} (at ${w.seed.slice(0, 12)}) (oidc.dex_values.path is the values file's path in that repository)`);
  });

  it('a values file berth cannot read: the error names the repository, branch, file and line', async () => {
    const w = world({}, 'config:\n  staticClients:\n    - id: a\n   bad: [\n');
    const e = await planNow(w).catch((x: BerthError) => x.format());
    expect(e).toMatch(new RegExp(`^${w.origin.replace(/[.]/g, '\\.')} main:helmfile/values/dex\\.yaml:4:\\d+: not valid YAML: `));
  });

  it('an unreachable repository: one line, without the credentials of its URL', async () => {
    const w = world();
    // 127.0.0.237 is this test set's own address; nothing listens on port 9
    setVars(w, { repo: 'https://berth:tok3n-unit-s3cret@127.0.0.237:9/platform/cluster.git' });
    const e = await planNow(w).catch((x: BerthError) => x.format());
    expect(e).toMatch(/^https:\/\/127\.0\.0\.237:9\/platform\/cluster\.git: git ls-remote failed: fatal: unable to access 'https:\/\/127\.0\.0\.237:9\/platform\/cluster\.git\/': Failed to connect/);
    expect(e).not.toContain('tok3n-unit-s3cret');
    expect(e).not.toContain('berth:');
  });
});

describe('two cache VMs and one dex client', () => {
  /** The world's spec with a second cache host, whose host_vars say `vars`. */
  function twoCaches(w: World, vars: Record<string, unknown>): void {
    writeTree(
      {
        'inventories/t/hosts.yml': 'all:\n  children:\n    cache:\n      hosts:\n        harbor-cache-01:\n        harbor-cache-02:\n',
        'inventories/t/host_vars/harbor-cache-02.yml': JSON.stringify(vars, null, 2) + '\n',
      },
      w.root,
    );
  }
  const refusal = () => prepare({ root: w.root, inventory: 'inventories/t' }).then(() => 'no error', (e: BerthError) => e.format());
  let w: World;

  it('another hostname under the same client id: refused before any host or repository is contacted, naming both hosts', async () => {
    w = world();
    twoCaches(w, { harbor: { hostname: 'harbor-cache-b.example.com' } });
    const before = log(w);
    const e = await refusal();
    expect(e).toMatch(/^inventories\/t\/group_vars\/all\.yml:\d+:\d+: dex static client harbor-cache-oidc-dex in .* main:helmfile\/values\/dex\.yaml \(config\.staticClients\): hosts harbor-cache-01 and harbor-cache-02 want it different \(harbor-cache-01: name "Harbor \(harbor-cache\.example\.com\)", redirectURIs https:\/\/harbor-cache\.example\.com\/c\/oidc\/callback; harbor-cache-02: name "Harbor \(harbor-cache-b\.example\.com\)", redirectURIs https:\/\/harbor-cache-b\.example\.com\/c\/oidc\/callback\); each apply would undo the other's \(one client serves one cache VM: give each its own oidc\.client_id and client_secret in host_vars\)$/);
    expect(e).not.toContain(SECRET);
    expect(log(w)).toEqual(before);
  });

  it('the same client but another secret: refused without showing either secret', async () => {
    w = world();
    process.env.OIDC_SECRET_B = 'dex-unit-b-c2Vjb25kIHNlY3JldA';
    twoCaches(w, { oidc: { client_id: 'harbor-cache-oidc-dex', client_secret: { secret_env: 'OIDC_SECRET_B' }, dex_values: { repo: w.origin, path: PATH } } });
    const e = await refusal();
    expect(e).toContain('hosts harbor-cache-01 and harbor-cache-02 want it different (the same fields but another secret)');
    expect(e).not.toContain(SECRET);
    expect(e).not.toContain('dex-unit-b-c2Vjb25kIHNlY3JldA');
    delete process.env.OIDC_SECRET_B;
  });

  it('a client id per cache VM, or two VMs behind one hostname: both plan', async () => {
    w = world();
    twoCaches(w, {
      harbor: { hostname: 'harbor-cache-b.example.com' },
      oidc: { client_id: 'harbor-cache-b-oidc-dex', client_secret: { secret_env: 'OIDC_SECRET' }, dex_values: { repo: w.origin, path: PATH } },
    });
    const own = await prepare({ root: w.root, inventory: 'inventories/t' });
    expect(own.programs.map((p) => p.host)).toEqual(['harbor-cache-01', 'harbor-cache-02']);
    twoCaches(w, {});
    const same = await prepare({ root: w.root, inventory: 'inventories/t' });
    expect(same.programs).toHaveLength(2);
  });
});

describe('where the repository is', () => {
  it('a relative path is the spec root\'s; an https URL is shown without its credentials; ssh forms stay', () => {
    expect(repoLocation('../cluster.git', '/srv/spec')).toEqual({ url: '/srv/cluster.git', display: '../cluster.git' });
    expect(repoLocation('https://ci:t0ken-value@git.example.com/platform/cluster.git', '/srv/spec')).toEqual({
      url: 'https://ci:t0ken-value@git.example.com/platform/cluster.git',
      display: 'https://git.example.com/platform/cluster.git',
    });
    expect(repoLocation('git@git.example.com:platform/cluster.git', '/x').display).toBe('git@git.example.com:platform/cluster.git');
    expect(repoLocation('ssh://git@git.example.com:2222/platform/cluster.git', '/x').display).toBe('ssh://git@git.example.com:2222/platform/cluster.git');
  });
});

describe('docs/RELIABILITY.md', () => {
  it('lists the moved-branch cases this file put berth through', () => {
    expect(pushRows.length, 'a push test did not record its result (it failed above)').toBe(4);
    const msg = checkSection('git-push', pushRows, 'npx vitest run --project unit test/unit/dex-client.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});
