// Spec + host → the host's program: every task of every play that targets the
// host, with its arguments templated and validated, ready for facts and plan.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { Secret, isSecret } from '../secrets/secret.js';
import { BerthError, formatPos } from '../util/errors.js';
import { getModule } from '../modules/registry.js';
import { evalCondition, renderTemplate, renderValue, sourceVariable } from '../template/index.js';
import { compileSchema, formatKeyPath, schemaValidator, validateOrThrow } from '../spec/schemas.js';
import { selectHosts, varsFor } from '../spec/load.js';
import { decodeText, displayPath, type KeyPath } from '../spec/yamlfile.js';
import { findSource } from '../spec/source.js';
import { controllerStore } from '../secrets/store.js';
import { withPos } from '../spec/tls.js';
import type { HostSpec, PlaySpec, RoleRef, Spec, TaskSpec } from '../spec/model.js';
import type { MergedVars } from '../spec/vars.js';
import type { ConnectionSpec } from '../transport/index.js';
import { isControllerQuery, type ControllerFactQuery, type FactQuery, type Module, type ModuleContext, type SourcePos } from '../types.js';

export interface Selection {
  /** --limit pattern. */
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  /** Host-key policy override from the command line. */
  acceptNewHostKeys?: boolean;
}

/** One task, ready to plan on one host. */
export interface BoundTask {
  play: string;
  role?: string;
  name: string;
  module: Module;
  args: Record<string, unknown>;
  ctx: ModuleContext;
  notify: string[];
  tags: string[];
  /** Run as root through sudo (the host's berth_become, unless the task says otherwise). */
  become: boolean;
  /** Handlers: the names this handler answers to. */
  names?: string[];
}

export interface PlaySegment {
  play: string;
  tasks: BoundTask[];
  handlers: BoundTask[];
}

export interface HostProgram {
  host: string;
  connection: ConnectionSpec;
  segments: PlaySegment[];
  /** Host queries: one round trip. */
  queries: FactQuery[];
  /** Controller queries (Harbor's API): run beside the round trip. */
  controllerQueries: ControllerFactQuery[];
}

export function connectionFor(spec: Spec, host: HostSpec, sel: Selection): ConnectionSpec {
  const v = host.vars.values;
  const home = process.env.HOME ?? '/root';
  const path = (p: unknown, dflt: string) => {
    const s = typeof p === 'string' ? p.replace(/^~(?=\/)/, home) : dflt;
    return resolve(spec.root, s);
  };
  return {
    host: host.name,
    kind: (v.berth_connection as 'ssh' | 'local' | undefined) ?? 'ssh',
    address: (v.berth_host as string | undefined) ?? host.name,
    port: (v.berth_port as number | undefined) ?? 22,
    user: (v.berth_user as string | undefined) ?? userInfo().username,
    keyFile: v.berth_key_file === undefined ? undefined : path(v.berth_key_file, ''),
    knownHostsFile: path(v.berth_known_hosts, join(home, '.ssh', 'known_hosts')),
    hostKeyPolicy: sel.acceptNewHostKeys ? 'accept-new' : ((v.berth_host_key_policy as 'strict' | 'accept-new' | undefined) ?? 'strict'),
    become: (v.berth_become as boolean | undefined) ?? false,
    connectTimeoutMs: ((v.berth_connect_timeout as number | undefined) ?? 10) * 1000,
  };
}

/** The hosts a run covers: those of any play, narrowed by --limit. */
export function hostsInScope(spec: Spec, sel: Selection): string[] {
  const inPlays = new Set(spec.plays.flatMap((p) => selectHosts(spec.inventory, p.hosts, { pos: p.hostsPos, what: `play "${p.name}" hosts` })));
  let hosts = [...spec.inventory.hosts.keys()].filter((h) => inPlays.has(h));
  if (sel.limit) {
    const lim = new Set(selectHosts(spec.inventory, sel.limit, { what: '--limit' }));
    hosts = hosts.filter((h) => lim.has(h));
  }
  return hosts;
}

function tagged(tags: string[], sel: Selection): boolean {
  if (sel.skipTags?.some((t) => tags.includes(t))) return false;
  if (!sel.tags?.length) return true;
  return tags.includes('always') || sel.tags.some((t) => tags.includes(t));
}

