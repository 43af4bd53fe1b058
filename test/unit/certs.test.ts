// TLS material (issue 3, the certs role): the CA and server certificates
// berth makes on the controller with real openssl, their renewal, the
// controller store, the `tls` variable, and the plans of the certificate,
// backup and restore modules. Every certificate is checked with the openssl
// command line, not only with the code that made it.

import { X509Certificate } from 'node:crypto';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { controllerStore } from '../../src/secrets/store.js';
import { ensureCa, ensureServerCert, checkProvided, type SelfSignedSpec } from '../../src/pki/material.js';
import { caCertificate, generateKey, serverCertificate } from '../../src/pki/openssl.js';
import { normalizeIp } from '../../src/pki/x509.js';
import { SELFSIGNED_DEFAULTS } from '../../src/spec/tls.js';
import { planHost } from '../../src/plan/planner.js';
import { prepare } from '../../src/engine.js';
import { renderJson, renderText } from '../../src/plan/render.js';
import { backupModule } from '../../src/modules/backup.js';
import type { HostProgram } from '../../src/plan/program.js';
import type { Change, ModuleApplyContext, Transport } from '../../src/types.js';
import { REPO, baseDirs, berthError, buildTree, dirFact, factsFor, fileFact, groupFact, minimalTree, tempDir, userFact, writeTree, type Tree } from './helpers.js';
import { openssl, pubOfCert, pubOfKey, sanText, validFor } from '../tls/openssl.js';

// ---------------------------------------------------------------- openssl, as a user would check

/** Writes PEM text to a temp file (openssl wants paths for -CAfile). */
function pemFile(text: string, name = 'x.pem'): string {
  const p = join(tempDir('berth-unit-pem-'), name);
  writeFileSync(p, text);
  return p;
}

function verify(caPem: string, certPem: string): string {
  return openssl(['verify', '-CAfile', pemFile(caPem, 'ca.pem'), pemFile(certPem, 'cert.pem')]).trim();
}



const DAY = 86_400;

function spec(over: Partial<SelfSignedSpec> = {}): SelfSignedSpec {
  return { ...structuredClone(SELFSIGNED_DEFAULTS), ca: { name: 'unit CA', key_type: 'ecdsa-p256', days: 3650 }, ...over };
}

// ---------------------------------------------------------------- generation and renewal

