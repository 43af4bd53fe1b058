// The vault (src/secrets/vault.ts) and `{ vault: … }` spec values
// (src/spec/vault-refs.ts): real age encryption, checked both ways against
// Debian's `age` CLI, and the spec-side rules (generated once, CI never mints).

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Vault, editRecipients, findIdentities, newIdentity, parseIdentities, readRecipients, requireIdentities, vaultPaths, type Identities } from '../../src/secrets/vault.js';
import { alnumLength, generateSecret } from '../../src/secrets/generate.js';
import { Secret, redact } from '../../src/secrets/secret.js';
import { openSpecVault, saveVault } from '../../src/spec/vault-refs.js';
import { loadSpec, varsFor } from '../../src/spec/load.js';
import { prepare } from '../../src/engine.js';
import { BerthError } from '../../src/util/errors.js';
import { dedent, minimalTree, tempDir, writeTree, type Tree } from './helpers.js';

const AGE = '/usr/bin/age';

/** `age` (Debian's CLI) with the given arguments; stdin optional. */
function age(args: string[], input?: string | Buffer): Buffer {
  return execFileSync(AGE, args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

async function asyncError(fn: () => Promise<unknown>): Promise<BerthError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof BerthError) return e;
    throw e;
  }
  throw new Error('expected a BerthError, nothing was thrown');
}

interface Key {
  key: string;
  recipient: string;
  file: string;
}

async function key(dir = tempDir('berth-key-')): Promise<Key> {
  const id = await newIdentity();
  const file = join(dir, `${id.recipient.slice(4, 12)}.txt`);
  writeFileSync(file, `# public key: ${id.recipient}\n${id.key}\n`, { mode: 0o600 });
  return { ...id, file };
}

const ids = (k: Key): (() => Identities) => () => ({ keys: [k.key], from: 'test key' });

/** A spec root with inventories/t and a recipients file for `keys`. */
function specWithRecipients(keys: Key[], files: Tree = {}): string {
  return writeTree(
    minimalTree({
      'inventories/t/vault.recipients': `# operators and CI\n${keys.map((k) => k.recipient).join('\n')}\n`,
      ...files,
    }),
  );
}

