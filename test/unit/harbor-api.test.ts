// The harbor_api role and the harbor_* modules without hosts: a spec tree is
// built into host programs, the controller facts come over HTTP from the
// in-process Harbor fake (checked against Harbor's swagger), host facts are
// made by hand, the plan is the real pure planner, and each planned change
// is applied by its module against the same fake. The state record's
// `remembered` part is carried from one apply to the next plan by hand.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { gatherControllerFacts, releaseControllerResources } from '../../src/facts/controller.js';
import { planHost } from '../../src/plan/planner.js';
import { getModule } from '../../src/modules/registry.js';
import { REMEMBERED_KEY } from '../../src/apply/record.js';
import { renderJson } from '../../src/plan/render.js';
import { BerthError } from '../../src/util/errors.js';
import type { HostProgram } from '../../src/plan/program.js';
import type { Change, Facts, ModuleApplyContext, ModuleContext, Transport } from '../../src/types.js';
import type { RunResult } from '../../src/engine.js';
import { loadHarborContract, startHarborFake, type HarborContract, type HarborFake } from '../harbor-fake/index.js';
import { SEED_PLAN, seedTables, seededHarbor } from '../harbor-fake/seed-tables.js';
import { REPO, baseDirs, berthError, buildTree, dedent, factsFor, groupFact, tempDir, unitFact, userFact, type Tree } from './helpers.js';
import { loadSpec } from '../../src/spec/load.js';
import { buildProgram } from '../../src/plan/program.js';
import { checkSection, ratio, type Row } from '../reliability/table.js';

const ADMIN_PASSWORD = `Adm1n-${process.pid}-unit`;
const DEX_SECRET = `dex-secret-${process.pid}-unit`;
const GCR_SECRET = `gcr-secret-${process.pid}-unit`;
process.env.BERTH_UNIT_HARBOR_ADMIN = ADMIN_PASSWORD;
process.env.BERTH_UNIT_DEX_SECRET = DEX_SECRET;
process.env.BERTH_UNIT_GCR_SECRET = GCR_SECRET;

let contract: HarborContract | undefined;
beforeAll(async () => {
  contract = await loadHarborContract();
});

const fakes: HarborFake[] = [];
afterEach(async () => {
  await releaseControllerResources();
  for (const f of fakes.splice(0)) await f.close();
});

async function fake(opts: Partial<Parameters<typeof startHarborFake>[0]> = {}): Promise<HarborFake> {
  const f = await startHarborFake({ host: '127.0.0.71', adminPassword: ADMIN_PASSWORD, contract: contract ?? null, warn: () => {}, ...opts });
  fakes.push(f);
  return f;
}

// ---------------------------------------------------------------- the spec

/** The seed tables of SPEC-SKETCH: four endpoints, four proxy projects, one private project, dex. */
const SEED = seedTables({ gcr: 'BERTH_UNIT_GCR_SECRET', dex: 'BERTH_UNIT_DEX_SECRET' });

interface SpecOpts {
  url: string;
  /** More group_vars (YAML), appended to the harbor block. */
  apiVars?: string;
  /** The seed tables, or others. */
  tables?: string;
  version?: string;
  files?: Tree;
}

function specTree(o: SpecOpts): Tree {
  return {
    'inventories/t/hosts.yml': `
      all:
        children:
          cache:
            hosts:
              cache1:
    `,
    'inventories/t/group_vars/all.yml': [
      'harbor:',
      '  hostname: harbor-cache.unit.example.com',
      `  version: ${o.version ?? 'v2.12.4'}`,
      '  admin_password: { secret_env: BERTH_UNIT_HARBOR_ADMIN }',
      'harbor_api:',
      `  url: ${o.url}`,
      ...(o.apiVars?.includes('service:') ? [] : ['  service: ""']),
      ...(o.apiVars?.includes('retry_delay_ms:') ? [] : ['  retry_delay_ms: 20']),
      ...(o.apiVars ? dedent(o.apiVars).trimEnd().split('\n').map((l) => `  ${l}`) : []),
      'tls: {}',
      (o.tables ?? SEED).trimEnd(),
      '',
    ].join('\n'),
    'playbooks/site.yml': `
      - name: Harbor API
        hosts: cache
        roles: [harbor_api]
    `,
    ...o.files,
  };
}

function program(o: SpecOpts): HostProgram {
  return buildTree(specTree(o)).programs[0]!;
}

// ---------------------------------------------------------------- plan and apply without hosts

/** What the host's state record remembers between applies (PlannedChange outcomes). */
type Memory = Record<string, string>;

