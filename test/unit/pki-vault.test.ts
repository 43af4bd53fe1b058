// Self-signed TLS material in an inventory that has a vault: the private keys
// are vault entries (berth.pki.…), the certificates public files in
// inventories/<env>/pki/, so a clone without `.berth/` (a CI runner, a new
// laptop, a disaster rebuild) has the same CA and certificate. Real age, real
// openssl.

import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newIdentity } from '../../src/secrets/vault.js';
import { prepare } from '../../src/engine.js';
import { planHost } from '../../src/plan/planner.js';
import { BerthError } from '../../src/util/errors.js';
import { baseDirs, factsFor, groupFact, minimalTree, tempDir, userFact, writeTree } from './helpers.js';
import type { Change } from '../../src/types.js';

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

const SPEC = (recipients: string[]) =>
  minimalTree({
    'inventories/t/hosts.yml': 'all:\n  children:\n    cache:\n      hosts:\n        c1:\n    nodes:\n      hosts:\n        n1:\n',
    'inventories/t/group_vars/all.yml':
      'harbor:\n  hostname: harbor.example.com\n  install_dir: /opt/harbor\ntls:\n  mode: selfsigned\n  selfsigned:\n    ca: { name: vault CA, key_type: ecdsa-p256 }\n',
    'inventories/t/vault.recipients': `${recipients.join('\n')}\n`,
    'playbooks/site.yml': CACHE_PLAY,
  });

const CACHE_HOST = { 'user:root': userFact('root', 0), 'group:root': groupFact('root', 0), ...baseDirs('/opt/harbor', '/usr/local/share/ca-certificates') };

