// Fact queries: a shell command plus a pure parser each (pyinfra's shape).
// Keys name the resource ("file:/etc/hosts") so the planner's simulated state
// can hold both gathered facts and the effect of earlier planned changes.

import { createHash } from 'node:crypto';
import { shq } from '../util/shell.js';
import type { FactQuery } from '../types.js';

/** Largest file whose content is fetched for a diff; bigger files are compared by hash only. */
export const MAX_DIFF_BYTES = 256 * 1024;

export type FileType = 'file' | 'directory' | 'link' | 'other';

export type FileFact =
  | { exists: false }
  | {
      exists: true;
      type: FileType;
      /** Four octal digits, "0644". */
      mode: string;
      owner: string;
      group: string;
      uid: number;
      gid: number;
      size: number;
      /** Regular files: hex sha256 of the content. */
      sha256?: string;
      /** Regular files up to MAX_DIFF_BYTES: the content, base64. */
      content?: string;
      /** Symbolic links: the target. */
      target?: string;
    };

export const fileKey = (path: string) => `file:${path}`;

export function fileStat(path: string): FactQuery<FileFact> {
  const p = shq(path);
  return {
    key: fileKey(path),
    command: [
      `if [ -e ${p} ] || [ -L ${p} ]; then`,
      `  stat -c '%F|%a|%U|%G|%u|%g|%s' -- ${p} || exit 1`,
      `  if [ -f ${p} ] && [ ! -L ${p} ]; then`,
      // from stdin: sha256sum escapes a name with a backslash or a newline (and its hash) when given the path
      `    sha256sum < ${p} | cut -d' ' -f1`,
      `    if [ "$(stat -c %s -- ${p})" -le ${MAX_DIFF_BYTES} ]; then base64 -w0 -- ${p}; fi; echo`,
      `  elif [ -L ${p} ]; then readlink -- ${p}; fi`,
      `else echo ABSENT; fi`,
    ].join('\n'),
    parse(out, code) {
      if (code !== 0) throw new Error(`stat failed: ${out.trim()}`);
      const lines = out.split('\n');
      if (lines[0] === 'ABSENT') return { exists: false };
      const fact = statFact(lines[0] ?? '');
      if (fact.type === 'file') {
        fact.sha256 = lines[1]?.trim();
        const b64 = lines[2]?.trim();
        if (b64 !== undefined && (b64 !== '' || fact.size === 0)) fact.content = b64;
      } else if (fact.type === 'link') {
        fact.target = lines[1];
      }
      return fact;
    },
    // an absolute path can be a start point of find(1): then it is stat'ed with the others
    ...(path.startsWith('/') ? { group: { id: 'fileStat', arg: path, command: fileStatsCommand, parse: parseFileStats } } : {}),
  };
}

type PresentFile = Extract<FileFact, { exists: true }>;

/** One line of `stat -c '%F|%a|%U|%G|%u|%g|%s'`. */
function statFact(line: string): PresentFile {
  const [kind, mode, owner, group, uid, gid, size] = line.split('|');
  const type: FileType = kind?.startsWith('regular') ? 'file' : kind === 'directory' ? 'directory' : kind === 'symbolic link' ? 'link' : 'other';
  return {
    exists: true,
    type,
    mode: (mode ?? '').padStart(4, '0'),
    owner: owner ?? '',
    group: group ?? '',
    uid: Number(uid),
    gid: Number(gid),
    size: Number(size),
  };
}

/**
 * The facts of many paths with a fixed number of processes (stat, sha256sum,
 * find, head, base64; readlink once per symbolic link), in sections separated
 * by NUL bytes, which no path, hash or base64 text can contain:
 *
 *   flags \0 (link target \0)* (path \0 stat line \0)* \0 sha256sum lines \0 base64
 *
 * flags has one letter per path: l (symbolic link), r (regular file we can
 * read, so hashed and, up to MAX_DIFF_BYTES, fetched), - (anything else).
 * The contents come from one `head -v`, whose "==> path <==" headers are
 * checked against the sizes stat reported: a file that changed in between is
 * an error (plan again), never a wrong fact.
 */
