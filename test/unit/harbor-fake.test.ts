// The Harbor fake (test/harbor-fake/): Harbor v2.12's behaviour and traps,
// shown with plain fetch, and its contract checks against the pinned swagger.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  HARBOR_SWAGGER,
  contractUnavailableNotice,
  defaultContractAttempts,
  loadHarborContract,
  loadHarborContractWithReport,
  rawGitHubUrl,
  startHarborFake,
  type HarborContract,
  type HarborFake,
} from '../harbor-fake/index.js';
import { tempDir } from './helpers.js';

/** A repository root whose ../shared cannot exist (a temp dir's parent is the shared tmpdir, which may hold one). */
const lonelyRepo = () => {
  const root = join(tempDir(), 'berth');
  mkdirSync(root);
  return root;
};

const PASSWORD = 'Harbor12345';
const ADMIN = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
const JSON_HEADERS = { authorization: ADMIN, 'content-type': 'application/json' };

let contract: HarborContract | undefined;
beforeAll(async () => {
  contract = await loadHarborContract();
  if (!contract) console.warn(contractUnavailableNotice(await defaultContractAttempts()));
});

/** Contract-dependent tests: skipped (after the loud notice above) when the swagger is missing. */
const withContract = (name: string, fn: () => Promise<void>): void => {
  it(name, async (ctx) => {
    if (!contract) {
      console.warn(`!!! SKIPPED (no Harbor contract): ${name}`);
      ctx.skip();
    }
    await fn();
  });
};

const fakes: HarborFake[] = [];
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

async function start(options: Partial<Parameters<typeof startHarborFake>[0]> = {}): Promise<HarborFake> {
  const f = await startHarborFake({ adminPassword: PASSWORD, contract: contract ?? null, warn: () => {}, ...options });
  fakes.push(f);
  return f;
}

function api(f: HarborFake, path: string): string {
  return `${f.url}/api/v2.0${path}`;
}

async function call(f: HarborFake, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(api(f, path), {
    method,
    headers: { ...JSON_HEADERS, ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

async function json(res: Response): Promise<any> {
  return res.json();
}

async function createRegistry(f: HarborFake, name = 'docker-hub', url = 'https://hub.docker.com'): Promise<number> {
  const res = await call(f, 'POST', '/registries', { name, url, type: 'docker-hub', insecure: false, description: 'Docker Hub', credential: { type: 'basic', access_key: 'me', access_secret: 's3cret' } });
  expect(res.status).toBe(201);
  return Number(res.headers.get('location')!.split('/').pop());
}

async function createProject(f: HarborFake, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
  return call(f, 'POST', '/projects', body, headers);
}

/** Every fake must end a test without contract violations unless the test expects some. */
function expectClean(f: HarborFake): void {
  expect(f.violations).toEqual([]);
}

describe('starting', () => {
  it('binds only to 127.0.0.0/8', async () => {
    for (const host of ['0.0.0.0', '10.0.0.1', 'localhost', '::1', '128.0.0.1', '127.0.0']) {
      await expect(startHarborFake({ host, adminPassword: PASSWORD, contract: null, warn: () => {} })).rejects.toThrow(/127\.0\.0\.0\/8/);
    }
    const f = await start({ host: '127.0.0.2' });
    expect(f.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
    const res = await fetch(api(f, '/health'));
    expect(res.status).toBe(200);
  });

  it('says loudly when it runs without the contract', async () => {
    const lines: string[] = [];
    const f = await startHarborFake({ adminPassword: PASSWORD, contract: null, warn: (t) => lines.push(t) });
    fakes.push(f);
    expect(f.contractChecked).toBe(false);
    expect(lines.join('\n')).toMatch(/HARBOR CONTRACT NOT AVAILABLE/);
  });
});

describe('HTTPS', () => {
  it('serves TLS with the given key/cert; a client verifying against the CA gets through', async (ctx) => {
    const dir = tempDir();
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.3', '-addext', 'subjectAltName=IP:127.0.0.3'], { encoding: 'utf8', timeout: 60_000 });
    if (made.status !== 0) {
      console.warn(`!!! SKIPPED (openssl could not make a test certificate): ${made.stderr ?? made.error}`);
      ctx.skip();
    }
    const cert = readFileSync(join(dir, 'cert.pem'));
    const f = await start({ host: '127.0.0.3', tls: { key: readFileSync(join(dir, 'key.pem')), cert } });
    expect(f.url).toMatch(/^https:\/\/127\.0\.0\.3:/);
    const get = (ca?: Buffer): Promise<{ status: number; cookie: string }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(`${f.url}/api/v2.0/systeminfo`, { ...(ca ? { ca } : {}), headers: { authorization: ADMIN }, timeout: 10_000 }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: String(res.headers['set-cookie'] ?? '') }));
        });
        req.on('error', reject);
        req.end();
      });
    const ok = await get(cert);
    expect(ok.status).toBe(200);
    expect(ok.cookie).toMatch(/; Secure/);
    await expect(get()).rejects.toThrow(/self[- ]signed|unable to verify/i);
    expectClean(f);
  });
});

