import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors.js';
import { moduleNames } from '../modules/registry.js';
import type { PlaySpec, RoleRef, RoleSpec, TaskSpec } from './model.js';
import { compileSchema, schemaValidator, validateOrThrow } from './schemas.js';
import { layerFromFile, type VarLayer } from './vars.js';
import { decodeText, displayPath, linkProblem, lstatOrUndefined, oneOf, parseYaml, readYamlFile, type KeyPath, type YamlFile } from './yamlfile.js';

const TASK_KEYWORDS = new Set(['name', 'notify', 'listen', 'tags', 'when', 'loop', 'become']);

function asList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

/** Reads a tasks.json-shaped list (tasks or handlers) from `file` at `path`. */
export function parseTasks(file: YamlFile, path: KeyPath, raw: unknown): TaskSpec[] {
  if (raw === null || raw === undefined) return [];
  const known = moduleNames();
  return (raw as Record<string, unknown>[]).map((t, i) => {
    const tpath = [...path, i];
    const pos = file.locate(tpath);
    const mods = Object.keys(t).filter((k) => !TASK_KEYWORDS.has(k));
    if (mods.length === 0) {
      throw new BerthError('task names no module', { pos, hint: `add one of: ${known.join(', ')}` });
    }
    if (mods.length > 1) {
      const unknown = mods.filter((m) => !known.includes(m));
      if (unknown.length) {
        throw new BerthError(`unknown key "${unknown[0]}" in task`, {
          pos: file.locateKey([...tpath, unknown[0]!]),
          hint: `a task has one module (${known.join(', ')}) and the keywords ${[...TASK_KEYWORDS].join(', ')}`,
        });
      }
      throw new BerthError(`task names ${mods.length} modules (${mods.join(', ')})`, { pos, hint: 'split it into one task per module' });
    }
    const module = mods[0]!;
    if (!known.includes(module)) {
      throw new BerthError(`unknown module "${module}"`, { pos: file.locateKey([...tpath, module]), hint: `known modules: ${known.join(', ')}` });
    }
    const args = t[module] ?? {};
    return {
      name: typeof t.name === 'string' ? t.name : defaultTaskName(module, args),
      module,
      args,
      notify: asList(t.notify),
      listen: asList(t.listen),
      tags: asList(t.tags),
      when: t.when === undefined ? undefined : String(t.when),
      loop: t.loop,
      become: typeof t.become === 'boolean' ? t.become : undefined,
      file,
      path: tpath,
      pos,
    } satisfies TaskSpec;
  });
}

function defaultTaskName(module: string, args: unknown): string {
  if (args && typeof args === 'object') {
    const a = args as Record<string, unknown>;
    for (const k of ['path', 'dest', 'name', 'cmd']) if (typeof a[k] === 'string') return `${module} ${a[k] as string}`;
  }
  return module;
}

/** Finds and loads roles by name; each role is read once. */
export class RoleLoader {
  private readonly cache = new Map<string, RoleSpec>();
  constructor(
    private readonly root: string,
    /** Searched in order: the spec's own roles/ first, then the roles berth ships. */
    private readonly searchPath: string[],
  ) {}

