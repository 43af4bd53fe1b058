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
      `    sha256sum -- ${p} | cut -d' ' -f1`,
      `    if [ "$(stat -c %s -- ${p})" -le ${MAX_DIFF_BYTES} ]; then base64 -w0 -- ${p}; fi; echo`,
      `  elif [ -L ${p} ]; then readlink -- ${p}; fi`,
      `else echo ABSENT; fi`,
    ].join('\n'),
    parse(out, code) {
      if (code !== 0) throw new Error(`stat failed: ${out.trim()}`);
      const lines = out.split('\n');
      if (lines[0] === 'ABSENT') return { exists: false };
      const [kind, mode, owner, group, uid, gid, size] = (lines[0] ?? '').split('|');
      const type: FileType = kind?.startsWith('regular') ? 'file' : kind === 'directory' ? 'directory' : kind === 'symbolic link' ? 'link' : 'other';
      const fact: FileFact = {
        exists: true,
        type,
        mode: (mode ?? '').padStart(4, '0'),
        owner: owner ?? '',
        group: group ?? '',
        uid: Number(uid),
        gid: Number(gid),
        size: Number(size),
      };
      if (type === 'file') {
        fact.sha256 = lines[1]?.trim();
        const b64 = lines[2]?.trim();
        if (b64 !== undefined && (b64 !== '' || fact.size === 0)) fact.content = b64;
      } else if (type === 'link') {
        fact.target = lines[1];
      }
      return fact;
    },
  };
}

export type UserFact =
  | { exists: false }
  | { exists: true; name: string; uid: number; gid: number; group: string; groups: string[]; home: string; shell: string };

export const userKey = (name: string) => `user:${name}`;

export function userInfo(name: string): FactQuery<UserFact> {
  const n = shq(name);
  return {
    key: userKey(name),
    command: `if e=$(getent passwd -- ${n}); then echo "$e"; id -gn -- ${n}; id -Gn -- ${n}; else echo ABSENT; fi`,
    parse(out) {
      const lines = out.split('\n');
      if (lines[0] === 'ABSENT' || !lines[0]) return { exists: false };
      const f = lines[0].split(':');
      const group = (lines[1] ?? '').trim();
      return {
        exists: true,
        name: f[0] ?? name,
        uid: Number(f[2]),
        gid: Number(f[3]),
        home: f[5] ?? '',
        shell: f[6] ?? '',
        group,
        groups: (lines[2] ?? '').trim().split(/\s+/).filter((g) => g && g !== group).sort(),
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
    command: `getent passwd ${Number(uid)} | cut -d: -f1`,
    parse: (out) => (out.trim() ? { name: out.trim() } : {}),
  };
}

export const gidKey = (gid: number) => `gid:${gid}`;
export function groupByGid(gid: number): FactQuery<{ name?: string }> {
  return {
    key: gidKey(gid),
    command: `getent group ${Number(gid)} | cut -d: -f1`,
    parse: (out) => (out.trim() ? { name: out.trim() } : {}),
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
