import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import { fileKey, fileStat, groupInfo, groupKey, userInfo, userKey, type FileFact, type GroupFact, type UserFact } from '../facts/queries.js';
import type { AttrChange, FactQuery, ModuleApplyContext, ModuleContext, SimState } from '../types.js';

/** "644", 644, "0644" → "0644". */
export function normalizeMode(mode: string | number | undefined): string | undefined {
  if (mode === undefined) return undefined;
  const s = String(mode);
  if (!/^0?[0-7]{3,4}$/.test(s)) throw new BerthError(`invalid mode ${JSON.stringify(s)}`, { hint: 'an octal mode such as "0644" or "0750" (quote it in YAML)' });
  return s.replace(/^0(?=[0-7]{4}$)/, '').padStart(4, '0');
}

export interface Ownership {
  owner?: string;
  group?: string;
  mode?: string;
}

/** Fact queries needed to check that an owner and group exist. */
export function ownershipFacts(o: Ownership): FactQuery[] {
  const q: FactQuery[] = [];
  if (o.owner && !/^\d+$/.test(o.owner)) q.push(userInfo(o.owner));
  if (o.group && !/^\d+$/.test(o.group)) q.push(groupInfo(o.group));
  return q;
}

/**
 * Refuses, at plan time, an owner or group that neither exists on the host nor
 * is created by an earlier task — `apply` would fail half-way otherwise.
 */
export function checkOwnership(o: Ownership, state: SimState, ctx: ModuleContext): void {
  if (o.owner && !/^\d+$/.test(o.owner)) {
    const u = state.get<UserFact>(userKey(o.owner));
    if (!u?.exists) {
      throw new BerthError(`owner "${o.owner}" does not exist on ${ctx.host} and no earlier task creates it`, {
        pos: ctx.pos,
        hint: 'add a user task before this one',
      });
    }
  }
  if (o.group && !/^\d+$/.test(o.group)) {
    const g = state.get<GroupFact>(groupKey(o.group));
    if (!g?.exists) {
      throw new BerthError(`group "${o.group}" does not exist on ${ctx.host} and no earlier task creates it`, {
        pos: ctx.pos,
        hint: 'add a group (or user) task before this one',
      });
    }
  }
}

/** Attribute changes for owner/group/mode between what is and what the spec wants. */
export function ownershipDiff(cur: FileFact, want: Ownership): AttrChange[] {
  const out: AttrChange[] = [];
  if (!cur.exists) {
    if (want.owner) out.push({ name: 'owner', after: want.owner });
    if (want.group) out.push({ name: 'group', after: want.group });
    if (want.mode) out.push({ name: 'mode', after: want.mode });
    return out;
  }
  if (want.owner && !sameId(want.owner, cur.owner, cur.uid)) out.push({ name: 'owner', before: cur.owner, after: want.owner });
  if (want.group && !sameId(want.group, cur.group, cur.gid)) out.push({ name: 'group', before: cur.group, after: want.group });
  if (want.mode && want.mode !== cur.mode) out.push({ name: 'mode', before: cur.mode, after: want.mode });
  return out;
}

function sameId(want: string, name: string, id: number): boolean {
  return /^\d+$/.test(want) ? Number(want) === id : want === name;
}

/** The file fact after a change: the old one with the new attributes. */
export function afterFact(cur: FileFact, want: Ownership, fields: Partial<Extract<FileFact, { exists: true }>> & { type: 'file' | 'directory' }, ctx: ModuleContext): FileFact {
  const base = cur.exists ? cur : { exists: true as const, mode: fields.type === 'directory' ? '0755' : '0644', owner: ctx.runAs, group: ctx.runAs, uid: -1, gid: -1, size: 0 };
  return {
    ...base,
    ...fields,
    exists: true,
    owner: want.owner ?? base.owner,
    group: want.group ?? base.group,
    mode: want.mode ?? base.mode,
    uid: want.owner ? -1 : base.uid,
    gid: want.group ? -1 : base.gid,
  } as FileFact;
}