describe('system endpoints and auth', () => {
  it('GET /health needs no auth and reports every component', async () => {
    const f = await start();
    let res = await fetch(api(f, '/health'));
    expect(res.status).toBe(200);
    let body = await json(res);
    expect(body.status).toBe('healthy');
    expect(body.components.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['core', 'database', 'jobservice', 'portal', 'redis', 'registry', 'registryctl']));
    f.state.setComponentHealth('redis', 'unhealthy', 'dial tcp: connection refused');
    res = await fetch(api(f, '/health'));
    expect(res.status).toBe(200); // always 200, the body tells
    body = await json(res);
    expect(body.status).toBe('unhealthy');
    expect(body.components.find((c: { name: string }) => c.name === 'redis')).toEqual({ name: 'redis', status: 'unhealthy', error: 'dial tcp: connection refused' });
    expectClean(f);
  });

  it('GET /systeminfo gives harbor_version (default v2.12.4, configurable)', async () => {
    const f = await start();
    expect((await json(await call(f, 'GET', '/systeminfo'))).harbor_version).toBe('v2.12.4');
    const g = await start({ version: 'v2.10.3' });
    const anon = await json(await fetch(api(g, '/systeminfo')));
    expect(anon.harbor_version).toBe('v2.10.3');
    expect(anon.external_url).toBeUndefined(); // protected info only for logged-in callers
    expectClean(f);
    expectClean(g);
  });

  it('basic auth: admin + password; anything else is 401 on admin APIs', async () => {
    const f = await start();
    expect((await call(f, 'GET', '/registries')).status).toBe(200);
    const wrong = `Basic ${Buffer.from('admin:nope').toString('base64')}`;
    for (const headers of [{ authorization: wrong }, { authorization: '' }]) {
      const res = await fetch(api(f, '/registries'), { headers });
      expect(res.status).toBe(401);
      expect(await json(res)).toEqual({ errors: [{ code: 'UNAUTHORIZED', message: 'unauthorized' }] });
    }
    // a non-admin user is authenticated but forbidden
    f.state.addUser({ username: 'dev', password: 'Dev12345' });
    const dev = `Basic ${Buffer.from('dev:Dev12345').toString('base64')}`;
    expect((await fetch(api(f, '/registries'), { headers: { authorization: dev } })).status).toBe(403);
    expectClean(f);
  });
});

