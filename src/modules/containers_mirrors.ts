// The containers-image mirrors (CRI-O, podman, skopeo, buildah): one
// registries.conf.d drop-in with a [[registry]] per proxy project and its
// [[registry.mirror]] at <harbor>/<project>. The cache's CA is node_trust's
// /etc/containers/certs.d/<harbor>/ca.crt. CRI-O re-reads the files on a
// reload (the task notifies it); the tools read them on every run.

import { fileFacts, planAbsent, planFile } from './file.js';
import { applyTagged, checkCaFile, dirFacts, nodeFacts, planDir, selection, tag } from './node_common.js';
import { caPaths } from './registry_ca.js';
import { checkHarborHost, mirrorsFrom, registriesDropIn } from '../node/mirrors.js';
import { fileKey, fileStat, type FileFact } from '../facts/queries.js';
import { parseToml, lineOfPath } from '../toml/edit.js';
import { BerthError } from '../util/errors.js';
import type { RuntimeSetting } from '../facts/runtimes.js';
import type { Module, ModuleContext, PlannedChange, SimState } from '../types.js';

export interface ContainersMirrorsArgs {
  runtime?: RuntimeSetting;
  harbor: string;
  projects: unknown;
  /** The drop-in directory. */
  dir?: string;
  /** The drop-in's file name (later names win for the same prefix). */
  name?: string;
}

export const REGISTRIES_CONF = '/etc/containers/registries.conf';
const DIR = '/etc/containers/registries.conf.d';
const NAME = 'zz-berth-harbor-mirrors.conf';

const dropIn = (a: ContainersMirrorsArgs) => `${a.dir ?? DIR}/${a.name ?? NAME}`;

/** A drop-in in v2 format cannot sit beside a registries.conf in the old v1 format ([registries.search]). */
function checkMainConf(state: SimState, ctx: ModuleContext): void {
  const f = state.get<FileFact>(fileKey(REGISTRIES_CONF));
  if (!f?.exists || f.type !== 'file' || f.content === undefined) return;
  const text = Buffer.from(f.content, 'base64').toString('utf8');
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (e) {
    throw new BerthError(`${REGISTRIES_CONF} on ${ctx.host} is ${(e as Error).message}`, { pos: ctx.pos, hint: 'containers-image would refuse it too: fix it first' });
  }
  const v1 = doc.registries;
  if (v1 && typeof v1 === 'object' && ['search', 'insecure', 'block'].some((k) => k in v1)) {
    const line = lineOfPath(text, ['registries']);
    throw new BerthError(`${REGISTRIES_CONF}${line ? `:${line}` : ''} on ${ctx.host} is in the old v1 format ([registries.search]), which containers-image does not mix with v2 drop-ins`, {
      pos: ctx.pos,
      hint: 'convert it to v2 (unqualified-search-registries, [[registry]])',
    });
  }
}

export const containersMirrorsModule: Module<ContainersMirrorsArgs> = {
  name: 'containers_mirrors',
  schema: 'containers_mirrors',
  check(a, ctx) {
    checkHarborHost(a.harbor, ctx.locateArg?.(['harbor']) ?? ctx.pos);
    mirrorsFrom(a.projects, ctx);
  },
  facts: (a) => [...nodeFacts(), ...dirFacts(a.dir ?? DIR), ...fileFacts(dropIn(a), {}), fileStat(REGISTRIES_CONF), ...fileFacts(caPaths(a.harbor).containers, {})],
  plan(a, state, ctx): PlannedChange[] {
    if (!selection(a.runtime, state, ctx).containers) return [];
    checkMainConf(state, ctx);
    const mirrors = mirrorsFrom(a.projects, ctx);
    if (!mirrors.length) return tag('file', planAbsent(dropIn(a), state, ctx, 'file'));
    checkCaFile(caPaths(a.harbor).containers, state, ctx);
    return [...planDir(a.dir ?? DIR, state, ctx), ...tag('file', planFile(dropIn(a), registriesDropIn(mirrors, a.harbor), { mode: '0644' }, state, ctx))];
  },
  apply: applyTagged,
};
