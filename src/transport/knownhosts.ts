// OpenSSH known_hosts files: reading (host-key verification) and appending
// (accept-new). Follows sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT":
//   [@marker] patterns keytype base64key [comment]
// patterns: comma list of host names with `*`/`?` wildcards, `!pat` negation,
// `[host]:port` for ports other than 22, or one hashed `|1|salt|hmac` entry.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { BerthError } from '../util/errors.js';

export type HostKeyStatus = 'ok' | 'unknown' | 'mismatch' | 'revoked';

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** The raw host field (patterns or a hashed entry). */
  hosts: string;
  keyType: string;
  key: string;
}

/** The detailed answer of `lookupHostKey`: the status and the line that decided it. */
export interface HostKeyLookup {
  status: HostKeyStatus;
  /** 1-based line in the file that decided `status` (absent for 'unknown'). */
  line?: number;
}

/** The name a host has in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** Parses known_hosts text; comments, blank and malformed lines are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/[ \t]+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue; // unknown marker: OpenSSH ignores the line
    }
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) continue;
    entries.push({ line: i + 1, marker, hosts, keyType, key });
  }
  return entries;
}

/** Glob match with `*` (any run) and `?` (one char), the whole string, case-insensitive. */
export function matchPattern(name: string, pattern: string): boolean {
  const s = name.toLowerCase();
  const p = pattern.toLowerCase();
  // iterative wildcard match with backtracking on the last `*` (linear-ish, no regex)
  let si = 0;
  let pi = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    const pc = p[pi];
    if (pc === '?' || (pc !== undefined && pc !== '*' && pc === s[si])) {
      si++;
      pi++;
    } else if (pc === '*') {
      star = pi++;
      mark = si;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

function matchHashed(name: string, entry: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(key=salt, name))
  const parts = entry.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const want = Buffer.from(parts[3] ?? '', 'base64');
  if (salt.length === 0 || want.length !== 20) return false;
  const got = createHmac('sha1', salt).update(name).digest();
  return timingSafeEqual(got, want);
}

/**
 * True when `name` (already `hostKeyName`-formatted) matches a host field:
 * any negated pattern that matches rejects the line; otherwise one positive
 * match is enough.
 */
export function matchHostField(name: string, field: string): boolean {
  if (field.startsWith('|')) return matchHashed(name, field);
  let positive = false;
  for (const pat of field.split(',')) {
    if (pat === '') continue;
    if (pat.startsWith('!')) {
      if (matchPattern(name, pat.slice(1))) return false;
    } else if (!positive && matchPattern(name, pat)) {
      positive = true;
    }
  }
  return positive;
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BerthError(`cannot read known_hosts file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

const RANK: Record<HostKeyStatus, number> = { unknown: 0, ok: 1, mismatch: 2, revoked: 3 };

/**
 * Looks a host key up. `hosts` may name the host several ways (say the
 * address and the inventory name): a revoked key wins over everything, a
 * mismatch under any name wins over a match under another (refuse when in
 * doubt), then 'ok', then 'unknown'.
 */
export function lookupHostKey(
  file: string,
  hosts: string | string[],
  port: number,
  keyType: string,
  keyBase64: string,
): HostKeyLookup {
  const text = readIfExists(file);
  if (text === undefined) return { status: 'unknown' };
  const names = [...new Set((Array.isArray(hosts) ? hosts : [hosts]).map((h) => hostKeyName(h, port)))];
  const wantKey = normaliseKey(keyBase64);
  let best: HostKeyLookup = { status: 'unknown' };
  for (const e of parseKnownHosts(text)) {
    if (e.marker === 'cert-authority') continue;
    if (!names.some((n) => matchHostField(n, e.hosts))) continue;
    const sameKey = e.keyType === keyType && normaliseKey(e.key) === wantKey;
    let status: HostKeyStatus;
    if (e.marker === 'revoked') {
      if (!sameKey) continue;
      status = 'revoked';
    } else if (sameKey) {
      status = 'ok';
    } else if (e.keyType === keyType) {
      status = 'mismatch';
    } else {
      continue; // a key of another type says nothing about this one
    }
    if (RANK[status] > RANK[best.status]) best = { status, line: e.line };
  }
  return best;
}

/** 'ok' | 'unknown' | 'mismatch' | 'revoked' for a host's key (see `lookupHostKey`). */
export function checkHostKey(
  file: string,
  host: string | string[],
  port: number,
  keyType: string,
  keyBase64: string,
): HostKeyStatus {
  return lookupHostKey(file, host, port, keyType, keyBase64).status;
}

/** Key types the file holds (non-revoked) for the host, in file order: negotiate these first. */
export function knownKeyTypes(file: string, hosts: string | string[], port: number): string[] {
  const text = readIfExists(file);
  if (text === undefined) return [];
  const names = [...new Set((Array.isArray(hosts) ? hosts : [hosts]).map((h) => hostKeyName(h, port)))];
  const types: string[] = [];
  for (const e of parseKnownHosts(text)) {
    if (e.marker) continue;
    if (!names.some((n) => matchHostField(n, e.hosts))) continue;
    if (!types.includes(e.keyType)) types.push(e.keyType);
  }
  return types;
}

/**
 * Appends `host keyType key` (as `[host]:port` off port 22). Creates the file
 * (mode 0600) and its directory when missing. The write is atomic: the new
 * content goes to a temp file in the same directory which is renamed over the
 * old one, keeping its mode. Synchronous, so concurrent appends within one
 * process cannot lose each other's lines.
 */
export function appendHostKey(file: string, host: string, port: number, keyType: string, keyBase64: string): void {
  if (!/^[A-Za-z0-9@._+-]+$/.test(keyType)) throw new BerthError(`invalid host key type ${JSON.stringify(keyType)}`);
  if (!/^[A-Za-z0-9+/]+=*$/.test(keyBase64)) throw new BerthError(`invalid host key for ${host}: not base64`);
  if (!host || /[\s,]/.test(host)) throw new BerthError(`invalid host name for known_hosts: ${JSON.stringify(host)}`);
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const old = readIfExists(file) ?? '';
  let mode = 0o600;
  try {
    mode = statSync(file).mode & 0o7777;
  } catch {
    // new file: 0600
  }
  const sep = old === '' || old.endsWith('\n') ? '' : '\n';
  const content = `${old}${sep}${hostKeyName(host, port)} ${keyType} ${keyBase64}\n`;
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    fchmodSync(fd, mode); // exact, whatever the umask
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw new BerthError(`cannot write known_hosts file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** The key type named inside an SSH wire-format public key blob (`string type, ...`). */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return '';
  const n = blob.readUInt32BE(0);
  if (n > 64 || 4 + n > blob.length) return '';
  return blob.subarray(4, 4 + n).toString('latin1');
}

function normaliseKey(b64: string): string {
  // tolerate missing padding or stray whitespace by round-tripping through bytes
  return Buffer.from(b64, 'base64').toString('base64');
}