describe('registries', () => {
  it('POST -> 201 + Location; GET masks the secret; URL normalised', async () => {
    const f = await start();
    const res = await call(f, 'POST', '/registries', { name: 'hub', url: 'https://hub.docker.com/', type: 'docker-hub', credential: { type: 'basic', access_key: 'me', access_secret: 's3cret' } });
    expect(res.status).toBe(201);
    const location = res.headers.get('location');
    expect(location).toMatch(/^\/api\/v2\.0\/registries\/\d+$/);
    expect(await res.text()).toBe('');
    const got = await json(await fetch(`${f.url}${location}`, { headers: { authorization: ADMIN } }));
    expect(got).toMatchObject({ name: 'hub', url: 'https://hub.docker.com', type: 'docker-hub', status: 'healthy', credential: { type: 'basic', access_key: 'me', access_secret: '*****' } });
    const list = await call(f, 'GET', '/registries');
    expect(list.headers.get('x-total-count')).toBe('1');
    expect((await json(list))[0].credential.access_secret).toBe('*****');
    expectClean(f);
  });

  it('create pings the upstream: unreachable -> 400 "the registry is unhealthy"', async () => {
    const f = await start();
    f.state.setUpstreamHealth('https://quay.io', false);
    const res = await call(f, 'POST', '/registries', { name: 'quay', url: 'https://quay.io', type: 'quay' });
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ errors: [{ code: 'BAD_REQUEST', message: 'the registry is unhealthy' }] });
    expect(f.state.registries.size).toBe(0);
    expectClean(f);
  });

  it('409 on a duplicate name', async () => {
    const f = await start();
    await createRegistry(f, 'hub');
    const res = await call(f, 'POST', '/registries', { name: 'hub', url: 'https://registry-1.docker.io', type: 'docker-registry' });
    expect(res.status).toBe(409);
    expect((await json(res)).errors[0].code).toBe('CONFLICT');
    expectClean(f);
  });

  it('PUT takes the flat RegistryUpdate; a nested credential is dropped and flagged', async () => {
    const f = await start();
    const id = await createRegistry(f, 'hub');
    let res = await call(f, 'PUT', `/registries/${id}`, { description: 'new', access_key: 'me2', access_secret: 'n3w' });
    expect(res.status).toBe(200);
    expect(f.state.registries.get(id)!.credential).toEqual({ type: 'basic', access_key: 'me2', access_secret: 'n3w' });
    expect((await json(await call(f, 'GET', `/registries/${id}`))).description).toBe('new');
    expectClean(f);
    res = await call(f, 'PUT', `/registries/${id}`, { credential: { access_key: 'x', access_secret: 'y' } });
    expect(res.status).toBe(200); // Harbor accepts it and changes nothing
    expect(f.state.registries.get(id)!.credential.access_key).toBe('me2');
    if (contract) expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'request-ignored', operationId: 'updateRegistry', message: expect.stringMatching(/registry\.credential/) })]);
  });

  it('DELETE -> 412 while a proxy project references it, 200 after', async () => {
    const f = await start();
    const id = await createRegistry(f);
    expect((await createProject(f, { project_name: 'proxy.docker.io', metadata: { public: 'true' }, registry_id: id, storage_limit: -1 })).status).toBe(201);
    let res = await call(f, 'DELETE', `/registries/${id}`);
    expect(res.status).toBe(412);
    expect((await json(res)).errors[0]).toMatchObject({ code: 'PRECONDITION', message: expect.stringContaining('proxy.docker.io') });
    expect((await call(f, 'DELETE', '/projects/proxy.docker.io', undefined, { 'X-Is-Resource-Name': 'true' })).status).toBe(200);
    res = await call(f, 'DELETE', `/registries/${id}`);
    expect(res.status).toBe(200);
    expect((await call(f, 'GET', `/registries/${id}`)).status).toBe(404);
    expectClean(f);
  });
});