interface Planned {
  changes: Change[];
  fingerprints: Record<string, string>;
  warnings: string[];
  requests: number;
}

/** Host facts by hand (a unit fact when the api names a service), controller facts from the fake. */
async function plan(p: HostProgram, memory: Memory = {}, hostFacts: Record<string, unknown> = {}): Promise<Planned> {
  const g = await gatherControllerFacts(p.controllerQueries, p.host);
  const facts: Facts = new Map(g.facts);
  for (const q of p.queries) {
    if (q.key === REMEMBERED_KEY) facts.set(q.key, memory);
    else if (q.key.startsWith('unit:')) facts.set(q.key, unitFact('inactive', '', 'not-found'));
    else throw new Error(`unexpected host fact ${q.key}`);
  }
  for (const [k, v] of Object.entries(hostFacts)) facts.set(k, v);
  const r = planHost(p, facts);
  return { ...r, requests: g.requests };
}

const noTransport = new Proxy({} as Transport, {
  get: () => {
    throw new Error('a harbor_* module used the SSH transport');
  },
});

/** Applies the changes in order (as the engine does); returns what the state record would remember. */
async function apply(changes: Change[], memory: Memory = {}): Promise<Memory> {
  const next = { ...memory };
  for (const c of changes) {
    const p = c.payload as { become: boolean; data: unknown; ctx: ModuleContext };
    const ctx: ModuleApplyContext = { ...p.ctx, transport: noTransport, become: p.become };
    const out = await getModule(c.module)!.apply({ resource: c.resource, action: c.action, attrs: c.attrs, payload: p.data }, ctx);
    for (const [k, v] of Object.entries(out?.remember ?? {})) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
  }
  return next;
}

const outline = (cs: Change[]) => cs.map((c) => `${c.action} ${c.resource}`);
const attrsOf = (c: Change | undefined) => Object.fromEntries((c?.attrs ?? []).map((a) => [a.name, a.before === undefined ? a.after : [a.before, a.after]]));

/** The fake's records, in the spec's terms. */
function harborState(f: HarborFake) {
  const s = f.state;
  const regName = (id: number) => [...s.registries.values()].find((r) => r.id === id)?.name;
  return {
    registries: Object.fromEntries([...s.registries.values()].map((r) => [r.name, { type: r.type, url: r.url, key: r.credential.access_key || undefined, secret: r.credential.access_secret || undefined }])),
    projects: Object.fromEntries(
      [...s.projects.values()].map((p) => [p.name, { public: p.metadata.public === 'true', proxy: p.registry_id ? regName(p.registry_id) : undefined, quota: s.quotaOfProject(p.project_id)?.hard.storage }]),
    ),
    config: Object.fromEntries(['auth_mode', 'oidc_name', 'oidc_endpoint', 'oidc_client_id', 'oidc_client_secret', 'oidc_groups_claim', 'oidc_admin_group', 'oidc_scope', 'oidc_verify_cert', 'oidc_auto_onboard', 'self_registration', 'project_creation_restriction'].map((k) => [k, s.configuration.get(k)])),
  };
}

const SEED_STATE = seededHarbor({ gcr: GCR_SECRET, dex: DEX_SECRET });

/** A converged fake: the seed applied; returns the program and the remembered tags. */
async function converged(f: HarborFake, o: Partial<SpecOpts> = {}): Promise<{ p: HostProgram; memory: Memory }> {
  const p = program({ url: f.url, ...o });
  const first = await plan(p);
  const memory = await apply(first.changes);
  return { p, memory };
}

function expectClean(f: HarborFake): void {
  expect(f.violations).toEqual([]);
  // berth never keeps Harbor's sid cookie, so no write ever met the CSRF trap
  expect(f.requests.filter((r) => r.status === 403)).toEqual([]);
}

// ---------------------------------------------------------------- the tests

