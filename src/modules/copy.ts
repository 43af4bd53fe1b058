import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileKey, type FileFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { Module, PlannedChange } from '../types.js';
import { afterFact, atomicWriteScript, checkOwnership, checkParent, ownershipCommands, ownershipDiff, requireAbsolute, run, type Ownership } from './common.js';
import { fileFacts, ownershipOf } from './file.js';

export interface CopyArgs {
  /** A file in the role's files/ directory or the spec repository; streamed, never held in memory. */
  src: string;
  dest: string;
  /** Expected sha256 of src: the plan refuses a file that does not match. */
  sha256?: string;
  owner?: string;
  group?: string;
  mode?: string | number;
}

interface Payload {
  src: string;
  dest: string;
  sha256: string;
  own: Ownership;
  upload: boolean;
}

// Hashing a large file is the slow part of planning it: remember it per (path, size, mtime).
const hashCache = new Map<string, string>();

export function sha256File(path: string): string {
  const st = statSync(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  const hit = hashCache.get(key);
  if (hit) return hit;
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  const digest = h.digest('hex');
  hashCache.set(key, digest);
  return digest;
}

/**
 * A large file from the controller (an installer tarball): streamed over the
 * SSH connection into a temporary file, its sha256 checked on the host, then
 * renamed into place. Unchanged when the host's copy has the same sha256.
 */
export const copyModule: Module<CopyArgs> = {
  name: 'copy',
  schema: 'copy',
  secretArgs: [],
  check(a, ctx) {
    requireAbsolute(a.dest, ctx, 'dest');
    const path = ctx.sourceFilePath(a.src);
    if (a.sha256 && sha256File(path) !== a.sha256.toLowerCase()) {
      throw new BerthError(`${a.src} does not match its pinned sha256 ${a.sha256}`, { pos: ctx.pos, hint: 'the file is not the one the spec pins: download it again, or update the sha256' });
    }
  },
  facts: (a) => fileFacts(a.dest, ownershipOf(a)),
  plan(a, state, ctx): PlannedChange[] {
    requireAbsolute(a.dest, ctx, 'dest');
    checkParent(a.dest, state, ctx);
    const own = ownershipOf(a);
    checkOwnership(own, state, ctx);
    const path = ctx.sourceFilePath(a.src);
    const sha = sha256File(path);
    const cur = state.get<FileFact>(fileKey(a.dest)) ?? { exists: false };
    if (cur.exists && cur.type !== 'file') throw new BerthError(`${a.dest} on ${ctx.host} is a ${cur.type}, not a regular file`, { pos: ctx.pos });
    const upload = !cur.exists || cur.sha256 !== sha;
    const attrs = ownershipDiff(cur, own);
    if (upload) attrs.unshift({ name: 'content', before: cur.exists ? `sha256:${cur.sha256?.slice(0, 12)}` : undefined, after: `sha256:${sha.slice(0, 12)} (${statSync(path).size} bytes from ${a.src})` });
    if (!attrs.length) return [];
    state.set(fileKey(a.dest), afterFact(cur, own, { type: 'file', size: statSync(path).size, sha256: sha }, ctx));
    const payload: Payload = { src: path, dest: a.dest, sha256: sha, own, upload };
    return [{ resource: `file ${a.dest}`, action: cur.exists ? 'update' : 'create', attrs, payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    if (!p.upload) {
      await run(ctx, change.resource, ['set -e', ...ownershipCommands(shq(p.dest), p.own)].join('\n'));
      return;
    }
    // the sha256 is checked on the host before the rename: a truncated upload never lands
    const script = atomicWriteScript(p.dest, p.own, { sha256: p.sha256, what: 'uploaded file' });
    await run(ctx, change.resource, script, createReadStream(p.src));
  },
};