describe('projects', () => {
  it('POST with metadata.public as a string, proxy cache via registry_id, quota from storage_limit', async () => {
    const f = await start();
    const reg = await createRegistry(f);
    const res = await createProject(f, { project_name: 'proxy.docker.io', metadata: { public: 'true' }, registry_id: reg, storage_limit: 10737418240 });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(/^\/api\/v2\.0\/projects\/\d+$/);
    const p = await json(await call(f, 'GET', '/projects/proxy.docker.io'));
    expect(p).toMatchObject({ name: 'proxy.docker.io', registry_id: reg, repo_count: 0, owner_name: 'admin' });
    expect(p.metadata.public).toBe('true');
    // Harbor gives proxy projects a retention policy of its own
    expect(p.metadata.retention_id).toMatch(/^\d+$/);
    const q = await json(await call(f, 'GET', `/quotas?reference=project&reference_id=${p.project_id}`));
    expect(q).toHaveLength(1);
    expect(q[0].hard).toEqual({ storage: 10737418240 });
    expect(q[0].ref).toMatchObject({ id: p.project_id, name: 'proxy.docker.io' });
    expectClean(f);
  });

  it('a quay registry backs a proxy cache in v2.12, not from v2.14 ("unsupported registry type quay")', async () => {
    for (const [version, status] of [['v2.12.4', 201], ['v2.13.1', 201], ['v2.14.0', 400], ['v2.15.1', 400]] as const) {
      const f = await start({ version });
      const reg = await call(f, 'POST', '/registries', { name: 'quay', url: 'https://quay.io', type: 'quay' });
      expect(reg.status).toBe(201);
      const id = Number(reg.headers.get('location')!.split('/').pop());
      const res = await createProject(f, { project_name: 'proxy.quay.io', metadata: { public: 'true' }, registry_id: id });
      expect(res.status, version).toBe(status);
      if (status === 400) expect((await json(res)).errors[0].message).toBe('bad request: unsupported registry type quay');
      expectClean(f);
      await f.close();
    }
  });

  it('X-Resource-Name-In-Location puts the name in Location', async () => {
    const f = await start();
    const res = await createProject(f, { project_name: 'team-a' }, { 'X-Resource-Name-In-Location': 'true' });
    expect(res.headers.get('location')).toBe('/api/v2.0/projects/team-a');
    expect((await json(await call(f, 'GET', '/projects/team-a'))).metadata).toEqual({ public: 'false' });
    expectClean(f);
  });

  it('409 when it exists; 400 for a bad name or public value', async () => {
    const f = await start();
    expect((await createProject(f, { project_name: 'dup' })).status).toBe(201);
    const again = await createProject(f, { project_name: 'dup' });
    expect(again.status).toBe(409);
    expect((await json(again)).errors[0].code).toBe('CONFLICT');
    for (const name of ['Upper', 'a..b', '-x', 'x_', 'a b']) {
      const res = await createProject(f, { project_name: name });
      expect(res.status, name).toBe(400);
    }
    const yes = await createProject(f, { project_name: 'yesno', metadata: { public: 'yes' } });
    expect(yes.status).toBe(400);
    expectClean(f);
  });

  it('GET /projects?name= is fuzzy, q=name= is exact, q=name=~ is fuzzy', async () => {
    const f = await start();
    for (const n of ['proxy.docker.io', 'proxy.docker.io-old', 'docker']) expect((await createProject(f, { project_name: n })).status).toBe(201);
    const names = async (query: string): Promise<string[]> => (await json(await call(f, 'GET', `/projects?${query}`))).map((p: { name: string }) => p.name).sort();
    expect(await names('name=docker')).toEqual(['docker', 'proxy.docker.io', 'proxy.docker.io-old']);
    expect(await names(`q=${encodeURIComponent('name=proxy.docker.io')}`)).toEqual(['proxy.docker.io']);
    expect(await names(`q=${encodeURIComponent('name=~docker.io')}`)).toEqual(['proxy.docker.io', 'proxy.docker.io-old']);
    expectClean(f);
  });

  it('pagination: page/page_size with X-Total-Count and Link; page_size > 100 is refused', async () => {
    const f = await start({ seedLibrary: false });
    for (let i = 0; i < 25; i++) expect((await createProject(f, { project_name: `p${String(i).padStart(2, '0')}` })).status).toBe(201);
    const res = await call(f, 'GET', '/projects?page=2&page_size=10');
    expect(res.headers.get('x-total-count')).toBe('25');
    expect(res.headers.get('link')).toMatch(/page=1.*rel="prev".*page=3.*rel="next"/);
    expect((await json(res)).map((p: { name: string }) => p.name)).toEqual(['p10', 'p11', 'p12', 'p13', 'p14', 'p15', 'p16', 'p17', 'p18', 'p19']);
    expect((await json(await call(f, 'GET', '/projects?page=3&page_size=10'))).length).toBe(5);
    const big = await call(f, 'GET', '/projects?page_size=101');
    expect(big.status).toBe(422);
    expect((await json(big)).errors[0]).toMatchObject({ code: 'UNPROCESSABLE_ENTITY', message: expect.stringMatching(/page_size/) });
    if (contract) expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'request', operationId: 'listProjects' })]);
    expectClean(f);
  });

  it('PUT /projects applies only metadata and cve_allowlist', async () => {
    const f = await start();
    const reg = await createRegistry(f);
    expect((await createProject(f, { project_name: 'proxy', metadata: { public: 'false' }, registry_id: reg, storage_limit: -1 })).status).toBe(201);
    const before = await json(await call(f, 'GET', '/projects/proxy'));
    const res = await call(f, 'PUT', '/projects/proxy', {
      metadata: { public: 'true', auto_scan: 'true' },
      cve_allowlist: { items: [{ cve_id: 'CVE-2024-0001' }] },
      storage_limit: 1024,
      registry_id: 999,
    });
    expect(res.status).toBe(200);
    const after = await json(await call(f, 'GET', '/projects/proxy'));
    expect(after.metadata).toEqual({ ...before.metadata, public: 'true', auto_scan: 'true' });
    expect(after.cve_allowlist.items).toEqual([{ cve_id: 'CVE-2024-0001' }]);
    expect(after.registry_id).toBe(reg);
    const quota = (await json(await call(f, 'GET', `/quotas?reference=project&reference_id=${after.project_id}`)))[0];
    expect(quota.hard.storage).toBe(-1);
    // the ignored fields are recorded: berth must use PUT /quotas/{id}
    const ignored = f.takeViolations().map((v) => v.message);
    expect(ignored).toEqual([expect.stringMatching(/ignores registry_id/), expect.stringMatching(/ignores storage_limit.*PUT \/quotas/)]);
    // a retention_id other than the project's own is refused
    expect((await call(f, 'PUT', '/projects/proxy', { metadata: { retention_id: '999' } })).status).toBe(400);
    expectClean(f);
  });

  it('DELETE -> 412 while it holds repositories', async () => {
    const f = await start();
    expect((await createProject(f, { project_name: 'busy' })).status).toBe(201);
    f.state.addRepository('busy', 'busy/nginx');
    expect((await json(await call(f, 'GET', '/projects/busy'))).repo_count).toBe(1);
    const res = await call(f, 'DELETE', '/projects/busy');
    expect(res.status).toBe(412);
    expect((await json(res)).errors[0].code).toBe('PRECONDITION');
    expect(await json(await call(f, 'GET', '/projects/busy/_deletable'))).toMatchObject({ deletable: false });
    f.state.removeRepositories('busy');
    expect((await call(f, 'DELETE', '/projects/busy')).status).toBe(200);
    expect((await call(f, 'GET', '/projects/busy')).status).toBe(404);
    expectClean(f);
  });

  it('who sees what: anonymous, a plain user, admin; HEAD checks a name', async () => {
    const f = await start();
    expect((await createProject(f, { project_name: 'private-one' })).status).toBe(201);
    f.state.addUser({ username: 'dev', password: 'Dev12345' });
    const dev = { authorization: `Basic ${Buffer.from('dev:Dev12345').toString('base64')}` };
    const names = async (headers: Record<string, string>): Promise<string[]> => (await json(await fetch(api(f, '/projects'), { headers }))).map((p: { name: string }) => p.name);
    expect(await names({})).toEqual(['library']);
    expect(await names(dev)).toEqual(['library']);
    expect(await names({ authorization: ADMIN })).toEqual(['library', 'private-one']);
    expect((await fetch(api(f, '/projects/private-one'))).status).toBe(401);
    expect((await call(f, 'GET', '/projects/private-one', undefined, dev)).status).toBe(403);
    expect((await call(f, 'GET', '/projects/missing', undefined, dev)).status).toBe(403); // Harbor: not 404 for non-admins
    expect((await call(f, 'GET', '/projects/missing')).status).toBe(404);
    // a plain user may create a project, but not a proxy cache
    expect((await createProject(f, { project_name: 'devs' }, dev)).status).toBe(201);
    const reg = await createRegistry(f);
    expect((await createProject(f, { project_name: 'devproxy', registry_id: reg }, dev)).status).toBe(403);
    expect((await fetch(`${api(f, '/projects')}?project_name=library`, { method: 'HEAD', headers: { authorization: ADMIN } })).status).toBe(200);
    expect((await fetch(`${api(f, '/projects')}?project_name=nope`, { method: 'HEAD', headers: { authorization: ADMIN } })).status).toBe(404);
    expectClean(f);
  });

  it('X-Is-Resource-Name: a numeric name is an id unless the header says name', async () => {
    const f = await start();
    expect((await createProject(f, { project_name: '123' })).status).toBe(201);
    const id = f.state.findProject('123')!.project_id;
    expect((await call(f, 'GET', '/projects/123')).status).toBe(404); // there is no project id 123
    const byName = await call(f, 'GET', '/projects/123', undefined, { 'X-Is-Resource-Name': 'true' });
    expect(byName.status).toBe(200);
    expect((await json(byName)).project_id).toBe(id);
    expect((await json(await call(f, 'GET', `/projects/${id}`))).name).toBe('123');
    expectClean(f);
  });
});

