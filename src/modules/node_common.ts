// What the node modules (registry_ca, containerd_hosts, containerd_config,
// containers_mirrors, docker_mirror) share: the runtimes fact and the choice
// of runtimes it leads to, and changes made of the file and directory
// modules' own plan steps (one task may create a directory and the files in it).

import { ancestors } from './common.js';
import { directoryModule } from './directory.js';
import { applyFile } from './file.js';
import { fileKey, fileStat, type FileFact } from '../facts/queries.js';
import { RUNTIMES_KEY, RuntimeSelectionError, runtimesFact, selectRuntimes, type RuntimeSelection, type RuntimeSetting, type RuntimesFact } from '../facts/runtimes.js';
import { BerthError } from '../util/errors.js';
import type { FactQuery, ModuleApplyContext, ModuleContext, PlannedChange, SimState } from '../types.js';

export function runtimesOf(state: SimState, ctx: ModuleContext): RuntimesFact {
  const f = state.get<RuntimesFact>(RUNTIMES_KEY);
  if (!f) throw new BerthError(`the runtimes fact of ${ctx.host} was not gathered`, { pos: ctx.pos });
  return f;
}

/** Which runtimes this task configures on this node (plan-time errors point at `runtime`'s origin). */
export function selection(runtime: RuntimeSetting | undefined, state: SimState, ctx: ModuleContext): RuntimeSelection {
  try {
    return selectRuntimes(runtime ?? 'auto', runtimesOf(state, ctx), ctx.host);
  } catch (e) {
    if (e instanceof RuntimeSelectionError) throw new BerthError(e.message, { pos: ctx.locateArg?.(['runtime']) ?? ctx.pos, hint: e.hint });
    throw e;
  }
}

/** Facts for a directory that may have to be created (it and its ancestors). */
export function dirFacts(path: string): FactQuery[] {
  return [fileStat(path), ...ancestors(path).map((d) => fileStat(d))];
}

export function nodeFacts(): FactQuery[] {
  return [runtimesFact()];
}

type Tagged = { kind: 'dir' | 'file'; inner: unknown };

/** A directory (and its missing parents) when it is not there yet; nothing when it is. */
export function planDir(path: string, state: SimState, ctx: ModuleContext): PlannedChange[] {
  if (state.get<FileFact>(fileKey(path))?.exists) {
    const f = state.get<FileFact>(fileKey(path));
    if (f?.exists && f.type !== 'directory') throw new BerthError(`${path} on ${ctx.host} is a ${f.type}, not a directory`, { pos: ctx.pos });
    return [];
  }
  return tag('dir', directoryModule.plan({ path }, state, ctx));
}

export function tag(kind: Tagged['kind'], changes: PlannedChange[]): PlannedChange[] {
  return changes.map((c) => ({ ...c, payload: { kind, inner: c.payload } satisfies Tagged }));
}

/** A file deletion planned without a stat of the file (found by a listing fact). */
export function planRemoval(path: string, state: SimState, why: string): PlannedChange {
  state.set(fileKey(path), { exists: false });
  return { resource: `file ${path}`, action: 'delete', attrs: [{ name: 'reason', after: why }], payload: { kind: 'file', inner: { path, own: {}, remove: true } } satisfies Tagged };
}

export async function applyTagged(change: PlannedChange, ctx: ModuleApplyContext): Promise<void> {
  const p = change.payload as Tagged;
  const inner = { ...change, payload: p.inner };
  if (p.kind === 'dir') await directoryModule.apply(inner, ctx);
  else await applyFile(inner, ctx);
}

/** The CA file a mirror config names must exist, or be written by an earlier task (node_trust). */
export function checkCaFile(path: string, state: SimState, ctx: ModuleContext): void {
  const f = state.get<FileFact>(fileKey(path));
  if (!f?.exists) {
    throw new BerthError(`the cache's CA ${path} is not on ${ctx.host} and no earlier task writes it`, {
      pos: ctx.pos,
      hint: 'run the node_trust role before node_mirror (playbooks: roles: [node_trust, node_mirror])',
    });
  }
}