const ENV_KEYS = ['BERTH_AGE_KEY', 'BERTH_AGE_KEY_FILE', 'XDG_CONFIG_HOME', 'CI', 'BERTH_CI'] as const;
let saved: Record<string, string | undefined> = {};
beforeEach(() => {
  saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  process.env.XDG_CONFIG_HOME = tempDir('berth-xdg-');
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

/** The whole vault as plain YAML, decrypted by Debian's age CLI (not by berth). */
function decrypt(root: string, key: string): string {
  const keyFile = join(tempDir('berth-key-'), 'key.txt');
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  return execFileSync('/usr/bin/age', ['-d', '-i', keyFile, join(root, 'inventories/t/vault.age')]).toString('utf8');
}

const payloadText = (c: Change | undefined) => {
  const content = (c?.payload as { data: { content: Buffer | string | { reveal(): string } } }).data.content;
  return Buffer.isBuffer(content) ? content.toString('utf8') : typeof content === 'string' ? content : content.reveal();
};

describe('self-signed TLS with a vault', { timeout: 30_000 }, () => {
  it('keeps the keys in vault.age and the certificates in inventories/<env>/pki/, nothing in .berth/pki', async () => {
    const op = await newIdentity();
    const root = writeTree(SPEC([op.recipient]));
    process.env.BERTH_AGE_KEY = op.key;
    const prep = await prepare({ root, inventory: 'inventories/t' });

    expect(prep.notes).toEqual([
      'generated the CA "vault CA" (ecdsa-p256, 3650 days) in inventories/t/pki/vault-ca/ (keys in inventories/t/vault.age); its key never goes to a host',
      expect.stringMatching(/^generated the server certificate for harbor\.example\.com .* in inventories\/t\/pki\/vault-ca\/servers\/ \(keys in inventories\/t\/vault\.age\)$/),
    ]);
    expect(existsSync(join(root, '.berth/pki'))).toBe(false);
    const caFile = join(root, 'inventories/t/pki/vault-ca/ca.crt');
    const caPem = readFileSync(caFile, 'utf8');
    expect(caPem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(statSync(caFile).mode & 0o777).toBe(0o644);
    const serverPem = readFileSync(join(root, 'inventories/t/pki/vault-ca/servers/harbor.example.com.crt'), 'utf8');
    // the public files hold no key
    expect(caPem + serverPem).not.toContain('PRIVATE KEY');

    // the keys are in the vault, readable by the age CLI, one literal block each
    const plain = decrypt(root, op.key);
    const keys = plain.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----/g) ?? [];
    expect(keys).toHaveLength(2);
    expect(plain).toMatch(/^berth:\n {2}pki:\n {4}vault-ca:\n {6}ca\.key: \|/m);
    expect(plain).toContain('servers:\n        harbor.example.com.key: |');

    // tls.ca_cert names the committed CA: the node trusts exactly it
    const node = prep.programs.find((p) => p.host === 'n1')!;
    const nodeChanges = planHost(node, factsFor(node, CACHE_HOST)).changes;
    expect(payloadText(nodeChanges[0])).toBe(caPem);
    // and the cache VM gets the server key out of the vault
    const cache = prep.programs.find((p) => p.host === 'c1')!;
    const keyChange = planHost(cache, factsFor(cache, CACHE_HOST)).changes.find((c) => c.resource.endsWith('.key'));
    expect(keyChange).toMatchObject({ sensitive: true });
    expect(plain).toContain(payloadText(keyChange).split('\n')[1]!);
  });

  it('a clone without .berth/ (CI, a new laptop) makes nothing and plans the same certificate', async () => {
    const op = await newIdentity();
    const root = writeTree(SPEC([op.recipient]));
    process.env.BERTH_AGE_KEY = op.key;
    await prepare({ root, inventory: 'inventories/t' });
    const before = readFileSync(join(root, 'inventories/t/pki/vault-ca/servers/harbor.example.com.crt'), 'utf8');
    const vaultBefore = readFileSync(join(root, 'inventories/t/vault.age'));

    const clone = tempDir('berth-clone-');
    cpSync(root, clone, { recursive: true });
    rmSync(join(clone, '.berth'), { recursive: true, force: true });
    process.env.CI = 'true';
    const again = await prepare({ root: clone, inventory: 'inventories/t', ci: true });
    expect(again.notes).toEqual([]);
    expect(readFileSync(join(clone, 'inventories/t/vault.age')).equals(vaultBefore)).toBe(true);
    const cache = again.programs.find((p) => p.host === 'c1')!;
    const certChange = planHost(cache, factsFor(cache, CACHE_HOST)).changes.find((c) => c.resource.endsWith('.crt'));
    expect(payloadText(certChange)).toBe(before);
  });

  it('CI mode refuses to make missing material, at the tls line, and writes nothing', async () => {
    const op = await newIdentity();
    const root = writeTree(SPEC([op.recipient]));
    process.env.BERTH_AGE_KEY = op.key;
    let err: unknown;
    try {
      await prepare({ root, inventory: 'inventories/t', ci: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BerthError);
    expect((err as BerthError).format()).toBe(
      'inventories/t/group_vars/all.yml:5:9: CI mode never makes TLS material, and inventories/t/pki/vault-ca/ (keys in inventories/t/vault.age) holds none that is current (run berth plan outside CI and commit inventories/t/vault.age and inventories/t/pki/)',
    );
    expect(existsSync(join(root, 'inventories/t/pki'))).toBe(false);
    expect(existsSync(join(root, 'inventories/t/vault.age'))).toBe(false);
  });

  it('without an identity the plan stops before anything is made', async () => {
    const op = await newIdentity();
    const root = writeTree(SPEC([op.recipient]));
    process.env.BERTH_AGE_KEY = op.key;
    await prepare({ root, inventory: 'inventories/t' });
    delete process.env.BERTH_AGE_KEY;
    const ca = readFileSync(join(root, 'inventories/t/pki/vault-ca/ca.crt'));
    await expect(prepare({ root, inventory: 'inventories/t' })).rejects.toThrow(/inventories\/t\/vault\.age: no age identity to decrypt it/);
    expect(readFileSync(join(root, 'inventories/t/pki/vault-ca/ca.crt')).equals(ca)).toBe(true);
  });
});