describe('quotas', () => {
  it('GET /quotas?reference=project&reference_id=N and PUT /quotas/{id} {"hard":{"storage":N}}', async () => {
    const f = await start();
    expect((await createProject(f, { project_name: 'q', storage_limit: -1 })).status).toBe(201);
    const pid = f.state.findProject('q')!.project_id;
    const [quota] = await json(await call(f, 'GET', `/quotas?reference=project&reference_id=${pid}`));
    expect(quota.hard.storage).toBe(-1);
    expect((await call(f, 'PUT', `/quotas/${quota.id}`, { hard: { storage: 5368709120 } })).status).toBe(200);
    expect((await json(await call(f, 'GET', `/quotas/${quota.id}`))).hard).toEqual({ storage: 5368709120 });
    expect((await call(f, 'PUT', `/quotas/${quota.id}`, { hard: { storage: 0 } })).status).toBe(400);
    expect((await call(f, 'PUT', `/quotas/${quota.id}`, { hard: {} })).status).toBe(400);
    expectClean(f);
  });
});

describe('configurations and OIDC', () => {
  const oidc = {
    auth_mode: 'oidc_auth',
    oidc_name: 'dex',
    oidc_endpoint: 'https://dex.example.com',
    oidc_client_id: 'harbor-cache-oidc-dex',
    oidc_client_secret: 'very-secret',
    oidc_groups_claim: 'groups',
    oidc_admin_group: 'cluster_admins',
    oidc_scope: 'openid,profile,email,groups,offline_access',
    oidc_verify_cert: true,
    oidc_auto_onboard: false,
  };

  it('GET gives {key: {value, editable}} and never oidc_client_secret; PUT takes flat values', async () => {
    const f = await start();
    const before = await json(await call(f, 'GET', '/configurations'));
    expect(before.auth_mode).toEqual({ value: 'db_auth', editable: true });
    expect(before.project_creation_restriction).toEqual({ value: 'everyone', editable: true });
    expect(before).not.toHaveProperty('oidc_client_secret');
    expect((await call(f, 'PUT', '/configurations', oidc)).status).toBe(200);
    const after = await json(await call(f, 'GET', '/configurations'));
    expect(after.auth_mode.value).toBe('oidc_auth');
    expect(after.oidc_scope.value).toBe('openid,profile,email,groups,offline_access');
    expect(after.oidc_verify_cert).toEqual({ value: true, editable: true });
    expect(after).not.toHaveProperty('oidc_client_secret');
    expect(f.state.configuration.get('oidc_client_secret')).toBe('very-secret');
    expectClean(f);
    // Harbor drops keys it does not know (a typo is silently lost): the fake records them
    expect((await call(f, 'PUT', '/configurations', { oidc_scopes: 'openid' })).status).toBe(200);
    expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'request-ignored', message: expect.stringMatching(/oidc_scopes/) })]);
  });

  it('auth_mode changes only while admin is the only user', async () => {
    const f = await start();
    f.state.addUser({ username: 'alice' });
    const cfg = await json(await call(f, 'GET', '/configurations'));
    expect(cfg.auth_mode).toEqual({ value: 'db_auth', editable: false });
    expect((await json(await call(f, 'GET', '/users'))).map((u: { username: string }) => u.username)).toEqual(['admin', 'alice']);
    const res = await call(f, 'PUT', '/configurations', oidc);
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ errors: [{ code: 'BAD_REQUEST', message: 'the auth mode cannot be modified as new users have been inserted into database' }] });
    expect(f.state.configuration.get('oidc_name')).toBe(''); // nothing applied
    // the same auth_mode again is not a change
    expect((await call(f, 'PUT', '/configurations', { auth_mode: 'db_auth', self_registration: false })).status).toBe(200);
    expectClean(f);
  });

  it('POST /system/oidc/ping answers as configured', async () => {
    const f = await start();
    expect((await call(f, 'POST', '/system/oidc/ping', { url: 'https://dex.example.com', verify_cert: true })).status).toBe(200);
    f.state.setOidcPing('https://dex.example.com', false, 'x509: certificate signed by unknown authority');
    const res = await call(f, 'POST', '/system/oidc/ping', { url: 'https://dex.example.com', verify_cert: true });
    expect(res.status).toBe(400);
    expect((await json(res)).errors[0].message).toMatch(/x509/);
    expectClean(f);
  });
});

