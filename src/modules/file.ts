import { createHash } from 'node:crypto';
import { Secret, reveal } from '../secrets/secret.js';
import { fileKey, fileStat, type FileFact } from '../facts/queries.js';
import { shq } from '../util/shell.js';
import { BerthError } from '../util/errors.js';
import { contentDiff } from '../plan/diff.js';
import type { AttrChange, FactQuery, Module, ModuleApplyContext, ModuleContext, PlannedChange, SimState } from '../types.js';
import {
  afterFact,
  atomicWriteScript,
  checkOwnership,
  checkParent,
  normalizeMode,
  ownershipCommands,
  ownershipDiff,
  ownershipFacts,
  parentFacts,
  requireAbsolute,
  run,
  type Ownership,
} from './common.js';

export interface FileArgs {
  path: string;
  content?: string | Secret;
  src?: string;
  owner?: string;
  group?: string;
  mode?: string | number;
  state?: 'present' | 'absent';
  /** Never show a diff of this file's content (for files that hold secrets berth cannot see). */
  sensitive?: boolean;
}

interface FilePayload {
  path: string;
  own: Ownership;
  /** Set when the content must be (re)written. */
  content?: string | Secret | Buffer;
  remove?: boolean;
}

/** The bytes to write, from `content`, `src` (a file) or a rendered template. */
export type Content = string | Secret | Buffer;

function bytesOf(c: Content): Buffer {
  return Buffer.isBuffer(c) ? c : Buffer.from(reveal(c), 'utf8');
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Plans a regular file with the given content: shared by `file` and `template`.
 * Changes are "create" (absent), "update" (content, owner, group or mode).
 */
export function planFile(
  path: string,
  content: Content | undefined,
  own: Ownership,
  state: SimState,
  ctx: ModuleContext,
  opts: { sensitive?: boolean } = {},
): PlannedChange[] {
  requireAbsolute(path, ctx);
  checkParent(path, state, ctx);
  checkOwnership(own, state, ctx);
  // a file with a secret in it is private unless the spec names a mode
  if (content instanceof Secret && own.mode === undefined) own = { ...own, mode: '0600' };
  const cur = state.get<FileFact>(fileKey(path)) ?? { exists: false };
  if (cur.exists && cur.type !== 'file') {
    throw new BerthError(`${path} on ${ctx.host} is a ${cur.type}, not a regular file`, { pos: ctx.pos, hint: 'remove it first, or choose another path' });
  }
  const attrs: AttrChange[] = [];
  let writeContent: Content | undefined;
  let diff: string | undefined;
  const sensitive = opts.sensitive || content instanceof Secret;
  if (content !== undefined) {
    const bytes = bytesOf(content);
    const hash = sha256(bytes);
    if (!cur.exists || cur.sha256 !== hash) {
      writeContent = content;
      const before = cur.exists && cur.content !== undefined ? Buffer.from(cur.content, 'base64') : undefined;
      diff = opts.sensitive ? '(sensitive content changed)\n' : contentDiff(path, before, content);
      if (cur.exists && cur.content === undefined && !opts.sensitive) diff = `content changed (${cur.size} → ${bytes.length} bytes; too big to show)\n`;
      attrs.push({ name: 'content', before: !cur.exists ? undefined : sensitive ? '(sensitive)' : `sha256:${cur.sha256?.slice(0, 12)}`, after: sensitive ? '(sensitive)' : `sha256:${hash.slice(0, 12)}` });
    }
  } else if (!cur.exists) {
    writeContent = '';
    attrs.push({ name: 'content', after: '(empty)' });
  }
  attrs.push(...ownershipDiff(cur, own));
  if (!attrs.length) return [];
  const size = writeContent !== undefined ? bytesOf(writeContent).length : cur.exists ? cur.size : 0;
  const sha = writeContent !== undefined ? sha256(bytesOf(writeContent)) : cur.exists ? cur.sha256 : undefined;
  state.set(fileKey(path), afterFact(cur, own, { type: 'file', size, sha256: sha, content: undefined }, ctx));
  if (path.startsWith('/etc/systemd/system/') || path.startsWith('/lib/systemd/system/') || path.startsWith('/usr/lib/systemd/system/')) {
    state.set('systemd:daemon-reload', true);
  }
  const payload: FilePayload = { path, own, content: writeContent };
  return [
    {
      resource: `file ${path}`,
      action: cur.exists ? 'update' : 'create',
      attrs,
      diff,
      sensitive: sensitive || undefined,
      payload,
    },
  ];
}

export function planAbsent(path: string, state: SimState, ctx: ModuleContext, kind: 'file' | 'directory'): PlannedChange[] {
  requireAbsolute(path, ctx);
  const cur = state.get<FileFact>(fileKey(path)) ?? { exists: false };
  if (!cur.exists) return [];
  if (kind === 'file' && cur.type === 'directory') {
    throw new BerthError(`${path} on ${ctx.host} is a directory; use the directory module to remove it`, { pos: ctx.pos });
  }
  state.set(fileKey(path), { exists: false });
  const payload: FilePayload = { path, own: {}, remove: true };
  return [{ resource: `${kind} ${path}`, action: 'delete', attrs: [{ name: 'type', before: cur.type }], payload }];
}

export async function applyFile(change: PlannedChange, ctx: ModuleApplyContext): Promise<void> {
  const p = change.payload as FilePayload;
  if (p.remove) {
    await run(ctx, change.resource, `rm -rf -- ${shq(p.path)}`);
    return;
  }
  if (p.content !== undefined) {
    const bytes = bytesOf(p.content);
    await run(ctx, change.resource, atomicWriteScript(p.path, p.own, { sha256: sha256(bytes) }), bytes);
    return;
  }
  const cmds = ownershipCommands(shq(p.path), p.own);
  if (cmds.length) await run(ctx, change.resource, ['set -e', ...cmds].join('\n'));
}

export function fileFacts(path: string, own: Ownership): FactQuery[] {
  return [fileStat(path), ...parentFacts(path), ...ownershipFacts(own)];
}

export function ownershipOf(a: { owner?: string; group?: string; mode?: string | number }): Ownership {
  return { owner: a.owner, group: a.group, mode: normalizeMode(a.mode) };
}

export const fileModule: Module<FileArgs> = {
  name: 'file',
  schema: 'file',
  secretArgs: ['content'],
  batchable: true,
  check: (a, ctx) => {
    requireAbsolute(a.path, ctx);
    if (a.src !== undefined && a.state !== 'absent') ctx.readSourceFile(a.src);
    ownershipOf(a);
  },
  facts: (a) => fileFacts(a.path, a.state === 'absent' ? {} : ownershipOf(a)),
  plan(a, state, ctx) {
    if (a.state === 'absent') return planAbsent(a.path, state, ctx, 'file');
    const content = a.src !== undefined ? ctx.readSourceFile(a.src) : a.content;
    return planFile(a.path, content, ownershipOf(a), state, ctx, { sensitive: a.sensitive });
  },
  apply: applyFile,
};