const ENV_KEYS = ['BERTH_AGE_KEY', 'BERTH_AGE_KEY_FILE', 'XDG_CONFIG_HOME', 'CI', 'BERTH_CI'] as const;
let savedEnv: Record<string, string | undefined> = {};
beforeEach(() => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  // never the real ~/.config/berth/age-key.txt of whoever runs the tests
  process.env.XDG_CONFIG_HOME = tempDir('berth-xdg-');
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

// ---------------------------------------------------------------- files and age interop

describe('the vault file', () => {
  it('is ASCII-armored age that Debian`s age CLI decrypts, with every recipient`s identity', async () => {
    const [alice, ci] = [await key(), await key()];
    const root = specWithRecipients([alice, ci]);
    const p = vaultPaths('inventories/t', root);
    const v = await Vault.open(p, { identities: ids(alice) });
    expect(v.exists).toBe(false);
    v.set('harbor.admin_password', 'adm-Secret-0001');
    v.set('pki.ca_key', '-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n');
    await v.save();

    const text = readFileSync(p.file, 'utf8');
    expect(text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----\n')).toBe(true);
    expect(text.trimEnd().endsWith('-----END AGE ENCRYPTED FILE-----')).toBe(true);
    expect(text).not.toContain('adm-Secret');
    for (const k of [alice, ci]) {
      const plain = age(['-d', '-i', k.file, p.file]).toString();
      expect(plain).toContain('harbor:\n  admin_password: adm-Secret-0001\n');
      expect(plain).toContain('pki:\n  ca_key: |\n    -----BEGIN PRIVATE KEY-----\n    MIIEvQ\n');
    }
    // and the recipients file is one `age -R` reads as it is
    const viaR = age(['-e', '-R', p.recipients], 'x: 1\n');
    expect(age(['-d', '-i', ci.file], viaR).toString()).toBe('x: 1\n');
  });

  it('reads what `age -e` wrote, binary or armored, and keeps its comments when it adds an entry', async () => {
    const alice = await key();
    const root = specWithRecipients([alice]);
    const p = vaultPaths('inventories/t', root);
    const plain = dedent(`
      # written by hand
      harbor:
        # the UI login
        admin_password: from-age-cli-1
      db_port: 5432
    `);
    for (const armor of [false, true]) {
      writeFileSync(p.file, age(['-e', ...(armor ? ['-a'] : []), '-r', alice.recipient], plain));
      const v = await Vault.open(p, { identities: ids(alice) });
      expect(v.get('harbor.admin_password')).toBe('from-age-cli-1');
      // a number reads as its text
      expect(v.get('db_port')).toBe('5432');
      expect(v.get('harbor.nope')).toBeUndefined();
      v.set('oidc.client_secret', 'new-entry-xyz');
      await v.save();
      const back = age(['-d', '-i', alice.file, p.file]).toString();
      expect(back).toBe(plain + 'oidc:\n  client_secret: new-entry-xyz\n');
    }
  });

  it('refuses to write when the file changed on disk since it was read (nothing is lost)', async () => {
    const alice = await key();
    const p = vaultPaths('inventories/t', specWithRecipients([alice]));
    writeFileSync(p.file, age(['-e', '-a', '-r', alice.recipient], 'a: 1\n'));
    const v = await Vault.open(p, { identities: ids(alice) });
    v.set('b', 'two-2222');
    writeFileSync(p.file, age(['-e', '-a', '-r', alice.recipient], 'a: 1\nc: other-writer\n'));
    const err = await asyncError(() => v.save());
    expect(err.format()).toBe('inventories/t/vault.age changed on disk while berth was using it; nothing was written (run the command again)');
    expect(age(['-d', '-i', alice.file, p.file]).toString()).toBe('a: 1\nc: other-writer\n');
  });

  it('says in one line which identity failed, never a key', async () => {
    const [alice, bob] = [await key(), await key()];
    const p = vaultPaths('inventories/t', specWithRecipients([alice]));
    writeFileSync(p.file, age(['-e', '-a', '-r', alice.recipient], 'a: 1\n'));
    const err = await asyncError(() => Vault.open(p, { identities: () => ({ keys: [bob.key], from: 'BERTH_AGE_KEY' }) }));
    expect(err.format()).toBe(
      'inventories/t/vault.age: the age identity from BERTH_AGE_KEY is not one it was encrypted to (someone who can decrypt it adds your recipient with: berth vault rekey --add-recipient age1…)',
    );
    writeFileSync(p.file, 'harbor:\n  admin_password: plain\n');
    expect((await asyncError(() => Vault.open(p, { identities: ids(alice) }))).format()).toBe(
      'inventories/t/vault.age: not an age-encrypted file (encrypt a plain YAML file into it with: berth vault encrypt)',
    );
  });

  it('gives a YAML mistake in the plain vault a position, not the text around it', async () => {
    const alice = await key();
    const p = vaultPaths('inventories/t', specWithRecipients([alice]));
    writeFileSync(p.file, age(['-e', '-a', '-r', alice.recipient], 'a: 1\na: hunter2-dup\n'));
    const err = await asyncError(() => Vault.open(p, { identities: ids(alice) }));
    expect(err.format()).toBe('inventories/t/vault.age: its content is not valid YAML (DUPLICATE_KEY at line 2, column 1) (fix it with: berth vault edit)');
    writeFileSync(p.file, age(['-e', '-a', '-r', alice.recipient], '- a\n- b\n'));
    expect((await asyncError(() => Vault.open(p, { identities: ids(alice) }))).message).toBe('inventories/t/vault.age: its content must be a YAML mapping of entries, not a list');
  });
});

describe('identities', () => {
  it('come from BERTH_AGE_KEY, else BERTH_AGE_KEY_FILE, else ~/.config/berth/age-key.txt', async () => {
    const [a, b, c] = [await key(), await key(), await key()];
    expect(findIdentities()).toBeUndefined();
    process.env.BERTH_AGE_KEY = a.key;
    process.env.BERTH_AGE_KEY_FILE = b.file;
    expect(findIdentities()).toEqual({ keys: [a.key], from: 'BERTH_AGE_KEY' });
    delete process.env.BERTH_AGE_KEY;
    expect(findIdentities()).toEqual({ keys: [b.key], from: b.file });
    delete process.env.BERTH_AGE_KEY_FILE;
    const dflt = join(process.env.XDG_CONFIG_HOME!, 'berth', 'age-key.txt');
    writeTree({ 'berth/age-key.txt': readFileSync(c.file, 'utf8') }, process.env.XDG_CONFIG_HOME);
    expect(findIdentities()).toEqual({ keys: [c.key], from: dflt });
  });

  it('a missing identity is one clear line', () => {
    process.env.XDG_CONFIG_HOME = '/nonexistent/xdg';
    const err = (() => {
      try {
        requireIdentities('inventories/prod/vault.age');
      } catch (e) {
        return e as BerthError;
      }
      throw new Error('no error');
    })();
    expect(err.format()).toBe(
      'inventories/prod/vault.age: no age identity to decrypt it (set BERTH_AGE_KEY to your AGE-SECRET-KEY-1… key, or BERTH_AGE_KEY_FILE to a key file; default /nonexistent/xdg/berth/age-key.txt)',
    );
    process.env.BERTH_AGE_KEY_FILE = '/nonexistent/key.txt';
    expect(() => findIdentities()).toThrow('BERTH_AGE_KEY_FILE names /nonexistent/key.txt, which does not exist');
  });

  it('a value that is not an identity is refused without printing it', () => {
    const bad = 'AGE-SECRET-KEY-1-not-really-hunter2';
    let msg = '';
    try {
      parseIdentities(bad, 'BERTH_AGE_KEY');
    } catch (e) {
      msg = (e as BerthError).format();
    }
    expect(msg).toBe('BERTH_AGE_KEY: not an age identity (expected AGE-SECRET-KEY-1… lines, as age-keygen writes them)');
    expect(msg).not.toContain('hunter2');
  });
});

describe('recipients', () => {
  it('a line that is not a recipient is an error at its line and column', async () => {
    const a = await key();
    const root = writeTree(minimalTree({ 'inventories/t/vault.recipients': `# ops\n${a.recipient}\n  age1notarecipient\n` }));
    const err = (() => {
      try {
        readRecipients(vaultPaths('inventories/t', root));
      } catch (e) {
        return e as BerthError;
      }
      throw new Error('no error');
    })();
    expect(err.format()).toBe('inventories/t/vault.recipients:3:3: not an age recipient: "age1notarecipient" (expected age1… as age-keygen -y prints it)');
  });

  it('editing keeps comments, adds once, removes, and never leaves none', async () => {
    const [a, b] = [await key(), await key()];
    const root = writeTree(minimalTree({ 'inventories/t/vault.recipients': `# alice\n${a.recipient}\n` }));
    const p = vaultPaths('inventories/t', root);
    expect(editRecipients(p, [b.recipient, b.recipient], [])).toEqual({ text: `# alice\n${a.recipient}\n${b.recipient}\n`, list: [a.recipient, b.recipient] });
    expect(editRecipients(p, [b.recipient], [a.recipient]).list).toEqual([b.recipient]);
    expect(() => editRecipients(p, [], [a.recipient])).toThrow('refusing to leave inventories/t/vault.recipients without any recipient');
    expect(() => editRecipients(p, [], [b.recipient])).toThrow(`inventories/t/vault.recipients does not list ${b.recipient}`);
  });
});

describe('generated secrets', () => {
  it('have the length and alphabet of their encoding, and differ every time', () => {
    const b64 = generateSecret({ bytes: 20, encoding: 'base64' });
    expect(b64).toMatch(/^[A-Za-z0-9+/]{27}=$/);
    expect(Buffer.from(b64, 'base64')).toHaveLength(20);
    expect(generateSecret({ bytes: 16, encoding: 'hex' })).toMatch(/^[0-9a-f]{32}$/);
    expect(generateSecret({ bytes: 32, encoding: 'base64url' })).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(alnumLength(20)).toBe(27);
    expect(generateSecret({ bytes: 20, encoding: 'alnum' })).toMatch(/^[A-Za-z0-9]{27}$/);
    const many = new Set(Array.from({ length: 50 }, () => generateSecret({ bytes: 20, encoding: 'alnum' })));
    expect(many.size).toBe(50);
    // every letter and digit can appear (a biased or short alphabet would miss some)
    expect(new Set([...many].join('')).size).toBe(62);
  });
});

// ---------------------------------------------------------------- spec values

const VARS = dedent(`
  harbor:
    admin_password: { vault: harbor.admin_password }
  oidc:
    client_secret: { vault: oidc.client_secret, generate: { bytes: 20, encoding: base64 } }
`);

async function vaultSpec(files: Tree = {}): Promise<{ root: string; alice: Key; p: ReturnType<typeof vaultPaths> }> {
  const alice = await key();
  const root = specWithRecipients([alice], { 'inventories/t/group_vars/all.yml': VARS, ...files });
  const p = vaultPaths('inventories/t', root);
  writeFileSync(p.file, age(['-e', '-a', '-r', alice.recipient], '# ops vault\nharbor:\n  admin_password: adm-pass-1234\n'));
  process.env.BERTH_AGE_KEY = alice.key;
  return { root, alice, p };
}

async function hostVars(root: string, opts: { ci?: boolean } = {}) {
  const spec = loadSpec({ root, inventory: 'inventories/t' });
  const secrets = await openSpecVault(spec, opts);
  const play = spec.plays[0]!;
  const vars = varsFor(spec, spec.inventory.hosts.get('h1')!, play).values as { harbor: { admin_password: Secret }; oidc: { client_secret: Secret } };
  return { vars, secrets };
}

describe('{ vault: entry } values', () => {
  it('become Secrets that print as (sensitive) and are scrubbed from any text', async () => {
    const { root } = await vaultSpec();
    const { vars } = await hostVars(root);
    expect(vars.harbor.admin_password).toBeInstanceOf(Secret);
    expect(vars.harbor.admin_password.reveal()).toBe('adm-pass-1234');
    expect(JSON.stringify(vars.harbor)).toBe('{"admin_password":"(sensitive)"}');
    expect(redact('x adm-pass-1234 y')).toBe('x (sensitive) y');
  });

  it('a generated entry is made once, stored encrypted before any host is contacted, and the same on ten runs', async () => {
    const { root, alice, p } = await vaultSpec();
    const seen: string[] = [];
    const hashes: string[] = [];
    const notes: string[][] = [];
    for (let i = 0; i < 10; i++) {
      const prep = await prepare({ root, inventory: 'inventories/t' });
      notes.push(prep.notes);
      const { vars } = await hostVars(root);
      seen.push(vars.oidc.client_secret.reveal());
      hashes.push(createHash('sha256').update(readFileSync(p.file)).digest('hex'));
    }
    expect(new Set(seen).size).toBe(1);
    expect(seen[0]).toMatch(/^[A-Za-z0-9+/]{27}=$/);
    // written by the first run only
    expect(new Set(hashes).size).toBe(1);
    expect(notes[0]).toEqual(['generated vault entry oidc.client_secret (20 random bytes, base64) and stored it in inventories/t/vault.age: commit that file']);
    expect(notes.slice(1).every((n) => n.length === 0)).toBe(true);
    const plain = age(['-d', '-i', alice.file, p.file]).toString();
    expect(plain).toBe(`# ops vault\nharbor:\n  admin_password: adm-pass-1234\noidc:\n  client_secret: ${seen[0]}\n`);
    expect(notes.flat().join('\n')).not.toContain(seen[0]);
  });

  it('two hosts and two plays that name one generated entry get one value', async () => {
    const { root } = await vaultSpec({
      'inventories/t/hosts.yml': 'all:\n  children:\n    app:\n      hosts:\n        h1:\n        h2:\n',
      'playbooks/site.yml': '- name: one\n  hosts: app\n  tasks: []\n- name: two\n  hosts: h2\n  tasks: []\n',
    });
    const spec = loadSpec({ root, inventory: 'inventories/t' });
    const secrets = await openSpecVault(spec);
    const values = ['h1', 'h2'].flatMap((h) =>
      spec.plays.map((play) => ((varsFor(spec, spec.inventory.hosts.get(h)!, play).values.oidc as { client_secret: Secret }).client_secret.reveal())),
    );
    expect(new Set(values).size).toBe(1);
    expect(secrets.generated.map((g) => g.entry)).toEqual(['oidc.client_secret']);
  });

  it('validate only says it would generate; the vault file is not touched', async () => {
    const { root, p } = await vaultSpec();
    const before = readFileSync(p.file);
    const prep = await prepare({ root, inventory: 'inventories/t', persistGenerated: false });
    expect(prep.notes).toEqual([
      'vault entry oidc.client_secret is missing and would be generated (20 random bytes, base64); berth plan or berth vault generate stores it in inventories/t/vault.age',
    ]);
    expect(readFileSync(p.file).equals(before)).toBe(true);
  });

  it('in CI mode a missing generated entry is an error at the line that names it; present entries resolve', async () => {
    const { root, p } = await vaultSpec();
    const before = readFileSync(p.file);
    const err = await asyncError(() => prepare({ root, inventory: 'inventories/t', ci: true }));
    expect(err.format()).toBe(
      'inventories/t/group_vars/all.yml:4:18: vault entry oidc.client_secret is missing, and CI mode never generates secrets (run berth vault generate -i inventories/t outside CI and commit inventories/t/vault.age)',
    );
    expect(readFileSync(p.file).equals(before)).toBe(true);
    await prepare({ root, inventory: 'inventories/t' });
    const { vars } = await hostVars(root, { ci: true });
    expect(vars.oidc.client_secret.reveal()).toHaveLength(28);
  });

  it('a missing entry, a missing vault file and a bad reference are errors at their line', async () => {
    const { root, p } = await vaultSpec({ 'inventories/t/host_vars/h1.yml': 'extra: { vault: nope.missing }\n' });
    expect((await asyncError(() => prepare({ root, inventory: 'inventories/t' }))).format()).toBe(
      'inventories/t/host_vars/h1.yml:1:8: vault entry nope.missing not found in inventories/t/vault.age (add it with: berth vault edit -i inventories/t)',
    );
    writeFileSync(join(root, 'inventories/t/host_vars/h1.yml'), 'extra: { vault: "harbor..x" }\n');
    expect((await asyncError(() => prepare({ root, inventory: 'inventories/t' }))).format()).toBe(
      'inventories/t/host_vars/h1.yml:1:17: vault entry name "harbor..x" is not valid (dotted names of letters, digits, "_" and "-", e.g. harbor.admin_password)',
    );
    writeFileSync(join(root, 'inventories/t/host_vars/h1.yml'), 'extra: { vault: x.y, generate: { bytes: 0 } }\n');
    expect((await asyncError(() => prepare({ root, inventory: 'inventories/t' }))).format()).toMatch(
      /^inventories\/t\/host_vars\/h1\.yml:1:41: generate\.bytes must be a whole number from 1 to 512, got 0 /,
    );
    writeFileSync(join(root, 'inventories/t/host_vars/h1.yml'), 'extra: { vault: x.y, generate: { bytes: 8, encoding: base32 } }\n');
    expect((await asyncError(() => prepare({ root, inventory: 'inventories/t' }))).format()).toBe(
      'inventories/t/host_vars/h1.yml:1:54: generate.encoding must be one of base64, base64url, hex, alnum, got "base32"',
    );
    writeFileSync(join(root, 'inventories/t/host_vars/h1.yml'), 'extra: { vault: harbor }\n');
    expect((await asyncError(() => prepare({ root, inventory: 'inventories/t' }))).format()).toBe(
      'inventories/t/host_vars/h1.yml:1:8: vault entry harbor in inventories/t/vault.age is a mapping, not a value (name a leaf, e.g. harbor.admin_password)',
    );
    rmFile(p.file);
    writeFileSync(join(root, 'inventories/t/host_vars/h1.yml'), '{}\n');
    expect((await asyncError(() => prepare({ root, inventory: 'inventories/t' }))).format()).toBe(
      'inventories/t/group_vars/all.yml:2:19: vault entry harbor.admin_password: inventories/t/vault.age does not exist (create it with: berth vault init -i inventories/t)',
    );
  });

  it('without an identity, a spec that names the vault fails in one line; one that does not needs none', async () => {
    const { root } = await vaultSpec();
    delete process.env.BERTH_AGE_KEY;
    const err = await asyncError(() => prepare({ root, inventory: 'inventories/t' }));
    expect(err.format()).toMatch(/^inventories\/t\/vault\.age: no age identity to decrypt it \(set BERTH_AGE_KEY to your AGE-SECRET-KEY-1… key, or BERTH_AGE_KEY_FILE to a key file; default \S+\/berth\/age-key\.txt\)$/);
    writeFileSync(join(root, 'inventories/t/group_vars/all.yml'), 'harbor: { admin_password: plain-text-value }\n');
    await expect(prepare({ root, inventory: 'inventories/t' })).resolves.toMatchObject({ notes: [] });
  });

  it('a mapping with vault next to other keys is plain data', async () => {
    const { root } = await vaultSpec({ 'inventories/t/host_vars/h1.yml': 'doc: { vault: harbor.admin_password, note: kept }\n' });
    const spec = loadSpec({ root, inventory: 'inventories/t' });
    await openSpecVault(spec);
    const v = varsFor(spec, spec.inventory.hosts.get('h1')!, spec.plays[0]!).values;
    expect(v.doc).toEqual({ vault: 'harbor.admin_password', note: 'kept' });
  });

  it('the vault file keeps its mode when rewritten, and a new one is 0644 (it is encrypted)', async () => {
    const { root, p } = await vaultSpec();
    const { chmodSync } = await import('node:fs');
    chmodSync(p.file, 0o640);
    await prepare({ root, inventory: 'inventories/t' });
    expect(statSync(p.file).mode & 0o777).toBe(0o640);
    expect(existsSync(p.file)).toBe(true);
  });
});

describe('the vault as a store for controller-side material', () => {
  it('ensure makes an entry once; saveVault stores it with the run; later runs read it back', async () => {
    const alice = await key();
    const root = specWithRecipients([alice], { 'inventories/t/group_vars/all.yml': 'plain: 1\n' });
    process.env.BERTH_AGE_KEY = alice.key;
    let made = 0;
    const make = () => `-----BEGIN PRIVATE KEY-----\nkey-${++made}-${Date.now()}\n-----END PRIVATE KEY-----\n`;
    const values: string[] = [];
    for (let i = 0; i < 3; i++) {
      const spec = loadSpec({ root, inventory: 'inventories/t' });
      // the spec names no entry: `always` opens the vault anyway
      const secrets = await openSpecVault(spec, { always: true });
      const got = secrets.vault!.ensure('pki.ca_key', make);
      expect(got.created).toBe(i === 0);
      values.push(got.value);
      expect(await saveVault(secrets)).toEqual([]);
    }
    expect(made).toBe(1);
    expect(new Set(values).size).toBe(1);
    const plain = age(['-d', '-i', alice.file, vaultPaths('inventories/t', root).file]).toString();
    expect(plain).toContain(`pki:\n  ca_key: |\n    -----BEGIN PRIVATE KEY-----\n    ${values[0]!.split('\n')[1]}\n`);
    // and it is masked wherever it would be printed
    expect(redact(`x ${values[0]!.split('\n')[1]} y`)).toBe('x (sensitive) y');
  });
});

function rmFile(p: string): void {
  execFileSync('rm', ['-f', p]);
}
