// berth vault init|view|edit|encrypt|decrypt|rekey|generate: the inventory's
// age-encrypted secrets (see src/secrets/vault.ts for the files).

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import type { Command } from 'commander';
import { BerthError } from '../util/errors.js';
import {
  Vault,
  atomicWrite,
  checkRecipient,
  defaultKeyFile,
  editRecipients,
  encryptText,
  findIdentities,
  newIdentity,
  newVaultText,
  parseVaultText,
  readRecipients,
  recipientOf,
  vaultPaths,
  type VaultPaths,
} from '../secrets/vault.js';
import { prepare } from '../engine.js';

interface VaultFlags {
  dir: string;
  inventory?: string;
}

type Out = (s: string) => void;

const collect = (v: string, prev: string[]) => [...prev, v];

function pathsOf(f: VaultFlags): VaultPaths {
  const inventory = f.inventory ?? process.env.BERTH_INVENTORY;
  if (!inventory) throw new BerthError('no inventory given', { hint: 'pass -i inventories/<env> or set BERTH_INVENTORY' });
  const root = resolve(f.dir);
  const dir = resolve(root, inventory);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BerthError(`inventory directory not found: ${inventory}`);
  return vaultPaths(dir, root);
}

function mustExist(p: VaultPaths): void {
  if (!existsSync(p.file)) throw new BerthError(`${p.shownFile} does not exist`, { hint: `create it with: berth vault init -i ${p.shownInventory}` });
}

function withInventory(cmd: Command): Command {
  return cmd.option('-C, --dir <path>', 'the spec repository', '.').option('-i, --inventory <dir>', 'inventory directory (default: $BERTH_INVENTORY)');
}