/** Ancestors of an absolute path, nearest last: /opt/harbor/x → ["/opt", "/opt/harbor"]. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  let d = posix.dirname(path);
  while (d !== '/' && d !== '.') {
    out.unshift(d);
    d = posix.dirname(d);
  }
  return out;
}

export function requireAbsolute(path: string, ctx: ModuleContext, key = 'path'): void {
  if (path.includes('\0')) throw new BerthError(`${key} ${JSON.stringify(path)} holds a NUL byte, which no path can`, { pos: ctx.pos });
  if (!posix.isAbsolute(path) || /(^|\/)\.\.(\/|$)/.test(path)) {
    throw new BerthError(`${key} must be an absolute path without "..", got ${JSON.stringify(path)}`, { pos: ctx.pos });
  }
}

/** The parent directory must exist (or be created by an earlier task): refuse at plan time otherwise. */
export function checkParent(path: string, state: SimState, ctx: ModuleContext): void {
  const parent = posix.dirname(path);
  if (parent === '/') return;
  const f = state.get<FileFact>(fileKey(parent));
  if (!f?.exists) {
    throw new BerthError(`parent directory ${parent} of ${path} does not exist on ${ctx.host} and no earlier task creates it`, {
      pos: ctx.pos,
      hint: `add a directory task for ${parent} before this one`,
    });
  }
  if (f.type !== 'directory' && !(f.type === 'link')) {
    throw new BerthError(`${parent} on ${ctx.host} is not a directory`, { pos: ctx.pos });
  }
}

export const parentFacts = (path: string): FactQuery[] => (posix.dirname(path) === '/' ? [] : [fileStat(posix.dirname(path))]);

/** chown/chmod commands for a path (empty when nothing is managed). */
export function ownershipCommands(path: string, o: Ownership): string[] {
  const out: string[] = [];
  if (o.owner || o.group) out.push(`chown ${shq(`${o.owner ?? ''}${o.group ? ':' + o.group : ''}`)} -- ${path}`);
  if (o.mode) out.push(`chmod ${o.mode} -- ${path}`);
  return out;
}

/**
 * Runs a script on the host; a non-zero exit becomes an error naming the resource.
 * A module whose apply sends commands only through here, and reads nothing of
 * their output, can be `batchable` (apply/batch.ts).
 */
export async function run(ctx: ModuleApplyContext, resource: string, script: string, stdin?: string | Buffer | Readable): Promise<string> {
  const r = await ctx.transport.exec(script, { stdin, become: ctx.become });
  if (r.code !== 0) throw runFailure(resource, ctx.host, r);
  return r.stdout;
}

/** The error for a command of `resource` that exited non-zero: its last lines of stderr (or stdout). */
export function runFailure(resource: string, host: string, r: { code: number; stdout: string; stderr: string }): BerthError {
  const detail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
  return new BerthError(`${resource}: failed (exit ${r.code}): ${detail || 'no output'}`, { host });
}

/**
 * Writes content atomically: a temporary file in the same directory gets the
 * content, owner and mode, then is renamed over the target. A reader never
 * sees a partial file; a failure leaves the old file as it was.
 *
 * `expect` is the sha256 of the bytes the script receives on stdin. It is
 * checked before the rename: if berth dies (or the connection drops) half-way
 * through sending, `cat` on the host sees an early end of input and would
 * otherwise rename a truncated file into place.
 */
export function atomicWriteScript(path: string, o: Ownership, expect?: { sha256: string; what?: string }): string {
  const p = shq(path);
  const dir = shq(posix.dirname(path));
  const base = shq('.' + posix.basename(path) + '.berth-');
  return [
    'set -e',
    // berth gone (connection dropped): writing to stderr must not kill this script before it cleans up
    "trap '' PIPE",
    `t=$(mktemp -p ${dir} ${base}XXXXXX)`,
    `trap 'rm -f "$t"' EXIT`,
    `trap 'rm -f "$t"; exit 129' HUP INT TERM`,
    'cat > "$t"',
    ...(expect
      ? [
          `echo ${shq(`${expect.sha256}  `)}"$t" | sha256sum -c --status || { echo "${expect.what ?? 'the data received'} does not match sha256 ${expect.sha256} ($(wc -c < "$t") bytes arrived): not written" >&2; exit 3; }`,
        ]
      : []),
    // what the spec does not name is kept from the old file (or the defaults root:root 0644)
    ...(o.owner && o.group ? [] : [`if [ -e ${p} ]; then chown --reference=${p} "$t"; fi`]),
    ...(o.mode ? [] : [`if [ -e ${p} ]; then chmod --reference=${p} "$t"; else chmod 0644 "$t"; fi`]),
    ...ownershipCommands('"$t"', o),
    'sync -d "$t" 2>/dev/null || true',
    `mv -f -- "$t" ${p}`,
    'trap - EXIT HUP INT TERM',
  ].join('\n');
}