export function buildProgram(spec: Spec, hostName: string, sel: Selection): HostProgram {
  const host = spec.inventory.hosts.get(hostName)!;
  const connection = connectionFor(spec, host, sel);
  const segments: PlaySegment[] = [];
  for (const play of spec.plays) {
    if (!selectHosts(spec.inventory, play.hosts, { pos: play.pos, what: 'play hosts' }).includes(hostName)) continue;
    const seg: PlaySegment = { play: play.name, tasks: [], handlers: [] };
    const handlerNames = new Set<string>();
    const playVars = varsFor(spec, host, play);
    const units: { ref?: RoleRef; vars: MergedVars; tasks: TaskSpec[]; handlers: TaskSpec[]; tags: string[] }[] = [];
    for (const ref of play.roles) {
      const vars = varsFor(spec, host, play, ref);
      if (ref.role.schema) checkRoleInputs(ref, vars);
      if (ref.when !== undefined && !evalCondition(ref.when, vars.values, ref.pos)) continue;
      units.push({ ref, vars, tasks: ref.role.tasks, handlers: ref.role.handlers, tags: [...play.tags, ...ref.tags] });
    }
    units.push({ vars: playVars, tasks: play.tasks, handlers: play.handlers, tags: play.tags });
    for (const u of units) {
      for (const h of u.handlers) {
        for (const bt of bindTask(spec, play, u.ref, h, u.vars, connection)) {
          bt.names = [h.name, ...h.listen];
          bt.names.forEach((n) => handlerNames.add(n));
          seg.handlers.push(bt);
        }
      }
    }
    for (const u of units) {
      for (const t of u.tasks) {
        const tags = [...u.tags, ...t.tags];
        if (!tagged(tags, sel)) continue;
        for (const n of t.notify) {
          if (!handlerNames.has(n)) {
            throw new BerthError(`notify: no handler named "${n}" in play "${play.name}"`, {
              pos: t.file.locate([...t.path, 'notify']),
              hint: handlerNames.size ? `handlers: ${[...handlerNames].join(', ')}` : 'the play and its roles define no handlers',
            });
          }
        }
        for (const bt of bindTask(spec, play, u.ref, t, u.vars, connection)) {
          bt.tags = tags;
          seg.tasks.push(bt);
        }
      }
    }
    segments.push(seg);
  }
  checkIdClashes(segments);
  const queries: FactQuery[] = [];
  const controllerQueries: ControllerFactQuery[] = [];
  for (const seg of segments) {
    for (const t of [...seg.tasks, ...seg.handlers]) {
      for (const q of t.module.facts(t.args, t.ctx)) {
        if (isControllerQuery(q)) controllerQueries.push(q);
        else queries.push(q);
      }
    }
  }
  return { host: hostName, connection, segments, queries, controllerQueries };
}

/**
 * Two user (or group) tasks for one host that give one uid (gid) to two
 * names, or one name two uids: whichever runs second would fail on the host,
 * or renumber what the first made. Refused before any host is contacted.
 */
function checkIdClashes(segments: PlaySegment[]): void {
  for (const [module, id, what] of [
    ['user', 'uid', 'user'],
    ['group', 'gid', 'group'],
  ] as const) {
    const byId = new Map<number, BoundTask>();
    const byName = new Map<string, BoundTask>();
    for (const seg of segments) {
      for (const t of [...seg.tasks, ...seg.handlers]) {
        if (t.module.name !== module || t.args.state === 'absent' || typeof t.args[id] !== 'number') continue;
        const name = String(t.args.name);
        const n = t.args[id] as number;
        const where = (o: BoundTask) => formatPos(o.ctx.pos);
        const other = byId.get(n);
        if (other && String(other.args.name) !== name) {
          throw new BerthError(`${id} ${n} is given to ${what} "${name}" here and to ${what} "${String(other.args.name)}" at ${where(other)}`, {
            pos: t.ctx.pos,
            hint: `each ${what} needs its own ${id}`,
          });
        }
        const same = byName.get(name);
        if (same && same.args[id] !== n) {
          throw new BerthError(`${what} "${name}" is given ${id} ${n} here and ${id} ${String(same.args[id])} at ${where(same)}`, {
            pos: t.ctx.pos,
            hint: `give "${name}" one ${id}`,
          });
        }
        byId.set(n, t);
        byName.set(name, t);
      }
    }
  }
}

