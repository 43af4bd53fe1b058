import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BerthError } from '../util/errors.js';
import type { GroupSpec, HostSpec, Inventory } from './model.js';
import { schemaValidator, validateOrThrow } from './schemas.js';
import { MergedVars, layerFromFile, type VarLayer } from './vars.js';
import { displayPath, oneOf, readYamlFile, type KeyPath, type YamlFile } from './yamlfile.js';

interface RawGroup {
  hosts?: Record<string, Record<string, unknown> | null>;
  vars?: Record<string, unknown>;
  children?: Record<string, RawGroup | null>;
}

const YAML_EXT = /\.ya?ml$/;

/** Loads inventories/<env>/: hosts.yml, group_vars/, host_vars/. */
export function loadInventory(dir: string, root: string): Inventory {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new BerthError(`inventory directory not found: ${displayPath(dir, root)}`, {
      hint: 'pass -i with a directory that holds hosts.yml, e.g. -i inventories/example',
    });
  }
  const hostsFile = oneOf(['hosts.yml', 'hosts.yaml'].map((f) => join(dir, f)), root);
  if (!hostsFile) throw new BerthError('hosts.yml not found', { pos: { file: displayPath(join(dir, 'hosts.yml'), root) } });
  const yf = readYamlFile(hostsFile, root);
  validateOrThrow(schemaValidator('inventory.json'), yf.value, yf, { what: 'inventory', fallback: { file: yf.file } });
  const raw = yf.value as { all: RawGroup };

  const groups = new Map<string, GroupSpec>();
  const hostLayers = new Map<string, VarLayer[]>();
  const hostPos = new Map<string, HostSpec['pos']>();

  const visit = (name: string, g: RawGroup | null, path: KeyPath, parent: string | undefined, stack: string[]) => {
    if (stack.includes(name)) {
      throw new BerthError(`group "${name}" contains itself (${[...stack, name].join(' → ')})`, { pos: yf.locateKey(path) });
    }
    let spec = groups.get(name);
    if (!spec) {
      spec = { name, parents: [], children: [], hosts: [], depth: 0, layers: [] };
      groups.set(name, spec);
    }
    if (parent && !spec.parents.includes(parent)) spec.parents.push(parent);
    if (!g) return;
    if (g.vars) spec.layers.push(layerFromFile(`${yf.file} (group ${name})`, yf, [...path, 'vars'], g.vars));
    for (const [h, hv] of Object.entries(g.hosts ?? {})) {
      if (!spec.hosts.includes(h)) spec.hosts.push(h);
      if (!hostPos.has(h)) hostPos.set(h, yf.locateKey([...path, 'hosts', h]));
      if (hv) {
        const layers = hostLayers.get(h) ?? [];
        layers.push(layerFromFile(`${yf.file} (host ${h})`, yf, [...path, 'hosts', h], hv));
        hostLayers.set(h, layers);
      }
    }
    for (const [c, cg] of Object.entries(g.children ?? {})) {
      if (!spec.children.includes(c)) spec.children.push(c);
      visit(c, cg, [...path, 'children', c], name, [...stack, name]);
    }
  };
  visit('all', raw.all ?? {}, ['all'], undefined, []);

  // depth = longest path from `all`, so a child group's vars beat its parents'
  const depthOf = (name: string, seen: string[] = []): number => {
    const g = groups.get(name)!;
    if (!g.parents.length) return 0;
    return 1 + Math.max(...g.parents.map((p) => (seen.includes(p) ? 0 : depthOf(p, [...seen, name]))));
  };
  for (const g of groups.values()) g.depth = depthOf(g.name);

  for (const f of varFiles(join(dir, 'group_vars'), root)) {
    const g = groups.get(f.owner);
    if (!g) {
      throw new BerthError(`group_vars for unknown group "${f.owner}"`, {
        pos: { file: f.file.file },
        hint: `groups in ${yf.file}: ${[...groups.keys()].join(', ')}`,
      });
    }
    g.layers.push(layerFromFile(f.file.file, f.file, [], f.values));
  }
  const hostFileLayers = new Map<string, VarLayer[]>();
  for (const f of varFiles(join(dir, 'host_vars'), root)) {
    if (!hostPos.has(f.owner)) {
      throw new BerthError(`host_vars for unknown host "${f.owner}"`, {
        pos: { file: f.file.file },
        hint: `hosts in ${yf.file}: ${[...hostPos.keys()].join(', ') || '(none)'}`,
      });
    }
    const l = hostFileLayers.get(f.owner) ?? [];
    l.push(layerFromFile(f.file.file, f.file, [], f.values));
    hostFileLayers.set(f.owner, l);
  }

  const hosts = new Map<string, HostSpec>();
  for (const [h, pos] of hostPos) {
    const member = [...groups.values()].filter((g) => g.name === 'all' || isMember(groups, g.name, h));
    member.sort((a, b) => a.depth - b.depth || (a.name === 'all' ? -1 : b.name === 'all' ? 1 : a.name.localeCompare(b.name)));
    const layers = [...member.flatMap((g) => g.layers), ...(hostLayers.get(h) ?? []), ...(hostFileLayers.get(h) ?? [])];
    const spec: HostSpec = { name: h, groups: member.map((g) => g.name), layers, vars: new MergedVars(layers), pos };
    validateConnectionVars(spec);
    hosts.set(h, spec);
  }
  return { dir, hosts, groups };
}

function isMember(groups: Map<string, GroupSpec>, group: string, host: string, seen = new Set<string>()): boolean {
  if (seen.has(group)) return false;
  seen.add(group);
  const g = groups.get(group);
  if (!g) return false;
  return g.hosts.includes(host) || g.children.some((c) => isMember(groups, c, host, seen));
}

function validateConnectionVars(h: HostSpec): void {
  const conn: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h.vars.values)) if (k.startsWith('berth_')) conn[k] = v;
  validateOrThrow(schemaValidator('connection.json'), conn, {
    locate: (p) => h.vars.locate(p),
    locateKey: (p) => h.vars.locate(p, true),
  }, { what: `connection settings of host ${h.name}`, fallback: h.pos });
}

interface VarFile {
  owner: string;
  file: YamlFile;
  values: Record<string, unknown>;
}

/** group_vars/<name>.yml, group_vars/<name>/*.yml (same for host_vars), sorted by name. */
function varFiles(dir: string, root: string): VarFile[] {
  if (!existsSync(dir)) return [];
  const out: VarFile[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      for (const f of readdirSync(p).sort()) if (YAML_EXT.test(f)) out.push(varFile(e.name, join(p, f), root));
    } else if (YAML_EXT.test(e.name)) {
      out.push(varFile(basename(e.name).replace(YAML_EXT, ''), p, root));
    }
  }
  return out;
}

function varFile(owner: string, path: string, root: string): VarFile {
  const file = readYamlFile(path, root);
  const v = file.value ?? {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new BerthError('must be a mapping of variable names to values', { pos: file.locate([]) });
  }
  validateOrThrow(schemaValidator('vars.json'), v, file, { what: 'variables', fallback: { file: file.file } });
  return { owner, file, values: v as Record<string, unknown> };
}
