// Harbor's API as code (issue 4), end to end: the real CLI applies the cache
// VM's roles (harbor_host, direnv, harbor, harbor_api) to a real host and
// node_trust to a second one, while the API part goes over HTTPS from the
// controller to the Harbor fake (test/harbor-fake: checked against Harbor's
// swagger, with Harbor's quirks) on 127.0.0.71, outside every host range,
// with a certificate signed by the spec's own CA (tls.ca_cert).
//
// The cache host gets the docker double (test/e2e/harbor-doubles.ts): its
// "Harbor" answers /health only; the fake plays the API. In the disaster
// rebuild the fake is started only once the VM's Harbor is up, as the API of
// a real rebuilt VM would be.
//
// Live mode: BERTH_LIVE_HARBOR_URL (+ BERTH_LIVE_HARBOR_PASSWORD, and
// BERTH_LIVE_HARBOR_CA, a PEM file, for a private CA) runs the tests that need
// no fake hook against that Harbor instead; the others report their skip.

import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBerth, json, show, specCli, stopwatch, type BerthJson, type BerthRun, type JsonChange } from './berth.js';
import { FIXTURES, installDockerDouble, writeFakeHarborInstaller } from './harbor-doubles.js';
import { e2eHost, keyFile, knownHostsFile, resetHosts, testHosts } from './hosts.js';
import { startHarborFake, type HarborFake } from '../harbor-fake/index.js';
import { SEED_PLAN, seedTables, seededHarbor } from '../harbor-fake/seed-tables.js';

const INVENTORY = 'inventories/e2e';
const PLAYBOOK = 'playbooks/api.yml';
const CACHE = 'harbor-cache-e2e';
const NODE = 'k8s-node-e2e';
const STATE_RECORD = '/var/lib/berth/state.json';
const NODE_CA = '/usr/local/share/ca-certificates/berth-harbor-ca.crt';
/** harbor.hostname in the fixture spec (test/fixtures/harbor/spec). */
const HARBOR_HOSTNAME = 'harbor-cache.e2e.example.com';

// the Harbor fake: outside every host range (hosts are 127.0.0.(offset+1..6))
const FAKE_HOST = '127.0.0.71';
const FAKE_PORT = 18443;

const LIVE_URL = process.env.BERTH_LIVE_HARBOR_URL;
const LIVE = !!LIVE_URL;

const tag = randomBytes(6).toString('hex');
const SECRETS: Record<string, string> = {
  HARBOR_ADMIN_PASSWORD: LIVE ? (process.env.BERTH_LIVE_HARBOR_PASSWORD ?? '') : `Adm1n-${tag}-api`,
  HARBOR_DB_PASSWORD: `db-${tag}-api-pw`,
  AWS_ACCESS_KEY_ID: `AKIA${tag.toUpperCase()}API`,
  AWS_SECRET_ACCESS_KEY: `aws/${tag}/secret-api-key`,
  OIDC_CLIENT_SECRET: `dex-${tag}-client-secret`,
  GCR_SECRET: `gcr-${tag}-json-key`,
};

const th = testHosts();
const CACHE_REF = 1;
const NODE_REF = 2;
let cacheAddr: string;
let specDir: string;
let sha256: string;
let caPem: string;
let tlsKey: Buffer;
let tlsCert: Buffer;
let harbor: HarborFake | undefined;
/** True while the hosts and Harbor match the spec. */
let converged = false;

/** Everything berth printed or saved, searched for secrets at the end. */
const outputs: { what: string; text: string }[] = [];
const { timings, timed } = stopwatch();

// ---------------------------------------------------------------- the spec

const API_URL = LIVE ? LIVE_URL!.replace(/\/+$/, '') : `https://${FAKE_HOST}:${FAKE_PORT}`;

/** The seed tables (SPEC-SKETCH): four endpoints, their four proxy projects, one private project, dex. */
const TABLES = `# written by harbor-api.test.ts\n${seedTables({ gcr: 'GCR_SECRET', dex: 'OIDC_CLIENT_SECRET' })}`;
let tables = TABLES;

function writeTables(text: string): void {
  tables = text;
  writeFileSync(join(specDir, INVENTORY, 'group_vars/all/api.yml'), text);
}