function checkRoleInputs(ref: RoleRef, vars: MergedVars): void {
  const schema = ref.role.schema!;
  const validate = compileSchema(schema.value, schema.pos);
  validateOrThrow(validate, mapSecretsForValidation(vars.values), {
    locate: (p) => vars.locate(p),
    locateKey: (p) => vars.locate(p, true),
  }, { what: `inputs of role ${ref.role.name}`, fallback: ref.pos });
}

/** The key path of the first Secret in `v`, if any. */
function secretPath(v: unknown, path: KeyPath = []): KeyPath | undefined {
  if (isSecret(v)) return path;
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const p = secretPath(x, [...path, i]);
      if (p) return p;
    }
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const p = secretPath(x, [...path, k]);
      if (p) return p;
    }
  }
  return undefined;
}

/** Secrets validate as strings (their display text); everything else as is. */
function mapSecretsForValidation(v: unknown): unknown {
  if (isSecret(v)) return v.display;
  if (Array.isArray(v)) return v.map(mapSecretsForValidation);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = mapSecretsForValidation(x);
    return out;
  }
  return v;
}

/** Puts the Secrets of `orig` back into the validated (possibly type-coerced) copy. */
function restoreSecrets(orig: unknown, checked: unknown): unknown {
  if (isSecret(orig)) return orig;
  if (Array.isArray(orig) && Array.isArray(checked)) return checked.map((c, i) => restoreSecrets(orig[i], c));
  if (orig && checked && typeof orig === 'object' && typeof checked === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, c] of Object.entries(checked)) out[k] = restoreSecrets((orig as Record<string, unknown>)[k], c);
    return out;
  }
  return checked;
}

function bindTask(spec: Spec, play: PlaySpec, ref: RoleRef | undefined, t: TaskSpec, vars: MergedVars, conn: ConnectionSpec): BoundTask[] {
  const become = t.become ?? conn.become;
  const runAs = become ? 'root' : conn.user;
  const module = getModule(t.module)!;
  const argPos = (p: KeyPath): SourcePos => t.file.locate([...t.path, t.module, ...p]);
  const items = loopItems(t, vars);
  const loopVar = typeof t.loop === 'string' ? sourceVariable(t.loop) : undefined;
  const out: BoundTask[] = [];
  for (const [index, item] of items.entries()) {
    const context = item === NO_LOOP ? vars.values : { ...vars.values, item };
    if (t.when !== undefined && !evalCondition(t.when, context, t.file.locate([...t.path, 'when']))) continue;
    const renderedArgs = renderValue(t.args, context, argPos);
    const checked = mapSecretsForValidation(renderedArgs);
    validateOrThrow(schemaValidator(`modules/${module.schema}.json`, { coerce: true }), checked, {
      locate: (p) => argPos(p),
      locateKey: (p) => t.file.locateKey([...t.path, t.module, ...p]),
    }, { what: `${t.module} arguments`, fallback: t.pos, basePath: [] });
    const args = restoreSecrets(renderedArgs, checked) as Record<string, unknown>;
    if (module.secretArgs) {
      const at = secretPath(args);
      if (at && !module.secretArgs.includes(String(at[0]))) {
        throw new BerthError(`${formatKeyPath(at)}: a secret cannot be used here`, {
          pos: argPos(at),
          hint: module.secretArgs.length ? `${t.module} takes secrets only in ${module.secretArgs.join(', ')}` : `${t.module} takes no secrets`,
        });
      }
    }
    const name = item === NO_LOOP ? t.name : nameWithItem(t, context);
    const roleDir = ref?.role.dir;
    const rendered = new Map<string, string | Secret>();
    const ctx: ModuleContext = {
      host: String(vars.values.inventory_hostname),
      root: spec.root,
      roleDir,
      pos: t.pos,
      runAs,
      renderTemplateFile: (src) => {
        let r = rendered.get(src);
        if (r === undefined) {
          const abs = cachedSource(spec, roleDir, 'templates', src, t.pos, MAX_TEMPLATE_BYTES);
          const file = displayPath(abs, spec.root);
          r = renderTemplate(templateText(spec, abs, file), context, { file });
          rendered.set(src, r);
        }
        return r;
      },
      readSourceFile: (src) => readFileSync(cachedSource(spec, roleDir, 'files', src, t.pos, 64 * 1024 * 1024)),
      locateArg: (p) => argSource(t.args, p, vars, item === NO_LOOP ? undefined : { loopVar, index, item }) ?? argPos(p),
      sourceFilePath: (src) => cachedSource(spec, roleDir, 'files', src, t.pos, Number.MAX_SAFE_INTEGER),
    };
    withPos(() => module.check?.(args, ctx), t.pos);
    if (module.prepare) ctx.prepared = withPos(() => module.prepare!(args, { ...ctx, store: spec.store ?? controllerStore(spec.root) }), t.pos);
    out.push({ play: play.name, role: ref?.role.name, name, module, args, ctx, notify: t.notify, tags: t.tags, become });
  }
  return out;
}

