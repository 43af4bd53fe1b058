// containerd's registry hosts: one certs.d/<upstream>/hosts.toml per proxy
// project, pointing at https://<harbor>/v2/<project> with override_path (the
// project is part of the path) and the cache's CA. containerd reads these on
// every pull, so writing them needs no restart. A hosts.toml berth wrote for
// an upstream the spec no longer mirrors is removed.

import { fileFacts, planFile } from './file.js';
import { applyTagged, checkCaFile, dirFacts, nodeFacts, planDir, planRemoval, selection, tag } from './node_common.js';
import { CERTS_DIRS } from './registry_ca.js';
import { MANAGED_MARK, checkHarborHost, hostsToml, mirrorsFrom } from '../node/mirrors.js';
import { shq } from '../util/shell.js';
import type { RuntimeSetting } from '../facts/runtimes.js';
import type { FactQuery, Module, PlannedChange } from '../types.js';

export interface ContainerdHostsArgs {
  runtime?: RuntimeSetting;
  harbor: string;
  projects: unknown;
  /** containerd's hosts directory (config_path). */
  certs_dir?: string;
  /** The CA file each hosts.toml names (default: <certs_dir>/<harbor>/ca.crt, written by node_trust). */
  ca?: string;
}

export const managedKey = (dir: string, name: string) => `berth-managed:${dir}/*/${name}`;

/** The files `dir/*\/name` whose first line carries berth's mark. */
export function managedFiles(dir: string, name: string): FactQuery<string[]> {
  return {
    key: managedKey(dir, name),
    command: `for f in ${shq(dir)}/*/${shq(name)}; do if [ -f "$f" ] && head -n1 -- "$f" | grep -q '^${MANAGED_MARK}'; then printf '%s\\n' "$f"; fi; done; true`,
    parse: (out) => out.split('\n').filter(Boolean).sort(),
  };
}

const certsDir = (a: ContainerdHostsArgs) => a.certs_dir ?? CERTS_DIRS.containerd;
const caOf = (a: ContainerdHostsArgs) => a.ca ?? `${certsDir(a)}/${a.harbor}/ca.crt`;

export const containerdHostsModule: Module<ContainerdHostsArgs> = {
  name: 'containerd_hosts',
  schema: 'containerd_hosts',
  check(a, ctx) {
    checkHarborHost(a.harbor, ctx.locateArg?.(['harbor']) ?? ctx.pos);
    mirrorsFrom(a.projects, ctx);
  },
  facts(a, ctx) {
    const dir = certsDir(a);
    return [
      ...nodeFacts(),
      ...dirFacts(dir),
      ...fileFacts(caOf(a), {}),
      managedFiles(dir, 'hosts.toml'),
      ...mirrorsFrom(a.projects, ctx).flatMap((m) => [...dirFacts(`${dir}/${m.upstream}`), ...fileFacts(`${dir}/${m.upstream}/hosts.toml`, {})]),
    ];
  },
  plan(a, state, ctx): PlannedChange[] {
    if (!selection(a.runtime, state, ctx).containerd) return [];
    const dir = certsDir(a);
    const mirrors = mirrorsFrom(a.projects, ctx);
    const out: PlannedChange[] = [];
    if (mirrors.length) {
      checkCaFile(caOf(a), state, ctx);
      out.push(...planDir(dir, state, ctx));
    }
    for (const m of mirrors) {
      out.push(...planDir(`${dir}/${m.upstream}`, state, ctx));
      out.push(...tag('file', planFile(`${dir}/${m.upstream}/hosts.toml`, hostsToml(m, a.harbor, caOf(a)), { mode: '0644' }, state, ctx)));
    }
    const wanted = new Set(mirrors.map((m) => `${dir}/${m.upstream}/hosts.toml`));
    for (const f of state.get<string[]>(managedKey(dir, 'hosts.toml')) ?? []) {
      if (!wanted.has(f)) out.push(planRemoval(f, state, 'no proxy project mirrors this upstream any more'));
    }
    return out;
  },
  apply: applyTagged,
};