describe('the seed tables through the harbor_api role', { timeout: 30_000 }, () => {
  it('plans every resource as created, applies them, and the fake then holds exactly the seed; a second plan is empty', async () => {
    const f = await fake();
    const p = program({ url: f.url });
    // the API facts are controller queries: nothing of them goes over SSH
    expect([...new Set(p.queries.map((q) => q.key))]).toEqual([REMEMBERED_KEY]);
    expect(p.controllerQueries.length).toBeGreaterThan(10);
    const first = await plan(p);
    expect(outline(first.changes)).toEqual(SEED_PLAN);
    expect(first.changes.every((c) => c.host === 'cache1' && c.role === 'harbor_api')).toBe(true);
    expect(attrsOf(first.changes[4])).toEqual({ public: true, proxy: 'docker_hub', quota: '-1 (unlimited)' });
    expect(attrsOf(first.changes[8])).toEqual({ public: false });
    expect(attrsOf(first.changes[1])).toMatchObject({ 'credential.access_key': '_json_key', 'credential.access_secret': '(sensitive)' });
    expect(first.changes[1]!.sensitive).toBe(true);
    const oidc = attrsOf(first.changes[10]);
    expect(oidc).toMatchObject({ auth_mode: ['db_auth', 'oidc_auth'], oidc_admin_group: ['', 'cluster_admins'], oidc_scope: ['', 'openid,profile,email,groups,offline_access'], oidc_client_secret: '(sensitive)' });
    // the fresh Harbor's defaults are not changes
    expect(oidc).not.toHaveProperty('oidc_verify_cert');
    expect(oidc).not.toHaveProperty('oidc_auto_onboard');
    // a handful of list reads serve every fact
    expect(first.requests).toBeLessThanOrEqual(8);

    const memory = await apply(first.changes);
    expect(harborState(f)).toEqual(SEED_STATE);
    expect(Object.keys(memory).sort()).toEqual(['harbor_registry:gcr.io:access_secret', 'harbor_setting:oidc_client_secret']);

    const second = await plan(p, memory);
    expect(outline(second.changes)).toEqual([]);
    expectClean(f);
  });

  it('shows no secret in the plan, its JSON or the remembered tags', async () => {
    const f = await fake();
    const p = program({ url: f.url });
    const first = await plan(p);
    const memory = await apply(first.changes);
    const json = renderJson({ kind: 'plan', createdAt: '', berth: '', options: {} as RunResult['options'], spec: {} as RunResult['spec'], hosts: [{ host: 'cache1', changes: first.changes, fingerprints: first.fingerprints, notes: [] }] } as RunResult);
    for (const s of [ADMIN_PASSWORD, DEX_SECRET, GCR_SECRET]) {
      expect(json).not.toContain(s);
      expect(JSON.stringify(memory)).not.toContain(s);
    }
    expect(json).toContain('(sensitive)');
    expect(Object.values(memory).every((v) => /^hmac-sha256:[0-9a-f]{64}$/.test(v))).toBe(true);
  });
});

describe('drift', () => {
  it('a project made private and the OIDC admin group changed in Harbor: the plan shows exactly that, apply restores it', async () => {
    const f = await fake();
    const { p, memory } = await converged(f);
    const before = await plan(p, memory);
    f.state.findProject('proxy.docker.io')!.metadata.public = 'false';
    f.state.configuration.set('oidc_admin_group', 'someone_else');
    const drift = await plan(p, memory);
    expect(outline(drift.changes)).toEqual(['update harbor project proxy.docker.io', 'update harbor configuration oidc']);
    expect(drift.changes.map((c) => c.attrs)).toEqual([[{ name: 'public', before: false, after: true }], [{ name: 'oidc_admin_group', before: 'someone_else', after: 'cluster_admins' }]]);
    // the fingerprints name what drifted, so a saved plan would be refused
    const changed = Object.keys(drift.fingerprints).filter((k) => drift.fingerprints[k] !== before.fingerprints[k]).sort();
    expect(changed).toEqual(['harbor_project:proxy.docker.io', 'harbor_setting:oidc_admin_group']);
    await apply(drift.changes, memory);
    expect(harborState(f)).toEqual(SEED_STATE);
    expect(outline((await plan(p, memory)).changes)).toEqual([]);
    expectClean(f);
  });

  it('a write-only secret: unchanged is no change; changed in the spec, or unknown to berth, is sent again (sensitive)', async () => {
    const f = await fake();
    const { p, memory } = await converged(f);
    // Harbor masks it: the plan can only compare the remembered tag
    expect((await plan(p, memory)).changes).toEqual([]);
    // no tags (the state record was lost): both secrets are sent again
    const lost = await plan(p, {});
    expect(outline(lost.changes)).toEqual(['update harbor registry gcr.io', 'update harbor configuration oidc']);
    expect(lost.changes.map((c) => c.attrs)).toEqual([
      [{ name: 'credential.access_secret', before: '(sensitive)', after: '(sensitive)' }],
      [{ name: 'oidc_client_secret', after: '(sensitive)' }],
    ]);
    expect(lost.changes.every((c) => c.sensitive)).toBe(true);
    // the spec's secret changes
    process.env.BERTH_UNIT_GCR_SECRET = `${GCR_SECRET}-rotated`;
    try {
      const q = program({ url: f.url });
      const rotated = await plan(q, memory);
      expect(outline(rotated.changes)).toEqual(['update harbor registry gcr.io']);
      const mem2 = await apply(rotated.changes, memory);
      expect(f.state.findRegistryByName('gcr.io')!.credential.access_secret).toBe(`${GCR_SECRET}-rotated`);
      expect(mem2['harbor_registry:gcr.io:access_secret']).not.toBe(memory['harbor_registry:gcr.io:access_secret']);
      expect((await plan(q, mem2)).changes).toEqual([]);
    } finally {
      process.env.BERTH_UNIT_GCR_SECRET = GCR_SECRET;
    }
    // a recreated registry (same name, new record) gets its secret again
    const reg = f.state.findRegistryByName('gcr.io')!;
    f.state.registries.delete(reg.id);
    f.state.registries.set(99, { ...reg, id: 99, credential: { ...reg.credential, access_secret: 'typed-in-the-ui' } });
    for (const pr of f.state.projects.values()) if (pr.registry_id === reg.id) pr.registry_id = 99;
    const recreated = await plan(p, memory);
    expect(outline(recreated.changes)).toEqual(['update harbor registry gcr.io']);
    expectClean(f);
  });
});