// RSA key generation takes a random while (seconds for 4096 bits on a busy machine)
describe('self-signed CA and server certificate, made on the controller with openssl', { timeout: 60_000 }, () => {
  it('an RSA 4096 CA and an ECDSA P-256 server certificate with the SANs of the spec, that openssl verifies', () => {
    const root = tempDir();
    const store = controllerStore(root);
    store.drainNotes();
    const s = spec({ ca: { name: 'Harbor Cache CA', key_type: 'rsa-4096', days: 3650 }, extra_names: ['harbor.internal', '*.cache.example.com'], ips: ['10.0.0.10', '::1'], days: 90 });
    const m = ensureServerCert(store, s, 'harbor-cache.example.com');
    const notes = store.drainNotes();
    expect(notes).toEqual([
      'generated the CA "Harbor Cache CA" (rsa-4096, 3650 days) in .berth/pki/harbor-cache-ca/; its key never goes to a host',
      expect.stringMatching(/^generated the server certificate for harbor-cache\.example\.com \(ecdsa-p256, 90 days, names .*, signed by "Harbor Cache CA"\) in \.berth\/pki\/harbor-cache-ca\/servers\/$/),
    ]);

    // openssl agrees: signed by the CA, the names, the key, the validity
    expect(verify(m.ca.cert, m.cert)).toMatch(/cert\.pem: OK$/);
    expect(sanText(m.cert)).toBe('DNS:*.cache.example.com, DNS:harbor-cache.example.com, DNS:harbor.internal, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.10');
    expect(pubOfKey(m.key.reveal())).toBe(pubOfCert(m.cert));
    expect(validFor(m.cert, 89 * DAY)).toBe(true);
    expect(validFor(m.cert, 91 * DAY)).toBe(false);
    const text = openssl(['x509', '-noout', '-text'], m.cert);
    expect(text).toMatch(/Subject: CN = harbor-cache\.example\.com/);
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    expect(text).toMatch(/X509v3 Extended Key Usage: *\n *TLS Web Server Authentication/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n *CA:FALSE/);
    const caText = openssl(['x509', '-noout', '-text'], m.ca.cert);
    expect(caText).toMatch(/Public-Key: \(4096 bit\)/);
    expect(caText).toMatch(/X509v3 Basic Constraints: critical\n *CA:TRUE, pathlen:0/);
    expect(caText).toMatch(/Certificate Sign, CRL Sign/);
    expect(validFor(m.ca.cert, 3649 * DAY)).toBe(true);

    // the store: a private directory git ignores, files 0600, the CA key among them
    const dir = join(root, '.berth');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    for (const f of ['pki/harbor-cache-ca/ca.key', 'pki/harbor-cache-ca/ca.crt', 'pki/harbor-cache-ca/servers/harbor-cache.example.com.key', 'pki/harbor-cache-ca/servers/harbor-cache.example.com.crt']) {
      expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    }
    expect(readFileSync(join(dir, 'pki/harbor-cache-ca/ca.key'), 'utf8')).toBe(m.ca.key.reveal());
    expect(m.ca.key.reveal()).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(String(m.key)).toBe('(sensitive)');

    // asked again: the same material, nothing made
    const again = ensureServerCert(store, s, 'harbor-cache.example.com');
    expect(again.cert).toBe(m.cert);
    expect(again.key.reveal()).toBe(m.key.reveal());
    expect(store.drainNotes()).toEqual([]);
  });

  it('ECDSA P-384 and RSA 2048 server keys; an RSA key may also encipher', () => {
    const store = controllerStore(tempDir());
    const p384 = ensureServerCert(store, spec({ key_type: 'ecdsa-p384' }), 'a.example.com');
    expect(openssl(['x509', '-noout', '-text'], p384.cert)).toMatch(/NIST CURVE: P-384/);
    const rsa = ensureServerCert(store, spec({ key_type: 'rsa-2048' }), 'b.example.com');
    const text = openssl(['x509', '-noout', '-text'], rsa.cert);
    expect(text).toMatch(/Public-Key: \(2048 bit\)/);
    expect(text).toMatch(/Digital Signature, Key Encipherment/);
    expect(verify(rsa.ca.cert, rsa.cert)).toMatch(/: OK$/);
    expect(pubOfKey(rsa.key.reveal())).toBe(pubOfCert(rsa.cert));
  });

  it('renews a server certificate that expires within renew_before days (and only then)', () => {
    const store = controllerStore(tempDir());
    const first = ensureServerCert(store, spec({ days: 40, renew_before: 10 }), 'h.example.com');
    store.drainNotes();
    // a longer validity alone changes nothing: it applies to the next certificate
    expect(ensureServerCert(store, spec({ days: 400, renew_before: 10 }), 'h.example.com').cert).toBe(first.cert);
    expect(store.drainNotes()).toEqual([]);
    // 40 days left, renew_before 45: due
    const renewed = ensureServerCert(store, spec({ days: 400, renew_before: 45 }), 'h.example.com');
    const [note] = store.drainNotes();
    expect(note).toMatch(/^renewed the server certificate for h\.example\.com .* because it expires on \d{4}-\d\d-\d\d, within renew_before \(45 days\)$/);
    expect(renewed.cert).not.toBe(first.cert);
    expect(renewed.key.reveal()).not.toBe(first.key.reveal());
    expect(new X509Certificate(renewed.cert).serialNumber).not.toBe(new X509Certificate(first.cert).serialNumber);
    expect(verify(renewed.ca.cert, renewed.cert)).toMatch(/: OK$/);
    expect(validFor(renewed.cert, 399 * DAY)).toBe(true);
    expect(validFor(first.cert, 45 * DAY)).toBe(false);
    // the renewed one is not due: nothing more
    expect(ensureServerCert(store, spec({ days: 400, renew_before: 45 }), 'h.example.com').cert).toBe(renewed.cert);
    expect(store.drainNotes()).toEqual([]);
  });

  it('renews when the names, the key type or the CA no longer match the spec', () => {
    const store = controllerStore(tempDir());
    const a = ensureServerCert(store, spec(), 'h.example.com');
    store.drainNotes();
    const b = ensureServerCert(store, spec({ extra_names: ['alias.example.com'], ips: ['192.0.2.7'] }), 'h.example.com');
    expect(store.drainNotes()).toEqual([expect.stringMatching(/because its names changed \(\+alias\.example\.com, \+192\.0\.2\.7\)$/)]);
    expect(sanText(b.cert)).toBe('DNS:alias.example.com, DNS:h.example.com, IP Address:192.0.2.7');
    expect(b.cert).not.toBe(a.cert);
    // the same names written another way are the same names
    ensureServerCert(store, spec({ extra_names: ['alias.example.com', 'alias.example.com'], ips: ['192.0.2.7'] }), 'h.example.com');
    expect(store.drainNotes()).toEqual([]);
    ensureServerCert(store, spec({ extra_names: ['alias.example.com'], ips: ['192.0.2.7'], key_type: 'ecdsa-p384' }), 'h.example.com');
    expect(store.drainNotes()).toEqual([expect.stringMatching(/because its key type changed \(ecdsa-p256 → ecdsa-p384\)$/)]);
    // another CA: a new CA, and the server certificate signed again by it
    const c = ensureServerCert(store, spec({ ca: { name: 'unit CA two', key_type: 'ecdsa-p256', days: 3650 }, extra_names: ['alias.example.com'], ips: ['192.0.2.7'], key_type: 'ecdsa-p384' }), 'h.example.com');
    expect(store.drainNotes()).toEqual([
      expect.stringMatching(/^generated the CA "unit CA two"/),
      // a server certificate per CA: the new CA's directory has none yet
      expect.stringMatching(/^generated the server certificate for h\.example\.com .* in \.berth\/pki\/unit-ca-two\/servers\/$/),
    ]);
    expect(verify(c.ca.cert, c.cert)).toMatch(/: OK$/);
    expect(() => verify(a.ca.cert, c.cert)).toThrow();
  });

  it('makes a new CA when the stored one is due, and signs the server certificate again with it', () => {
    const store = controllerStore(tempDir());
    // the CA has 20 days left, the server certificate 25 (openssl lets it outlive its CA)
    const s = spec({ ca: { name: 'short CA', key_type: 'ecdsa-p256', days: 20 }, days: 25, renew_before: 10 });
    const a = ensureServerCert(store, s, 'h.example.com');
    store.drainNotes();
    const b = ensureServerCert(store, { ...s, renew_before: 22 }, 'h.example.com');
    expect(store.drainNotes()).toEqual([
      expect.stringMatching(/^generated a new CA "short CA" .* because it expires on .*, within renew_before \(22 days\): nodes trust it once node_trust is applied$/),
      expect.stringMatching(/^renewed the server certificate .* because it was not signed by the current CA "short CA"$/),
    ]);
    expect(b.ca.cert).not.toBe(a.ca.cert);
    expect(verify(b.ca.cert, b.cert)).toMatch(/: OK$/);
  });

  it('heals a store whose key and certificate do not belong together', () => {
    const root = tempDir();
    const store = controllerStore(root);
    const a = ensureServerCert(store, spec(), 'h.example.com');
    writeFileSync(join(root, '.berth/pki/unit-ca/servers/h.example.com.key'), generateKey('ecdsa-p256'));
    store.drainNotes();
    const b = ensureServerCert(store, spec(), 'h.example.com');
    expect(store.drainNotes()).toEqual([expect.stringMatching(/because the stored key does not match the stored certificate$/)]);
    expect(pubOfKey(b.key.reveal())).toBe(pubOfCert(b.cert));
    expect(b.cert).not.toBe(a.cert);
  });

  it('refuses days not above renew_before (every certificate would be due at once)', () => {
    expect(berthError(() => ensureServerCert(controllerStore(tempDir()), spec({ days: 30, renew_before: 30 }), 'h.example.com')).message).toMatch(/days \(30\) must be more than renew_before \(30\)/);
  });

  it('the store refuses item names that could leave it', () => {
    const store = controllerStore(tempDir());
    for (const bad of ['../x', 'a/../../b', '/etc/passwd', 'A/b', 'a//b', '']) expect(() => store.write(bad, 'x'), bad).toThrow(/bad store item name/);
    store.write('acme/h.example.com/acme.json', '{}');
    expect(store.read('acme/h.example.com/acme.json')!.toString()).toBe('{}');
    expect(store.read('acme/none.json')).toBeUndefined();
  });

  it('spells IPv6 addresses one way', () => {
    expect(normalizeIp('::1')).toBe('0:0:0:0:0:0:0:1');
    expect(normalizeIp('2001:DB8::0:1')).toBe('2001:db8:0:0:0:0:0:1');
    expect(normalizeIp('::ffff:192.0.2.1')).toBe('0:0:0:0:0:ffff:c000:201');
    expect(normalizeIp('10.0.0.1')).toBe('10.0.0.1');
  });
});

