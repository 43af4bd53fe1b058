// berth vault init|view|edit|encrypt|decrypt|rekey|generate, run in process
// through the CLI's main() (stdout/stderr captured), with Debian's `age` CLI
// as the independent check of what the files hold.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { ciMode } from '../../src/cli/vault.js';
import { newIdentity } from '../../src/secrets/vault.js';
import { shq } from '../../src/util/shell.js';
import { dedent, minimalTree, tempDir, writeTree } from './helpers.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function berth(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const age = (args: string[], input?: string) => execFileSync('/usr/bin/age', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();

async function keyFile(): Promise<{ key: string; recipient: string; file: string }> {
  const id = await newIdentity();
  const file = join(tempDir('berth-key-'), 'key.txt');
  writeFileSync(file, `${id.key}\n`, { mode: 0o600 });
  return { ...id, file };
}

const ENV_KEYS = ['BERTH_AGE_KEY', 'BERTH_AGE_KEY_FILE', 'XDG_CONFIG_HOME', 'EDITOR', 'VISUAL', 'BERTH_INVENTORY', 'CI', 'BERTH_CI'] as const;
let savedEnv: Record<string, string | undefined> = {};
let root = '';
beforeEach(() => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  process.env.XDG_CONFIG_HOME = tempDir('berth-xdg-');
  root = writeTree(minimalTree());
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

const inv = () => ['-C', root, '-i', 'inventories/t'];
const vaultFile = () => join(root, 'inventories/t/vault.age');

describe('berth vault init', () => {
  it('encrypts an empty vault to the operator`s own key and the recipients given (e.g. the CI`s)', async () => {
    const [op, ci] = [await keyFile(), await keyFile()];
    process.env.BERTH_AGE_KEY = op.key;
    const r = await berth('vault', 'init', ...inv(), '--recipient', ci.recipient);
    expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe('created inventories/t/vault.age, encrypted to 2 recipient(s) listed in inventories/t/vault.recipients\n');
    const recipients = readFileSync(join(root, 'inventories/t/vault.recipients'), 'utf8');
    expect(recipients.split('\n').filter((l) => l.startsWith('age1'))).toEqual([ci.recipient, op.recipient]);
    for (const k of [op, ci]) expect(age(['-d', '-i', k.file, vaultFile()])).toBe('# berth vault of inventories/t: a YAML mapping of secrets; spec values name them as { vault: a.b }\n');
    const again = await berth('vault', 'init', ...inv());
    expect(again).toMatchObject({ code: 1, stdout: '' });
    expect(again.stderr).toBe('error: inventories/t/vault.age exists already (change it with berth vault edit, or its recipients with berth vault rekey)\n');
  });

  it('--generate-key writes a 0600 identity that age reads, and refuses to overwrite it', async () => {
    const file = join(tempDir(), 'keys', 'ops.txt');
    process.env.BERTH_AGE_KEY_FILE = file;
    const r = await berth('vault', 'init', ...inv(), '--generate-key');
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const recipient = /its recipient: (age1\S+)/.exec(r.stdout)![1]!;
    expect(execFileSync('age-keygen', ['-y', file]).toString().trim()).toBe(recipient);
    expect(r.stdout).not.toMatch(/AGE-SECRET-KEY/);
    expect(age(['-d', '-i', file, vaultFile()])).toContain('# berth vault of inventories/t');
    const other = writeTree(minimalTree());
    const again = await berth('vault', 'init', '-C', other, '-i', 'inventories/t', '--generate-key');
    expect(again.stderr).toBe(`error: ${file} exists already; refusing to overwrite an age identity (use it (drop --generate-key), or set BERTH_AGE_KEY_FILE to another path)\n`);
  });

  it('without any recipient it says how to get one', async () => {
    const r = await berth('vault', 'init', ...inv());
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: no recipient to encrypt the vault to (pass --recipient age1…, set BERTH_AGE_KEY (or BERTH_AGE_KEY_FILE), or pass --generate-key)\n' });
  });
});

describe('berth vault view, decrypt, encrypt', () => {
  it('round-trip a plain YAML file; view prints one entry; decrypt -o writes 0600', async () => {
    const op = await keyFile();
    process.env.BERTH_AGE_KEY = op.key;
    expect((await berth('vault', 'init', ...inv())).code).toBe(0);
    const plain = join(tempDir(), 'plain.yml');
    writeFileSync(plain, dedent(`
      # imported
      harbor:
        admin_password: "imp0rted: yes"
    `));
    expect((await berth('vault', 'encrypt', ...inv(), plain)).stderr).toBe('error: inventories/t/vault.age exists already (pass --force to replace its whole content, or use berth vault edit)\n');
    const enc = await berth('vault', 'encrypt', ...inv(), plain, '--force');
    expect(enc).toEqual({ code: 0, stderr: '', stdout: `encrypted ${plain} into inventories/t/vault.age for 1 recipient(s)\n` });
    expect(age(['-d', '-i', op.file, vaultFile()])).toBe(readFileSync(plain, 'utf8'));
    expect(await berth('vault', 'view', ...inv(), 'harbor.admin_password')).toEqual({ code: 0, stderr: '', stdout: 'imp0rted: yes\n' });
    expect((await berth('vault', 'view', ...inv())).stdout).toBe(readFileSync(plain, 'utf8'));
    expect((await berth('vault', 'view', ...inv(), 'harbor.nope')).stderr).toBe('error: vault entry harbor.nope not found in inventories/t/vault.age\n');
    const out = join(tempDir(), 'out.yml');
    const dec = await berth('vault', 'decrypt', ...inv(), '-o', out);
    expect(dec.stdout).toBe(`wrote the plain vault to ${out} (mode 0600; do not commit it)\n`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(plain, 'utf8'));
  });

  it('a missing identity is one clear line and exit 1', async () => {
    const op = await keyFile();
    process.env.BERTH_AGE_KEY = op.key;
    await berth('vault', 'init', ...inv());
    delete process.env.BERTH_AGE_KEY;
    const r = await berth('vault', 'view', ...inv());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `error: inventories/t/vault.age: no age identity to decrypt it (set BERTH_AGE_KEY to your AGE-SECRET-KEY-1… key, or BERTH_AGE_KEY_FILE to a key file; default ${process.env.XDG_CONFIG_HOME}/berth/age-key.txt)\n`,
    );
  });
});