// Every host's program names the same templates and files: find (and read) each once per spec,
// not once per task and host (findSource resolves real paths and stats the file).
const sources = new WeakMap<Spec, Map<string, string>>();
const texts = new WeakMap<Spec, Map<string, string>>();

function cachedSource(spec: Spec, roleDir: string | undefined, kind: 'templates' | 'files', src: string, pos: SourcePos, maxBytes?: number): string {
  let m = sources.get(spec);
  if (!m) sources.set(spec, (m = new Map()));
  const key = `${roleDir ?? ''}\0${kind}\0${src}\0${maxBytes ?? ''}`;
  let abs = m.get(key);
  if (abs === undefined) {
    abs = findSource(spec.root, roleDir, kind, src, pos, maxBytes);
    m.set(key, abs);
  }
  return abs;
}

function templateText(spec: Spec, abs: string, file: string): string {
  let m = texts.get(spec);
  if (!m) texts.set(spec, (m = new Map()));
  let text = m.get(abs);
  if (text === undefined) m.set(abs, (text = decodeText(readFileSync(abs), file, 'template')));
  return text;
}

const NO_LOOP = Symbol('no-loop');

/**
 * Where an argument's value was written, when the argument (or one of its
 * parents) is a template taking one variable: the variable's position in the
 * file that set it (`item` resolves through the loop's variable). Undefined
 * when the value is written in the task itself or cannot be traced.
 */
function argSource(
  raw: unknown,
  path: KeyPath,
  vars: MergedVars,
  loop: { loopVar?: string[]; index: number; item: unknown } | undefined,
): SourcePos | undefined {
  let cur = raw;
  for (let i = 0; i <= path.length; i++) {
    if (typeof cur === 'string') {
      const v = sourceVariable(cur);
      if (!v) return undefined;
      const rest = path.slice(i);
      let varPath: KeyPath = v;
      let key = false;
      if (v[0] === 'item') {
        if (!loop?.loopVar) return undefined;
        const it = loop.item as { key?: unknown } | undefined;
        const mapItem = it !== null && typeof it === 'object' && !Array.isArray(it) && typeof it.key === 'string' && 'value' in it;
        if (mapItem && v[1] === 'key') {
          varPath = [...loop.loopVar, it.key as string];
          key = rest.length === 0 && v.length === 2;
        } else if (mapItem && v[1] === 'value') varPath = [...loop.loopVar, it.key as string, ...v.slice(2)];
        else if (!mapItem) varPath = [...loop.loopVar, loop.index, ...v.slice(1)];
        else return undefined;
      }
      return vars.locate([...varPath, ...rest], key);
    }
    if (i === path.length || cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[path[i]!];
  }
  return undefined;
}

/** Templates are rendered in memory (twice, when they hold secrets). */
const MAX_TEMPLATE_BYTES = 16 * 1024 * 1024;

function loopItems(t: TaskSpec, vars: MergedVars): unknown[] {
  if (t.loop === undefined) return [NO_LOOP];
  const pos = t.file.locate([...t.path, 'loop']);
  const v = typeof t.loop === 'string' ? renderValue(t.loop, vars.values, () => pos) : t.loop;
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object' && !(v instanceof Secret)) return Object.entries(v).map(([key, value]) => ({ key, value }));
  throw new BerthError('loop must be a list or a mapping', { pos, hint: 'e.g. loop: "{{ users }}" or a YAML list' });
}

function nameWithItem(t: TaskSpec, context: Record<string, unknown>): string {
  if (!t.name.includes('{{')) {
    const item = context.item as unknown;
    const label = item && typeof item === 'object' ? ((item as { key?: unknown; name?: unknown }).key ?? (item as { name?: unknown }).name) : item;
    return label === undefined ? t.name : `${t.name} (${String(label)})`;
  }
  const r = renderTemplate(t.name, context, { file: t.pos.file, line: t.pos.line });
  return typeof r === 'string' ? r : r.display;
}

export { findSource };
