import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Secret } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import { loadInventory } from './inventory.js';
import type { HostSpec, Inventory, PlaySpec, RoleRef, Spec } from './model.js';
import { RoleLoader, loadPlaybook } from './playbook.js';
import { BERTH_HOME } from './schemas.js';
import { MergedVars, type VarLayer } from './vars.js';
import { resolveTls } from './tls.js';
import { controllerStore } from '../secrets/store.js';
import { displayPath, parseYaml, readYamlFile, type KeyPath } from './yamlfile.js';
import { isVaultRef, resolveVaultRef, type SpecSecrets } from './vault-refs.js';

export interface LoadOptions {
  /** The spec repository (default: the current directory). */
  root: string;
  /** Inventory directory, relative to root or absolute. */
  inventory: string;
  /** Playbook file, relative to root or absolute (default playbooks/site.yml). */
  playbook?: string;
  /** `-e key=value` pairs (value parsed as YAML) or `-e @file.yml`. */
  extraVars?: string[];
}

export function loadSpec(opts: LoadOptions): Spec {
  const root = resolve(opts.root);
  const inventory = loadInventory(resolve(root, opts.inventory), root);
  const playbookPath = resolve(root, opts.playbook ?? 'playbooks/site.yml');
  if (!existsSync(playbookPath)) {
    throw new BerthError(`playbook not found: ${displayPath(playbookPath, root)}`, { hint: 'pass -p with a playbook file, e.g. -p playbooks/site.yml' });
  }
  const roles = new RoleLoader(root, [join(root, 'roles'), join(BERTH_HOME, 'roles')]);
  const plays = loadPlaybook(playbookPath, root, roles);
  const spec: Spec = { root, inventory, playbook: playbookPath, plays, extraVars: parseExtraVars(opts.extraVars ?? [], root) };
  for (const play of plays) selectHosts(inventory, play.hosts, { pos: play.hostsPos, what: `play "${play.name}" hosts` });
  return spec;
}

function parseExtraVars(items: string[], root: string): VarLayer[] {
  return items.map((item, i) => {
    if (item.startsWith('@')) {
      const yf = readYamlFile(resolve(root, item.slice(1)), root);
      if (!yf.value || typeof yf.value !== 'object' || Array.isArray(yf.value)) {
        throw new BerthError('extra vars file must be a mapping', { pos: { file: yf.file } });
      }
      return { name: yf.file, values: yf.value as Record<string, unknown>, file: yf, base: [] };
    }
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BerthError(`-e ${JSON.stringify(item)}: expected key=value or @file.yml`);
    const key = item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new BerthError(`-e ${key}: not a valid variable name`);
    const yf = parseYaml(item.slice(eq + 1), `-e #${i + 1}`);
    return { name: `-e ${key}`, values: { [key]: yf.value }, base: [] };
  });
}

/**
 * Hosts matched by an Ansible-style pattern: names of groups or hosts (globs
 * with `*`), joined by `,` or `:`; `!x` removes, `&x` intersects.
 */
export function selectHosts(inv: Inventory, pattern: string, ctx: { pos?: { file: string; line?: number; col?: number }; what: string }): string[] {
  const all = [...inv.hosts.keys()];
  const terms = pattern.split(/[,:]/).map((t) => t.trim()).filter(Boolean);
  let selected = new Set<string>();
  let first = true;
  for (const term of terms) {
    const op = term[0] === '!' || term[0] === '&' ? term[0] : '';
    const name = op ? term.slice(1) : term;
    const matched = match(inv, name);
    if (matched === undefined) {
      throw new BerthError(`${ctx.what}: no host or group named "${name}"`, {
        pos: ctx.pos,
        hint: `groups: ${[...inv.groups.keys()].join(', ')}; hosts: ${all.slice(0, 12).join(', ')}${all.length > 12 ? ', …' : ''}`,
      });
    }
    if (op === '!') {
      if (first) selected = new Set(all);
      for (const h of matched) selected.delete(h);
    } else if (op === '&') {
      selected = new Set([...selected].filter((h) => matched.includes(h)));
    } else {
      for (const h of matched) selected.add(h);
    }
    first = false;
  }
  return all.filter((h) => selected.has(h));
}

