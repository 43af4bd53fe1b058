// The dex client (issue 6, second part) end to end: the real CLI applies the
// harbor_api and dex_client roles to a real cache host; Harbor's API is the
// Harbor fake (plain HTTP on 127.0.0.237, this file's own address); the
// cluster's values repository is a real bare git repository on disk, with a
// second clone that plays the colleagues pushing to it. The OIDC client
// secret is generated once into the spec's age vault, and both Harbor and
// dex get it from that one entry.

import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildBerth, json, show, specCli, type BerthJson, type BerthRun } from './berth.js';
import { e2eHost, keyFile, knownHostsFile, resetHosts, testHosts } from './hosts.js';
import { startHarborFake, type HarborFake } from '../harbor-fake/index.js';
import { cacheDirFor, repoLocation } from '../../src/git/values-repo.js';

const INVENTORY = 'inventories/e2e';
const PLAYBOOK = 'playbooks/dex.yml';
const CACHE = 'harbor-cache-e2e';
const CACHE_REF = 1;
const STATE_RECORD = '/var/lib/berth/state.json';
const PATH = 'helmfile/values/dex.yaml';
const CLIENT = 'harbor-cache-oidc-dex';
// servers this file starts listen on 127.0.0.237..239 only
const FAKE_HOST = '127.0.0.237';
const FAKE_PORT = 18237;
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VALUES = readFileSync(join(REPO_ROOT, 'test/fixtures/dex/values.yaml'), 'utf8');

const th = testHosts();
const tag = randomBytes(6).toString('hex');
const ADMIN_PASSWORD = `Adm1n-${tag}-dex`;

let work: string;
let specDir: string;
let origin: string;
let other: string;
let cacheDir: string;
let ageKeyFile: string;
let ageKey: string;
let seed: string;
let harbor: HarborFake;

/** Everything berth printed or saved, searched for secrets at the end. */
const outputs: { what: string; text: string }[] = [];
/** Every client secret the vault held during the tests. */
const vaultSecrets = new Set<string>();

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=colleague', '-c', 'user.email=colleague@berth.invalid', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GIT_DIR: undefined, GIT_INDEX_FILE: undefined },
  }).toString();
}

const env = () => ({ HARBOR_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_AGE_KEY: ageKey, BERTH_CACHE_DIR: cacheDir, XDG_CONFIG_HOME: join(work, 'xdg') });

const { cli, plan, apply } = specCli({
  cwd: () => specDir,
  specArgs: () => ['-i', INVENTORY, '-p', PLAYBOOK],
  env,
  record: (r) => outputs.push({ what: r.cmd, text: r.stdout + r.stderr }),
});

function hostOf(j: BerthJson) {
  const h = j.hosts.find((x) => x.host === CACHE);
  expect(h).toBeDefined();
  return h!;
}
const outline = (j: BerthJson) => hostOf(j).changes.map((c) => `${c.action} ${c.resource}`);

// ---------------------------------------------------------------- the spec

function writeVars(dexValues: Record<string, unknown> = {}): void {
  const vars = {
    berth_user: 'root',
    berth_key_file: keyFile(),
    berth_known_hosts: knownHostsFile(),
    berth_connect_timeout: 10,
    harbor: { hostname: 'harbor-cache.example.com', version: 'v2.12.4', admin_password: { secret_env: 'HARBOR_ADMIN_PASSWORD' } },
    tls: {},
    harbor_api: { url: `http://${FAKE_HOST}:${FAKE_PORT}`, service: '', ca_cert: '', retry_delay_ms: 150, timeout: 15 },
    registries: {},
    projects: {},
    oidc: {
      provider_name: 'dex',
      endpoint: 'https://dex.example.com',
      client_id: CLIENT,
      // one entry, generated once, for Harbor and for dex
      client_secret: { vault: 'oidc.client_secret', generate: { bytes: 20, encoding: 'base64' } },
      groups_claim: 'groups',
      admin_group: 'cluster_admins',
      scope: ['openid', 'profile', 'email', 'groups', 'offline_access'],
      dex_values: { repo: origin, branch: 'main', path: PATH, key: 'config.staticClients', ...dexValues },
    },
  };
  writeFileSync(join(specDir, INVENTORY, 'group_vars/all.yml'), `# written by dex-client.test.ts\n${JSON.stringify(vars, null, 2)}\n`);
}