// ---------------------------------------------------------------- provided certificates

/** A CA and a certificate signed by it, made with openssl independently of the store. */
function provided(names: { dns: string[]; ips?: string[] }, days = 200) {
  const caKey = generateKey('ecdsa-p256');
  const caCert = caCertificate(caKey, 'corp CA', 3650);
  const key = generateKey('ecdsa-p256');
  const cert = serverCertificate({ cert: caCert, key: caKey }, key, { commonName: names.dns[0]!, dns: names.dns, ips: names.ips ?? [], days, keyType: 'ecdsa-p256' });
  return { caCert, key, cert };
}

describe('a provided certificate and key', { timeout: 30_000 }, () => {
  let good: ReturnType<typeof provided>;
  beforeAll(() => {
    good = provided({ dns: ['harbor.example.com'] });
  });

  it('passes when they belong together, name the host and chain up to the CA', () => {
    expect(checkProvided(Buffer.from(good.cert), good.key, { hostname: 'harbor.example.com', caPem: Buffer.from(good.caCert), renewBefore: 30 })).toEqual({ errors: [], warnings: [] });
  });

  it('names each thing that is wrong', () => {
    const other = provided({ dns: ['other.example.com'] });
    expect(checkProvided(Buffer.from(good.cert), other.key, { renewBefore: 30 }).errors).toEqual(['the key does not belong to the certificate']);
    expect(checkProvided(Buffer.from(good.cert), good.key, { hostname: 'cache.example.com', renewBefore: 30 }).errors).toEqual([
      'the certificate is not valid for cache.example.com (it names harbor.example.com)',
    ]);
    expect(checkProvided(Buffer.from(good.cert), good.key, { caPem: Buffer.from(other.caCert), renewBefore: 30 }).errors).toEqual([
      'the certificate was not issued by the CA in tls.ca_cert (CN=corp CA)',
    ]);
    expect(checkProvided(Buffer.from('not pem'), good.key, { renewBefore: 30 }).errors).toEqual(['the certificate file holds no PEM certificate']);
    expect(checkProvided(Buffer.from(good.cert), 'junk', { renewBefore: 30 }).errors[0]).toMatch(/^the key is not a PEM private key/);
  });

  it('warns when it expires within renew_before days', () => {
    const r = checkProvided(Buffer.from(good.cert), good.key, { hostname: 'harbor.example.com', renewBefore: 250 });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([expect.stringMatching(/^the provided certificate for harbor\.example\.com: it expires on .*, within renew_before \(250 days\); replace tls\.provided\.cert and \.key$/)]);
  });
});

