// The vault: one age-encrypted YAML mapping per inventory, beside it the list
// of recipients it is encrypted to (each operator and the CI).
//
//   inventories/<env>/vault.age         ASCII-armored age file (the `age` CLI reads and writes it too)
//   inventories/<env>/vault.recipients  one age recipient (age1…) per line, `#` comments
//
// Spec values name entries by dotted path ({ vault: harbor.admin_password }).
// The same store is the interface for any controller-side material that must
// live in the repository encrypted (generated keys, certificates):
//
//   const v = await Vault.open(vaultPaths(inventoryDir, root));
//   v.get('pki.ca_key')                         // string | undefined
//   v.set('pki.ca_key', pem)                    // in memory, until save()
//   v.ensure('pki.ca_key', () => makeKey())     // { value, created }: made once, then read back
//   await v.save()                              // re-encrypted to every recipient, atomically
//
// get/set/ensure are synchronous (they run while a host's program is built);
// save() is the one asynchronous write. Every value read or set is registered
// with redact(), so it cannot leak into output even by accident.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Decrypter, Encrypter, armor, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { Document, YAMLMap, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { BerthError } from '../util/errors.js';
import { displayPath } from '../spec/yamlfile.js';
import { registerSecret } from './secret.js';

export const VAULT_FILE = 'vault.age';
export const RECIPIENTS_FILE = 'vault.recipients';

export interface VaultPaths {
  /** Absolute paths. */
  file: string;
  recipients: string;
  /** As shown to users (relative to the spec root). */
  shownFile: string;
  shownRecipients: string;
  /** The inventory, as shown (for hints: berth vault edit -i <inventory>). */
  shownInventory: string;
}

export function vaultPaths(inventoryDir: string, root: string): VaultPaths {
  const dir = resolve(root, inventoryDir);
  const file = join(dir, VAULT_FILE);
  const recipients = join(dir, RECIPIENTS_FILE);
  return { file, recipients, shownFile: displayPath(file, root), shownRecipients: displayPath(recipients, root), shownInventory: displayPath(dir, root) };
}

// ---------------------------------------------------------------- entry names

const ENTRY = /^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/;
export const ENTRY_HINT = 'dotted names of letters, digits, "_" and "-", e.g. harbor.admin_password';

export function isEntryName(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 256 && ENTRY.test(s);
}

function entryPath(entry: string): string[] {
  if (!isEntryName(entry)) throw new BerthError(`not a vault entry name: ${JSON.stringify(entry)}`, { hint: ENTRY_HINT });
  return entry.split('.');
}

// ---------------------------------------------------------------- identities

export interface Identities {
  keys: string[];
  /** Where they came from, for messages: "BERTH_AGE_KEY" or a file path. */
  from: string;
}

/** ${XDG_CONFIG_HOME:-~/.config}/berth/age-key.txt */
export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'berth', 'age-key.txt');
}

const IDENTITY = /^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/;

/** AGE-SECRET-KEY-1… lines (age-keygen's format: `#` comments, blank lines). Never prints the text. */
export function parseIdentities(text: string, from: string): string[] {
  const keys: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (!IDENTITY.test(line)) {
      throw new BerthError(`${from}${from.startsWith('BERTH_') ? '' : `:${i + 1}`}: not an age identity`, { hint: 'expected AGE-SECRET-KEY-1… lines, as age-keygen writes them' });
    }
    keys.push(line);
  }
  if (!keys.length) throw new BerthError(`${from}: holds no age identity`, { hint: 'expected an AGE-SECRET-KEY-1… line, as age-keygen writes it' });
  for (const k of keys) registerSecret(k);
  return keys;
}

const IDENTITY_HINT = (env: NodeJS.ProcessEnv) =>
  `set BERTH_AGE_KEY to your AGE-SECRET-KEY-1… key, or BERTH_AGE_KEY_FILE to a key file; default ${displayHome(defaultKeyFile(env), env)}`;

function displayHome(p: string, env: NodeJS.ProcessEnv): string {
  const home = env.HOME || homedir();
  return p.startsWith(home + '/') ? '~' + p.slice(home.length) : p;
}

/**
 * The age identities berth decrypts with: BERTH_AGE_KEY (the key itself), else
 * the file BERTH_AGE_KEY_FILE names, else the default key file if it exists.
 */