/** Commits the spec as it is (a spec is a git checkout; commit messages in the values repo name its commit). */
function commitSpec(message: string): string {
  git(specDir, 'add', '-A');
  git(specDir, 'commit', '-q', '--allow-empty', '-m', message);
  return git(specDir, 'rev-parse', 'HEAD').trim();
}

/** The vault's oidc.client_secret, read with Debian's age CLI. */
function vaultSecret(): string {
  const plain = parse(execFileSync('age', ['-d', '-i', ageKeyFile, join(specDir, INVENTORY, 'vault.age')]).toString()) as { oidc: { client_secret: string } };
  vaultSecrets.add(plain.oidc.client_secret);
  return plain.oidc.client_secret;
}

/** A new value for the vault entry, written with the age CLI (as an operator rotating it would). */
function rotateSecret(): string {
  const value = randomBytes(20).toString('base64');
  vaultSecrets.add(value);
  const plainFile = join(mkdtempSync(join(tmpdir(), 'berth-e2e-dex-plain-')), 'vault.yml');
  writeFileSync(plainFile, `oidc:\n  client_secret: "${value}"\n`, { mode: 0o600 });
  execFileSync('age', ['-e', '-a', '-R', join(specDir, INVENTORY, 'vault.recipients'), '-o', join(specDir, INVENTORY, 'vault.age'), plainFile]);
  rmSync(plainFile);
  return value;
}

// ---------------------------------------------------------------- the values repository

const log = (ref = 'main') =>
  git(origin, 'log', '--format=%H %P|%s', ref)
    .trim()
    .split('\n')
    .map((l) => ({ sha: l.split(' ')[0]!, parent: l.split(' ')[1]!.split('|')[0]!, subject: l.slice(l.indexOf('|') + 1) }));
const tip = (ref = 'main') => git(origin, 'rev-parse', ref).trim();
const fileAt = (ref = 'main') => git(origin, 'show', `${ref}:${PATH}`);
const clientIn = (text: string) => (parse(text) as { config: { staticClients: { id: string; name: string; secret?: string; redirectURIs: string[] }[] } }).config.staticClients.find((c) => c.id === CLIENT);

/** A colleague's push to main from their own clone. */
function pushFromOther(edit: (text: string) => string, subject: string): string {
  git(other, 'pull', '-q', '--ff-only', origin, 'main');
  writeFileSync(join(other, PATH), edit(readFileSync(join(other, PATH), 'utf8')));
  git(other, 'commit', '-q', '-am', subject);
  git(other, 'push', '-q', origin, 'HEAD:main');
  return tip();
}