describe('berth vault edit', () => {
  /** An EDITOR script: records the temp file's mode and path, then runs `sed` on it. */
  function editor(sedScript: string): { log: string } {
    const dir = tempDir('berth-editor-');
    const log = join(dir, 'log');
    const script = join(dir, 'ed.sh');
    writeFileSync(script, `#!/bin/sh\nstat -c '%a %n' "$1" > ${log}\nsed -i ${shq(sedScript)} "$1"\n`);
    chmodSync(script, 0o755);
    process.env.EDITOR = script;
    return { log };
  }

  it('edits a 0600 temp file, re-encrypts, and removes the temp file', async () => {
    const op = await keyFile();
    process.env.BERTH_AGE_KEY = op.key;
    await berth('vault', 'init', ...inv());
    const { log } = editor('$a harbor:\\n  admin_password: edited-in-editor');
    const r = await berth('vault', 'edit', ...inv());
    expect(r).toEqual({ code: 0, stderr: '', stdout: 'saved inventories/t/vault.age, encrypted to 1 recipient(s)\n' });
    const [mode, tmp] = readFileSync(log, 'utf8').trim().split(' ');
    expect(mode).toBe('600');
    expect(existsSync(tmp!)).toBe(false);
    expect(age(['-d', '-i', op.file, vaultFile()])).toContain('harbor:\n  admin_password: edited-in-editor\n');
  });

  it('an unchanged file saves nothing; invalid YAML saves nothing and says so', async () => {
    const op = await keyFile();
    process.env.BERTH_AGE_KEY = op.key;
    await berth('vault', 'init', ...inv());
    const before = readFileSync(vaultFile());
    editor('s/^NOTHING$//');
    expect((await berth('vault', 'edit', ...inv())).stdout).toBe('no changes; inventories/t/vault.age is as it was\n');
    editor('$a a: [unclosed');
    const bad = await berth('vault', 'edit', ...inv());
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: the edited vault: its content is not valid YAML \(\w+ at line 3, column \d+\); nothing was saved \(run berth vault edit again\)\n$/);
    expect(readFileSync(vaultFile()).equals(before)).toBe(true);
    delete process.env.EDITOR;
    expect((await berth('vault', 'edit', ...inv())).stderr).toBe('error: no editor: set EDITOR (or VISUAL) (e.g. EDITOR=vi berth vault edit)\n');
  });
});