function match(inv: Inventory, name: string): string[] | undefined {
  if (name.includes('*') || name.includes('?')) {
    const re = new RegExp('^' + name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
    const hosts = new Set<string>();
    for (const h of inv.hosts.keys()) if (re.test(h)) hosts.add(h);
    for (const g of inv.groups.keys()) if (re.test(g)) for (const h of groupHosts(inv, g)) hosts.add(h);
    return [...hosts];
  }
  if (inv.groups.has(name)) return groupHosts(inv, name);
  if (inv.hosts.has(name)) return [name];
  return undefined;
}

export function groupHosts(inv: Inventory, group: string): string[] {
  if (group === 'all') return [...inv.hosts.keys()];
  return [...inv.hosts.values()].filter((h) => h.groups.includes(group)).map((h) => h.name);
}

/**
 * The variables a task of `play` (in role `ref`, if any) sees on `host`,
 * lowest precedence first: role defaults, inventory group vars, inventory
 * host vars, play vars, role parameters, extra vars (-e).
 */
export function varsFor(spec: Spec, host: HostSpec, play: PlaySpec, ref?: RoleRef): MergedVars {
  const layers: VarLayer[] = [
    ...play.roles.flatMap((r) => r.role.defaults),
    ...host.layers,
    ...play.vars,
    ...(ref?.params ?? []),
    ...spec.extraVars,
  ];
  const vars = new MergedVars(layers);
  const groups: Record<string, string[]> = {};
  for (const g of spec.inventory.groups.keys()) groups[g] = groupHosts(spec.inventory, g);
  Object.assign(vars.values, {
    inventory_hostname: host.name,
    group_names: host.groups.filter((g) => g !== 'all'),
    groups,
  });
  resolveSecrets(vars.values, [], vars, spec.root, spec.secrets);
  resolveTls(vars, spec.root, spec.store ?? controllerStore(spec.root));
  return vars;
}

const secretFiles = new Map<string, string>();

/**
 * Turns `{ secret_env: NAME }`, `{ secret_file: path }` and `{ vault: entry }`
 * (see vault-refs.ts) into Secret values, in place. A missing variable, file
 * or entry is an error at the line that names it.
 */
export function resolveSecrets(obj: Record<string, unknown> | unknown[], path: KeyPath, vars: MergedVars, root: string, secrets?: SpecSecrets): void {
  const entries: [string | number, unknown][] = Array.isArray(obj) ? obj.map((v, i) => [i, v]) : Object.entries(obj);
  for (const [k, v] of entries) {
    if (v === null || typeof v !== 'object' || v instanceof Secret) continue;
    const here = [...path, k];
    const keys = Object.keys(v);
    const o = v as Record<string, unknown>;
    let secret: Secret | undefined;
    if (keys.length === 1 && keys[0] === 'secret_env') {
      const name = String(o.secret_env);
      const val = process.env[name];
      if (val === undefined || val === '') {
        throw new BerthError(`secret environment variable ${name} is ${val === '' ? 'empty' : 'not set'}`, {
          pos: vars.locate(here),
          hint: `export ${name}=… before running berth (the value is never printed)`,
        });
      }
      secret = new Secret(val);
    } else if (keys.length === 1 && keys[0] === 'secret_file') {
      const p = String(o.secret_file);
      const abs = isAbsolute(p) ? p : resolve(root, p);
      let val = secretFiles.get(abs);
      if (val === undefined) {
        if (!existsSync(abs) || !statSync(abs).isFile()) {
          const dir = existsSync(abs) && statSync(abs).isDirectory();
          throw new BerthError(dir ? `secret file ${p} is a directory` : `secret file not found: ${p}`, { pos: vars.locate(here), hint: 'secret_file paths are relative to the spec root' });
        }
        val = readFileSync(abs, 'utf8').replace(/\r?\n$/, '');
        secretFiles.set(abs, val);
      }
      secret = new Secret(val);
    } else if (isVaultRef(v)) {
      secret = resolveVaultRef(v, here, vars, secrets);
    }
    if (secret) (obj as Record<string | number, unknown>)[k] = secret;
    else resolveSecrets(v as Record<string, unknown>, here, vars, root, secrets);
  }
}