// ---------------------------------------------------------------- the tls variable and the certs role

const CACHE_PLAY = `
  - name: cache
    hosts: cache
    roles: [certs]
    handlers:
      - name: restart harbor
        command: { cmd: "true" }
  - name: nodes
    hosts: nodes
    roles: [node_trust]
`;

function tlsTree(tls: string, extra: Tree = {}): Tree {
  return minimalTree({
    'inventories/t/hosts.yml': `
      all:
        children:
          cache:
            hosts:
              c1:
          nodes:
            hosts:
              n1:
    `,
    'inventories/t/group_vars/all.yml': `harbor:\n  hostname: harbor.example.com\n  install_dir: /opt/harbor\n${tls}`,
    'playbooks/site.yml': CACHE_PLAY,
    ...extra,
  });
}

const SELFSIGNED = 'tls:\n  mode: selfsigned\n  selfsigned:\n    ca: { name: unit CA, key_type: ecdsa-p256 }\n    extra_names: [harbor.internal]\n    ips: [10.0.0.10]\n';

/** A cache VM with root and /opt/harbor (what harbor_host makes). */
const CACHE_HOST = { 'user:root': userFact('root', 0), 'group:root': groupFact('root', 0), ...baseDirs('/opt/harbor', '/usr/local/share/ca-certificates') };

const outline = (changes: Change[]) => changes.map((c) => `${c.action} ${c.resource}`);
const attrsOf = (c: Change | undefined) => Object.fromEntries((c?.attrs ?? []).map((a) => [a.name, a.before === undefined ? a.after : [a.before, a.after]]));

/** The facts a host would report after the changes were applied (file contents from the payloads). */
function factsAfter(p: HostProgram, present: Record<string, unknown>, changes: Change[]): Record<string, unknown> {
  const out = { ...present };
  for (const c of changes) {
    const data = (c.payload as { data: { path?: string; content?: unknown; own?: { owner?: string; group?: string; mode?: string }; remove?: boolean } }).data;
    if (c.module === 'directory') {
      const a = attrsOf(c) as { owner: string; group: string; mode: string };
      out[`file:${c.resource.replace(/^directory /, '')}`] = dirFact(a.owner, a.group, a.mode);
    }
    if (!data?.path || data.remove) continue;
    if (data.content !== undefined) {
      const content = data.content as { reveal?: () => string } | string | Buffer;
      const buf = Buffer.isBuffer(content) ? content : Buffer.from(typeof content === 'string' ? content : content.reveal!());
      out[`file:${data.path}`] = fileFact(buf, data.own?.owner ?? 'root', data.own?.group ?? 'root', data.own?.mode ?? '0644');
    }
  }
  void p;
  return out;
}