describe("Harbor's traps", () => {
  it('exact lookups: look-alike names (GET ?name= is fuzzy) are not taken for the spec\'s', async () => {
    const f = await fake();
    // a look-alike of every name the spec uses
    const p0 = program({ url: f.url });
    const seeded = await plan(p0);
    const res = await fetch(`${f.url}/api/v2.0/registries`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'docker_hub_old', url: 'https://hub.docker.com', type: 'docker-hub' }),
    });
    expect(res.status).toBe(201);
    f.state.createProject({ name: 'proxy.docker.io.old', ownerId: 1, metadata: { public: 'false' }, storageLimit: -1 });
    f.state.createProject({ name: 'xproxy.docker.io', ownerId: 1, metadata: { public: 'false' }, storageLimit: -1 });
    const p = program({ url: f.url });
    const first = await plan(p);
    expect(outline(first.changes)).toEqual(outline(seeded.changes));
    await apply(first.changes);
    const st = harborState(f);
    expect(st.projects['proxy.docker.io']).toEqual({ public: true, proxy: 'docker_hub', quota: -1 });
    expect(st.projects['proxy.docker.io.old']).toEqual({ public: false, quota: -1 });
    expect(Object.keys(st.registries).sort()).toEqual(['docker_hub', 'docker_hub_old', 'gcr.io', 'k8s.gcr.io', 'quay.io']);
    // and no request used the fuzzy name= filter
    expect(f.requests.filter((r) => /[?&]name=/.test(r.query))).toEqual([]);
    expectClean(f);
  });

  it('a quota changes through PUT /quotas (PUT /projects would ignore storage_limit)', async () => {
    const f = await fake();
    const { memory } = await converged(f);
    const p = program({ url: f.url, tables: SEED.replace('proxy.docker.io: { public: true, quota: -1,', 'proxy.docker.io: { public: true, quota: 20GiB,') });
    const changes = (await plan(p, memory)).changes;
    expect(outline(changes)).toEqual(['update harbor project proxy.docker.io']);
    expect(changes[0]!.attrs).toEqual([{ name: 'quota', before: '-1 (unlimited)', after: '20GiB (21474836480 bytes)' }]);
    const n = f.requests.length;
    await apply(changes, memory);
    const id = f.state.findProject('proxy.docker.io')!.project_id;
    expect(f.state.quotaOfProject(id)!.hard.storage).toBe(20 * 1024 ** 3);
    expect(f.requests.slice(n).map((r) => `${r.method} ${r.operationId}`)).toContain('PUT updateQuota');
    expect(f.requests.slice(n).filter((r) => r.operationId === 'updateProject')).toEqual([]);
    expect((await plan(p, memory)).changes).toEqual([]);
    expectClean(f);
  });

  it('prune deletes what the spec does not name (projects before registries, library kept); a project with repositories fails with 412 explained', async () => {
    const f = await fake();
    const { memory } = await converged(f);
    f.state.createProject({ name: 'scratch', ownerId: 1, metadata: { public: 'false' }, storageLimit: -1 });
    f.state.createProject({ name: 'keepme', ownerId: 1, metadata: { public: 'false' }, storageLimit: -1 });
    // without prune: left alone
    expect((await plan(program({ url: f.url }), memory)).changes).toEqual([]);
    const tables = SEED.replace(/\n {2}quay\.io: .*\n/, '\n').replace(/\n {2}proxy\.quay\.io: .*\n/, '\n');
    const p = program({ url: f.url, tables, apiVars: 'prune: true\nkeep: [library, keepme]' });
    const pruned = (await plan(p, memory)).changes;
    expect(outline(pruned)).toEqual(['delete harbor project proxy.quay.io', 'delete harbor project scratch', 'delete harbor registry quay.io']);
    f.state.addRepository('scratch', 'scratch/tool');
    const err = await apply(pruned, memory).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BerthError);
    expect((err as BerthError).format()).toMatch(/^cache1: harbor project scratch: Harbor refuses to delete it while it holds repositories \(412: project scratch still holds 1 repositories\) \(delete its repositories/);
    // the deletion before it was done; the registry after it was not tried
    expect(f.state.findProject('proxy.quay.io')).toBeUndefined();
    expect(f.state.findRegistryByName('quay.io')).toBeDefined();
    f.state.removeRepositories('scratch');
    const rest = (await plan(p, memory)).changes;
    expect(outline(rest)).toEqual(['delete harbor project scratch', 'delete harbor registry quay.io']);
    await apply(rest, memory);
    expect(Object.keys(harborState(f).projects).sort()).toEqual(['keepme', 'library', 'number-crunch', 'proxy.docker.io', 'proxy.gcr.io', 'proxy.k8s.gcr.io']);
    expect((await plan(p, memory)).changes).toEqual([]);
    expectClean(f);
  });

  it('auth_mode cannot change while users other than admin exist: refused at plan time with the rule, no PUT sent', async () => {
    const f = await fake();
    f.state.addUser({ username: 'dev' });
    const p = program({ url: f.url });
    const e = await plan(p).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(BerthError);
    const line = (e as BerthError).format();
    // at the spec's oidc block (what asks for OIDC): its first line the role reads
    const all = specTree({ url: f.url })['inventories/t/group_vars/all.yml'] as string;
    const row = all.split('\n').findIndex((l) => l.includes('provider_name: dex')) + 1;
    expect(line).toMatch(new RegExp(`^inventories/t/group_vars/all\\.yml:${row}:\\d+: auth_mode cannot change from db_auth to oidc_auth: Harbor changes the authentication mode only while no user but admin exists`));
    expect(line).toContain('goharbor/harbor#15419');
    expect(f.requests.filter((r) => r.method !== 'GET')).toEqual([]);
  });

  it('auth_mode: checked again right before the call (a user onboarded between plan and apply)', async () => {
    const f = await fake();
    const p = program({ url: f.url });
    const changes = (await plan(p)).changes;
    f.state.addUser({ username: 'late' });
    const e = await apply(changes).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as BerthError).format()).toMatch(/^cache1: harbor configuration oidc: auth_mode cannot change from db_auth to oidc_auth/);
    // the system settings went through; the OIDC change was never sent
    expect(f.requests.filter((r) => r.operationId === 'updateConfigurations').map((r) => Object.keys(r.body as object))).toEqual([['project_creation_restriction']]);
    expect(f.state.configuration.get('auth_mode')).toBe('db_auth');
  });

  it('Harbor v2.14 takes no quay registry behind a proxy cache: a plan-time error at the project\'s proxy line', async () => {
    const f = await fake({ version: 'v2.14.0' });
    const tables = SEED.replace('quay.io: { type: docker-registry, url: "https://quay.io" }', 'quay.io: { type: quay, url: "https://quay.io" }');
    const p = program({ url: f.url, tables });
    const e = await plan(p).then(
      () => undefined,
      (x: unknown) => x,
    );
    const line = (e as BerthError).format();
    const all = specTree({ url: f.url, tables })['inventories/t/group_vars/all.yml'] as string;
    const row = all.split('\n').findIndex((l) => l.includes('proxy.quay.io:')) + 1;
    expect(line).toMatch(new RegExp(`^inventories/t/group_vars/all\\.yml:${row}:\\d+: proxy: registry "quay\\.io" is of type quay, which Harbor v2\\.14\\.0 does not accept behind a proxy-cache project`));
    expect(line).toContain('type docker-registry works');
    // the fake would have refused it too, half-way through an apply
    expect(f.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    // v2.12 takes it
    const g = await fake({ host: '127.0.0.72' });
    expect(outline((await plan(program({ url: g.url, tables }))).changes)).toContain('create harbor project proxy.quay.io');
  });

  it('a proxy-cache project cannot be re-bound (PUT ignores registry_id): a plan-time error', async () => {
    const f = await fake();
    const { memory } = await converged(f);
    const p = program({ url: f.url, tables: SEED.replace('proxy.gcr.io: { public: true, quota: -1, proxy: gcr.io,', 'proxy.gcr.io: { public: true, quota: -1, proxy: k8s.gcr.io,') });
    const e = await plan(p, memory).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as BerthError).format()).toMatch(/group_vars\/all\.yml:\d+:\d+: project proxy\.gcr\.io is a proxy-cache project of registry "gcr\.io" in Harbor, the spec says proxy "k8s\.gcr\.io": Harbor cannot re-bind a project/);
  });
});