/** A pre-push hook in berth's cache: a colleague pushes right before each of berth's pushes (at most `times`). */
function raceOnPush(edit: string, times: number): () => void {
  const repoCache = cacheDirFor(repoLocation(origin, specDir), { ...process.env, BERTH_CACHE_DIR: cacheDir });
  const hook = join(repoCache, 'hooks', 'pre-push');
  const counter = join(work, `race-${randomBytes(4).toString('hex')}`);
  writeFileSync(counter, '0');
  writeFileSync(
    hook,
    [
      '#!/bin/sh',
      'unset GIT_DIR GIT_INDEX_FILE GIT_WORK_TREE',
      `n=$(cat ${counter}); [ "$n" -ge ${times} ] && exit 0; echo $((n + 1)) > ${counter}`,
      `cd ${other} && git pull -q --ff-only ${origin} main && ${edit} && git -c user.name=colleague -c user.email=colleague@berth.invalid commit -q -am "race $n" && git push -q ${origin} HEAD:main`,
      '',
    ].join('\n'),
  );
  chmodSync(hook, 0o755);
  return () => rmSync(hook, { force: true });
}

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  e2eHost(CACHE_REF);
  await buildBerth();
  work = mkdtempSync(join(tmpdir(), 'berth-e2e-dex-'));
  cacheDir = join(work, 'cache');
  specDir = join(work, 'spec');
  mkdirSync(join(specDir, INVENTORY, 'group_vars'), { recursive: true });
  mkdirSync(join(specDir, 'playbooks'), { recursive: true });

  // the cluster's values repository, and a colleague's clone of it
  origin = join(work, 'cluster-values.git');
  git(work, 'init', '-q', '--bare', origin);
  other = join(work, 'colleague');
  git(work, 'clone', '-q', origin, other);
  mkdirSync(join(other, 'helmfile/values'), { recursive: true });
  writeFileSync(join(other, PATH), VALUES);
  git(other, 'add', '-A');
  git(other, 'commit', '-q', '-m', 'dex values');
  git(other, 'push', '-q', origin, 'HEAD:main');
  seed = tip();

  // an operator's age identity; the vault is theirs
  ageKeyFile = join(work, 'age-key.txt');
  execFileSync('age-keygen', ['-o', ageKeyFile], { stdio: ['ignore', 'ignore', 'ignore'] });
  ageKey = readFileSync(ageKeyFile, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;

  writeFileSync(
    join(specDir, INVENTORY, 'hosts.yml'),
    `${JSON.stringify({ all: { children: { cache: { hosts: { [CACHE]: { berth_host: th.address(CACHE_REF) } } } } } }, null, 2)}\n`,
  );
  writeFileSync(join(specDir, PLAYBOOK), '- name: Harbor cache VM\n  hosts: cache\n  roles: [harbor_api, dex_client]\n');
  writeVars();
  git(specDir, 'init', '-q');
  const init = await cli('vault', 'init', '-i', INVENTORY);
  expect(init.code, show(init)).toBe(0);
  const gen = await cli('vault', 'generate', '-i', INVENTORY, '-p', PLAYBOOK);
  expect(gen.code, show(gen)).toBe(0);
  expect(gen.stdout + gen.stderr).toContain('oidc.client_secret');
  commitSpec('spec with the dex client');

  harbor = await startHarborFake({ host: FAKE_HOST, port: FAKE_PORT, adminPassword: ADMIN_PASSWORD });
  await resetHosts(th.name(CACHE_REF));
});

afterAll(async () => {
  await harbor?.close();
  if (process.env.BERTH_E2E_KEEP_SPECS !== '1' && work) rmSync(work, { recursive: true, force: true });
  await resetHosts(th.name(CACHE_REF));
});

// ---------------------------------------------------------------- the tests