describe('the CSRF trap', () => {
  it('sets a sid cookie; a write that sends it back without the token is 403; cookie-less works', async () => {
    const f = await start();
    const res = await call(f, 'GET', '/projects');
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^sid=[0-9a-f]+;/);
    const cookie = setCookie.split(';')[0]!;
    const denied = await createProject(f, { project_name: 'x' }, { cookie });
    expect(denied.status).toBe(403);
    expect(await json(denied)).toEqual({ errors: [{ code: 'FORBIDDEN', message: 'CSRF token invalid' }] });
    // with the token Harbor hands out on GETs, the cookie is fine
    const token = res.headers.get('x-harbor-csrf-token')!;
    expect((await createProject(f, { project_name: 'x' }, { cookie, 'X-Harbor-CSRF-Token': token })).status).toBe(201);
    // a cookie-less basic-auth client is never asked for a token
    expect((await createProject(f, { project_name: 'y' })).status).toBe(201);
    expectClean(f);
  });
});

describe('faults and the request log', () => {
  it('next N requests -> 503 (nginx page), then normal again', async () => {
    const f = await start();
    const h = f.fail({ status: 503, times: 2 });
    expect((await call(f, 'GET', '/systeminfo')).status).toBe(503);
    const second = await call(f, 'GET', '/projects');
    expect(second.status).toBe(503);
    expect(await second.text()).toMatch(/Service Temporarily Unavailable/);
    expect(h.remaining).toBe(0);
    expect((await call(f, 'GET', '/projects')).status).toBe(200);
    expect(f.requests.map((r) => [r.method, r.path, r.status, r.fault])).toEqual([
      ['GET', '/api/v2.0/systeminfo', 503, 'status'],
      ['GET', '/api/v2.0/projects', 503, 'status'],
      ['GET', '/api/v2.0/projects', 200, undefined],
    ]);
    expectClean(f);
  });

  it('per route: 500 only for createProject', async () => {
    const f = await start();
    f.fail({ status: 500, operationId: 'createProject' });
    expect((await call(f, 'GET', '/projects')).status).toBe(200);
    const res = await createProject(f, { project_name: 'a' });
    expect(res.status).toBe(500);
    expect(await json(res)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'internal server error' }] });
    expect((await createProject(f, { project_name: 'a' })).status).toBe(201);
    expectClean(f);
  });

  it('slow and reset', async () => {
    const f = await start();
    f.fail({ delayMs: 300, path: '/api/v2.0/systeminfo' });
    const t0 = Date.now();
    expect((await call(f, 'GET', '/systeminfo')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    f.fail({ reset: true, method: 'POST', path: /\/projects$/ });
    await expect(createProject(f, { project_name: 'gone' })).rejects.toThrow();
    expect(f.state.findProject('gone')).toBeUndefined();
    expect((await createProject(f, { project_name: 'gone' })).status).toBe(201);
    expect(f.requests.map((r) => [r.method, r.status, r.fault])).toEqual([
      ['GET', 200, 'delay'],
      ['POST', 0, 'reset'],
      ['POST', 201, undefined],
    ]);
    expect(() => f.fail({ status: 503, times: 5000 })).toThrow(/times/);
    expect(() => f.fail({ delayMs: 10 * 60_000 })).toThrow(/delayMs/);
  });

  it('the log records bodies and users', async () => {
    const f = await start();
    await createProject(f, { project_name: 'logged', metadata: { public: 'false' } });
    expect(f.requests[0]).toMatchObject({ method: 'POST', path: '/api/v2.0/projects', status: 201, operationId: 'createProject', user: 'admin', body: { project_name: 'logged', metadata: { public: 'false' } } });
  });
});