// the rows of docs/RELIABILITY.md this file owns, recorded by the tests that pass
const faultRows: Row[] = [];
const faultRow = (what: string, tried: number, outcome: string, kept: string) => faultRows.push({ what, tried, outcome: `${outcome}: ${ratio(tried, tried)}`, kept });

describe('retries and failures', () => {
  it('a transient 500 (and a reset connection) is retried, and the apply succeeds', async () => {
    const f = await fake();
    const p = program({ url: f.url });
    const first = await plan(p);
    const a = f.fail({ status: 500, method: 'POST', path: '/api/v2.0/projects', times: 1 });
    const b = f.fail({ reset: true, method: 'PUT', path: '/api/v2.0/configurations', times: 1 });
    await apply(first.changes);
    expect(a.remaining).toBe(0);
    expect(b.remaining).toBe(0);
    expect(harborState(f)).toEqual(SEED_STATE);
    // the failed tries are in the log, each followed by a good one
    expect(f.requests.filter((r) => r.fault).map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['POST /api/v2.0/projects 500', 'PUT /api/v2.0/configurations 0']);
    expectClean(f);
    faultRow('Harbor API: a 500 on a write, a connection reset', 2, 'retried, and the apply succeeded', "Harbor holds exactly the spec's resources, no swagger violation");
  });

  it('a slow answer past the timeout is a timeout, retried', async () => {
    const f = await fake();
    const p = program({ url: f.url, apiVars: 'timeout: 1' });
    f.fail({ delayMs: 2_500, operationId: 'listRegistries', times: 1 });
    const first = await plan(p);
    expect(outline(first.changes)).toEqual(SEED_PLAN);
    faultRow('Harbor API: an answer slower than the timeout', 1, 'retried as a timeout, and the plan is the exact one', 'nothing written');
  });

  it('a persistent 503 is one clear error naming the resource, after bounded tries', async () => {
    const f = await fake();
    const p = program({ url: f.url });
    const first = await plan(p);
    f.fail({ status: 503, method: 'POST', path: '/api/v2.0/projects', times: 1000 });
    const t0 = Date.now();
    const e = await apply(first.changes).then(
      () => undefined,
      (x: unknown) => x,
    );
    const line = (e as BerthError).format();
    expect(line).toBe(
      'cache1: harbor project proxy.docker.io: POST /api/v2.0/projects: Harbor answered 503: 503 Service Temporarily Unavailable' + line.slice(line.indexOf(' (5 tries in')),
    );
    expect(line).toMatch(/\(5 tries in \d+\.\ds\)$/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(f.requests.filter((r) => r.method === 'POST' && r.path === '/api/v2.0/projects')).toHaveLength(5);
    // what came before it is done
    expect(Object.keys(harborState(f).registries)).toHaveLength(4);
    faultRow('Harbor API: a persistent 503', 1, 'one line naming the resource and the 5 tries, in under 10 s', 'the changes before it stayed done');
  });

  it('wrong credentials: a 401 explained (harbor.yml\'s password counts only at the first start)', async () => {
    const f = await fake({ adminPassword: 'not-the-spec-one' });
    const e = await plan(program({ url: f.url })).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as BerthError).format()).toMatch(/^cache1: harbor\S* \S+: GET \/api\/v2\.0\/\S+: Harbor refused the credentials of user admin \(401: unauthorized\) \(check harbor\.admin_password/);
    faultRow('Harbor API: wrong credentials (401)', 1, 'one line that says which password counts', 'nothing written');
  });
});