describe('tls: selfsigned', { timeout: 30_000 }, () => {
  it('makes the CA before any host is contacted and points tls.ca_cert at it, for the cache and the nodes', async () => {
    const root = writeTree(tlsTree(SELFSIGNED));
    const prep = await prepare({ root, inventory: 'inventories/t' });
    expect(prep.notes).toEqual([
      'generated the CA "unit CA" (ecdsa-p256, 3650 days) in .berth/pki/unit-ca/; its key never goes to a host',
      expect.stringMatching(/^generated the server certificate for harbor\.example\.com \(ecdsa-p256, 825 days, names harbor\.example\.com harbor\.internal 10\.0\.0\.10, signed by "unit CA"\)/),
    ]);
    const caPem = readFileSync(join(root, '.berth/pki/unit-ca/ca.crt'), 'utf8');

    // the node trusts exactly that CA
    const node = prep.programs.find((p) => p.host === 'n1')!;
    const nodePlan = planHost(node, factsFor(node, CACHE_HOST)).changes;
    expect(outline(nodePlan)).toEqual(['create file /usr/local/share/ca-certificates/berth-harbor-ca.crt', 'run command true'.replace('true', 'update-ca-certificates')]);
    const trusted = (nodePlan[0]!.payload as { data: { content: Buffer } }).data.content;
    expect(trusted.toString('utf8')).toBe(caPem);

    // the cache: the traefik directories, the certificate (described, not diffed), the key (sensitive, 0600), Traefik's file
    const cache = prep.programs.find((p) => p.host === 'c1')!;
    const r = planHost(cache, factsFor(cache, CACHE_HOST));
    expect(outline(r.changes)).toEqual([
      'create directory /opt/harbor/traefik',
      'create directory /opt/harbor/traefik/certs',
      'create file /opt/harbor/traefik/certs/harbor.crt',
      'create file /opt/harbor/traefik/certs/harbor.key',
      'create file /opt/harbor/traefik/tls.yml',
      'run command true',
    ]);
    const [, , cert, key] = r.changes;
    expect(cert!.diff).toBeUndefined();
    expect(attrsOf(cert).certificate).toMatch(/^CN=harbor\.example\.com, names harbor\.example\.com harbor\.internal 10\.0\.0\.10, ecdsa-p256, not after \d{4}-\d\d-\d\d, serial [0-9A-F]{12}$/);
    expect(attrsOf(cert)).toMatchObject({ owner: 'root', group: 'root', mode: '0644' });
    expect(key!.sensitive).toBe(true);
    expect(attrsOf(key)).toMatchObject({ content: '(sensitive)', owner: 'root', group: 'root', mode: '0600' });
    expect(key!.diff).toBe('(sensitive content changed)\n');

    // what reaches the host: the server certificate, verified by openssl against the CA; its key; never the CA key
    const certPem = ((cert!.payload as { data: { content: string } }).data.content as string);
    const keyPem = ((key!.payload as { data: { content: { reveal(): string } } }).data.content).reveal();
    expect(verify(caPem, certPem)).toMatch(/: OK$/);
    expect(pubOfKey(keyPem)).toBe(pubOfCert(certPem));
    const caKey = readFileSync(join(root, '.berth/pki/unit-ca/ca.key'), 'utf8');
    const caKeyBody = caKey.split('\n')[1]!;
    for (const c of [...r.changes, ...nodePlan]) {
      const data = JSON.stringify((c.payload as { data: unknown }).data, (_k, v) => (v && typeof v === 'object' && typeof v.reveal === 'function' ? v.reveal() : v));
      expect(data, c.resource).not.toContain(caKeyBody);
    }
    // nor is anything secret in what berth prints or saves
    const result = { kind: 'plan' as const, createdAt: '', berth: '', options: prep.options, spec: {}, notes: prep.notes, hosts: [{ host: 'c1', changes: r.changes, fingerprints: r.fingerprints, notes: [] }] };
    const text = renderText(result, { color: false });
    const json = renderJson(result);
    for (const out of [text, json]) {
      expect(out).not.toContain(keyPem.split('\n')[1]!);
      expect(out).not.toContain(caKeyBody);
    }
    expect(text).toContain('controller: generated the CA "unit CA" (ecdsa-p256, 3650 days) in .berth/pki/unit-ca/; its key never goes to a host\n');
    expect((JSON.parse(json) as { notes: string[] }).notes).toEqual(prep.notes);

    // applied: the next plan is empty, and nothing is generated again
    const prep2 = await prepare({ root, inventory: 'inventories/t' });
    expect(prep2.notes).toEqual([]);
    const cache2 = prep2.programs.find((p) => p.host === 'c1')!;
    expect(planHost(cache2, factsFor(cache2, factsAfter(cache2, CACHE_HOST, r.changes))).changes).toEqual([]);
  });

  it('a renewal shows in the plan as the certificate file\'s change, old and new described', async () => {
    const root = writeTree(tlsTree(SELFSIGNED.replace('    ips: [10.0.0.10]\n', '    ips: [10.0.0.10]\n    days: 40\n    renew_before: 10\n')));
    const prep = await prepare({ root, inventory: 'inventories/t' });
    const cache = prep.programs.find((p) => p.host === 'c1')!;
    const first = planHost(cache, factsFor(cache, CACHE_HOST)).changes;
    const applied = factsAfter(cache, CACHE_HOST, first);

    // the threshold moves past the certificate's 40 days
    const vars = join(root, 'inventories/t/group_vars/all.yml');
    writeFileSync(vars, readFileSync(vars, 'utf8').replace('days: 40\n    renew_before: 10', 'days: 400\n    renew_before: 45'));
    const prep2 = await prepare({ root, inventory: 'inventories/t' });
    expect(prep2.notes).toEqual([expect.stringMatching(/^renewed the server certificate for harbor\.example\.com \(ecdsa-p256, 400 days.* because it expires on \d{4}-\d\d-\d\d, within renew_before \(45 days\)$/)]);
    const cache2 = prep2.programs.find((p) => p.host === 'c1')!;
    const renewal = planHost(cache2, factsFor(cache2, applied)).changes;
    expect(outline(renewal)).toEqual(['update file /opt/harbor/traefik/certs/harbor.crt', 'update file /opt/harbor/traefik/certs/harbor.key', 'run command true']);
    const [before, after] = attrsOf(renewal[0]).certificate as [string, string];
    expect(before).not.toBe(after);
    expect(before).toMatch(/not after (\S+), serial/);
    const day = (s: string) => Date.parse(/not after (\S+),/.exec(s)![1]!);
    expect((day(after) - day(before)) / 86_400_000).toBeGreaterThan(300);
    expect(renewal[2]!.notifiedBy).toEqual([renewal[0]!.id, renewal[1]!.id]);
  });

  it('refuses tls.ca_cert in selfsigned mode, and renew_before not below days, at the line that says so', () => {
    expect(berthError(() => buildTree(tlsTree(`${SELFSIGNED}  ca_cert: files/ca.crt\n`))).format()).toBe(
      'inventories/t/group_vars/all.yml:10:12: tls.ca_cert: in selfsigned mode berth makes the CA and sets tls.ca_cert itself (remove it: the nodes will trust the CA berth keeps in .berth/pki/)',
    );
    expect(berthError(() => buildTree(tlsTree('tls:\n  mode: selfsigned\n  selfsigned:\n    days: 30\n    renew_before: 60\n'))).format()).toBe(
      'inventories/t/group_vars/all.yml:8:19: tls.selfsigned.renew_before: renew_before (60) must be less than days (30) (else every new server certificate would be due for renewal at once)',
    );
    expect(berthError(() => buildTree(tlsTree('tls:\n  mode: selfsigned\n  selfsigned:\n    key_type: dsa\n'))).format()).toBe(
      'inventories/t/group_vars/all.yml:7:15: tls.selfsigned.key_type: "dsa" is not allowed (one of: "rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384")',
    );
    expect(berthError(() => buildTree(tlsTree('tls:\n  mode: selfsinged\n'))).format()).toMatch(/^inventories\/t\/group_vars\/all\.yml:5:9: tls\.mode: "selfsinged" is not allowed \(one of: "acme", "selfsigned", "provided", "none"\)$/);
    expect(berthError(() => buildTree(tlsTree('tls:\n  mode: selfsigned\n  selfsigned: { ips: [10.0.0.300] }\n'))).format()).toMatch(/^inventories\/t\/group_vars\/all\.yml:6:23: tls\.selfsigned\.ips\[0\]: /);
  });
});

describe('tls: provided', { timeout: 30_000 }, () => {
  let pair: ReturnType<typeof provided>;
  beforeAll(() => {
    pair = provided({ dns: ['harbor.example.com'] });
  });
  const ENV = 'BERTH_UNIT_PROVIDED_KEY';

  it('puts the repository\'s certificate and the secret key on the cache, checked against tls.ca_cert', async () => {
    const files = { 'files/harbor.crt': pair.cert, 'files/corp-ca.crt': pair.caCert, 'secrets/harbor.key': pair.key };
    const root = writeTree(tlsTree('tls:\n  mode: provided\n  ca_cert: files/corp-ca.crt\n  provided:\n    cert: files/harbor.crt\n    key: { secret_file: secrets/harbor.key }\n', files));
    const prep = await prepare({ root, inventory: 'inventories/t' });
    expect(prep.notes).toEqual([]);
    expect(existsSync(join(root, '.berth'))).toBe(false);
    const cache = prep.programs.find((p) => p.host === 'c1')!;
    const r = planHost(cache, factsFor(cache, CACHE_HOST)).changes;
    expect(outline(r)).toEqual([
      'create directory /opt/harbor/traefik',
      'create directory /opt/harbor/traefik/certs',
      'create file /opt/harbor/traefik/certs/harbor.crt',
      'create file /opt/harbor/traefik/certs/harbor.key',
      'create file /opt/harbor/traefik/tls.yml',
      'run command true',
    ]);
    expect((r[2]!.payload as { data: { content: string } }).data.content).toBe(pair.cert);
    expect(((r[3]!.payload as { data: { content: { reveal(): string } } }).data.content).reveal()).toBe(pair.key.replace(/\n$/, ''));
    expect(r[3]!.sensitive).toBe(true);
    // the nodes trust the provided CA
    const node = prep.programs.find((p) => p.host === 'n1')!;
    expect(((planHost(node, factsFor(node, CACHE_HOST)).changes[0]!.payload as { data: { content: Buffer } }).data.content).toString()).toBe(pair.caCert);
  });

  it('refuses a key written as text, a key of another certificate, a certificate for another name', () => {
    process.env[ENV] = provided({ dns: ['harbor.example.com'] }).key;
    try {
      const files = { 'files/harbor.crt': pair.cert };
      expect(berthError(() => buildTree(tlsTree('tls:\n  mode: provided\n  provided:\n    cert: files/harbor.crt\n    key: "-----BEGIN PRIVATE KEY-----"\n', files))).format()).toBe(
        'inventories/t/group_vars/all.yml:8:10: tls.provided.key: the private key must be a secret, not text in the spec (e.g. key: { secret_file: secrets/harbor.key } (kept out of git))',
      );
      expect(berthError(() => buildTree(tlsTree(`tls:\n  mode: provided\n  provided:\n    cert: files/harbor.crt\n    key: { secret_env: ${ENV} }\n`, files))).format()).toBe(
        'inventories/t/group_vars/all.yml:7:11: tls.provided.cert: files/harbor.crt: the key does not belong to the certificate (provide a certificate and key that belong together and name harbor.hostname)',
      );
      process.env[ENV] = pair.key;
      const other = provided({ dns: ['elsewhere.example.com'] });
      expect(berthError(() => buildTree(tlsTree(`tls:\n  mode: provided\n  provided:\n    cert: files/harbor.crt\n    key: { secret_env: ${ENV} }\n`, { 'files/harbor.crt': other.cert }))).format()).toMatch(
        /^inventories\/t\/group_vars\/all\.yml:7:11: tls\.provided\.cert: files\/harbor\.crt: the key does not belong to the certificate; the certificate is not valid for harbor\.example\.com \(it names elsewhere\.example\.com\)/,
      );
      expect(berthError(() => buildTree(tlsTree(`tls:\n  mode: provided\n  provided:\n    cert: files/nope.crt\n    key: { secret_env: ${ENV} }\n`, files))).format()).toMatch(/^inventories\/t\/group_vars\/all\.yml:7:11: file not found: files\/nope\.crt/);
    } finally {
      delete process.env[ENV];
    }
  });
});

// ---------------------------------------------------------------- acme: backup and restore

describe('tls: acme (acme.json backed up to the controller, restored on a rebuilt VM)', { timeout: 30_000 }, () => {
  const ACME = 'tls:\n  mode: acme\n  ca_cert: files/ca.crt\n  acme:\n    provider: route53\n    resolver: "8.8.8.8:53"\n    email: ops@example.com\n';
  const PLAY = `
    - name: cache
      hosts: cache
      roles: [certs]
      tasks:
        - name: ACME state backed up to the controller
          backup:
            path: /opt/harbor/traefik/certs/acme.json
            item: acme/harbor.example.com/acme.json
      handlers:
        - name: restart harbor
          command: { cmd: "true" }
  `;
  const STATE = '{"acme":{"Account":{"Email":"ops@example.com"},"Certificates":[{"domain":{"main":"harbor.example.com"},"key":"S0VZLWUyZS1zZWNyZXQ="}]}}\n';
  const tree = () => tlsTree(ACME, { 'playbooks/site.yml': PLAY, 'files/ca.crt': 'x' });
  const TRAEFIK_DIRS = { 'file:/opt/harbor/traefik': dirFact('root', 'root', '0750'), 'file:/opt/harbor/traefik/certs': dirFact('root', 'root', '0700') };
  const ACME_DIRS = { ...CACHE_HOST, ...TRAEFIK_DIRS };

  it('a first deployment: nothing to restore (a warning), nothing to back up', async () => {
    const root = writeTree(tree());
    const prep = await prepare({ root, inventory: 'inventories/t' });
    const cache = prep.programs[0]!;
    const r = planHost(cache, factsFor(cache, ACME_DIRS));
    expect(outline(r.changes)).toEqual([]);
    expect(r.warnings).toEqual(['c1: nothing to restore to /opt/harbor/traefik/certs/acme.json: the controller has no copy in .berth/acme/harbor.example.com/acme.json (a first deployment; else the host starts without it)']);
  });

  it('Traefik wrote acme.json: the plan backs it up (sensitive); applied, the controller keeps it 0600 and the next plan is empty', async () => {
    const root = writeTree(tree());
    const prep = await prepare({ root, inventory: 'inventories/t' });
    const cache = prep.programs[0]!;
    const host = { ...ACME_DIRS, 'file:/opt/harbor/traefik/certs/acme.json': fileFact(STATE, 'root', 'root', '0600') };
    const changes = planHost(cache, factsFor(cache, host)).changes;
    expect(outline(changes)).toEqual(['create backup /opt/harbor/traefik/certs/acme.json']);
    expect(changes[0]).toMatchObject({ sensitive: true, module: 'backup' });
    expect(attrsOf(changes[0])).toEqual({ to: '.berth/acme/harbor.example.com/acme.json on the controller', content: '(sensitive)' });
    expect(JSON.stringify(changes.map(({ payload: _p, ...c }) => c))).not.toContain('S0VZLWUyZS1zZWNyZXQ');

    // apply: the host's bytes, fetched over the transport, land 0600 in the store
    const scripts: string[] = [];
    const transport = {
      host: 'c1',
      exec: async (script: string) => {
        scripts.push(script);
        return { code: 0, stdout: Buffer.from(STATE).toString('base64'), stderr: '' };
      },
    } as unknown as Transport;
    const p = changes[0]!.payload as { become: boolean; data: unknown; ctx: ModuleApplyContext };
    await backupModule.apply({ resource: changes[0]!.resource, action: 'create', attrs: [], payload: p.data }, { ...p.ctx, transport, become: false });
    expect(scripts).toEqual(["set -e\nbase64 -w0 -- /opt/harbor/traefik/certs/acme.json"]);
    const stored = join(root, '.berth/acme/harbor.example.com/acme.json');
    expect(readFileSync(stored, 'utf8')).toBe(STATE);
    expect(statSync(stored).mode & 0o777).toBe(0o600);

    const again = await prepare({ root, inventory: 'inventories/t' });
    expect(planHost(again.programs[0]!, factsFor(again.programs[0]!, host)).changes).toEqual([]);
    // Traefik renewed a certificate: backed up again (an update)
    const renewed = { ...host, 'file:/opt/harbor/traefik/certs/acme.json': fileFact(STATE.replace('S0VZ', 'TkVX'), 'root', 'root', '0600') };
    expect(outline(planHost(again.programs[0]!, factsFor(again.programs[0]!, renewed)).changes)).toEqual(['update backup /opt/harbor/traefik/certs/acme.json']);
  });

  it('a rebuilt VM without acme.json: the plan restores the controller\'s copy (0600, sensitive) before anything reads it', async () => {
    const root = writeTree(tree());
    controllerStore(root).write('acme/harbor.example.com/acme.json', STATE);
    const prep = await prepare({ root, inventory: 'inventories/t' });
    const cache = prep.programs[0]!;
    const r = planHost(cache, factsFor(cache, CACHE_HOST));
    expect(outline(r.changes)).toEqual([
      'create directory /opt/harbor/traefik',
      'create directory /opt/harbor/traefik/certs',
      'create file /opt/harbor/traefik/certs/acme.json',
      'run command true',
    ]);
    const restore = r.changes[2]!;
    expect(restore).toMatchObject({ module: 'restore', sensitive: true, diff: '(sensitive content changed)\n' });
    expect(attrsOf(restore)).toEqual({ from: '.berth/acme/harbor.example.com/acme.json on the controller', content: '(sensitive)', owner: 'root', group: 'root', mode: '0600' });
    expect(((restore.payload as { data: { content: Buffer } }).data.content).toString()).toBe(STATE);
    // the backup task sees the restored file: nothing to back up in the same run
    expect(r.changes.some((c) => c.module === 'backup')).toBe(false);
    expect(r.warnings).toEqual([]);
    // and a host that has its own acme.json keeps it (the backup brings the controller up to date)
    const own = { ...ACME_DIRS, 'file:/opt/harbor/traefik/certs/acme.json': fileFact('{"newer":true}\n', 'root', 'root', '0600') };
    expect(outline(planHost(cache, factsFor(cache, own)).changes)).toEqual(['update backup /opt/harbor/traefik/certs/acme.json']);
  });
});

// ---------------------------------------------------------------- what the harbor role writes for each mode

describe('the example spec in each tls mode: harbor.yml and the compose override', { timeout: 30_000 }, () => {
  // every secret the example reads from the environment, as CI would provide it
  const SECRETS = [...readFileSync(join(REPO, 'inventories/example/group_vars/all.yml'), 'utf8').matchAll(/secret_env: *(\w+)/g)].map((m) => m[1]!);
  beforeAll(() => SECRETS.forEach((k, i) => (process.env[k] ??= `example-secret-${i}-value`)));

  /** The content the plan would write to `path` on the cache VM, for the example spec with `tls` replaced. */
  async function written(tls: string, path: string): Promise<string> {
    const root = tempDir();
    cpSync(join(REPO, 'inventories'), join(root, 'inventories'), { recursive: true });
    cpSync(join(REPO, 'playbooks'), join(root, 'playbooks'), { recursive: true });
    const vars = join(root, 'inventories/example/group_vars/all.yml');
    const text = readFileSync(vars, 'utf8');
    writeFileSync(vars, text.slice(0, text.search(/^tls:/m)) + tls + text.slice(text.search(/^env:/m)));
    const prep = await prepare({ root, inventory: 'inventories/example', limit: 'cache', skipTags: ['dex_client'] });
    const cache = prep.programs[0]!;
    const host = { 'user:root': userFact('root', 0), 'group:root': groupFact('root', 0), ...baseDirs('/opt', '/etc/systemd/system', '/var/cache') };
    const c = planHost(cache, factsFor(cache, host)).changes.find((x) => x.resource === `file ${path}`);
    expect(c, path).toBeDefined();
    const content = (c!.payload as { data: { content: string | { reveal(): string } } }).data.content;
    return typeof content === 'string' ? content : content.reveal();
  }
  type Override = { services: Record<string, { command?: string[]; labels?: string[]; volumes?: string[] }>; volumes?: Record<string, unknown> };
  const override = async (tls: string) => parseYaml(await written(tls, '/opt/harbor/docker-compose.override.yml')) as Override;
  const harborYml = async (tls: string) => parseYaml(await written(tls, '/opt/harbor/harbor.yml')) as Record<string, unknown>;
  const ACME = 'tls:\n  mode: acme\n  ca_cert: inventories/example/files/harbor-ca.crt\n  acme: { provider: route53, resolver: "8.8.8.8:53", email: ops@example.com }\n';

  it('acme: Traefik with the ACME resolver, acme.json on the bound volume; external_url https', async () => {
    const o = await override(ACME);
    expect(o.services.proxy!.labels).toContain('traefik.http.routers.harbor.tls.certresolver=acme');
    expect(o.services.traefik!.command).toContain('--certificatesresolvers.acme.acme.storage=/certs/acme.json');
    expect(o.volumes).toEqual({ traefik_certs: { driver: 'local', driver_opts: { type: 'none', o: 'bind', device: '/opt/harbor/traefik/certs' } } });
    expect((await harborYml(ACME)).external_url).toBe('https://harbor-cache.example.com');
  });

  it('selfsigned: Traefik serves the file provider\'s certificate, no ACME; external_url https', async () => {
    const tls = 'tls:\n  mode: selfsigned\n  selfsigned: { ca: { name: unit CA, key_type: ecdsa-p256 } }\n';
    const o = await override(tls);
    expect(o.services.proxy!.labels).toContain('traefik.http.routers.harbor.tls=true');
    expect(o.services.traefik!.command).toContain('--providers.file.filename=/etc/traefik/tls.yml');
    expect(o.services.traefik!.command!.some((c) => c.includes('acme'))).toBe(false);
    expect(o.services.traefik!.volumes).toEqual(['/var/run/docker.sock:/var/run/docker.sock:ro', 'traefik_certs:/certs:ro', '/opt/harbor/traefik/tls.yml:/etc/traefik/tls.yml:ro']);
    const traefikTls = parseYaml(await written(tls, '/opt/harbor/traefik/tls.yml')) as { tls: { certificates: { certFile: string; keyFile: string }[] } };
    expect(traefikTls.tls.certificates).toEqual([{ certFile: '/certs/harbor.crt', keyFile: '/certs/harbor.key' }]);
    expect((await harborYml(tls)).external_url).toBe('https://harbor-cache.example.com');
  });

  it('none: no Traefik, and external_url is the plain http address (else docker login is sent to https)', async () => {
    const tls = 'tls:\n  mode: none\n  ca_cert: inventories/example/files/harbor-ca.crt\n';
    expect((await override(tls)).services).toEqual({});
    const y = await harborYml(tls);
    expect(y.external_url).toBe('http://harbor-cache.example.com:8080');
    expect(y).not.toHaveProperty('https');
  });
});