  load(name: string, ref: { pos: RoleRef['pos'] }): RoleSpec {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const dir = this.searchPath.map((d) => join(d, name)).find((d) => existsSync(d) && statSync(d).isDirectory());
    const broken = dir ? undefined : this.searchPath.map((d) => join(d, name)).find((d) => lstatOrUndefined(d)?.isSymbolicLink());
    if (broken) throw new BerthError(`role "${name}" is a symbolic link that leads nowhere (${linkProblem(broken)})`, { pos: ref.pos });
    if (!dir) {
      throw new BerthError(`unknown role "${name}"`, { pos: ref.pos, hint: `roles found: ${this.available().join(', ') || '(none)'}` });
    }
    checkNoLoops(dir, this.root);
    const opt = (sub: string) => oneOf(['main.yml', 'main.yaml'].map((f) => join(dir, sub, f)), this.root);
    const tasksFile = opt('tasks');
    const handlersFile = opt('handlers');
    const defaultsFile = opt('defaults');
    const defaults: VarLayer[] = [];
    if (defaultsFile) {
      const yf = readYamlFile(defaultsFile, this.root);
      validateOrThrow(schemaValidator('role-defaults.json'), yf.value, yf, { fallback: { file: yf.file } });
      defaults.push(layerFromFile(`role ${name} defaults`, yf, [], (yf.value ?? {}) as Record<string, unknown>));
    }
    const tasks = tasksFile ? this.taskList(tasksFile) : [];
    const handlers = handlersFile ? this.taskList(handlersFile) : [];
    let schema: RoleSpec['schema'];
    const schemaFile = join(dir, 'schema.json');
    if (existsSync(schemaFile)) {
      const pos = { file: displayPath(schemaFile, this.root) };
      const text = decodeText(readFileSync(schemaFile), pos.file, 'JSON');
      let value: object;
      try {
        value = JSON.parse(text) as object;
      } catch (e) {
        // JSON is YAML: the YAML parser can say where the mistake is
        parseYaml(text, pos.file);
        throw new BerthError(`invalid JSON: ${(e as Error).message}`, { pos });
      }
      compileSchema(value, pos);
      schema = { value, pos };
    }
    const role: RoleSpec = { name, dir, defaults, tasks, handlers, schema };
    this.cache.set(name, role);
    return role;
  }

  private taskList(path: string): TaskSpec[] {
    const yf = readYamlFile(path, this.root);
    validateOrThrow(schemaValidator('tasks.json'), yf.value, yf, { fallback: { file: yf.file } });
    return parseTasks(yf, [], yf.value);
  }

  available(): string[] {
    const names = new Set<string>();
    for (const d of this.searchPath) {
      if (!existsSync(d)) continue;
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
    }
    return [...names].sort();
  }
}

/** A role directory whose links loop back into itself would hang a naive walk: refuse it. */
function checkNoLoops(dir: string, root: string, seen = new Set<string>(), depth = 0): void {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BerthError(code === 'ELOOP' ? 'symbolic link loop' : `cannot resolve path (${code})`, { pos: { file: displayPath(dir, root) } });
  }
  if (seen.has(real) || depth > 16) {
    throw new BerthError('symbolic link loop in role directory', { pos: { file: displayPath(dir, root) } });
  }
  seen.add(real);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) {
      try {
        if (statSync(p).isDirectory()) checkNoLoops(p, root, new Set(seen), depth + 1);
      } catch (err) {
        if (err instanceof BerthError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') throw new BerthError('symbolic link loop', { pos: { file: displayPath(p, root) } });
      }
    } else if (e.isDirectory()) {
      checkNoLoops(p, root, new Set(seen), depth + 1);
    }
  }
}

export function loadPlaybook(path: string, root: string, roles: RoleLoader): PlaySpec[] {
  const yf = readYamlFile(path, root);
  validateOrThrow(schemaValidator('playbook.json'), yf.value, yf, { what: 'playbook', fallback: { file: yf.file } });
  const plays = yf.value as Record<string, unknown>[];
  return plays.map((p, i) => {
    const base: KeyPath = [i];
    const roleRefs: RoleRef[] = ((p.roles ?? []) as unknown[]).map((r, j) => {
      const rpath = [...base, 'roles', j];
      const pos = yf.locate(rpath);
      if (typeof r === 'string') return { role: roles.load(r, { pos }), params: [], tags: [], pos };
      const o = r as { role: string; vars?: Record<string, unknown>; tags?: string[]; when?: string };
      return {
        role: roles.load(o.role, { pos }),
        params: o.vars ? [layerFromFile(`role ${o.role} vars in ${yf.file}`, yf, [...rpath, 'vars'], o.vars)] : [],
        tags: o.tags ?? [],
        when: o.when,
        pos,
      };
    });
    return {
      name: p.name as string,
      hosts: p.hosts as string,
      hostsPos: yf.locate([...base, 'hosts']),
      roles: roleRefs,
      tasks: parseTasks(yf, [...base, 'tasks'], p.tasks),
      handlers: parseTasks(yf, [...base, 'handlers'], p.handlers),
      vars: p.vars ? [layerFromFile(`play "${p.name as string}" vars`, yf, [...base, 'vars'], p.vars as Record<string, unknown>)] : [],
      tags: (p.tags as string[] | undefined) ?? [],
      become: p.become as boolean | undefined,
      pos: yf.locate(base),
    } satisfies PlaySpec;
  });
}
