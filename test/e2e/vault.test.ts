// The vault and CI mode end to end (issue #6): the real CLI on real hosts,
// the vault file checked with Debian's `age` CLI both ways, and real git
// repositories (a bare origin on disk) for CI mode's guard.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { INVENTORY, SpecDir, berth, buildBerth, json, onHost, removeSpecDirs, settledSshdLog, show, webHost, type BerthRun, type InventoryHost } from './berth.js';
import { resetHosts, testHosts } from './hosts.js';

const DIR = '/etc/vault-app';
const SECRET_ENV = `${DIR}/secret.env`;
const TOKEN_SHA = `${DIR}/token.sha256`;
const PB = ['-p', 'playbooks/vault.yml'];

const temps: string[] = [];
function temp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

beforeAll(async () => {
  await buildBerth();
});
afterAll(() => {
  removeSpecDirs();
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

const names = (n: number, from = 1) => Array.from({ length: n }, (_, i) => testHosts().name(from + i));

/** An age identity made by Debian's age-keygen: its file, key line and recipient. */
function ageKey(): { file: string; key: string; recipient: string } {
  const file = join(temp('berth-age-'), 'key.txt');
  execFileSync('age-keygen', ['-o', file], { stdio: ['ignore', 'ignore', 'ignore'] });
  const key = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
  const recipient = execFileSync('age-keygen', ['-y', file]).toString().trim();
  return { file, key, recipient };
}

/** The vault's plain content, decrypted by the age CLI with `keyFile`. */
function ageDecrypt(spec: SpecDir, keyFile: string): Record<string, any> {
  return parse(execFileSync('age', ['-d', '-i', keyFile, spec.path(`${INVENTORY}/vault.age`)]).toString()) as Record<string, any>;
}

/** A small role that writes vault values into a 0600 file and passes one to a command (no service, no listener). */
function writeVaultRole(spec: SpecDir): void {
  spec.write('playbooks/vault.yml', '- name: vault app\n  hosts: web\n  roles: [vault_app]\n');
  spec.write(
    'roles/vault_app/tasks/main.yml',
    [
      '- name: secrets directory',
      `  directory: { path: ${DIR}, owner: root, group: root, mode: "0700" }`,
      '- name: secret env file',
      `  template: { src: secret.env.hbs, dest: ${SECRET_ENV}, owner: root, group: root, mode: "0600" }`,
      '- name: token fingerprint',
      '  command:',
      `    cmd: "printf '%s' {{ shq secrets.api_token }} | sha256sum | cut -d' ' -f1 > ${TOKEN_SHA}"`,
      `    creates: ${TOKEN_SHA}`,
      '',
    ].join('\n'),
  );
  spec.write('roles/vault_app/templates/secret.env.hbs', '# {{ inventory_hostname }}: from the vault\nAPI_TOKEN={{ secrets.api_token }}\nDB_PASSWORD={{ secrets.db_password }}\n');
}

const VAULT_VARS = {
  app: { greeting: 'unused' },
  secrets: {
    api_token: { vault: 'app.api_token' },
    db_password: { vault: 'app.db_password', generate: { bytes: 20, encoding: 'base64' } },
  },
};

/**
 * A spec whose vault the operator made with `berth vault init` (for them and
 * the CI), holding an api token written into it by the age CLI.
 */
async function vaultSpec(hosts: InventoryHost[], opts: { git?: boolean } = {}) {
  const op = ageKey();
  const ci = ageKey();
  const spec = await SpecDir.create({ hosts, git: false });
  writeVaultRole(spec);
  spec.setWebVars(VAULT_VARS);
  spec.env = { BERTH_AGE_KEY: op.key, XDG_CONFIG_HOME: temp('berth-xdg-') };
  const init = await spec.raw('vault', 'init', '-i', INVENTORY, '--recipient', ci.recipient);
  expect(init.code, show(init)).toBe(0);
  const token = `tok-${execFileSync('openssl', ['rand', '-hex', '20']).toString().trim()}`;
  // the age CLI writes the vault's content, to the recipients file berth wrote
  const plain = join(temp('berth-plain-'), 'vault.yml');
  writeFileSync(plain, `# made with the age CLI\napp:\n  api_token: ${token}\n`);
  execFileSync('age', ['-e', '-a', '-R', spec.path(`${INVENTORY}/vault.recipients`), '-o', spec.path(`${INVENTORY}/vault.age`), plain]);
  rmSync(plain);
  if (opts.git) await gitInit(spec);
  return { spec, op, ci, token };
}

const lines = (r: BerthRun) => `${r.stdout}\n${r.stderr}`;

// ---------------------------------------------------------------- 1. vault values on hosts

describe('vault values', () => {
  it('reach only their file on the host; a generated one is made once and the same over ten plans and applies', async () => {
    const hosts = names(2);
    await resetHosts(...hosts);
    const { spec, op, ci, token } = await vaultSpec(hosts.map(webHost));
    const runs: BerthRun[] = [];
    const generatedNote = 'controller: generated vault entry app.db_password (20 random bytes, base64) and stored it in inventories/e2e/vault.age: commit that file';
    const passwords: string[] = [];

    // ten runs: a saved plan, exactly that plan applied, then plan and apply by turns
    const steps: [string, () => Promise<BerthRun>, number][] = [
      ['plan --out', () => spec.plan(...PB, '--out', 'p.json', '--detailed-exitcode'), 2],
      ['apply p.json', () => spec.raw('apply', 'p.json'), 0],
    ];
    for (let i = 0; i < 4; i++) {
      steps.push(['plan', () => spec.plan(...PB, '--detailed-exitcode'), 0]);
      steps.push(['apply', () => spec.apply(...PB, '--json'), 0]);
    }
    for (const [i, [what, step, want]] of steps.entries()) {
      const r = await step();
      runs.push(r);
      expect(r.code, `${what}: ${show(r)}`).toBe(want);
      // the CI's identity decrypts the vault with the age CLI, every time to the same value
      const v = ageDecrypt(spec, ci.file);
      expect(v.app.api_token).toBe(token);
      passwords.push(v.app.db_password);
      expect(r.stdout.includes(generatedNote), `${what}: says it generated (only the first run)`).toBe(i === 0);
    }
    expect(steps).toHaveLength(10);
    expect(new Set(passwords).size).toBe(1);
    const password = passwords[0]!;
    expect(Buffer.from(password, 'base64')).toHaveLength(20);
    // the plan was applied exactly, and after that nothing is left to do
    expect(runs[1]!.stdout).toContain('Applied: 4 created, 0 updated, 0 deleted, 2 run (on 2 of 2 hosts).');
    expect(runs[2]!.stdout).toContain('No changes. The hosts match the spec.');
    for (const r of runs.slice(3).filter((_, i) => i % 2 === 0)) expect(json(r).summary).toMatchObject({ create: 0, update: 0, delete: 0, run: 0 });

    for (const h of hosts) {
      const out = await onHost(h, `stat -c '%U:%G %a' ${SECRET_ENV}; cat ${SECRET_ENV}; cat ${TOKEN_SHA}`);
      expect(out).toBe(
        `root:root 600\n# ${h}: from the vault\nAPI_TOKEN=${token}\nDB_PASSWORD=${password}\n${createSha(token)}\n`,
      );
    }

    // the values show nowhere else: output, saved plan, state records, other files, journal
    const values = { token, password, operatorKey: op.key, ciKey: ci.key };
    const leaks = (text: string) => Object.entries(values).filter(([, v]) => text.includes(v)).map(([k]) => k);
    for (const r of runs) expect(leaks(lines(r)), show(r)).toEqual([]);
    expect(leaks(spec.read('p.json'))).toEqual([]);
    expect(spec.read('p.json')).toContain('+DB_PASSWORD=(sensitive)');
    const th = testHosts();
    for (const h of hosts) {
      expect(leaks(await onHost(h, 'cat /var/lib/berth/state.json'))).toEqual([]);
      const grep = await execa('grep', ['-rlF', '--devices=skip', '-e', token, '-e', password, th.upperDir(h)], { reject: false });
      expect(grep.stdout.split('\n').filter(Boolean)).toEqual([join(th.upperDir(h), SECRET_ENV)]);
      expect(leaks(await onHost(h, 'journalctl --no-pager -q -o cat'))).toEqual([]);
    }
    // what berth writes is a file the age CLI reads with either identity, and never plain text
    expect(ageDecrypt(spec, op.file).app.db_password).toBe(password);
    expect(leaks(spec.read(`${INVENTORY}/vault.age`))).toEqual([]);
  });
});

function createSha(s: string): string {
  return execFileSync('sha256sum', { input: s }).toString().split(' ')[0]!;
}

// ---------------------------------------------------------------- 2. identity, CI and load time

describe('the vault before any host is contacted', () => {
  it('a missing or wrong identity is one clear line, and no host is contacted', async () => {
    const h = testHosts().name(3);
    const { spec } = await vaultSpec([webHost(3)]);
    const before = await settledSshdLog(h);
    const xdg = temp('berth-xdg-');
    const none = await berth(['plan', '-i', INVENTORY, ...PB], { cwd: spec.root, env: { BERTH_AGE_KEY: undefined, BERTH_AGE_KEY_FILE: undefined, XDG_CONFIG_HOME: xdg } });
    expect(none.code, show(none)).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toBe(
      `error: inventories/e2e/vault.age: no age identity to decrypt it (set BERTH_AGE_KEY to your AGE-SECRET-KEY-1… key, or BERTH_AGE_KEY_FILE to a key file; default ${xdg}/berth/age-key.txt)\n`,
    );
    const stranger = ageKey();
    const wrong = await berth(['apply', '-i', INVENTORY, ...PB], { cwd: spec.root, env: { BERTH_AGE_KEY: undefined, BERTH_AGE_KEY_FILE: stranger.file, XDG_CONFIG_HOME: xdg } });
    expect(wrong.code, show(wrong)).toBe(1);
    expect(wrong.stderr).toBe(
      `error: inventories/e2e/vault.age: the age identity from ${stranger.file} is not one it was encrypted to (someone who can decrypt it adds your recipient with: berth vault rekey --add-recipient age1…)\n`,
    );
    expect(lines(wrong)).not.toContain(stranger.key);
    const after = await settledSshdLog(h);
    expect(after.accepted, 'sshd accepted no login').toBe(before.accepted);
  });

  it('a generated secret is stored at load time even when no host answers; CI mode refuses to make one', async () => {
    // a host nothing listens for: the run fails on it, after the vault was written
    const ghost: InventoryHost = { name: 'ghost', address: '127.0.0.159', port: 22 };
    const { spec, ci } = await vaultSpec([ghost]);
    const vaultBefore = spec.read(`${INVENTORY}/vault.age`);

    const refused = await spec.plan(...PB, '--ci');
    expect(refused.code, show(refused)).toBe(1);
    const at = spec.read(`${INVENTORY}/group_vars/web.yml`).split('\n').findIndex((l) => l.includes('vault: app.db_password'));
    expect(refused.stderr).toMatch(
      new RegExp(
        `^error: inventories/e2e/group_vars/web\\.yml:${at + 1}:\\d+: vault entry app\\.db_password is missing, and CI mode never generates secrets \\(run berth vault generate -i inventories/e2e outside CI and commit inventories/e2e/vault\\.age\\)\\n$`,
      ),
    );
    expect(spec.read(`${INVENTORY}/vault.age`)).toBe(vaultBefore);
    // CI=true alone is CI mode too (the helper's BERTH_CI=false removed)
    const byEnv = await berth(['validate', '-i', INVENTORY, ...PB], { cwd: spec.root, env: { ...spec.env, BERTH_CI: undefined } });
    expect(byEnv.code, show(byEnv)).toBe(1);
    expect(byEnv.stderr).toContain('CI mode never generates secrets');

    const plan = await spec.plan(...PB);
    expect(plan.code, show(plan)).toBe(1);
    expect(plan.stdout).toContain('controller: generated vault entry app.db_password (20 random bytes, base64) and stored it in inventories/e2e/vault.age: commit that file');
    expect(plan.stdout).toMatch(/ghost: FAILED: .*connect/i);
    expect(ageDecrypt(spec, ci.file).app.db_password).toMatch(/^[A-Za-z0-9+/]{27}=$/);
    // and now CI mode resolves it
    const ciValidate = await spec.run('validate', ...PB, '--ci');
    expect(ciValidate.code, show(ciValidate)).toBe(0);
  });
});

// ---------------------------------------------------------------- 3. CI mode's git guard

async function gitInit(spec: SpecDir): Promise<void> {
  await git(spec, 'init', '-q');
  spec.write('.gitignore', 'p.json\n');
  await git(spec, 'add', '-A');
  await git(spec, 'commit', '-q', '-m', 'spec');
}

async function git(spec: SpecDir, ...args: string[]): Promise<string> {
  const r = await execa('git', ['-c', 'user.name=berth e2e', '-c', 'user.email=e2e@berth.invalid', '-c', 'init.defaultBranch=main', '-c', 'advice.detachedHead=false', ...args], {
    cwd: spec.root,
    stdin: 'ignore',
    timeout: 30_000,
  });
  return r.stdout.trim();
}

describe('CI mode (CI=true) on a real git repository', () => {
  it('apply refuses a dirty tree and a commit not on main, before any host is contacted; a merged commit applies and is recorded', async () => {
    const h = testHosts().name(4);
    await resetHosts(h);
    const { spec } = await vaultSpec([webHost(4)], { git: true });
    // the vault's generated entry is made (and committed) outside CI, as the README says
    expect((await spec.raw('vault', 'generate', '-i', INVENTORY, ...PB)).code).toBe(0);
    await git(spec, 'commit', '-q', '-am', 'vault: generated app.db_password');
    const origin = temp('berth-origin-');
    await execa('git', ['init', '-q', '--bare', origin]);
    await git(spec, 'remote', 'add', 'origin', origin);
    await git(spec, 'push', '-q', 'origin', 'main');
    // CI=true (set by the helper) with nothing turning CI mode off
    const ciEnv = { ...spec.env, BERTH_CI: undefined };
    const ciApply = (...args: string[]) => berth(['apply', '-i', INVENTORY, ...PB, ...args], { cwd: spec.root, env: ciEnv });
    const noHostTouched = async () => expect(await onHost(h, `test -e ${DIR} && echo present || echo absent`)).toBe('absent\n');
    const sshBefore = await settledSshdLog(h);

    // 1. an uncommitted change
    spec.setWebVars({ ...VAULT_VARS, app: { greeting: 'uncommitted' } });
    const dirty = await ciApply();
    expect(dirty.code, show(dirty)).toBe(1);
    expect(dirty.stdout).toBe('');
    expect(dirty.stderr).toBe(
      'error: CI mode: refusing to apply: the spec has uncommitted changes (inventories/e2e/group_vars/web.yml) (CI applies only what is committed; commit or remove them, and keep plan files outside the checkout or in .gitignore)\n',
    );
    expect((await settledSshdLog(h)).accepted, 'no login for the refused apply').toBe(sshBefore.accepted);

    // 2. committed, but on a branch that is not main; a plan of it is fine (that is the merge request's job)
    await git(spec, 'checkout', '-q', '-b', 'feature');
    await git(spec, 'commit', '-q', '-am', 'greeting');
    const feature = await git(spec, 'rev-parse', 'HEAD');
    const mrPlan = await berth(['plan', '-i', INVENTORY, ...PB, '--format', 'markdown', '--detailed-exitcode'], { cwd: spec.root, env: ciEnv });
    expect(mrPlan.code, show(mrPlan)).toBe(2);
    expect(mrPlan.stdout).toMatch(new RegExp(`^<!-- berth plan: inventories/e2e -->\\n### berth plan: 2 to create, 0 to update, 0 to delete, 1 to run\\n\\n.* · spec \`${feature.slice(0, 12)}\`\\n`));
    expect(mrPlan.stdout).toContain('\n+DB_PASSWORD=(sensitive)\n');
    const sshAfterPlan = await settledSshdLog(h);
    const offBranch = await ciApply();
    expect(offBranch.code, show(offBranch)).toBe(1);
    expect(offBranch.stderr).toBe(
      `error: CI mode: refusing to apply: commit ${feature.slice(0, 12)} is not on branch main (CI applies what was merged to main; another branch is set with --ci-branch or BERTH_CI_BRANCH)\n`,
    );
    await noHostTouched();
    expect((await settledSshdLog(h)).accepted, 'no login for the refused apply').toBe(sshAfterPlan.accepted);

    // 3. merged to main and pushed; CI checks out the commit detached
    await git(spec, 'checkout', '-q', 'main');
    await git(spec, 'merge', '-q', '--ff-only', 'feature');
    await git(spec, 'push', '-q', 'origin', 'main');
    await git(spec, 'checkout', '-q', '--detach', 'origin/main');
    const wrongBranch = await berth(['apply', '-i', INVENTORY, ...PB], { cwd: spec.root, env: { ...ciEnv, BERTH_CI_BRANCH: 'release' } });
    expect(wrongBranch.stderr).toBe('error: CI mode: refusing to apply: branch release is not in this clone (fetch it first: git fetch origin release)\n');
    const ok = await ciApply('--ci-branch', 'main');
    expect(ok.code, show(ok)).toBe(0);
    expect(ok.stdout).toContain('Applied: 2 created, 0 updated, 0 deleted, 1 run (on 1 of 1 hosts).');
    const record = JSON.parse(await onHost(h, 'cat /var/lib/berth/state.json')) as { last: { spec: { commit: string; dirty: boolean } } };
    expect(record.last.spec).toMatchObject({ commit: feature, dirty: false });
    const status = await berth(['status', '-i', INVENTORY, ...PB], { cwd: spec.root, env: ciEnv });
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^${h}: applied ${feature.slice(0, 12)} at \\S+ \\(ok\\); in sync$`, 'm'));

    // 4. a plan file saved inside the checkout: ignored by .gitignore it is fine, otherwise it makes the tree dirty
    const saved = await berth(['plan', '-i', INVENTORY, ...PB, '--out', 'p.json'], { cwd: spec.root, env: ciEnv });
    expect(saved.code, show(saved)).toBe(0);
    expect((await berth(['apply', 'p.json'], { cwd: spec.root, env: ciEnv })).code).toBe(0);
    writeFileSync(spec.path('plan.json'), spec.read('p.json'));
    const untracked = await berth(['apply', 'plan.json'], { cwd: spec.root, env: ciEnv });
    expect(untracked.stderr).toMatch(/^error: CI mode: refusing to apply: the spec has uncommitted changes \(plan\.json\)/);
    expect(existsSync(spec.path('plan.json'))).toBe(true);
  });
});