describe('the dex static client in the cluster values repository', () => {
  it('a saved plan shows the YAML diff with the secret masked; applying it adds exactly one commit, the client and nothing else; Harbor and dex hold the same secret', async () => {
    const planFile = join(work, 'first.plan.json');
    const p = await plan('--detailed-exitcode', '--out', planFile);
    expect(p.code, show(p)).toBe(2);
    const saved = readFileSync(planFile, 'utf8');
    outputs.push({ what: 'saved plan first.plan.json', text: saved });
    const j = JSON.parse(saved) as BerthJson;
    expect(outline(j)).toEqual(['update harbor configuration system', 'update harbor configuration oidc', `create dex static client ${CLIENT}`]);
    const dex = hostOf(j).changes.at(-1)!;
    expect(dex).toMatchObject({ role: 'dex_client', module: 'dex_static_client', sensitive: true });
    expect(dex.attrs).toEqual([
      { name: 'values', after: `${origin} main:${PATH} @ ${seed.slice(0, 12)}` },
      { name: 'push', after: 'main' },
      { name: 'secret', after: '(sensitive)' },
    ]);
    expect(Object.keys(hostOf(j).fingerprints)).toContain(`dex_values:${origin} main:${PATH}`);
    // the text plan: the diff, the new client's secret and the others' masked
    expect(p.stdout).toContain(
      [
        `  + dex static client ${CLIENT}`,
        `      values: ${origin} main:${PATH} @ ${seed.slice(0, 12)}, push: main, secret: (sensitive)`,
        `      --- ${PATH}`,
        `      +++ ${PATH}`,
        '      @@ -67,6 +67,11 @@',
        '             redirectURIs:',
        '               - https://grafana.example.com/login/generic_oauth',
        '             secret: (sensitive)   # do not reuse',
        `      +    - id: ${CLIENT}`,
        '      +      name: Harbor (harbor-cache.example.com)',
        '      +      redirectURIs:',
        '      +        - https://harbor-cache.example.com/c/oidc/callback',
        '      +      secret: (sensitive)',
      ].join('\n'),
    );
    expect(p.stdout).not.toContain('Zm9vYmFyLWdyYWZhbmEtc2VjcmV0');

    const a = await cli('apply', planFile);
    expect(a.code, show(a)).toBe(0);

    // exactly one commit, on the planned tip, changing only the values file, only by the client's lines
    const commits = log();
    expect(commits).toHaveLength(2);
    expect(commits[0]!.parent).toBe(seed);
    expect(commits[0]!.subject).toBe(`dex: add static client ${CLIENT}`);
    expect(git(origin, 'diff', '--name-only', seed, 'main').trim()).toBe(PATH);
    const secret = vaultSecret();
    const item = [
      `    - id: ${CLIENT}`,
      '      name: Harbor (harbor-cache.example.com)',
      '      redirectURIs:',
      '        - https://harbor-cache.example.com/c/oidc/callback',
      `      secret: ${secret}`,
      '',
    ].join('\n');
    const after = fileAt();
    const at = after.indexOf(item);
    expect(at).toBeGreaterThan(0);
    expect(after.slice(0, at) + after.slice(at + item.length)).toBe(VALUES);

    // the commit names the spec commit (a clean one)
    const specHead = git(specDir, 'rev-parse', 'HEAD').trim();
    const message = git(origin, 'log', '-1', '--format=%B', 'main');
    expect(message).toContain(`from spec commit ${specHead}.`);
    expect(message).not.toContain('uncommitted');
    expect(message).toContain(`Berth-Spec-Commit: ${specHead}`);

    // Harbor's OIDC client secret is the one in the pushed YAML, the vault's
    expect(clientIn(after)!.secret).toBe(secret);
    expect(harbor.state.configuration.get('oidc_client_secret')).toBe(secret);
    expect(harbor.state.configuration.get('oidc_client_id')).toBe(CLIENT);

    const rec = JSON.parse(await onCache(`cat ${STATE_RECORD}`)) as { last: { status: string; changes: { resource: string; status: string }[] } };
    outputs.push({ what: `${STATE_RECORD} after the first apply`, text: JSON.stringify(rec) });
    expect(rec.last.changes.map((c) => `${c.status} ${c.resource}`)).toContain(`done dex static client ${CLIENT}`);
  });

  it('a second apply makes no commit, and plan says there is nothing to do', async () => {
    const before = tip();
    const p = await plan('--detailed-exitcode');
    expect(p.code, show(p)).toBe(0);
    expect(p.stdout).toContain(`${CACHE}: no changes`);
    const a = await apply('--json');
    expect(a.code, show(a)).toBe(0);
    expect(hostOf(json(a)).changes).toEqual([]);
    expect(tip()).toBe(before);
    expect(log()).toHaveLength(2);
  });

  it('a saved plan is refused when the values repository moved since the plan; a fresh apply then edits the new tip', async () => {
    writeVars({ client_name: 'Harbor cache' });
    commitSpec('a nicer client name');
    const planFile = join(work, 'moved.plan.json');
    const p = await plan('--out', planFile, '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    outputs.push({ what: 'saved plan moved.plan.json', text: readFileSync(planFile, 'utf8') });
    const theirs = pushFromOther((t) => t.replace('replicaCount: 2', 'replicaCount: 3'), 'scale dex to three');

    const refused = await cli('apply', planFile);
    expect(refused.code, show(refused)).toBe(1);
    expect(refused.stdout + refused.stderr).toContain(`${CACHE}: refusing the saved plan: dex_values ${origin} main:${PATH} changed since the plan was made`);
    expect(tip()).toBe(theirs);

    const a = await apply('--json');
    expect(a.code, show(a)).toBe(0);
    const j = json(a);
    expect(outline(j)).toEqual([`update dex static client ${CLIENT}`]);
    expect(hostOf(j).changes[0]!.diff!.split('\n').filter((l) => /^[-+] /.test(l))).toEqual(['-      name: Harbor (harbor-cache.example.com)', '+      name: Harbor cache']);
    expect(log()[0]!.parent).toBe(theirs);
    expect(clientIn(fileAt())!.name).toBe('Harbor cache');
    expect(fileAt()).toContain('replicaCount: 3');
  });

  it('a rotated secret: Harbor and dex both get the new one; a push rejected because a colleague pushed while Harbor was being updated is fetched again and retried', async () => {
    const rotated = rotateSecret();
    commitSpec('rotate the OIDC client secret');
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(outline(json(p))).toEqual(['update harbor configuration oidc', `update dex static client ${CLIENT}`]);
    const dex = hostOf(json(p)).changes[1]!;
    expect(dex.attrs.at(-1)).toEqual({ name: 'secret', before: '(sensitive)', after: '(sensitive)' });
    expect(dex.diff!.split('\n').filter((l) => /^[-+] /.test(l))).toEqual(['-      secret: (sensitive)', '+      secret: (sensitive)']);

    // Harbor answers the OIDC update slowly; meanwhile a colleague pushes to the values repository
    const slow = harbor.fail({ delayMs: 4_000, method: 'PUT', path: '/api/v2.0/configurations', times: 1 });
    const running = apply('--json');
    const deadline = Date.now() + 120_000;
    while (slow.remaining > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(slow.remaining).toBe(0);
    const theirs = pushFromOther((t) => t.replace('tag: "v2.41.1"', 'tag: "v2.41.2"'), 'bump dex');
    const a = await running;
    expect(a.code, show(a)).toBe(0);
    expect(hostOf(json(a)).changes.map((c) => c.status)).toEqual(['done', 'done']);

    const commits = log();
    expect(commits[0]!.subject).toBe(`dex: update static client ${CLIENT}`);
    expect(commits[0]!.parent).toBe(theirs);
    expect(commits[1]!.subject).toBe('bump dex');
    const after = fileAt();
    expect(after).toContain('tag: "v2.41.2"');
    expect(clientIn(after)!.secret).toBe(rotated);
    expect(vaultSecret()).toBe(rotated);
    expect(harbor.state.configuration.get('oidc_client_secret')).toBe(rotated);
    // berth's commit changed only the client's secret line
    expect(git(origin, 'diff', '--numstat', theirs, 'main').trim()).toBe(`1\t1\t${PATH}`);
    expect((await plan('--detailed-exitcode')).code).toBe(0);
  });

  it('rejected again on the retry: one clear line, nothing of berth pushed; the next apply goes through', async () => {
    writeVars({ client_name: 'Harbor pull-through cache' });
    commitSpec('another name');
    const stop = raceOnPush(`echo "# race $n" >> ${PATH}`, 2);
    let a: BerthRun;
    try {
      a = await apply();
    } finally {
      stop();
    }
    expect(a.code, show(a)).toBe(1);
    const failed = a.stdout.split('\n').filter((l) => l.includes('FAILED'));
    expect(failed.join('\n'), show(a)).toMatch(
      new RegExp(`FAILED: ${CACHE}: dex static client ${CLIENT}: the push to main of ${origin.replace(/[.]/g, '\\.')} was rejected again \\([a-z ]+\\): someone keeps pushing to it; berth pushed nothing \\(run berth apply again once the branch is quiet\\)`),
    );
    expect(log().slice(0, 2).map((c) => c.subject)).toEqual(['race 1', 'race 0']);
    expect(clientIn(fileAt())!.name).toBe('Harbor cache');
    const rec = JSON.parse(await onCache(`cat ${STATE_RECORD}`)) as { last: { status: string; changes: { resource: string; status: string }[] } };
    expect(rec.last.status).toBe('failed');
    outputs.push({ what: `${STATE_RECORD} after the failed apply`, text: JSON.stringify(rec) });

    const b = await apply();
    expect(b.code, show(b)).toBe(0);
    expect(log()[0]!.subject).toBe(`dex: update static client ${CLIENT}`);
    expect(clientIn(fileAt())!.name).toBe('Harbor pull-through cache');
  });

  it('the client itself changed on the new tip: apply refuses (the planned diff no longer says what would happen)', async () => {
    writeVars({ client_name: 'Harbor (planned)' });
    commitSpec('planned name');
    const stop = raceOnPush(`sed -i 's/^      name: Harbor pull-through cache$/      name: Harbor (by hand)/' ${PATH}`, 1);
    let a: BerthRun;
    try {
      a = await apply();
    } finally {
      stop();
    }
    expect(a.code, show(a)).toBe(1);
    const now = tip();
    expect(a.stdout).toContain(
      `FAILED: ${CACHE}: dex static client ${CLIENT}: main of ${origin} moved since the plan (now at ${now.slice(0, 12)}), and client ${CLIENT} changed there too: the planned edit no longer applies as shown (run berth plan again and review the new diff)`,
    );
    expect(log()[0]!.subject).toBe('race 0');
    expect(clientIn(fileAt())!.name).toBe('Harbor (by hand)');
    // a new plan shows the change from what is there now
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(hostOf(json(p)).changes[0]!.diff!.split('\n').filter((l) => /^[-+] /.test(l))).toEqual(['-      name: Harbor (by hand)', '+      name: Harbor (planned)']);
    const b = await apply();
    expect(b.code, show(b)).toBe(0);
  });

  it('review_branch: the commit goes to the review branch on top of main, main stays; until it is merged the plan waits and says so', async () => {
    writeVars({ client_name: 'Harbor (reviewed)', review_branch: 'berth/harbor-oidc-client' });
    commitSpec('through review');
    const main = tip();
    const p = await plan('--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(p.stdout).toContain('push: berth/harbor-oidc-client (review branch; main stays as it is)');
    const a = await apply();
    expect(a.code, show(a)).toBe(0);
    expect(tip()).toBe(main);
    const review = log('berth/harbor-oidc-client');
    expect(review[0]!.parent).toBe(main);
    expect(clientIn(fileAt('berth/harbor-oidc-client'))!.name).toBe('Harbor (reviewed)');

    const waiting = await plan('--detailed-exitcode');
    expect(waiting.code, show(waiting)).toBe(0);
    expect(waiting.stdout).toContain(`warning: dex static client ${CLIENT}: the change waits for review on branch berth/harbor-oidc-client of ${origin} (not in main yet)`);
    expect(log('berth/harbor-oidc-client')).toHaveLength(review.length);

    // merged: nothing to do, no warning
    git(origin, 'update-ref', 'refs/heads/main', tip('berth/harbor-oidc-client'));
    const merged = await plan('--detailed-exitcode');
    expect(merged.code, show(merged)).toBe(0);
    expect(merged.stdout).not.toContain('waits for review');
  });

  it('no secret appears in any output, saved plan, state record or commit message', async () => {
    outputs.push({ what: `${STATE_RECORD} at the end`, text: await onCache(`cat ${STATE_RECORD}`) });
    outputs.push({ what: 'commit messages of the values repository', text: git(origin, 'log', '--all', '--format=%an %ae%n%B') });
    expect(outputs.filter((o) => o.what.startsWith('saved plan'))).toHaveLength(2);
    expect(vaultSecrets.size).toBe(2);
    const secrets = [...vaultSecrets, ADMIN_PASSWORD, 'Zm9vYmFyLWdyYWZhbmEtc2VjcmV0'];
    for (const value of secrets) {
      const spellings = [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex'), createHash('sha256').update(value).digest('hex')];
      const leaks = outputs.filter((o) => spellings.some((s) => o.text.includes(s))).map((o) => o.what);
      expect(leaks, `a secret appears in`).toEqual([]);
    }
    // and they were in use: the values file and Harbor hold the current one
    const current = vaultSecret();
    expect(clientIn(fileAt())!.secret).toBe(current);
    expect(harbor.state.configuration.get('oidc_client_secret')).toBe(current);
    // berth's cache of the values repository stays private to its user
    expect(existsSync(cacheDir)).toBe(true);
    const mode = execFileSync('stat', ['-c', '%a', cacheDirFor(repoLocation(origin, specDir), { ...process.env, BERTH_CACHE_DIR: cacheDir })]).toString().trim();
    expect(mode).toBe('700');
  });
});

async function onCache(cmd: string): Promise<string> {
  const r = await th.ssh(CACHE_REF, cmd);
  if (r.code !== 0) throw new Error(`\`${cmd}\` exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