describe('a Harbor that does not answer', () => {
  // nothing listens here: connection refused
  const DEAD = 'http://127.0.0.79:9';

  it('when this plan starts Harbor (a bare VM), it is planned as an empty Harbor: everything created', async () => {
    const p = program({ url: DEAD, apiVars: 'service: harbor\nretries: 1' });
    // the playbook has no service task: stand in for "an earlier task starts harbor.service"
    const g = await gatherControllerFacts(p.controllerQueries, p.host);
    expect(g.facts.get('harbor:version')).toEqual({ unreachable: 'ECONNREFUSED' });
    const facts: Facts = new Map(g.facts);
    facts.set(REMEMBERED_KEY, {});
    facts.set('unit:harbor.service', unitFact('inactive', '', 'not-found'));
    const e = berthError(() => planHost(p, facts));
    expect(e.format()).toMatch(/Harbor's API at http:\/\/127\.0\.0\.79:9 does not answer \(ECONNREFUSED\), and harbor\.service is not started by this plan/);
    // the same facts, with the unit started by an earlier planned change
    const started = new Map(facts);
    const withStart: HostProgram = {
      ...p,
      segments: p.segments.map((s) => ({
        ...s,
        tasks: [
          {
            ...s.tasks[0]!,
            name: 'start harbor',
            module: { ...getModule('flush_handlers')!, name: 'stand-in', plan: (_a, st) => (st.set('unit:harbor.service', unitFact('active', 'enabled')), []) },
          },
          ...s.tasks,
        ],
      })),
    };
    const planned = planHost(withStart, started);
    expect(outline(planned.changes)).toEqual(SEED_PLAN);
  });

  it('when Harbor should be running, it is an error naming the URL', async () => {
    const p = program({ url: DEAD, apiVars: 'service: harbor\nretries: 1' });
    const e = await plan(p, {}, { 'unit:harbor.service': unitFact('active', 'enabled') }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as BerthError).format()).toMatch(/does not answer \(ECONNREFUSED\), and harbor\.service is running \(Harbor should be up: check it on cache1/);
  });
});

describe('TLS', () => {
  it('verifies the certificate against the spec\'s CA; another CA is refused with a clear error', async (ctx) => {
    const dir = tempDir();
    const script = [
      'set -e',
      'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj "/CN=berth unit CA"',
      'openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.73',
      "printf 'subjectAltName=IP:127.0.0.73\\nbasicConstraints=CA:FALSE\\n' > san.ext",
      'openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 1 -extfile san.ext',
      'openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 1 -subj "/CN=another CA"',
    ].join('\n');
    const made = spawnSync('sh', ['-c', script], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    if (made.status !== 0) {
      console.warn(`!!! SKIPPED (openssl could not make test certificates): ${made.stderr}`);
      ctx.skip();
    }
    const f = await fake({ host: '127.0.0.73', tls: { key: readFileSync(join(dir, 'srv.key')), cert: readFileSync(join(dir, 'srv.crt')) } });
    const files = { 'files/harbor-ca.crt': readFileSync(join(dir, 'ca.crt')), 'files/other-ca.crt': readFileSync(join(dir, 'other.crt')) };
    const good = program({ url: f.url, apiVars: 'ca_cert: files/harbor-ca.crt', files });
    expect(outline((await plan(good)).changes)).toEqual(SEED_PLAN);
    await releaseControllerResources();
    const bad = program({ url: f.url, apiVars: 'ca_cert: files/other-ca.crt', files });
    const e = await plan(bad).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as BerthError).format()).toMatch(/the TLS certificate of 127\.0\.0\.73:\d+ is not trusted .* \(berth checks it against Node's CA roots and files\/other-ca\.crt\)/);
  }, 60_000);
});

describe('spec errors (no Harbor contacted)', () => {
  it('a project bound to an unknown registry: file:line:col of its proxy', () => {
    const tables = SEED.replace('proxy: quay.io, mirrors', 'proxy: quayio, mirrors');
    const e = berthError(() => program({ url: 'http://127.0.0.79:9', tables }));
    const all = specTree({ url: 'x', tables })['inventories/t/group_vars/all.yml'] as string;
    const lines = all.split('\n');
    const row = lines.findIndex((l) => l.includes('proxy: quayio')) + 1;
    const col = lines[row - 1]!.indexOf('quayio') + 1;
    expect(e.format()).toBe(
      `inventories/t/group_vars/all.yml:${row}:${col}: projects["proxy.quay.io"].proxy: unknown registry "quayio" (known registries: docker_hub, gcr.io, k8s.gcr.io, quay.io)`,
    );
  });

  it('an invalid project name: file:line:col of the name', () => {
    const tables = SEED.replace('number-crunch:', 'Number_Crunch:');
    const e = berthError(() => program({ url: 'http://127.0.0.79:9', tables }));
    const all = specTree({ url: 'x', tables })['inventories/t/group_vars/all.yml'] as string;
    const row = all.split('\n').findIndex((l) => l.includes('Number_Crunch')) + 1;
    expect(e.format()).toMatch(new RegExp(`^inventories/t/group_vars/all\\.yml:${row}:3: projects\\.Number_Crunch: invalid name "Number_Crunch" \\(Harbor project names are lower-case`));
  });

  it('an unknown registry type and a docker-hub URL that Harbor would not take', () => {
    const bad = berthError(() => program({ url: 'http://127.0.0.79:9', tables: SEED.replace('type: docker-registry, url: "https://k8s.gcr.io"', 'type: gcr, url: "https://k8s.gcr.io"') }));
    expect(bad.format()).toMatch(/group_vars\/all\.yml:\d+:\d+: registries\["k8s\.gcr\.io"\]\.type: "gcr" is not allowed \(one of: "docker-hub", "docker-registry"/);
    const hub = berthError(() => program({ url: 'http://127.0.0.79:9', tables: SEED.replace('url: "https://hub.docker.com"', 'url: "https://registry-1.docker.io"') }));
    expect(hub.format()).toMatch(/registries\.docker_hub\.url: must be "https:\/\/hub\.docker\.com"/);
  });
});

describe('pagination', () => {
  it('reads every page of a long list (page_size 100), and prunes across pages', async () => {
    const f = await fake();
    for (let i = 0; i < 230; i++) f.state.createProject({ name: `old-${String(i).padStart(3, '0')}`, ownerId: 1, metadata: { public: 'false' }, storageLimit: -1 });
    const p = program({ url: f.url, apiVars: 'prune: true', tables: 'registries: {}\nprojects:\n  keep-me: { public: false }\noidc: {}\n' });
    const r = await plan(p);
    const deletes = r.changes.filter((c) => c.action === 'delete');
    expect(deletes).toHaveLength(230);
    expect(new Set(deletes.map((c) => c.resource)).size).toBe(230);
    expect(f.requests.filter((x) => x.operationId === 'listProjects').map((x) => new URLSearchParams(x.query).get('page'))).toEqual(['1', '2', '3']);
    expectClean(f);
  });
});

describe('the example spec on a bare cache VM', () => {
  it('plans the VM, then (after the health wait) every API resource as created, all under the cache host', async () => {
    for (const [i, k] of ['HARBOR_ADMIN_PASSWORD', 'HARBOR_DB_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'OIDC_CLIENT_SECRET'].entries()) process.env[k] ??= `example-secret-${i}-value`;
    // nothing answers there: the API is "not up yet"
    const spec = loadSpec({
      root: REPO,
      inventory: 'inventories/example',
      extraVars: ['harbor={installer: {source: url, url: "https://downloads.example.com/harbor.tgz"}}', 'harbor_api={url: "http://127.0.0.79:9", retries: 0}'],
    });
    // the dex client (another controller fact: the values repository) is not part of this test
    const prog = buildProgram(spec, 'harbor-cache-01', { skipTags: ['dex_client'] });
    const g = await gatherControllerFacts(prog.controllerQueries, prog.host);
    const facts = factsFor(prog, { 'user:root': userFact('root', 0), 'group:root': groupFact('root', 0), ...baseDirs('/etc/systemd/system', '/var/cache') });
    for (const [k, v] of g.facts) facts.set(k, v);
    const changes = planHost(prog, facts).changes;
    const line = (c: Change) => `${c.action} ${c.resource}`;
    const wait = changes.findIndex((c) => c.task === 'wait for harbor healthy');
    const firstApi = changes.findIndex((c) => c.role === 'harbor_api');
    // on a bare VM harbor.service is (re)started by the harbor role's flush, then waited for
    const start = changes.findIndex((c) => c.task === 'restart harbor');
    expect(start).toBeGreaterThan(0);
    expect(wait).toBeGreaterThan(start);
    // the API changes come after Harbor was started and found healthy, and are the last ones
    expect(firstApi).toBeGreaterThan(wait);
    expect(changes.slice(0, firstApi).every((c) => c.role !== 'harbor_api')).toBe(true);
    expect(changes.slice(firstApi).map(line)).toEqual(SEED_PLAN);
    expect(changes.every((c) => c.host === 'harbor-cache-01')).toBe(true);
  });
});

describe('docs/RELIABILITY.md', () => {
  it('lists the Harbor API faults this file put berth through', () => {
    expect(faultRows.length, 'a fault test did not record its result (it failed above)').toBe(4);
    const msg = checkSection('api-faults', faultRows, 'npx vitest run --project unit test/unit/harbor-api.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});
