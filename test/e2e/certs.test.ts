// The certs role end to end (issue 3): the cache VM served with a certificate
// from the CA berth makes on the controller (selfsigned), then with one from
// the repository (provided). The real CLI on a real host, with the docker
// double (whose Traefik stand-in reads the certificate files berth wrote);
// every certificate is checked with the openssl command line.
//
// The tests share one host and one spec directory (and so one controller
// store, .berth/) and run in order.

import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildBerth, changesOfOnly, json, show, specCli, type BerthJson, type BerthRun, type JsonChange } from './berth.js';
import { FIXTURES, installDockerDouble, traefikEvents, writeFakeHarborInstaller } from './harbor-doubles.js';
import { e2eHost, keyFile, knownHostsFile, resetHosts, testHosts } from './hosts.js';
import { DIRENV_ALLOW, cacheVmSnapshot, comparableSnapshot } from './snapshot.js';
import { openssl, pubOfCert, pubOfKey, sanText, validFor } from '../tls/openssl.js';

const INVENTORY = 'inventories/e2e';
const INV_HOST = 'harbor-cache-e2e';
const HOSTNAME = 'harbor-cache.e2e.example.com';
const INSTALL = '/opt/harbor';
const CERTS = `${INSTALL}/traefik/certs`;
const CERT = `${CERTS}/harbor.crt`;
const KEY = `${CERTS}/harbor.key`;
const CA_NAME = 'berth e2e CA';
const CA_DIR = 'pki/berth-e2e-ca';
const ENV_FILES = ['core', 'registryctl', 'db', 'jobservice'].map((c) => `${INSTALL}/common/config/${c}/env`);
const GENERATED = new Set([...ENV_FILES, '/data/secret/keys/secretkey', `${INSTALL}/prepare.runs`]);
const DAY = 86_400;

const tag = randomBytes(6).toString('hex');
const SECRETS = {
  HARBOR_ADMIN_PASSWORD: `Adm1n-${tag}-pw`,
  HARBOR_DB_PASSWORD: `db-${tag}-pw`,
  // the fixture's acme block names them; selfsigned and provided do not use them
  AWS_ACCESS_KEY_ID: `AKIA${tag.toUpperCase()}E2E`,
  AWS_SECRET_ACCESS_KEY: `aws-${tag}-secret`,
};

const th = testHosts();
const HOST = 2;
let hostName: string;
let addr: string;
let specDir: string;
let sha256: string;
const berthOutputs: { what: string; text: string }[] = [];

// ---------------------------------------------------------------- spec and CLI

interface TlsRun {
  tls: Record<string, unknown>;
}

function writeVars(v: TlsRun): void {
  const doc = {
    harbor: { installer: { sha256 }, health_url: `http://${addr}:8080/api/v2.0/health` },
    // replaces the fixture's acme block: this file's tls is the whole tls
    tls: v.tls,
  };
  writeFileSync(join(specDir, INVENTORY, 'group_vars/all/zz-run.yml'), `# written by certs.test.ts\n${JSON.stringify(doc, null, 2)}\n`);
}

function selfsigned(over: Record<string, unknown> = {}): TlsRun {
  return {
    tls: {
      mode: 'selfsigned',
      selfsigned: { ca: { name: CA_NAME, key_type: 'rsa-4096', days: 3650 }, key_type: 'ecdsa-p256', days: 40, renew_before: 10, extra_names: ['harbor.internal.e2e.example.com'], ips: [addr], ...over },
    },
  };
}

const { cli, plan, apply } = specCli({
  cwd: () => specDir,
  specArgs: () => ['-C', specDir, '-i', INVENTORY],
  env: () => ({ ...SECRETS }),
  record: (r) => berthOutputs.push({ what: r.cmd, text: r.stdout + r.stderr }),
});

const changesOf = (r: BerthRun | BerthJson): JsonChange[] => changesOfOnly(r, INV_HOST);
const notesOf = (r: BerthRun) => (json(r) as BerthJson & { notes: string[] }).notes;
const outline = (cs: JsonChange[]) => cs.map((c) => `${c.action} ${c.resource}`);

// ---------------------------------------------------------------- host and openssl

