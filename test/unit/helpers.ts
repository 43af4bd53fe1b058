// Shared helpers for the unit tests: spec trees in temporary directories,
// catching BerthErrors, and hand-made facts for the pure planner.

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterAll } from 'vitest';
import { loadSpec, type LoadOptions } from '../../src/spec/load.js';
import { buildProgram, hostsInScope, type HostProgram, type Selection } from '../../src/plan/program.js';
import { BerthError } from '../../src/util/errors.js';
import type { Spec } from '../../src/spec/model.js';
import type { Facts } from '../../src/types.js';
import type { FileFact, GroupFact, UnitFact, UserFact } from '../../src/facts/queries.js';

/** The berth repository (holds the shipped roles/, playbooks/ and inventories/example). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

// ---------------------------------------------------------------- text

/**
 * Removes the indentation common to all non-blank lines and the first line
 * break, so YAML can be written indented inside a test and its line numbers
 * are easy to count: line 1 is the first line after the opening backtick.
 */
export function dedent(text: string): string {
  const body = text.replace(/^[ \t]*\n/, '').replace(/\n[ \t]*$/, '\n');
  const lines = body.split('\n');
  const indents = lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length);
  const cut = indents.length ? Math.min(...indents) : 0;
  return lines.map((l) => l.slice(cut)).join('\n');
}

// ---------------------------------------------------------------- spec trees

const made: string[] = [];
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the test file. */
export function tempDir(prefix = 'berth-unit-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export type Tree = Record<string, string | Buffer>;

/** Writes `files` (path relative to the root → content; strings are dedented) into a new temp dir. */
export function writeTree(files: Tree, root = tempDir()): string {
  for (const [rel, content] of Object.entries(files)) {
    const abs = join(root, rel);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, typeof content === 'string' ? dedent(content) : content);
  }
  return root;
}

/** A one-host inventory (host h1 in group app) plus whatever `files` add or replace. */
export function minimalTree(files: Tree = {}): Tree {
  return {
    'inventories/t/hosts.yml': `
      all:
        children:
          app:
            hosts:
              h1:
    `,
    'playbooks/site.yml': `
      - name: app
        hosts: app
        tasks: []
    `,
    ...files,
  };
}

export interface TreeOptions extends Partial<Omit<LoadOptions, 'root'>> {
  sel?: Selection;
}

/** Loads a spec from a tree (inventory defaults to inventories/t). */
export function loadTree(files: Tree, opts: TreeOptions = {}): Spec {
  const root = writeTree(files);
  return loadSpec({ root, inventory: opts.inventory ?? 'inventories/t', playbook: opts.playbook, extraVars: opts.extraVars });
}

/** Loads a tree and builds the program of every host in scope (what `berth plan` does before contacting hosts). */
export function buildTree(files: Tree, opts: TreeOptions = {}): { spec: Spec; programs: HostProgram[] } {
  const spec = loadTree(files, opts);
  const sel = opts.sel ?? {};
  return { spec, programs: hostsInScope(spec, sel).map((h) => buildProgram(spec, h, sel)) };
}

/** The program of host h1 for a play of `tasks` (and `handlers`) on the minimal inventory. */
export function programOf(tasks: string, opts: { handlers?: string; files?: Tree; vars?: string } = {}): HostProgram {
  const indent = (s: string) =>
    dedent(s)
      .split('\n')
      .map((l) => (l ? '    ' + l : l))
      .join('\n');
  const play = [
    '- name: app',
    '  hosts: app',
    ...(opts.vars ? ['  vars:', indent(opts.vars).replace(/\n$/, '')] : []),
    '  tasks:',
    indent(tasks).replace(/\n$/, ''),
    ...(opts.handlers ? ['  handlers:', indent(opts.handlers).replace(/\n$/, '')] : []),
    '',
  ].join('\n');
  const { programs } = buildTree(minimalTree({ 'playbooks/site.yml': Buffer.from(play), ...opts.files }));
  return programs[0]!;
}

// ---------------------------------------------------------------- errors

/** The BerthError `fn` throws; fails when it throws nothing or something else. */
export function berthError(fn: () => unknown): BerthError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BerthError) return e;
    throw new Error(`expected a BerthError, got ${inspect(e)}`);
  }
  throw new Error('expected a BerthError, nothing was thrown');
}

// ---------------------------------------------------------------- facts

export const absent: FileFact = { exists: false };

export function dirFact(owner = 'root', group = owner, mode = '0755', ids: { uid?: number; gid?: number } = {}): FileFact {
  return { exists: true, type: 'directory', mode, owner, group, uid: ids.uid ?? (owner === 'root' ? 0 : 1000), gid: ids.gid ?? (group === 'root' ? 0 : 1000), size: 4096 };
}

export const sha256hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A regular file as the fileStat query reports it (content included, as for small files). */
export function fileFact(content: string | Buffer, owner = 'root', group = owner, mode = '0644'): FileFact {
  const buf = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
  return {
    exists: true,
    type: 'file',
    mode,
    owner,
    group,
    uid: owner === 'root' ? 0 : 1000,
    gid: group === 'root' ? 0 : 1000,
    size: buf.length,
    sha256: sha256hex(buf),
    content: buf.toString('base64'),
  };
}

export function userFact(name: string, uid: number, more: Partial<Extract<UserFact, { exists: true }>> = {}): UserFact {
  return { exists: true, name, uid, gid: uid, group: name, groups: [], home: `/home/${name}`, shell: '/bin/sh', ...more };
}

export function groupFact(name: string, gid: number): GroupFact {
  return { exists: true, name, gid, members: [] };
}

export function unitFact(active: string, enabled: string, load = 'loaded'): UnitFact {
  return { load, active, enabled };
}

/** What each kind of query reports when the thing it asks about is not there. */
function nothingFor(key: string): unknown {
  const kind = key.slice(0, key.indexOf(':'));
  switch (kind) {
    case 'file':
    case 'user':
    case 'group':
      return { exists: false };
    case 'uid':
    case 'gid':
      return {};
    case 'unit':
      return unitFact('inactive', '', 'not-found');
    case 'pkg':
      return { installed: false };
    case 'guard':
      return { code: 1 };
    case 'berth':
      // berth:remembered, the state record's remembered values: none yet
      return {};
    case 'node':
      // node:runtimes: a Debian host without any container runtime
      return { os: { id: 'debian', like: [], version: '12', family: 'debian' }, commands: {} };
    case 'berth-managed':
      return [];
    case 'system':
      // a host comfortably above Harbor's minimums, with every command asked for and every check passing
      return { cpus: 4, memoryMb: 8192, diskFreeGb: 200, diskPath: '/', commands: new Proxy({}, { get: () => true, ownKeys: () => [] }), checks: new Proxy({}, { get: () => true, ownKeys: () => [] }) };
    default:
      throw new Error(`test helper: no default for fact ${key}`);
  }
}

/**
 * Facts for every query of `program`: everything absent, except `present`
 * (fact key → value, e.g. { 'file:/etc': dirFact() }). Keys in `present`
 * that no query asks for are added too.
 */
export function factsFor(program: HostProgram, present: Record<string, unknown> = {}): Facts {
  const facts: Facts = new Map();
  for (const q of program.queries) facts.set(q.key, nothingFor(q.key));
  for (const [k, v] of Object.entries(present)) facts.set(k, v);
  return facts;
}

/** The usual directories of a Debian host, for facts: /etc, /opt, /usr/local/... */
export function baseDirs(...paths: string[]): Record<string, FileFact> {
  const out: Record<string, FileFact> = {};
  for (const p of paths) out[`file:${p}`] = dirFact();
  return out;
}