function writeRunVars(extra: { harbor_api?: Record<string, unknown>; node_trust?: Record<string, unknown> } = {}): void {
  const doc = {
    harbor: { installer: { sha256 }, health_url: `http://${cacheAddr}:8080/api/v2.0/health` },
    tls: { ca_cert: 'files/harbor-ca.crt' },
    harbor_api: { url: API_URL, ca_cert: LIVE ? (process.env.BERTH_LIVE_HARBOR_CA ? 'files/live-ca.crt' : '') : 'files/harbor-ca.crt', retry_delay_ms: 150, timeout: 10, ...extra.harbor_api },
    ...(extra.node_trust ? { node_trust: extra.node_trust } : {}),
  };
  writeFileSync(join(specDir, INVENTORY, 'group_vars/all/zz-run.yml'), `# written by harbor-api.test.ts\n${JSON.stringify(doc, null, 2)}\n`);
}

function writeInventory(): void {
  const conn = { berth_user: 'root', berth_key_file: keyFile(), berth_known_hosts: knownHostsFile(), berth_connect_timeout: 10 };
  const inv = {
    all: {
      children: {
        cache: { hosts: { [CACHE]: { berth_host: cacheAddr, ...conn } } },
        nodes: { hosts: { [NODE]: { berth_host: th.address(NODE_REF), ...conn } } },
      },
    },
  };
  writeFileSync(join(specDir, INVENTORY, 'hosts.yml'), `${JSON.stringify(inv, null, 2)}\n`);
  writeFileSync(
    join(specDir, PLAYBOOK),
    ['- name: Harbor cache VM', '  hosts: cache', '  roles: [harbor_host, certs, direnv, harbor, harbor_api]', '', '- name: Cluster nodes', '  hosts: nodes', '  roles: [node_trust]', ''].join('\n'),
  );
}

const { cli, plan, apply } = specCli({
  cwd: () => specDir,
  specArgs: () => ['-C', specDir, '-i', INVENTORY, '-p', PLAYBOOK],
  env: () => ({ ...SECRETS }),
  record: (r) => outputs.push({ what: r.cmd, text: r.stdout + r.stderr }),
});

function hostOf(j: BerthJson, host: string) {
  const h = j.hosts.find((x) => x.host === host);
  expect(h, `${host} in ${j.hosts.map((x) => x.host).join(', ')}`).toBeDefined();
  return h!;
}
const apiChanges = (cs: JsonChange[]) => cs.filter((c) => c.role === 'harbor_api');
const outline = (cs: JsonChange[]) => cs.map((c) => `${c.action} ${c.resource}`);

// ---------------------------------------------------------------- Harbor, through its API (as an operator would see it)

interface ApiAnswer {
  status: number;
  body: unknown;
}