describe('contract checks (pinned swagger)', () => {
  withContract('metadata.public as a boolean -> 422 like Harbor, and a recorded violation', async () => {
    const f = await start();
    const res = await createProject(f, { project_name: 'typed', metadata: { public: true } });
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.errors[0].code).toBe('UNPROCESSABLE_ENTITY');
    expect(body.errors[0].message).toMatch(/project in body\.metadata\.public must be string/);
    expect(f.state.findProject('typed')).toBeUndefined();
    expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'request', operationId: 'createProject', status: 422 })]);
  });

  withContract('requestViolationStatus: 400 answers BAD_REQUEST instead', async () => {
    const f = await start({ requestViolationStatus: 400 });
    const res = await createProject(f, { project_name: 'typed', metadata: { public: true } });
    expect(res.status).toBe(400);
    expect((await json(res)).errors[0].code).toBe('BAD_REQUEST');
    expect(f.takeViolations()).toHaveLength(1);
  });

  withContract('a body without Content-Type: application/json is refused (fetch sends text/plain for strings)', async () => {
    const f = await start();
    const res = await fetch(api(f, '/projects'), { method: 'POST', headers: { authorization: ADMIN }, body: JSON.stringify({ project_name: 'plain' }) });
    expect(res.status).toBe(422);
    expect(f.takeViolations()[0]!.message).toMatch(/unsupported media type/);
  });

  withContract('a deliberately broken response is recorded', async () => {
    const f = await start();
    f.corruptResponses({ operationId: 'getProject', mutate: (b) => ({ ...(b as object), metadata: { public: true }, repo_count: 'many' }) });
    const res = await call(f, 'GET', '/projects/library', undefined, { 'X-Is-Resource-Name': 'true' });
    expect(res.status).toBe(200);
    const v = f.takeViolations();
    expect(v.map((x) => x.kind)).toEqual(['response', 'response']);
    expect(v.map((x) => x.message).sort()).toEqual([
      expect.stringMatching(/body\.metadata\.public must be string/),
      expect.stringMatching(/body\.repo_count must be integer/),
    ]);
    // a field this Harbor version does not have
    f.corruptResponses({ operationId: 'getRegistry', mutate: (b) => ({ ...(b as object), ca_certificate: '-----BEGIN CERTIFICATE-----' }) });
    const id = await createRegistry(f);
    await call(f, 'GET', `/registries/${id}`);
    expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'response', message: expect.stringMatching(/body\.ca_certificate is not in the getRegistry response schema/) })]);
    // a status the operation does not document
    f.corruptResponses({ operationId: 'getHealth', status: 418 });
    expect((await fetch(api(f, '/health'))).status).toBe(418);
    expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'response', message: expect.stringMatching(/status 418 is not documented/) })]);
  });

  withContract('undocumented paths -> 404, unimplemented operations -> 501, both recorded', async () => {
    const f = await start();
    let res = await call(f, 'GET', '/no-such-thing');
    expect(res.status).toBe(404);
    expect((await json(res)).errors[0].code).toBe('NOT_FOUND');
    res = await call(f, 'GET', '/projects/library/summary', undefined, { 'X-Is-Resource-Name': 'true' });
    expect(res.status).toBe(501);
    res = await call(f, 'PATCH', '/projects');
    expect(res.status).toBe(405);
    expect(f.takeViolations().map((v) => v.kind)).toEqual(['route', 'unimplemented', 'route']);
  });

  withContract('undeclared query parameters are flagged (Harbor ignores them)', async () => {
    const f = await start();
    expect((await call(f, 'GET', '/projects?project_name=library')).status).toBe(200);
    expect(f.takeViolations()).toEqual([expect.objectContaining({ kind: 'request-ignored', message: expect.stringMatching(/project_name/) })]);
  });

  withContract('path parameters are typed: /registries/abc is refused', async () => {
    const f = await start();
    expect((await call(f, 'GET', '/registries/abc')).status).toBe(422);
    expect(f.takeViolations()[0]!.message).toMatch(/id in path must be of type integer/);
  });

  withContract('every route the fake serves is documented under the same operationId', async () => {
    const f = await start();
    expectClean(f); // the constructor cross-checks the route table against the swagger
    expect(f.contract!.source.pinned).toBe(true);
  });
});

