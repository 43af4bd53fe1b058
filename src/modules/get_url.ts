import { fileKey, type FileFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { Module, PlannedChange } from '../types.js';
import { afterFact, atomicWriteScript, checkOwnership, checkParent, ownershipCommands, ownershipDiff, requireAbsolute, run, type Ownership } from './common.js';
import { fileFacts, ownershipOf } from './file.js';

export interface GetUrlArgs {
  url: string;
  dest: string;
  sha256: string;
  owner?: string;
  group?: string;
  mode?: string | number;
  timeout?: number;
}

interface Payload {
  url: string;
  dest: string;
  sha256: string;
  own: Ownership;
  download: boolean;
  timeout: number;
}

/**
 * A file the host downloads (curl) straight from its source; the pinned
 * sha256 is checked before it replaces anything, and decides whether there
 * is anything to do at all.
 */
export const getUrlModule: Module<GetUrlArgs> = {
  name: 'get_url',
  schema: 'get_url',
  secretArgs: [],
  facts: (a) => fileFacts(a.dest, ownershipOf(a)),
  plan(a, state, ctx): PlannedChange[] {
    requireAbsolute(a.dest, ctx, 'dest');
    checkParent(a.dest, state, ctx);
    const own = ownershipOf(a);
    checkOwnership(own, state, ctx);
    const sha = a.sha256.toLowerCase();
    const cur = state.get<FileFact>(fileKey(a.dest)) ?? { exists: false };
    if (cur.exists && cur.type !== 'file') throw new BerthError(`${a.dest} on ${ctx.host} is a ${cur.type}, not a regular file`, { pos: ctx.pos });
    const download = !cur.exists || cur.sha256 !== sha;
    const attrs = ownershipDiff(cur, own);
    if (download) attrs.unshift({ name: 'content', before: cur.exists ? `sha256:${cur.sha256?.slice(0, 12)}` : undefined, after: `sha256:${sha.slice(0, 12)} from ${a.url}` });
    if (!attrs.length) return [];
    state.set(fileKey(a.dest), afterFact(cur, own, { type: 'file', sha256: sha }, ctx));
    const payload: Payload = { url: a.url, dest: a.dest, sha256: sha, own, download, timeout: a.timeout ?? 1800 };
    return [{ resource: `file ${a.dest}`, action: cur.exists ? 'update' : 'create', attrs, payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    if (!p.download) {
      await run(ctx, change.resource, ['set -e', ...ownershipCommands(shq(p.dest), p.own)].join('\n'));
      return;
    }
    const script = atomicWriteScript(p.dest, p.own, { sha256: p.sha256, what: 'downloaded file' }).replace(
      'cat > "$t"',
      `curl -fsSL --retry 3 --max-time ${p.timeout} -o "$t" -- ${shq(p.url)}`,
    );
    await run(ctx, change.resource, script);
  },
};
