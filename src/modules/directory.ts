import { fileKey, fileStat, type FileFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { FactQuery, Module, PlannedChange } from '../types.js';
import { afterFact, ancestors, checkOwnership, ownershipCommands, ownershipDiff, requireAbsolute, run, type Ownership } from './common.js';
import { applyFile, ownershipOf, planAbsent } from './file.js';
import { ownershipFacts } from './common.js';

export interface DirectoryArgs {
  path: string;
  owner?: string;
  group?: string;
  mode?: string | number;
  state?: 'present' | 'absent';
}

interface DirPayload {
  path: string;
  own: Ownership;
  /** Missing ancestors, created first as root:root 0755 (outermost first). */
  parents: string[];
  create: boolean;
}

export const directoryModule: Module<DirectoryArgs> = {
  name: 'directory',
  schema: 'directory',
  secretArgs: [],
  check: (a, ctx) => {
    requireAbsolute(a.path, ctx);
    ownershipOf(a);
  },
  batchable: true,
  facts(a) {
    const q: FactQuery[] = [fileStat(a.path), ...ancestors(a.path).map((d) => fileStat(d))];
    return a.state === 'absent' ? q : [...q, ...ownershipFacts(ownershipOf(a))];
  },
  plan(a, state, ctx): PlannedChange[] {
    requireAbsolute(a.path, ctx);
    if (a.state === 'absent') return planAbsent(a.path, state, ctx, 'directory');
    const own = ownershipOf(a);
    checkOwnership(own, state, ctx);
    const cur = state.get<FileFact>(fileKey(a.path)) ?? { exists: false };
    if (cur.exists && cur.type !== 'directory') {
      throw new BerthError(`${a.path} on ${ctx.host} is a ${cur.type}, not a directory`, { pos: ctx.pos });
    }
    const parents: string[] = [];
    for (const d of ancestors(a.path)) {
      const f = state.get<FileFact>(fileKey(d));
      if (f?.exists && f.type !== 'directory' && f.type !== 'link') {
        throw new BerthError(`${d} on ${ctx.host} is a ${f.type}, not a directory`, { pos: ctx.pos });
      }
      if (!f?.exists) parents.push(d);
    }
    const attrs = ownershipDiff(cur, own);
    if (cur.exists && !attrs.length) return [];
    if (parents.length) attrs.push({ name: 'parents', after: parents.join(' ') });
    for (const d of parents) {
      state.set(fileKey(d), { exists: true, type: 'directory', mode: '0755', owner: ctx.runAs, group: ctx.runAs, uid: -1, gid: -1, size: 0 });
    }
    state.set(fileKey(a.path), afterFact(cur, own, { type: 'directory' }, ctx));
    const payload: DirPayload = { path: a.path, own, parents, create: !cur.exists };
    return [{ resource: `directory ${a.path}`, action: cur.exists ? 'update' : 'create', attrs, payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as DirPayload & { remove?: boolean };
    if (p.remove) return applyFile(change, ctx);
    const cmds = ['set -e'];
    for (const d of p.parents) cmds.push(`mkdir -m 0755 -- ${shq(d)} 2>/dev/null || [ -d ${shq(d)} ]`);
    if (p.create) cmds.push(`mkdir -m ${p.own.mode ?? '0755'} -- ${shq(p.path)} 2>/dev/null || [ -d ${shq(p.path)} ]`);
    cmds.push(...ownershipCommands(shq(p.path), p.own));
    await run(ctx, change.resource, cmds.join('\n'));
  },
};