describe('contract loading', () => {
  /** The pinned file's bytes, from wherever the contract was found (undefined without it). */
  const pinnedBytes = (): Buffer | undefined => {
    const src = contract?.source;
    return src && src.pinned && src.kind !== 'download' ? readFileSync(src.location) : undefined;
  };
  const noFetch = (async () => {
    throw new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND raw.githubusercontent.com') });
  }) as unknown as typeof fetch;

  it('the download URL is built from repo + commit + path', () => {
    expect(rawGitHubUrl(HARBOR_SWAGGER.repo, HARBOR_SWAGGER.commit, HARBOR_SWAGGER.path)).toBe(
      'https://raw.githubusercontent.com/goharbor/harbor/6b4981d4dd46a20481be5a3a7cdf435bc20f4dcb/api/v2.0/swagger.yaml',
    );
    expect(() => rawGitHubUrl('goharbor/harbor', 'v2.12.4', HARBOR_SWAGGER.path)).toThrow(/commit/);
  });

  withContract('the pin is the sha256 of the local copy', async () => {
    expect(createHash('sha256').update(pinnedBytes()!).digest('hex')).toBe(HARBOR_SWAGGER.sha256);
  });

  withContract('BERTH_CONTRACTS_DIR first', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, HARBOR_SWAGGER.fileName), pinnedBytes()!);
    const r = await loadHarborContractWithReport({ env: { BERTH_CONTRACTS_DIR: dir }, repoRoot: lonelyRepo(), download: false, warn: () => {} });
    expect(r.contract?.source).toMatchObject({ kind: 'env', pinned: true });
  });

  it('without ../shared and without network: undefined, every attempt reported, no throw', async () => {
    const warnings: string[] = [];
    const r = await loadHarborContractWithReport({ env: {}, repoRoot: lonelyRepo(), cacheDir: tempDir(), fetchImpl: noFetch, warn: (l) => warnings.push(l) });
    expect(r.contract).toBeUndefined();
    expect(r.attempts.map((a) => [a.source, a.ok])).toEqual([
      ['shared', false],
      ['download', false],
    ]);
    expect(r.attempts[1]!.reason).toMatch(/ENOTFOUND/);
    expect(contractUnavailableNotice(r.attempts)).toMatch(/HARBOR CONTRACT NOT AVAILABLE[\s\S]*ENOTFOUND/);
  });

  withContract('a download is accepted only with the pinned sha256, then cached', async () => {
    const shared = pinnedBytes()!;
    const bad = (async () => new Response('swagger: "2.0"\n')) as unknown as typeof fetch;
    let r = await loadHarborContractWithReport({ env: {}, repoRoot: lonelyRepo(), cacheDir: false, fetchImpl: bad });
    expect(r.contract).toBeUndefined();
    expect(r.attempts.at(-1)!.reason).toMatch(/sha256 mismatch/);
    let asked = '';
    const good = (async (url: string) => {
      asked = url;
      return new Response(shared);
    }) as unknown as typeof fetch;
    const cacheDir = tempDir();
    r = await loadHarborContractWithReport({ env: {}, repoRoot: lonelyRepo(), cacheDir, fetchImpl: good });
    expect(asked).toBe(rawGitHubUrl(HARBOR_SWAGGER.repo, HARBOR_SWAGGER.commit, HARBOR_SWAGGER.path));
    expect(r.contract?.source).toMatchObject({ kind: 'download', pinned: true });
    r = await loadHarborContractWithReport({ env: {}, repoRoot: lonelyRepo(), cacheDir, fetchImpl: noFetch });
    expect(r.contract?.source.kind).toBe('cache');
  });
});