async function sh(cmd: string): Promise<string> {
  const r = await th.ssh(HOST, cmd);
  if (r.code !== 0) throw new Error(`on ${hostName}: \`${cmd}\` exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
const statOf = async (p: string) => (await sh(`stat -c '%U:%G %a' -- ${p}`)).trim();
const hostFile = (p: string) => sh(`cat -- ${p}`);

const tmp = mkdtempSync(join(tmpdir(), 'berth-e2e-certs-pem-'));
function pem(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}
const caCertPath = () => join(specDir, '.berth', CA_DIR, 'ca.crt');
const verifyWith = (caPath: string, certPem: string) => openssl(['verify', '-CAfile', caPath, pem('leaf.pem', certPem)]).trim();
const serial = (certPem: string) => openssl(['x509', '-noout', '-serial'], certPem).trim();
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** A line from the middle of a PEM key: finding it anywhere means the key is there. */
const keyLine = (keyPem: string) => keyPem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'))[0]!;

async function bareHost(): Promise<void> {
  await resetHosts(hostName);
  await installDockerDouble(th, HOST);
}

beforeAll(async () => {
  hostName = e2eHost(HOST).name;
  addr = th.address(HOST);
  await buildBerth();
  specDir = mkdtempSync(join(tmpdir(), 'berth-e2e-certs-'));
  cpSync(join(FIXTURES, 'spec'), specDir, { recursive: true });
  // the fixture's acme settings give way to the tls of zz-run.yml
  const base = join(specDir, INVENTORY, 'group_vars/all/harbor.yml');
  const text = readFileSync(base, 'utf8');
  writeFileSync(base, text.slice(0, text.search(/^tls:/m)) + text.slice(text.search(/^env:/m)));
  sha256 = writeFakeHarborInstaller(join(specDir, 'files'));
  const inv = { all: { children: { cache: { hosts: { [INV_HOST]: { berth_host: addr, berth_user: 'root', berth_key_file: keyFile(), berth_known_hosts: knownHostsFile(), berth_connect_timeout: 10 } } } } } };
  writeFileSync(join(specDir, INVENTORY, 'hosts.yml'), `${JSON.stringify(inv, null, 2)}\n`);
});

afterAll(async () => {
  if (process.env.BERTH_E2E_KEEP_SPECS !== '1' && specDir) rmSync(specDir, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
  if (hostName) await resetHosts(hostName);
});

// ---------------------------------------------------------------- the tests

/** What the host holds after the first selfsigned apply (for the rebuild). */
let first: { cert: string; key: string } | undefined;

describe('certs role on a real host', () => {
  it('selfsigned: the CA is made on the controller (and said so), the server certificate and key land where Traefik reads them; openssl verifies them', async () => {
    await bareHost();
    writeVars(selfsigned());
    const planFile = join(specDir, 'selfsigned.plan.json');
    const p = await plan('--json', '--out', planFile, '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(notesOf(p)).toEqual([
      `generated the CA "${CA_NAME}" (rsa-4096, 3650 days) in .berth/${CA_DIR}/; its key never goes to a host`,
      `generated the server certificate for ${HOSTNAME} (ecdsa-p256, 40 days, names harbor-cache.e2e.example.com harbor.internal.e2e.example.com ${addr}, signed by "${CA_NAME}") in .berth/${CA_DIR}/servers/`,
    ]);
    const changes = changesOf(p);
    const certChange = changes.find((c) => c.resource === `file ${CERT}`)!;
    const keyChange = changes.find((c) => c.resource === `file ${KEY}`)!;
    expect(certChange.attrs.find((a) => a.name === 'certificate')!.after).toMatch(new RegExp(`^CN=${HOSTNAME.replace(/\./g, '\\.')}, names .*, ecdsa-p256, not after \\d{4}-\\d\\d-\\d\\d, serial`));
    expect(keyChange).toMatchObject({ sensitive: true, diff: '(sensitive content changed)\n' });
    expect(changes.find((c) => c.resource === `file ${INSTALL}/traefik/tls.yml`)).toBeDefined();
    // made once: the next plan (as text) finds it all in the store
    const text = await plan();
    expect(text.stdout).not.toContain('controller: generated');
    expect(text.stdout).toContain(`+ file ${KEY}`);

    const a = await cli('apply', planFile);
    expect(a.code, show(a)).toBe(0);

    // the files, their owners and modes
    expect(await statOf(CERTS)).toBe('root:root 700');
    expect(await statOf(CERT)).toBe('root:root 644');
    expect(await statOf(KEY)).toBe('root:root 600');
    const cert = await hostFile(CERT);
    const key = await hostFile(KEY);
    first = { cert, key };

    // openssl: signed by the controller's CA, the spec's names, the key belongs, valid 40 days
    expect(statSync(join(specDir, '.berth', CA_DIR, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(verifyWith(caCertPath(), cert)).toMatch(/: OK$/);
    expect(sanText(cert)).toBe(`DNS:harbor-cache.e2e.example.com, DNS:harbor.internal.e2e.example.com, IP Address:${addr}`);
    expect(pubOfKey(key)).toBe(pubOfCert(cert));
    expect(validFor(cert, 39 * DAY)).toBe(true);
    expect(validFor(cert, 41 * DAY)).toBe(false);
    // the host's CA cannot be the controller's: a certificate of another CA does not verify against it
    const otherCa = join(tmp, 'other-ca.pem');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tmp, 'other-ca.key'), '-subj', '/CN=other', '-days', '2', '-out', otherCa]);
    expect(() => verifyWith(otherCa, cert)).toThrow();

    // the CA key never left the controller: no file on the host holds it
    const caKey = readFileSync(join(specDir, '.berth', CA_DIR, 'ca.key'), 'utf8');
    const grep = await th.ssh(HOST, `grep -rlF --devices=skip -- ${JSON.stringify(keyLine(caKey))} /opt /etc /var /root /tmp /data /srv /home 2>/dev/null || true`);
    expect(grep.stdout.trim(), 'files on the host holding the CA key').toBe('');
    // ...while the same search finds the server key where it belongs (the search can find things)
    expect((await sh(`grep -rlF -- ${JSON.stringify(keyLine(key))} /opt/harbor`)).trim()).toBe(KEY);

    // Traefik's file provider serves exactly that certificate
    const served = (await traefikEvents(th, HOST)).filter((e) => e.event === 'serve');
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((e) => e.sha256 === sha(cert) && e.key_mode === '0o600')).toBe(true);
    expect((await traefikEvents(th, HOST)).filter((e) => e.event === 'error')).toEqual([]);
    const override = parseYaml(await hostFile(`${INSTALL}/docker-compose.override.yml`)) as { services: { traefik: { command: string[]; volumes: string[] }; proxy: { labels: string[] } } };
    expect(override.services.traefik.command).toContain('--providers.file.filename=/etc/traefik/tls.yml');
    expect(override.services.traefik.command.some((c) => c.includes('acme'))).toBe(false);
    expect(override.services.traefik.volumes).toEqual(expect.arrayContaining(['traefik_certs:/certs:ro', `${INSTALL}/traefik/tls.yml:/etc/traefik/tls.yml:ro`]));
    expect(override.services.proxy.labels).toContain('traefik.http.routers.harbor.tls=true');
    expect(await sh(`curl -fsS http://${addr}:8080/api/v2.0/health`)).toContain('"healthy"');

    // converged: nothing to do, nothing generated
    const again = await plan('--json', '--detailed-exitcode');
    expect(again.code, show(again)).toBe(0);
    expect(notesOf(again)).toEqual([]);
  });

  it('selfsigned: a certificate due within renew_before days is renewed; the plan shows it as the certificate file\'s change, and apply does exactly that', async () => {
    expect(first, 'needs the first test').toBeDefined();
    // 40 days left; renew 45 days before expiry, new certificates for 400 days
    writeVars(selfsigned({ days: 400, renew_before: 45 }));
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(notesOf(p)).toEqual([expect.stringMatching(new RegExp(`^renewed the server certificate for ${HOSTNAME.replace(/\./g, '\\.')} \\(ecdsa-p256, 400 days, .* because it expires on \\d{4}-\\d\\d-\\d\\d, within renew_before \\(45 days\\)$`))]);
    const changes = changesOf(p);
    expect(outline(changes.filter((c) => !c.notifiedBy))).toEqual([`update file ${CERT}`, `update file ${KEY}`]);
    expect(changes.filter((c) => c.notifiedBy).map((c) => c.task)).toEqual(['restart harbor', 'wait for harbor healthy']);
    const described = changes[0]!.attrs.find((a) => a.name === 'certificate')!;
    expect(described.before).toContain(serial(first!.cert).replace('serial=', '').slice(0, 12));
    expect(described.after).not.toBe(described.before);

    const a = await apply('--json');
    expect(a.code, show(a)).toBe(0);
    // the plan was exact: apply did the same changes
    const strip = (cs: JsonChange[]) => cs.map((c) => [c.resource, c.action, c.attrs, c.diff ?? null]);
    expect(strip(changesOf(a))).toEqual(strip(changes));
    expect(changesOf(a).every((c) => c.status === 'done')).toBe(true);

    const cert = await hostFile(CERT);
    const key = await hostFile(KEY);
    expect(serial(cert)).not.toBe(serial(first!.cert));
    expect(verifyWith(caCertPath(), cert)).toMatch(/: OK$/);
    expect(pubOfKey(key)).toBe(pubOfCert(cert));
    expect(validFor(cert, 399 * DAY)).toBe(true);
    expect(await statOf(KEY)).toBe('root:root 600');
    expect((await traefikEvents(th, HOST)).filter((e) => e.event === 'serve').at(-1)!.sha256).toBe(sha(cert));
    const again = await plan('--json', '--detailed-exitcode');
    expect(again.code, show(again)).toBe(0);
    expect(notesOf(again)).toEqual([]);
    first = { cert, key };
  });

  it('selfsigned: a name added to the spec renews the certificate with it', async () => {
    writeVars(selfsigned({ days: 400, renew_before: 45, extra_names: ['harbor.internal.e2e.example.com', 'registry.e2e.example.com'] }));
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(notesOf(p)).toEqual([expect.stringMatching(/because its names changed \(\+registry\.e2e\.example\.com\)$/)]);
    expect(outline(changesOf(p).filter((c) => !c.notifiedBy))).toEqual([`update file ${CERT}`, `update file ${KEY}`]);
    const a = await apply();
    expect(a.code, show(a)).toBe(0);
    const cert = await hostFile(CERT);
    expect(sanText(cert)).toBe(`DNS:harbor-cache.e2e.example.com, DNS:harbor.internal.e2e.example.com, DNS:registry.e2e.example.com, IP Address:${addr}`);
    expect(verifyWith(caCertPath(), cert)).toMatch(/: OK$/);
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    first = { cert, key: await hostFile(KEY) };
  });

  it('selfsigned: a rebuilt VM gets the same certificate and key byte for byte, and the same files as the host it replaces', async () => {
    expect(first, 'needs the earlier tests').toBeDefined();
    const before = await cacheVmSnapshot(th, HOST);
    const caBefore = readFileSync(caCertPath(), 'utf8');
    await bareHost();
    expect((await th.ssh(HOST, `test -e ${CERTS}`)).code, 'the host is bare').not.toBe(0);
    const a = await apply('--json');
    expect(a.code, show(a)).toBe(0);
    expect(notesOf(a)).toEqual([]);
    // one apply built everything, the certificate and key among it
    const built = changesOf(a);
    expect(built.length).toBeGreaterThan(20);
    expect(built.filter((c) => c.module === 'certificate').map((c) => `${c.action} ${c.resource} ${c.status}`)).toEqual([`create file ${CERT} done`, `create file ${KEY} done`]);
    expect(built.find((c) => c.resource === 'user harbor')).toMatchObject({ action: 'create', status: 'done' });
    expect(await hostFile(CERT)).toBe(first!.cert);
    expect(await hostFile(KEY)).toBe(first!.key);
    expect(readFileSync(caCertPath(), 'utf8')).toBe(caBefore);
    const now = await cacheVmSnapshot(th, HOST);
    expect(Object.keys(now).length).toBeGreaterThan(30);
    const drop = (p: string) => p.startsWith(DIRENV_ALLOW);
    expect(comparableSnapshot(now, GENERATED, drop)).toEqual(comparableSnapshot(before, GENERATED, drop));
    expect(await sh(`curl -fsS http://${addr}:8080/api/v2.0/health`)).toContain('"healthy"');
    expect((await plan('--detailed-exitcode')).code).toBe(0);
  });

  it('provided: the repository\'s certificate and secret key replace the self-signed ones; a key that does not belong is refused before any host is contacted', async () => {
    // a corporate CA and a certificate for the cache, made by hand with openssl, as an operator would
    const files = join(specDir, 'files');
    const secrets = join(specDir, 'secrets');
    mkdirSync(secrets, { recursive: true, mode: 0o700 });
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(tmp, 'corp-ca.key'), '-subj', '/CN=corp e2e CA', '-days', '30', '-out', join(files, 'corp-ca.crt')]);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(secrets, 'harbor.key'), '-subj', `/CN=${HOSTNAME}`, '-out', join(tmp, 'harbor.csr')]);
    writeFileSync(join(tmp, 'ext.cnf'), `subjectAltName = DNS:${HOSTNAME}\nextendedKeyUsage = serverAuth\n`);
    openssl(['x509', '-req', '-in', join(tmp, 'harbor.csr'), '-CA', join(files, 'corp-ca.crt'), '-CAkey', join(tmp, 'corp-ca.key'), '-set_serial', '0x1234', '-days', '20', '-extfile', join(tmp, 'ext.cnf'), '-out', join(files, 'harbor.crt')]);
    chmodSync(join(secrets, 'harbor.key'), 0o600);
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(secrets, 'wrong.key')]);
    const providedCert = readFileSync(join(files, 'harbor.crt'), 'utf8');
    const providedKey = readFileSync(join(secrets, 'harbor.key'), 'utf8');
    const tlsOf = (keyFileName: string): TlsRun => ({ tls: { mode: 'provided', ca_cert: 'files/corp-ca.crt', provided: { cert: 'files/harbor.crt', key: { secret_file: `secrets/${keyFileName}` }, renew_before: 10 } } });

    // a key of another certificate: one line naming the file and key, exit 1, no host contacted
    writeVars(tlsOf('wrong.key'));
    const bad = await plan();
    expect(bad.code, show(bad)).toBe(1);
    expect(bad.stderr.trim().split('\n')).toEqual([
      'error: inventories/e2e/group_vars/all/zz-run.yml:13:15: tls.provided.cert: files/harbor.crt: the key does not belong to the certificate (provide a certificate and key that belong together and name harbor.hostname)',
    ]);
    expect(bad.stdout).toBe('');

    writeVars(tlsOf('harbor.key'));
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(notesOf(p)).toEqual([]);
    const changes = changesOf(p);
    expect(outline(changes.filter((c) => !c.notifiedBy))).toEqual([`update file ${CERT}`, `update file ${KEY}`]);
    expect(changes[0]!.attrs.find((a) => a.name === 'certificate')!.after).toMatch(/^CN=harbor-cache\.e2e\.example\.com, names harbor-cache\.e2e\.example\.com, rsa-2048, not after .*, serial 1234$/);
    const a = await apply();
    expect(a.code, show(a)).toBe(0);
    expect(await hostFile(CERT)).toBe(providedCert);
    expect(await hostFile(KEY)).toBe(providedKey.replace(/\n$/, ''));
    expect(await statOf(KEY)).toBe('root:root 600');
    expect(verifyWith(join(files, 'corp-ca.crt'), await hostFile(CERT))).toMatch(/: OK$/);
    expect(pubOfKey(await hostFile(KEY))).toBe(pubOfCert(providedCert));
    expect((await traefikEvents(th, HOST)).filter((e) => e.event === 'serve').at(-1)!.sha256).toBe(sha(providedCert));
    expect((await plan('--detailed-exitcode')).code).toBe(0);

    // neither key ever appeared in what berth printed or saved
    const keys = { provided: providedKey, server: first!.key, ca: readFileSync(join(specDir, '.berth', CA_DIR, 'ca.key'), 'utf8') };
    expect(berthOutputs.length).toBeGreaterThan(10);
    for (const f of readdirPlans()) berthOutputs.push({ what: f, text: readFileSync(f, 'utf8') });
    berthOutputs.push({ what: 'state record', text: await sh('cat /var/lib/berth/state.json') });
    for (const [name, k] of Object.entries(keys)) {
      expect(berthOutputs.filter((o) => o.text.includes(keyLine(k))).map((o) => o.what), `${name} key appears in`).toEqual([]);
    }
    expect(existsSync(join(specDir, '.berth/.gitignore'))).toBe(true);
  });
});

function readdirPlans(): string[] {
  return [join(specDir, 'selfsigned.plan.json')].filter((f) => existsSync(f));
}