/** One admin call to Harbor's API (TLS checked against the spec's CA), as an operator's script would make it. */
function harborCall(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const url = new URL(`/api/v2.0${path}`, API_URL);
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const ca = LIVE ? (process.env.BERTH_LIVE_HARBOR_CA ? readFileSync(process.env.BERTH_LIVE_HARBOR_CA) : undefined) : caPem;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method,
        ...(ca ? { ca } : {}),
        timeout: 10_000,
        headers: {
          authorization: `Basic ${Buffer.from(`admin:${SECRETS.HARBOR_ADMIN_PASSWORD}`).toString('base64')}`,
          'x-is-resource-name': 'true',
          ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

/** What Harbor holds, in the spec's terms, read through the API. */
async function harborView() {
  const regs = (await harborCall('GET', '/registries?page_size=100')).body as { id: number; name: string; type: string; url: string; credential?: { access_key?: string } }[];
  const projs = (await harborCall('GET', '/projects?page_size=100')).body as { project_id: number; name: string; registry_id?: number; metadata: { public: string } }[];
  const quotas = (await harborCall('GET', '/quotas?reference=project&page_size=100')).body as { ref: { id: number }; hard: { storage: number } }[];
  const cfg = (await harborCall('GET', '/configurations')).body as Record<string, { value: unknown }>;
  const keys = ['auth_mode', 'oidc_name', 'oidc_endpoint', 'oidc_client_id', 'oidc_groups_claim', 'oidc_admin_group', 'oidc_scope', 'oidc_verify_cert', 'oidc_auto_onboard', 'self_registration', 'project_creation_restriction'];
  return {
    registries: Object.fromEntries(regs.map((r) => [r.name, { type: r.type, url: r.url, ...(r.credential?.access_key ? { key: r.credential.access_key } : {}) }])),
    projects: Object.fromEntries(
      projs.map((p) => [
        p.name,
        { public: p.metadata.public === 'true', ...(p.registry_id ? { proxy: regs.find((r) => r.id === p.registry_id)?.name } : {}), quota: quotas.find((q) => q.ref.id === p.project_id)?.hard.storage },
      ]),
    ),
    config: Object.fromEntries(keys.map((k) => [k, cfg[k]?.value])),
  };
}

const SEED_VIEW = seededHarbor();

/** Harbor holds the seed: exactly, on the fake; at least, on a live Harbor (which may hold more). */
async function expectSeed(): Promise<void> {
  const v = await harborView();
  if (LIVE) expect(v).toMatchObject(SEED_VIEW);
  else expect(v).toEqual(SEED_VIEW);
}

// ---------------------------------------------------------------- the fake

async function startFake(): Promise<HarborFake> {
  harbor = await startHarborFake({ host: FAKE_HOST, port: FAKE_PORT, adminPassword: SECRETS.HARBOR_ADMIN_PASSWORD!, tls: { key: tlsKey, cert: tlsCert } });
  return harbor;
}

async function stopFake(): Promise<void> {
  const f = harbor;
  harbor = undefined;
  await f?.close();
}

/** The fake, for the tests that need its hooks; in live mode they report the skip. */
function fakeOr(ctx: { skip: () => void }, why: string): HarborFake {
  if (LIVE || !harbor) {
    console.warn(`!!! SKIPPED in live mode (${why} needs the Harbor fake's hooks)`);
    ctx.skip();
  }
  return harbor!;
}

/** Every exchange so far met Harbor's swagger, and no write met the CSRF trap (berth keeps no cookie). */
function expectCleanFake(f: HarborFake | undefined): void {
  if (!f) return;
  expect(f.violations).toEqual([]);
  expect(f.requests.filter((r) => r.status === 403)).toEqual([]);
}

/** Starts the fake once the VM's Harbor answers /health: the API of a rebuilt VM comes up with it. */
function startFakeWhenVmIsUp(): { done: Promise<HarborFake>; stop: () => void } {
  let stopped = false;
  const done = (async () => {
    const deadline = Date.now() + 300_000;
    while (!stopped && Date.now() < deadline) {
      const up = await fetch(`http://${cacheAddr}:8080/api/v2.0/health`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (up) return startFake();
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the VM\'s Harbor never answered /health');
  })();
  done.catch(() => undefined);
  return { done, stop: () => (stopped = true) };
}

async function sh(ref: number, cmd: string): Promise<string> {
  const r = await th.ssh(ref, cmd);
  if (r.code !== 0) throw new Error(`\`${cmd}\` exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function bareHosts(): Promise<void> {
  converged = false;
  await timed('reset hosts + docker double', async () => {
    await resetHosts(th.name(CACHE_REF), th.name(NODE_REF));
    await installDockerDouble(th, CACHE_REF);
  });
}

/** Hosts and Harbor converged with the seed spec; built afresh when an earlier test left them otherwise. */
async function convergedAll(): Promise<void> {
  if (converged) return;
  writeTables(TABLES);
  writeRunVars();
  if (!LIVE) {
    await stopFake();
    await startFake();
  }
  await bareHosts();
  const r = await timed('fresh apply (setup)', () => apply());
  expect(r.code, show(r)).toBe(0);
  converged = true;
}

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  cacheAddr = th.address(CACHE_REF);
  e2eHost(CACHE_REF);
  e2eHost(NODE_REF);
  await buildBerth();
  specDir = mkdtempSync(join(tmpdir(), 'berth-e2e-api-'));
  cpSync(join(FIXTURES, 'spec'), specDir, { recursive: true });
  sha256 = writeFakeHarborInstaller(join(specDir, 'files'));
  // the spec's CA, and the fake's certificate it signed (SAN: the fake's address)
  const script = [
    'set -e',
    'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out harbor-ca.crt -days 2 -subj "/CN=berth e2e harbor CA"',
    `openssl req -newkey rsa:2048 -nodes -keyout fake.key -out fake.csr -subj /CN=${FAKE_HOST}`,
    `printf 'subjectAltName=IP:${FAKE_HOST}\\nbasicConstraints=CA:FALSE\\n' > san.ext`,
    'openssl x509 -req -in fake.csr -CA harbor-ca.crt -CAkey ca.key -CAcreateserial -out fake.crt -days 2 -extfile san.ext',
    'rm -f ca.key fake.csr san.ext harbor-ca.srl',
  ].join('\n');
  const pki = mkdtempSync(join(tmpdir(), 'berth-e2e-api-pki-'));
  const made = spawnSync('sh', ['-c', script], { cwd: pki, encoding: 'utf8', timeout: 60_000 });
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  caPem = readFileSync(join(pki, 'harbor-ca.crt'), 'utf8');
  tlsKey = readFileSync(join(pki, 'fake.key'));
  tlsCert = readFileSync(join(pki, 'fake.crt'));
  rmSync(pki, { recursive: true, force: true });
  writeFileSync(join(specDir, 'files/harbor-ca.crt'), caPem);
  if (LIVE && process.env.BERTH_LIVE_HARBOR_CA) writeFileSync(join(specDir, 'files/live-ca.crt'), readFileSync(process.env.BERTH_LIVE_HARBOR_CA));
  writeInventory();
  writeTables(TABLES);
  writeRunVars();
  if (LIVE) console.warn(`[harbor-api] LIVE mode against ${API_URL}: the tests that need the fake's hooks are skipped`);
});

afterAll(async () => {
  if (timings.length) console.log(`[harbor-api] timings:\n  ${timings.join('\n  ')}`);
  await stopFake();
  if (process.env.BERTH_E2E_KEEP_SPECS !== '1' && specDir) rmSync(specDir, { recursive: true, force: true });
  // the cache host runs a Harbor stand-in on its address: leave both hosts bare for the next file
  await resetHosts(th.name(CACHE_REF), th.name(NODE_REF));
});

// ---------------------------------------------------------------- the tests

describe('Harbor API as code, in the same plan as the hosts', () => {
  it('disaster rebuild: a bare VM and an empty Harbor (up only once the VM is) → one saved plan, one apply brings back the VM and every API resource; then nothing to do', async (ctx) => {
    if (LIVE) {
      console.warn('!!! SKIPPED in live mode (a disaster rebuild needs an empty Harbor: the fake)');
      ctx.skip();
    }
    await stopFake();
    await bareHosts();
    writeTables(TABLES);
    writeRunVars();

    // Harbor's API does not answer yet: this plan starts harbor.service, so Harbor is planned as empty
    const planFile = join(specDir, 'rebuild.plan.json');
    const p = await timed('plan (bare VM, Harbor not up)', () => plan('--detailed-exitcode', '--out', planFile));
    expect(p.code, show(p)).toBe(2);
    const saved = readFileSync(planFile, 'utf8');
    outputs.push({ what: 'saved plan rebuild.plan.json', text: saved });
    const sj = JSON.parse(saved) as BerthJson;
    const cacheChanges = hostOf(sj, CACHE).changes;
    expect(outline(apiChanges(cacheChanges))).toEqual(SEED_PLAN);
    // the API resources are planned under the cache host, after the VM is up and healthy
    const wait = cacheChanges.findIndex((c) => c.task === 'wait for harbor healthy');
    expect(wait).toBeGreaterThan(0);
    expect(cacheChanges.findIndex((c) => c.role === 'harbor_api')).toBeGreaterThan(wait);
    // the node trusts the CA system-wide and where each of its runtimes (containerd, containers-image, docker) reads it
    const runtimeCa = ['containerd', 'containers', 'docker'].flatMap((rt) => [
      `create directory /etc/${rt}/certs.d/${HARBOR_HOSTNAME}`,
      `create file /etc/${rt}/certs.d/${HARBOR_HOSTNAME}/ca.crt`,
    ]);
    expect(outline(hostOf(sj, NODE).changes)).toEqual([...runtimeCa, `create file ${NODE_CA}`, 'run command update-ca-certificates']);
    // the text shows them too, with the secrets masked
    expect(p.stdout).toContain('+ harbor project proxy.docker.io');
    expect(p.stdout).toMatch(/credential\.access_secret: \(sensitive\)/);

    // apply exactly that plan; the API comes up with the VM's Harbor
    const watcher = startFakeWhenVmIsUp();
    let a: BerthRun;
    try {
      a = await timed('apply the saved plan (rebuild: VM + API)', () => cli('apply', planFile));
    } finally {
      watcher.stop();
    }
    expect(a.code, show(a)).toBe(0);
    const f = await watcher.done;
    await expectSeed();
    // the write-only secrets reached Harbor (GET only shows *****)
    expect(f.state.findRegistryByName('gcr.io')!.credential.access_secret).toBe(SECRETS.GCR_SECRET);
    expect(f.state.configuration.get('oidc_client_secret')).toBe(SECRETS.OIDC_CLIENT_SECRET);
    expect(await sh(NODE_REF, `cat ${NODE_CA}`)).toBe(caPem);
    expectCleanFake(f);

    // the cache VM's state record keeps keyed hashes of the secrets, not the secrets
    const record = JSON.parse(await sh(CACHE_REF, `cat ${STATE_RECORD}`)) as { remembered?: Record<string, string> };
    outputs.push({ what: `${STATE_RECORD} on the cache VM`, text: JSON.stringify(record) });
    expect(Object.keys(record.remembered ?? {}).sort()).toEqual(['harbor_registry:gcr.io:access_secret', 'harbor_setting:oidc_client_secret']);

    const again = await timed('plan (converged)', () => plan('--detailed-exitcode'));
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain(`${CACHE}: no changes`);
    converged = true;
  });

  it('a plan of the converged cache VM: one SSH connection and round trip, a few HTTPS requests beside it', async () => {
    await convergedAll();
    const r = await plan('--json');
    expect(r.code, show(r)).toBe(0);
    const j = json(r);
    expect(j.summary).toMatchObject({ create: 0, update: 0, delete: 0, run: 0, failedHosts: 0 });
    const stats = hostOf(j, CACHE).stats!;
    expect(stats).toMatchObject({ connections: 1, roundTrips: 1 });
    // systeminfo, users/current, registries, projects, quotas, configurations (each list one page)
    expect((stats as { apiRequests?: number }).apiRequests).toBeGreaterThan(0);
    expect((stats as { apiRequests?: number }).apiRequests).toBeLessThanOrEqual(8);
    // the node never talks to Harbor's API
    expect(hostOf(j, NODE).stats).toEqual({ connections: 1, roundTrips: 1 });
    timings.push(`converged plan of the cache VM: ${(stats as { apiRequests?: number }).apiRequests} API requests`);
  });

  it('drift in Harbor (a project made private, the OIDC admin group changed): plan --detailed-exitcode exits 2 showing exactly that, a saved plan is refused, apply restores it', async () => {
    await convergedAll();
    const f = harbor;
    expect((await harborCall('PUT', '/projects/proxy.docker.io', { metadata: { public: 'false' } })).status).toBe(200);
    const planFile = join(specDir, 'drift.plan.json');
    const first = await plan('--out', planFile);
    expect(first.code, show(first)).toBe(0);
    outputs.push({ what: 'saved plan drift.plan.json', text: readFileSync(planFile, 'utf8') });

    // and then more drift, after that plan was made
    expect((await harborCall('PUT', '/configurations', { oidc_admin_group: 'someone_else' })).status).toBe(200);
    const refused = await cli('apply', planFile);
    expect(refused.code, show(refused)).toBe(1);
    expect(refused.stdout + refused.stderr).toContain(`${CACHE}: refusing the saved plan: harbor_setting oidc_admin_group changed since the plan was made`);
    expect((await harborView()).config.oidc_admin_group).toBe('someone_else');

    const p = await plan('--detailed-exitcode', '--json');
    expect(p.code, show(p)).toBe(2);
    const j = json(p);
    expect(hostOf(j, CACHE).changes.map((c) => ({ resource: c.resource, action: c.action, attrs: c.attrs }))).toEqual([
      { resource: 'harbor project proxy.docker.io', action: 'update', attrs: [{ name: 'public', before: false, after: true }] },
      { resource: 'harbor configuration oidc', action: 'update', attrs: [{ name: 'oidc_admin_group', before: 'someone_else', after: 'cluster_admins' }] },
    ]);
    expect(hostOf(j, NODE).changes).toEqual([]);
    const text = await plan('--detailed-exitcode');
    expect(text.code).toBe(2);
    expect(text.stdout).toContain('~ harbor project proxy.docker.io\n      public: false → true');
    expect(text.stdout).toContain('~ harbor configuration oidc\n      oidc_admin_group: someone_else → cluster_admins');
    expect(text.stdout).toContain('Plan: 0 to create, 2 to update, 0 to delete, 0 to run (on 1 of 2 hosts).');

    const a = await apply();
    expect(a.code, show(a)).toBe(0);
    await expectSeed();
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    expectCleanFake(f);
  });

  it('a transient 500 is retried and the apply succeeds', async (ctx) => {
    await convergedAll();
    const f = fakeOr(ctx, 'injecting a 500');
    writeTables(`${tables.replace('  number-crunch: { public: false }\n', '  number-crunch: { public: false }\n  team-tools: { public: false, quota: 5GiB }\n')}`);
    converged = false;
    const n = f.requests.length;
    const fault = f.fail({ status: 500, method: 'POST', path: '/api/v2.0/projects', times: 1 });
    const a = await timed('apply with one 500', () => apply('--json'));
    expect(a.code, show(a)).toBe(0);
    expect(fault.remaining).toBe(0);
    expect(outline(hostOf(json(a), CACHE).changes)).toEqual(['create harbor project team-tools']);
    expect(f.requests.slice(n).filter((r) => r.method === 'POST' && r.path === '/api/v2.0/projects').map((r) => r.status)).toEqual([500, 201]);
    expect((await harborView()).projects['team-tools']).toEqual({ public: false, quota: 5 * 1024 ** 3 });
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    converged = true;
    expectCleanFake(f);
  });

  it("a persistent 503 is one clear error naming the resource; the other host's work and the earlier changes are not lost", async (ctx) => {
    await convergedAll();
    const f = fakeOr(ctx, 'injecting a 503');
    // a new registry and a project on it, and a change on the node
    writeTables(
      tables
        .replace('  quay.io: { type: docker-registry, url: "https://quay.io" }\n', '  quay.io: { type: docker-registry, url: "https://quay.io" }\n  ghcr.io: { type: github-ghcr, url: "https://ghcr.io" }\n')
        .replace('  number-crunch: { public: false }\n', '  number-crunch: { public: false }\n  proxy.ghcr.io: { public: true, quota: -1, proxy: ghcr.io, mirrors: ghcr.io }\n'),
    );
    writeRunVars({ node_trust: { ca_name: 'berth-harbor-ca-2.crt' } });
    converged = false;
    const fault = f.fail({ status: 503, method: 'POST', path: '/api/v2.0/projects', times: 1000 });
    const a = await timed('apply with a persistent 503', () => apply());
    fault.cancel();
    expect(a.code, show(a)).toBe(1);
    const failed = a.stdout.split('\n').filter((l) => /FAILED/.test(l));
    // one line, naming the host, the resource, the call and what Harbor said
    expect(failed.join('\n'), show(a)).toMatch(
      new RegExp(`FAILED: ${CACHE}: harbor project proxy\\.ghcr\\.io: POST /api/v2\\.0/projects: Harbor answered 503: 503 Service Temporarily Unavailable \\(5 tries in \\d+\\.\\ds\\)`),
    );
    expect(a.stdout).toContain(`1 host(s) failed: ${CACHE}`);
    // the node's change was applied, the registry before the project was created
    expect(await sh(NODE_REF, 'cat /usr/local/share/ca-certificates/berth-harbor-ca-2.crt')).toBe(caPem);
    expect((await harborView()).registries['ghcr.io']).toEqual({ type: 'github-ghcr', url: 'https://ghcr.io' });
    const rec = JSON.parse(await sh(CACHE_REF, `cat ${STATE_RECORD}`)) as { last: { status: string; changes: { resource: string; status: string }[] } };
    expect(rec.last.status).toBe('failed');
    expect(rec.last.changes.map((c) => `${c.status} ${c.resource}`)).toEqual(['done harbor registry ghcr.io', 'failed harbor project proxy.ghcr.io']);

    // Harbor is back: only what is left is planned
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(outline(hostOf(json(p), CACHE).changes)).toEqual(['create harbor project proxy.ghcr.io']);
    expect(hostOf(json(p), NODE).changes).toEqual([]);
    const b = await apply();
    expect(b.code, show(b)).toBe(0);
    expect((await harborView()).projects['proxy.ghcr.io']).toEqual({ public: true, proxy: 'ghcr.io', quota: -1 });
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    converged = true;
    expectCleanFake(f);
  });

  it("fuzzy name= lookups: a new project whose name is part of an existing one's is still created", async () => {
    await convergedAll();
    // look-alikes an operator made by hand, and a spec project that is a prefix of proxy.docker.io
    expect((await harborCall('POST', '/registries', { name: 'docker_hub_backup', url: 'https://hub.docker.com', type: 'docker-hub' })).status).toBe(201);
    expect((await harborCall('POST', '/projects', { project_name: 'proxy.docker.io.bak', metadata: { public: 'false' } })).status).toBe(201);
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    writeTables(tables.replace('  number-crunch: { public: false }\n', '  number-crunch: { public: false }\n  proxy.docker: { public: false }\n'));
    converged = false;
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(outline(hostOf(json(p), CACHE).changes)).toEqual(['create harbor project proxy.docker']);
    const a = await apply();
    expect(a.code, show(a)).toBe(0);
    const v = await harborView();
    expect(v.projects['proxy.docker']).toEqual({ public: false, quota: -1 });
    expect(v.projects['proxy.docker.io.bak']).toEqual({ public: false, quota: -1 });
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    if (harbor) expect(harbor.requests.filter((r) => /[?&]name=/.test(r.query))).toEqual([]);
    converged = true;
    expectCleanFake(harbor);
  });

  it('a quota change goes through PUT /quotas: PUT /projects, which would ignore storage_limit, is not used for it', async () => {
    await convergedAll();
    writeTables(tables.replace('proxy.docker.io: { public: true, quota: -1,', 'proxy.docker.io: { public: true, quota: 20GiB,'));
    converged = false;
    const p = await plan('--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(p.stdout).toContain('~ harbor project proxy.docker.io\n      quota: -1 (unlimited) → 20GiB (21474836480 bytes)');
    const n = harbor?.requests.length ?? 0;
    const a = await apply();
    expect(a.code, show(a)).toBe(0);
    expect((await harborView()).projects['proxy.docker.io']).toEqual({ public: true, proxy: 'docker_hub', quota: 20 * 1024 ** 3 });
    if (harbor) {
      const writes = harbor.requests.slice(n).filter((r) => r.method !== 'GET');
      expect(writes.map((r) => r.operationId)).toEqual(['updateQuota']);
      expectCleanFake(harbor);
    }
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    converged = true;
  });

  it('prune: what the spec no longer names is deleted (projects before registries); a project with repositories fails with 412 explained', async (ctx) => {
    await convergedAll();
    const f = fakeOr(ctx, 'putting repositories into a project');
    writeTables(tables.replace('  number-crunch: { public: false }\n', '').replace(/ {2}proxy\.quay\.io: .*\n/, '').replace(/ {2}quay\.io: .*\n/, ''));
    // the look-alikes made by hand in an earlier test stay: keep
    writeRunVars({ harbor_api: { prune: true, keep: ['library', 'proxy.docker.io.bak', 'docker_hub_backup'] } });
    converged = false;
    f.state.addRepository('number-crunch', 'crunch/model');
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(outline(hostOf(json(p), CACHE).changes)).toEqual(['delete harbor project number-crunch', 'delete harbor project proxy.quay.io', 'delete harbor registry quay.io']);
    const a = await apply();
    expect(a.code, show(a)).toBe(1);
    expect(a.stdout).toMatch(new RegExp(`FAILED: ${CACHE}: harbor project number-crunch: Harbor refuses to delete it while it holds repositories \\(412: project number-crunch still holds 1 repositories\\)`));
    expect((await harborView()).projects['number-crunch']).toBeDefined();
    f.state.removeRepositories('number-crunch');
    const b = await apply();
    expect(b.code, show(b)).toBe(0);
    const v = await harborView();
    expect(Object.keys(v.projects)).not.toContain('number-crunch');
    expect(Object.keys(v.projects)).not.toContain('proxy.quay.io');
    expect(Object.keys(v.registries)).not.toContain('quay.io');
    expect(Object.keys(v.projects)).toContain('library');
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    converged = true;
    expectCleanFake(f);
  });

  it('auth_mode cannot change while users other than admin exist: refused at plan time with the rule, before any call', async (ctx) => {
    await convergedAll();
    const f = fakeOr(ctx, 'adding a user');
    f.state.configuration.set('auth_mode', 'db_auth');
    const user = f.state.addUser({ username: 'dev' });
    const n = f.requests.length;
    const p = await plan('--detailed-exitcode');
    expect(p.code, show(p)).toBe(1);
    const row = tables.split('\n').findIndex((l) => l.includes('provider_name: dex')) + 1;
    expect(p.stdout).toMatch(
      new RegExp(`FAILED: ${INVENTORY}/group_vars/all/api\\.yml:${row}:\\d+: auth_mode cannot change from db_auth to oidc_auth: Harbor changes the authentication mode only while no user but admin exists`),
    );
    expect(p.stdout).toContain(`${NODE}: no changes`);
    expect(f.requests.slice(n).filter((r) => r.method !== 'GET')).toEqual([]);
    const a = await apply();
    expect(a.code, show(a)).toBe(1);
    expect(f.requests.slice(n).filter((r) => r.operationId === 'updateConfigurations')).toEqual([]);
    f.state.users.delete(user.user_id);
    const b = await apply();
    expect(b.code, show(b)).toBe(0);
    expect(f.state.configuration.get('auth_mode')).toBe('oidc_auth');
  });

  it('Harbor v2.14 and a quay registry behind a proxy cache: a plan-time error at the project, nothing changed', async (ctx) => {
    await convergedAll();
    const f = fakeOr(ctx, 'a Harbor v2.14');
    const before = tables;
    const n = f.requests.length;
    f.state.harborVersion = 'v2.14.0';
    try {
      writeTables(
        tables
          .replace(/( {2}k8s\.gcr\.io: .*\n)/, '$1  quay-native: { type: quay, url: "https://quay.io" }\n')
          .replace(/( {2}proxy\.k8s\.gcr\.io: .*\n)/, '$1  proxy.quay-native.io: { public: true, quota: -1, proxy: quay-native }\n'),
      );
      const p = await plan('--detailed-exitcode');
      expect(p.code, show(p)).toBe(1);
      const lines = tables.split('\n');
      const row = lines.findIndex((l) => l.startsWith('  proxy.quay-native.io:')) + 1;
      const col = lines[row - 1]!.indexOf('proxy: quay-native') + 'proxy: '.length + 1;
      expect(p.stdout).toContain(
        `FAILED: ${INVENTORY}/group_vars/all/api.yml:${row}:${col}: proxy: registry "quay-native" is of type quay, which Harbor v2.14.0 does not accept behind a proxy-cache project`,
      );
      // nothing was sent: the error came before any change
      expect(f.requests.slice(n).filter((r) => r.method !== 'GET')).toEqual([]);
    } finally {
      f.state.harborVersion = 'v2.12.4';
      writeTables(before);
    }
    expect((await plan('--detailed-exitcode')).code).toBe(0);
  });

  it('a project bound to an unknown registry, or an invalid project name: a plan-time error with file:line:col, no host or Harbor contacted', async () => {
    const before = tables;
    const n = harbor?.requests.length ?? 0;
    try {
      writeTables(TABLES.replace('proxy: quay.io, mirrors', 'proxy: quayio, mirrors'));
      const a = await plan();
      expect(a.code, show(a)).toBe(1);
      const lines = tables.split('\n');
      const row = lines.findIndex((l) => l.includes('proxy: quayio')) + 1;
      const col = lines[row - 1]!.indexOf('quayio') + 1;
      expect(a.stderr).toBe(
        `error: ${INVENTORY}/group_vars/all/api.yml:${row}:${col}: projects["proxy.quay.io"].proxy: unknown registry "quayio" (known registries: ${Object.keys(SEED_VIEW.registries).join(', ')})\n`,
      );
      expect(a.stdout).toBe('');
      writeTables(TABLES.replace('  number-crunch:', '  Number_Crunch:'));
      const b = await plan();
      expect(b.code, show(b)).toBe(1);
      const row2 = tables.split('\n').findIndex((l) => l.includes('Number_Crunch')) + 1;
      expect(b.stderr).toMatch(new RegExp(`^error: ${INVENTORY}/group_vars/all/api\\.yml:${row2}:3: projects\\.Number_Crunch: invalid name "Number_Crunch" \\(Harbor project names are lower-case`));
    } finally {
      writeTables(before);
    }
    expect(harbor?.requests.length ?? 0).toBe(n);
  });

  it('Harbor does not answer while harbor.service runs: a clear error for the cache host, the node is planned as usual', async () => {
    await convergedAll();
    writeRunVars({ harbor_api: { url: `https://${FAKE_HOST}:9`, retries: 1 } });
    try {
      const p = await plan('--detailed-exitcode');
      expect(p.code, show(p)).toBe(1);
      expect(p.stdout).toMatch(new RegExp(`FAILED: \\S*roles/harbor_api/tasks/main\\.yml:\\d+:\\d+: Harbor's API at https://127\\.0\\.0\\.71:9 does not answer \\(ECONNREFUSED\\), and harbor\\.service is running \\(Harbor should be up: check it on ${CACHE}`));
      expect(p.stdout).toContain(`${NODE}: no changes`);
    } finally {
      writeRunVars();
    }
  });

  it('no secret value appears in any output, saved plan or state record', async () => {
    if (!converged) await convergedAll();
    outputs.push({ what: `${STATE_RECORD} (cache VM)`, text: await sh(CACHE_REF, `cat ${STATE_RECORD}`) });
    outputs.push({ what: `${STATE_RECORD} (node)`, text: await sh(NODE_REF, `cat ${STATE_RECORD}`) });
    expect(outputs.length).toBeGreaterThan(10);
    expect(outputs.some((o) => o.what.startsWith('saved plan'))).toBe(true);
    const secrets = Object.entries(SECRETS).filter(([, v]) => v.length >= 8);
    for (const [name, value] of secrets) {
      const spellings = [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex'), createHash('sha256').update(value).digest('hex')];
      const leaks = outputs.filter((o) => spellings.some((s) => o.text.includes(s))).map((o) => o.what);
      expect(leaks, `${name} appears in`).toEqual([]);
    }
    // and they were in use, so their absence means something
    if (harbor) {
      expect(harbor.state.configuration.get('oidc_client_secret')).toBe(SECRETS.OIDC_CLIENT_SECRET);
      expect(harbor.state.findRegistryByName('gcr.io')!.credential.access_secret).toBe(SECRETS.GCR_SECRET);
    }
  });
});