export function fileStatsCommand(paths: string[]): string {
  const words = paths.map(shq).join(' ');
  return [
    'set --; f=',
    `for p in ${words}; do`,
    '  if [ -L "$p" ]; then f="${f}l"',
    '  elif [ -f "$p" ] && [ -r "$p" ]; then f="${f}r"; set -- "$@" "$p"',
    '  else f="${f}-"; fi',
    'done',
    `printf '%s\\0' "$f"`,
    `for p in ${words}; do if [ -L "$p" ]; then readlink -- "$p"; printf '\\0'; fi; done`,
    `stat --printf '%n\\0%F|%a|%U|%G|%u|%g|%s\\0' -- ${words} 2>/dev/null`,
    `printf '\\0'`,
    'if [ $# -gt 0 ]; then sha256sum -- "$@"; fi',
    `printf '\\0'`,
    `if [ $# -gt 0 ]; then find "$@" -maxdepth 0 -size -${MAX_DIFF_BYTES + 1}c -exec head -v -c ${MAX_DIFF_BYTES + 1} -- {} + | base64 -w0; fi`,
    'exit 0',
  ].join('\n');
}

/** sha256sum's output: "hash  path", or "\\hash  path" with \\ and newline escaped in the path. */
function parseHashes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const escaped = line.startsWith('\\');
    const body = escaped ? line.slice(1) : line;
    const hash = body.slice(0, 64);
    let name = body.slice(66);
    if (escaped) name = name.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
    out.set(name, hash);
  }
  return out;
}

export function parseFileStats(out: string, _code: number, paths: string[]): FileFact[] {
  let pos = 0;
  const token = (): string => {
    const i = out.indexOf('\0', pos);
    if (i < 0) throw new Error('file facts cut short');
    const t = out.slice(pos, i);
    pos = i + 1;
    return t;
  };
  const flags = token();
  if (flags.length !== paths.length) throw new Error(`file facts: ${flags.length} flags for ${paths.length} paths`);
  const targets = new Map<string, string>();
  paths.forEach((p, i) => {
    if (flags[i] === 'l') targets.set(p, token());
  });
  const stats = new Map<string, string>();
  for (let name = token(); name !== ''; name = token()) stats.set(name, token());
  const hashes = parseHashes(token());
  const bytes = Buffer.from(out.slice(pos).trim(), 'base64');

  let at = 0;
  const facts = paths.map((p, i): FileFact => {
    const line = stats.get(p);
    if (line === undefined) return { exists: false };
    const fact = statFact(line);
    if (fact.type === 'link') {
      fact.target = (targets.get(p) ?? '').split('\n')[0];
    } else if (fact.type === 'file') {
      const readable = flags[i] === 'r';
      fact.sha256 = readable ? (hashes.get(p) ?? '') : '';
      if (readable && fact.size <= MAX_DIFF_BYTES) {
        // head prints a blank line before every header but the first of its run
        if (at > 0 && bytes[at] === 0x0a) at++;
        const header = Buffer.from(`==> ${p} <==\n`, 'utf8');
        if (!bytes.subarray(at, at + header.length).equals(header)) throw new Error(`${p} changed while its facts were read; plan again`);
        at += header.length;
        if (at + fact.size > bytes.length) throw new Error(`${p} changed while its facts were read; plan again`);
        fact.content = bytes.subarray(at, at + fact.size).toString('base64');
        at += fact.size;
      } else if (fact.size === 0) {
        fact.content = '';
      }
    }
    return fact;
  });
  if (at !== bytes.length) throw new Error('file contents changed while their facts were read; plan again');
  return facts;
}

export type UserFact =
  | { exists: false }
  | { exists: true; name: string; uid: number; gid: number; group: string; groups: string[]; home: string; shell: string };

export const userKey = (name: string) => `user:${name}`;