export function findIdentities(env: NodeJS.ProcessEnv = process.env): Identities | undefined {
  if (env.BERTH_AGE_KEY !== undefined && env.BERTH_AGE_KEY.trim() !== '') return { keys: parseIdentities(env.BERTH_AGE_KEY, 'BERTH_AGE_KEY'), from: 'BERTH_AGE_KEY' };
  const named = env.BERTH_AGE_KEY_FILE;
  const file = named || defaultKeyFile(env);
  if (!existsSync(file)) {
    if (named) throw new BerthError(`BERTH_AGE_KEY_FILE names ${named}, which does not exist`, { hint: 'point it at an age key file (age-keygen -o <file>)' });
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BerthError(`cannot read the age key file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return { keys: parseIdentities(text, file), from: file };
}

export function requireIdentities(what: string, env: NodeJS.ProcessEnv = process.env): Identities {
  const ids = findIdentities(env);
  if (!ids) throw new BerthError(`${what}: no age identity to decrypt it`, { hint: IDENTITY_HINT(env) });
  return ids;
}

/** A new X25519 identity (what age-keygen makes) and its recipient. */
export async function newIdentity(): Promise<{ key: string; recipient: string }> {
  const key = await generateX25519Identity();
  registerSecret(key);
  return { key, recipient: await identityToRecipient(key) };
}

export async function recipientOf(key: string): Promise<string> {
  return identityToRecipient(key);
}

// ---------------------------------------------------------------- recipients

const RECIPIENT = /^age1[0-9a-z]+$/;

/** Checks one recipient string the way the encrypter will (a typo is an error here, not at save time). */
export function checkRecipient(r: string, where: string): void {
  let ok = RECIPIENT.test(r);
  if (ok) {
    try {
      new Encrypter().addRecipient(r);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new BerthError(`${where}: not an age recipient: ${JSON.stringify(r.length > 80 ? r.slice(0, 80) + '…' : r)}`, { hint: 'expected age1… as age-keygen -y prints it' });
}

/** The recipients file: one age1… per line; blank lines and `#` lines are ignored (age -R reads it too). */
export function readRecipients(p: VaultPaths): string[] {
  if (!existsSync(p.recipients)) {
    throw new BerthError(`${p.shownRecipients} not found: the vault has no recipients to encrypt to`, { hint: `create it with: berth vault init -i ${p.shownInventory}` });
  }
  const out: string[] = [];
  for (const [i, raw] of readFileSync(p.recipients, 'utf8').split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    checkRecipient(line, `${p.shownRecipients}:${i + 1}:${raw.indexOf(line) + 1}`);
    if (!out.includes(line)) out.push(line);
  }
  if (!out.length) throw new BerthError(`${p.shownRecipients} lists no recipient`, { hint: 'add an age1… line per operator and one for the CI' });
  return out;
}

/**
 * The recipients file's text with `add` appended and `remove` taken out
 * (comments kept), and the list it then holds. Nothing is written.
 */
export function editRecipients(p: VaultPaths, add: string[], remove: string[]): { text: string; list: string[] } {
  const lines = existsSync(p.recipients) ? readFileSync(p.recipients, 'utf8').replace(/\n$/, '').split('\n') : recipientsHeader(p);
  for (const r of [...add, ...remove]) checkRecipient(r, 'recipient');
  const missing = remove.filter((r) => !lines.some((l) => l.trim() === r));
  if (missing.length) throw new BerthError(`${p.shownRecipients} does not list ${missing.join(', ')}`);
  const kept = lines.filter((l) => !remove.includes(l.trim()));
  for (const r of add) if (!kept.some((l) => l.trim() === r)) kept.push(r);
  const list = kept.map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (!list.length) throw new BerthError(`refusing to leave ${p.shownRecipients} without any recipient`, { hint: 'nobody could decrypt the vault' });
  return { text: kept.join('\n') + '\n', list };
}

function recipientsHeader(p: VaultPaths): string[] {
  return [
    `# Who can decrypt ${p.shownFile}: one age recipient (age1…) per line, each operator and the CI.`,
    `# After a change here, re-encrypt with: berth vault rekey -i ${p.shownInventory}`,
  ];
}

// ---------------------------------------------------------------- files

/** Temp file in the same directory, fsync, rename: a reader sees the old file or the new one. */
export function atomicWrite(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export async function encryptText(text: string, recipients: string[]): Promise<string> {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return armor.encode(await e.encrypt(text));
}

/** Decrypts an age file (armored or binary) with `ids`; errors name the file, never a key. */
export async function decryptFile(bytes: Buffer, shown: string, ids: Identities): Promise<string> {
  let body: Uint8Array = bytes;
  const head = bytes.subarray(0, 64).toString('latin1').trimStart();
  if (head.startsWith('-----BEGIN AGE ENCRYPTED FILE-----')) {
    try {
      body = armor.decode(bytes.toString('latin1'));
    } catch {
      throw new BerthError(`${shown}: damaged age armor`, { hint: 'the file must be as age -a or berth wrote it' });
    }
  } else if (!head.startsWith('age-encryption.org/')) {
    throw new BerthError(`${shown}: not an age-encrypted file`, { hint: 'encrypt a plain YAML file into it with: berth vault encrypt' });
  }
  const d = new Decrypter();
  for (const k of ids.keys) d.addIdentity(k);
  try {
    return await d.decrypt(body, 'text');
  } catch (e) {
    const msg = (e as Error)?.message ?? '';
    if (/no identity matched/i.test(msg)) {
      throw new BerthError(`${shown}: the age identity from ${ids.from} is not one it was encrypted to`, {
        hint: 'someone who can decrypt it adds your recipient with: berth vault rekey --add-recipient age1…',
      });
    }
    throw new BerthError(`${shown}: cannot decrypt (${msg.replace(/\s+/g, ' ').slice(0, 120) || 'damaged file'})`);
  }
}

// ---------------------------------------------------------------- content

/** Parses the vault's plain YAML. Errors give a position and never the text around it. */
export function parseVaultText(text: string, shown: string): Document {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, strict: true });
  const err = doc.errors[0];
  if (err) {
    const at = lineCol(text, err.pos[0]);
    throw new BerthError(`${shown}: its content is not valid YAML (${err.code} at line ${at.line}, column ${at.col})`, { hint: 'fix it with: berth vault edit' });
  }
  const c = doc.contents;
  if (c !== null && !isMap(c) && !(isScalar(c) && (c.value === null || c.value === undefined))) {
    throw new BerthError(`${shown}: its content must be a YAML mapping of entries, not a ${isSeq(c) ? 'list' : 'single value'}`);
  }
  if (isScalar(c)) doc.contents = null;
  if (isMap(c) && c.items.length === 0) c.flow = false;
  return doc;
}

function lineCol(text: string, off: number): { line: number; col: number } {
  const before = text.slice(0, off);
  const line = before.split('\n').length;
  return { line, col: off - before.lastIndexOf('\n') };
}

/** Every leaf value of the vault, as strings (for redaction). */
function leaves(v: unknown, out: string[] = []): string[] {
  if (v === null || v === undefined) return out;
  if (Array.isArray(v)) v.forEach((x) => leaves(x, out));
  else if (typeof v === 'object') Object.values(v).forEach((x) => leaves(x, out));
  else out.push(String(v));
  return out;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The plain text of a new vault. */
export function newVaultText(p: VaultPaths): string {
  return `# berth vault of ${p.shownInventory}: a YAML mapping of secrets; spec values name them as { vault: a.b }\n`;
}

export interface VaultOpenOptions {
  /** Supplies the identities when the file exists (default: findIdentities, required). */
  identities?: () => Identities;
}

export class Vault {
  readonly paths: VaultPaths;
  /** False while the vault file does not exist yet (save() creates it). */
  exists: boolean;
  private doc: Document;
  /** sha256 of the file as read (undefined: there was none), to notice a concurrent writer. */
  private readHash: string | undefined;
  private readonly changedEntries: string[] = [];

  private constructor(paths: VaultPaths, doc: Document, readHash: string | undefined) {
    this.paths = paths;
    this.doc = doc;
    this.readHash = readHash;
    this.exists = readHash !== undefined;
    for (const s of leaves(doc.toJS())) registerSecret(s);
  }

  /** Reads and decrypts the vault (an empty one when its file does not exist yet). */
  static async open(paths: VaultPaths, opts: VaultOpenOptions = {}): Promise<Vault> {
    if (!existsSync(paths.file)) return new Vault(paths, parseVaultText(newVaultText(paths), paths.shownFile), undefined);
    if (!statSync(paths.file).isFile()) throw new BerthError(`${paths.shownFile} is not a file`);
    const bytes = readFileSync(paths.file);
    const ids = (opts.identities ?? (() => requireIdentities(paths.shownFile)))();
    const text = await decryptFile(bytes, paths.shownFile, ids);
    return new Vault(paths, parseVaultText(text, paths.shownFile), sha256(bytes));
  }

  /**
   * A vault whose whole content is `text` (encrypt), not read from the file:
   * save() replaces the file (or creates it).
   */
  static fromText(paths: VaultPaths, text: string): Vault {
    const v = new Vault(paths, parseVaultText(text, paths.shownFile), existsSync(paths.file) ? sha256(readFileSync(paths.file)) : undefined);
    v.exists = existsSync(paths.file);
    v.changedEntries.push('*');
    return v;
  }

  /** The entry's value (numbers and booleans as text), or undefined when it is missing or empty. */
  get(entry: string): string | undefined {
    return this.getAt(entryPath(entry));
  }

  /**
   * The value at a path of mapping keys, which may be any strings (berth's
   * own material, e.g. ["berth", "pki", "berth-ca", "ca.key"]); spec values
   * name entries with get().
   */
  getAt(path: string[]): string | undefined {
    const entry = path.join('.');
    const node = this.doc.getIn(path, true) as Node | string | number | boolean | null | undefined;
    if (node === undefined || node === null) return undefined;
    if (typeof node !== 'object') return this.seen(String(node));
    if (!isScalar(node)) throw new BerthError(`vault entry ${entry} in ${this.paths.shownFile} is a ${isSeq(node) ? 'list' : 'mapping'}, not a value`, { hint: 'name a leaf, e.g. harbor.admin_password' });
    if (node.value === null || node.value === undefined) return undefined;
    return this.seen(String(node.value));
  }

  private seen(v: string): string {
    registerSecret(v);
    return v;
  }

  has(entry: string): boolean {
    return this.get(entry) !== undefined;
  }

  /** Sets an entry in memory (comments and order elsewhere stay); save() writes it. */
  set(entry: string, value: string): void {
    this.setAt(entryPath(entry), value);
  }

  /** Sets the value at a path of mapping keys (see getAt). */
  setAt(path: string[], value: string): void {
    const entry = path.join('.');
    registerSecret(value);
    for (let i = 1; i < path.length; i++) {
      const n = this.doc.getIn(path.slice(0, i), true);
      if (n !== undefined && !isMap(n)) throw new BerthError(`vault entry ${entry}: ${path.slice(0, i).join('.')} in ${this.paths.shownFile} is a value, not a mapping`);
    }
    if (this.doc.contents === null) this.doc.contents = new YAMLMap(this.doc.schema) as never;
    // a multi-line value (a PEM key) as a literal block, readable in berth vault view
    const node = this.doc.createNode(value);
    if (value.includes('\n') && isScalar(node)) node.type = 'BLOCK_LITERAL';
    this.doc.setIn(path, node);
    if (!this.changedEntries.includes(entry)) this.changedEntries.push(entry);
  }

  /** The entry, made by `make` and set when it is missing: made once, read back ever after. */
  ensure(entry: string, make: () => string): { value: string; created: boolean } {
    const cur = this.get(entry);
    if (cur !== undefined) return { value: cur, created: false };
    const value = make();
    this.set(entry, value);
    return { value, created: true };
  }

  /** Entries set since the vault was opened (or last saved). */
  get changed(): readonly string[] {
    return this.changedEntries;
  }

  /** The plain YAML text (for view/decrypt/edit). */
  text(): string {
    // a vault with only comments has no content: print just them (not "null")
    if (this.doc.contents === null) return this.doc.commentBefore ? this.doc.commentBefore.replace(/^(?=.)/gm, '#') + '\n' : '';
    return this.doc.toString();
  }

  /** Replaces the whole content (encrypt, edit). */
  replace(text: string): void {
    this.doc = parseVaultText(text, this.paths.shownFile);
    for (const s of leaves(this.doc.toJS())) registerSecret(s);
    this.changedEntries.push('*');
  }

  /**
   * Encrypts the content to every recipient in the recipients file and writes
   * it atomically. Refuses when the file changed on disk since it was read
   * (another berth run, a git pull): nothing is lost, the caller runs again.
   */
  async save(recipients: string[] = readRecipients(this.paths)): Promise<void> {
    const now = existsSync(this.paths.file) ? sha256(readFileSync(this.paths.file)) : undefined;
    if (now !== this.readHash) {
      throw new BerthError(`${this.paths.shownFile} changed on disk while berth was using it; nothing was written`, { hint: 'run the command again' });
    }
    const armored = await encryptText(this.text(), recipients);
    const mode = existsSync(this.paths.file) ? statSync(this.paths.file).mode & 0o777 : 0o644;
    atomicWrite(this.paths.file, armored, mode);
    this.readHash = sha256(armored);
    this.exists = true;
    this.changedEntries.length = 0;
  }
}