describe('berth vault rekey', () => {
  it('adds a recipient who can then decrypt; a removed one no longer can', async () => {
    const [op, ci, bob] = [await keyFile(), await keyFile(), await keyFile()];
    process.env.BERTH_AGE_KEY = op.key;
    await berth('vault', 'init', ...inv(), '-r', ci.recipient);
    const plainBefore = age(['-d', '-i', op.file, vaultFile()]);
    const r = await berth('vault', 'rekey', ...inv(), '--add-recipient', bob.recipient, '--remove-recipient', ci.recipient);
    expect(r.stdout).toBe(
      're-encrypted inventories/t/vault.age to 2 recipient(s)\nnote: a removed recipient can still decrypt the copies in git history; rotate the secrets it could read\n',
    );
    expect(age(['-d', '-i', bob.file, vaultFile()])).toBe(plainBefore);
    expect(() => age(['-d', '-i', ci.file, vaultFile()])).toThrow(/no identity matched any of the recipients/);
    expect(readFileSync(join(root, 'inventories/t/vault.recipients'), 'utf8')).not.toContain(ci.recipient);
  });
});

describe('berth vault generate and plan --ci', () => {
  it('generate stores the spec`s generated entries once; --ci refuses', async () => {
    const op = await keyFile();
    process.env.BERTH_AGE_KEY = op.key;
    writeTree({ 'inventories/t/group_vars/all.yml': 'app: { token: { vault: app.token, generate: { bytes: 16, encoding: hex } } }\n' }, root);
    await berth('vault', 'init', ...inv());
    const ci = await berth('vault', 'generate', ...inv(), '--ci');
    expect(ci.code).toBe(1);
    expect(ci.stderr).toBe(
      'error: inventories/t/group_vars/all.yml:1:15: vault entry app.token is missing, and CI mode never generates secrets (run berth vault generate -i inventories/t outside CI and commit inventories/t/vault.age)\n',
    );
    const g = await berth('vault', 'generate', ...inv());
    expect(g.stdout).toBe('generated vault entry app.token (16 random bytes, hex) and stored it in inventories/t/vault.age: commit that file\n');
    const value = (await berth('vault', 'view', ...inv(), 'app.token')).stdout.trim();
    expect(value).toMatch(/^[0-9a-f]{32}$/);
    expect((await berth('vault', 'generate', ...inv())).stdout).toBe('nothing to generate: every generated vault entry the spec names exists\n');
    expect((await berth('vault', 'view', ...inv(), 'app.token')).stdout.trim()).toBe(value);
    // validate, in CI mode, resolves it now
    const v = await berth('validate', ...inv(), '--ci');
    expect(v).toEqual({ code: 0, stderr: '', stdout: 'ok: 1 host(s), 1 play(s), 0 task(s) checked\n' });
  });
});

describe('CI mode', () => {
  it('is --ci, else BERTH_CI when set, else CI', () => {
    expect(ciMode(undefined, {})).toBe(false);
    expect(ciMode(true, {})).toBe(true);
    expect(ciMode(undefined, { CI: 'true' })).toBe(true);
    expect(ciMode(undefined, { CI: '1' })).toBe(true);
    expect(ciMode(undefined, { CI: 'false' })).toBe(false);
    expect(ciMode(undefined, { CI: '' })).toBe(false);
    expect(ciMode(undefined, { CI: 'true', BERTH_CI: 'false' })).toBe(false);
    expect(ciMode(undefined, { CI: 'true', BERTH_CI: '0' })).toBe(false);
    expect(ciMode(undefined, { BERTH_CI: 'true' })).toBe(true);
    expect(ciMode(true, { BERTH_CI: 'false' })).toBe(true);
  });
});