/** Writes a new identity file the way age-keygen does, mode 0600; refuses to overwrite one. */
function writeKeyFile(path: string, key: string, recipient: string): void {
  if (existsSync(path)) throw new BerthError(`${path} exists already; refusing to overwrite an age identity`, { hint: 'use it (drop --generate-key), or set BERTH_AGE_KEY_FILE to another path' });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${key}\n`, { mode: 0o600, flag: 'wx' });
}

/** Reads plain text from a file, or stdin for "-". */
async function readInput(file: string): Promise<string> {
  if (file !== '-') {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new BerthError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (process.stdin.isTTY) throw new BerthError('no input: pass a plain YAML file, or pipe one into "-"');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Overwrites a plaintext temp file before removing it (best effort against recovery). */
function shred(path: string): void {
  try {
    const n = statSync(path).size;
    writeFileSync(path, Buffer.alloc(n));
  } catch {
    // already gone
  }
  rmSync(path, { force: true });
}

export function registerVault(program: Command, out: Out): void {
  const vault = program
    .command('vault')
    .description("the inventory's age-encrypted secrets: <inventory>/vault.age, encrypted to every recipient in <inventory>/vault.recipients");

  withInventory(vault.command('init').description('create the vault and its recipients file'))
    .option('-r, --recipient <age1…>', 'an age recipient to encrypt to (repeatable; each operator and the CI)', collect, [] as string[])
    .option('--generate-key', 'make a new age identity in $BERTH_AGE_KEY_FILE (default ~/.config/berth/age-key.txt) and add its recipient')
    .action(async (f: VaultFlags & { recipient: string[]; generateKey?: boolean }) => {
      const p = pathsOf(f);
      if (existsSync(p.file)) throw new BerthError(`${p.shownFile} exists already`, { hint: `change it with berth vault edit, or its recipients with berth vault rekey` });
      const add: string[] = [];
      for (const r of f.recipient) {
        checkRecipient(r, '--recipient');
        add.push(r);
      }
      if (f.generateKey) {
        const file = process.env.BERTH_AGE_KEY_FILE || defaultKeyFile();
        const id = await newIdentity();
        writeKeyFile(file, id.key, id.recipient);
        add.push(id.recipient);
        out(`wrote a new age identity to ${file} (mode 0600; back it up: without an identity the vault cannot be decrypted)\nits recipient: ${id.recipient}\n`);
      } else {
        const ids = findIdentities();
        for (const k of ids?.keys ?? []) add.push(await recipientOf(k));
      }
      if (!add.length && !existsSync(p.recipients)) {
        throw new BerthError('no recipient to encrypt the vault to', { hint: 'pass --recipient age1…, set BERTH_AGE_KEY (or BERTH_AGE_KEY_FILE), or pass --generate-key' });
      }
      const { text, list } = editRecipients(p, add, []);
      atomicWrite(p.recipients, text, 0o644);
      atomicWrite(p.file, await encryptText(newVaultText(p), list), 0o644);
      out(`created ${p.shownFile}, encrypted to ${list.length} recipient(s) listed in ${p.shownRecipients}\n`);
    });

  withInventory(vault.command('view').description('print the plain vault, or one entry\'s value').argument('[entry]', 'a dotted entry name, e.g. harbor.admin_password')).action(
    async (entry: string | undefined, f: VaultFlags) => {
      const p = pathsOf(f);
      mustExist(p);
      const v = await Vault.open(p);
      if (entry === undefined) return out(v.text());
      const value = v.get(entry);
      if (value === undefined) throw new BerthError(`vault entry ${entry} not found in ${p.shownFile}`);
      out(value.endsWith('\n') ? value : value + '\n');
    },
  );

  withInventory(vault.command('edit').description('edit the plain vault in $VISUAL or $EDITOR (a 0600 temp file), then re-encrypt it')).action(async (f: VaultFlags) => {
    const p = pathsOf(f);
    mustExist(p);
    const editor = process.env.VISUAL || process.env.EDITOR;
    if (!editor) throw new BerthError('no editor: set EDITOR (or VISUAL)', { hint: 'e.g. EDITOR=vi berth vault edit' });
    const v = await Vault.open(p);
    const before = v.text();
    const base = process.env.XDG_RUNTIME_DIR && existsSync(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : tmpdir();
    const dir = mkdtempSync(join(base, 'berth-vault-'));
    const file = join(dir, 'vault.yml');
    try {
      writeFileSync(file, before, { mode: 0o600 });
      const r = await execa('sh', ['-c', `${editor} "$1"`, 'berth-vault-edit', file], { stdio: 'inherit', reject: false });
      if (r.exitCode !== 0) throw new BerthError(`the editor (${editor}) exited with ${r.exitCode ?? r.signal}; nothing was saved`);
      const after = readFileSync(file, 'utf8');
      if (after === before) return out(`no changes; ${p.shownFile} is as it was\n`);
      try {
        parseVaultText(after, 'the edited vault');
      } catch (e) {
        throw new BerthError(`${(e as BerthError).message}; nothing was saved`, { hint: 'run berth vault edit again' });
      }
      v.replace(after);
      await v.save();
      out(`saved ${p.shownFile}, encrypted to ${readRecipients(p).length} recipient(s)\n`);
    } finally {
      shred(file);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  withInventory(vault.command('encrypt').description('encrypt a plain YAML file (or stdin) into the vault').argument('[file]', 'plain YAML mapping; "-" reads stdin', '-'))
    .option('--force', 'replace the content of an existing vault')
    .action(async (file: string, f: VaultFlags & { force?: boolean }) => {
      const p = pathsOf(f);
      if (existsSync(p.file) && !f.force) throw new BerthError(`${p.shownFile} exists already`, { hint: 'pass --force to replace its whole content, or use berth vault edit' });
      const text = await readInput(file);
      const v = Vault.fromText(p, text);
      await v.save();
      out(`encrypted ${file === '-' ? 'stdin' : file} into ${p.shownFile} for ${readRecipients(p).length} recipient(s)\n`);
    });

  withInventory(vault.command('decrypt').description('print the plain vault (or write it to a 0600 file)'))
    .option('-o, --out <file>', 'write it to this file (mode 0600; never commit it)')
    .action(async (f: VaultFlags & { out?: string }) => {
      const p = pathsOf(f);
      mustExist(p);
      const v = await Vault.open(p);
      if (!f.out) return out(v.text());
      if (existsSync(f.out)) throw new BerthError(`${f.out} exists already; refusing to overwrite it`);
      writeFileSync(f.out, v.text(), { mode: 0o600, flag: 'wx' });
      out(`wrote the plain vault to ${f.out} (mode 0600; do not commit it)\n`);
    });

  withInventory(vault.command('rekey').description('re-encrypt the vault to the recipients file, after adding or removing recipients'))
    .option('--add-recipient <age1…>', 'add a recipient (repeatable)', collect, [] as string[])
    .option('--remove-recipient <age1…>', 'remove a recipient (repeatable)', collect, [] as string[])
    .action(async (f: VaultFlags & { addRecipient: string[]; removeRecipient: string[] }) => {
      const p = pathsOf(f);
      mustExist(p);
      const v = await Vault.open(p);
      const { text, list } = editRecipients(p, f.addRecipient, f.removeRecipient);
      await v.save(list);
      atomicWrite(p.recipients, text, existsSync(p.recipients) ? statSync(p.recipients).mode & 0o777 : 0o644);
      out(`re-encrypted ${p.shownFile} to ${list.length} recipient(s)\n`);
      if (f.removeRecipient.length) out('note: a removed recipient can still decrypt the copies in git history; rotate the secrets it could read\n');
    });

  withInventory(vault.command('generate').description('store the generated secrets the spec names and the vault lacks (no host is contacted)'))
    .option('-p, --playbook <file>', 'playbook file', 'playbooks/site.yml')
    .option('-e, --extra-vars <key=value|@file>', 'extra variables', collect, [] as string[])
    .option('--ci', 'CI mode (refuses, as CI never generates secrets)')
    .action(async (f: VaultFlags & { playbook: string; extraVars: string[]; ci?: boolean }) => {
      const inventory = f.inventory ?? process.env.BERTH_INVENTORY;
      if (!inventory) throw new BerthError('no inventory given', { hint: 'pass -i inventories/<env> or set BERTH_INVENTORY' });
      const prep = await prepare({ root: resolve(f.dir), inventory, playbook: f.playbook, extraVars: f.extraVars, ci: ciMode(f.ci) });
      out(prep.notes.length ? prep.notes.map((n) => n + '\n').join('') : 'nothing to generate: every generated vault entry the spec names exists\n');
    });
}

const OFF = new Set(['', '0', 'false', 'no', 'off']);

/**
 * CI mode: --ci, else BERTH_CI when it is set (true/1 on, false/0 off), else
 * CI (set to anything but false/0 by every CI system).
 */
export function ciMode(flag: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (flag) return true;
  if (env.BERTH_CI !== undefined) return !OFF.has(env.BERTH_CI.trim().toLowerCase());
  return env.CI !== undefined && !OFF.has(env.CI.trim().toLowerCase());
}