export function userInfo(name: string): FactQuery<UserFact> {
  const n = shq(name);
  return {
    key: userKey(name),
    // `id -Gn` names the primary group first (as `id -gn` would), then the others
    command: `if e=$(getent passwd -- ${n}); then echo "$e"; id -Gn -- ${n}; else echo ABSENT; fi`,
    parse(out) {
      const lines = out.split('\n');
      if (lines[0] === 'ABSENT' || !lines[0]) return { exists: false };
      const f = lines[0].split(':');
      const all = (lines[1] ?? '').trim().split(/\s+/);
      const group = all[0] ?? '';
      return {
        exists: true,
        name: f[0] ?? name,
        uid: Number(f[2]),
        gid: Number(f[3]),
        home: f[5] ?? '',
        shell: f[6] ?? '',
        group,
        groups: all.filter((g) => g && g !== group).sort(),
      };
    },
  };
}

export type GroupFact = { exists: false } | { exists: true; name: string; gid: number; members: string[] };

export const groupKey = (name: string) => `group:${name}`;

function parseGroupLine(line: string | undefined): GroupFact {
  if (!line || line === 'ABSENT') return { exists: false };
  const f = line.split(':');
  return { exists: true, name: f[0] ?? '', gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) };
}

export function groupInfo(name: string): FactQuery<GroupFact> {
  return {
    key: groupKey(name),
    command: `getent group -- ${shq(name)} || echo ABSENT`,
    parse: (out) => parseGroupLine(out.split('\n')[0]),
  };
}

/** Which user, if any, has this uid (to refuse a clash before useradd does). */
export const uidKey = (uid: number) => `uid:${uid}`;
export function userByUid(uid: number): FactQuery<{ name?: string }> {
  return {
    key: uidKey(uid),
    command: `getent passwd ${Number(uid)}`,
    parse: (out) => {
      const name = out.split('\n')[0]?.split(':')[0] ?? '';
      return name ? { name } : {};
    },
  };
}

export const gidKey = (gid: number) => `gid:${gid}`;
export function groupByGid(gid: number): FactQuery<{ name?: string }> {
  return {
    key: gidKey(gid),
    command: `getent group ${Number(gid)}`,
    parse: (out) => {
      const name = out.split('\n')[0]?.split(':')[0] ?? '';
      return name ? { name } : {};
    },
  };
}

export interface UnitFact {
  /** "loaded", "not-found", ... */
  load: string;
  /** "active", "inactive", "failed", ... */
  active: string;
  /** "enabled", "disabled", "static", "" ... */
  enabled: string;
}

export const unitKey = (name: string) => `unit:${name}`;

export function unitInfo(name: string): FactQuery<UnitFact> {
  return {
    key: unitKey(name),
    command: `systemctl show -p LoadState -p ActiveState -p UnitFileState -- ${shq(name)}`,
    parse(out, code) {
      if (code !== 0) throw new Error(`systemctl show failed: ${out.trim()}`);
      const kv = Object.fromEntries(
        out
          .split('\n')
          .filter((l) => l.includes('='))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      return { load: kv.LoadState ?? '', active: kv.ActiveState ?? '', enabled: kv.UnitFileState ?? '' };
    },
  };
}

export type PackageFact = { installed: false } | { installed: true; version: string };

export const packageKey = (name: string) => `pkg:${name}`;

export function packageInfo(name: string): FactQuery<PackageFact> {
  return {
    key: packageKey(name),
    command: `dpkg-query -W -f='\${db:Status-Abbrev}|\${Version}' -- ${shq(name)} 2>/dev/null || true`,
    parse(out) {
      const [status, version] = out.trim().split('|');
      return status?.startsWith('ii') ? { installed: true, version: version ?? '' } : { installed: false };
    },
  };
}

/** The exit code of a read-only check command (a task's `unless` / `onlyif`). */
export const guardKey = (cmd: string) => `guard:${createHash('sha256').update(cmd).digest('hex').slice(0, 16)}`;
export function guardResult(cmd: string): FactQuery<{ code: number }> {
  return {
    key: guardKey(cmd),
    command: `( ${cmd}\n) </dev/null >/dev/null 2>&1; echo $?`,
    parse: (out) => ({ code: Number(out.trim().split('\n').pop()) }),
  };
}
