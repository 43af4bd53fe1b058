// The bad-input corpus: one YAML file per case in cases/, each a change to
// the spec in base/ and the one line berth must print for it. See README.md.

import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { moduleNames } from '../../src/modules/registry.js';
import { HELPER_NAMES } from '../../src/template/index.js';

export const CORPUS_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(CORPUS_DIR, '..', '..');
export const BASE_DIR = join(CORPUS_DIR, 'base');
export const CASES_DIR = join(CORPUS_DIR, 'cases');

/** The classes of bad input, in the order the reliability table lists them. */
export const CLASSES = {
  'yaml-syntax': 'YAML syntax errors',
  'wrong-type': 'wrong types',
  'unknown-key': 'unknown keys',
  duplicate: 'duplicate names and keys',
  dangling: 'dangling references (play → role, host → group, notify → handler, files)',
  'host-name': 'invalid host names and addresses',
  port: 'invalid ports',
  mode: 'invalid file modes',
  'uid-clash': 'uid and gid clashes',
  template: 'template errors',
  secret: 'missing or misplaced secrets',
  'huge-binary': 'huge or binary files',
  symlink: 'symbolic link loops in roles',
  escape: 'templates and src: outside the repository',
  value: 'invalid values (paths, names, conditions, loops)',
  cli: 'bad command lines and plan files',
} as const;

export type CaseClass = keyof typeof CLASSES;

/** A file the case makes that is not plain text. */
export type Generated =
  | { path: string; symlink: string }
  | { path: string; base64: string }
  /** `text` repeated until the file is at least `size` bytes. */
  | { path: string; repeat: string; size: number }
  /** A sparse file of `size` bytes (zeros). */
  | { path: string; sparse: number };

export interface Case {
  id: string;
  file: string;
  class: CaseClass;
  about: string;
  /** Overlaid on base/: path → text (null removes the file from the copy). */
  files: Record<string, string | null>;
  generate: Generated[];
  /** berth's arguments; `-i inventories/bad` is added unless raw. Default: plan. */
  args: string[];
  raw: boolean;
  /** Environment changes; null unsets. */
  env: Record<string, string | null>;
  /** The exact line on stderr ... */
  stderr?: string;
  /** ... or a pattern it must match. */
  match?: RegExp;
  /** Where the line points: file:line(:col) (default), a file only, or nowhere (command-line errors). */
  located: 'line' | 'file' | 'none';
}

const KEYS = new Set(['class', 'about', 'files', 'generate', 'args', 'raw', 'env', 'stderr', 'match', 'located']);

/**
 * Lists that grow with berth, written in a case's expected line as
 * placeholders, so a new module, role or helper does not rewrite the corpus:
 *   {modules}       every module, comma-separated, in name order
 *   {berth_roles}   the roles berth ships (roles/), in name order
 *   {helpers}       every template helper, in name order
 */
export function expandLists(line: string): string {
  const lists: Record<string, string[]> = {
    modules: moduleNames(),
    berth_roles: readdirSync(join(REPO_ROOT, 'roles')).sort(),
    helpers: [...HELPER_NAMES].sort(),
  };
  return line.replace(/\{(modules|berth_roles|helpers)\}/g, (_m, k: string) => lists[k]!.join(', '));
}

export function loadCases(): Case[] {
  const out: Case[] = [];
  for (const name of readdirSync(CASES_DIR).filter((f) => f.endsWith('.yml')).sort()) {
    const file = join(CASES_DIR, name);
    const v = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const bad = (why: string) => new Error(`test/bad-inputs/cases/${name}: ${why}`);
    for (const k of Object.keys(v)) if (!KEYS.has(k)) throw bad(`unknown key ${k}`);
    if (!(String(v.class) in CLASSES)) throw bad(`class must be one of ${Object.keys(CLASSES).join(', ')}`);
    if (typeof v.about !== 'string') throw bad('about: say what the case is');
    if ((v.stderr === undefined) === (v.match === undefined)) throw bad('give exactly one of stderr (the exact line) or match (a pattern)');
    out.push({
      id: name.replace(/\.yml$/, ''),
      file,
      class: v.class as CaseClass,
      about: v.about,
      files: (v.files ?? {}) as Record<string, string | null>,
      generate: (v.generate ?? []) as Generated[],
      args: (v.args ?? ['plan']) as string[],
      raw: v.raw === true,
      env: (v.env ?? {}) as Record<string, string | null>,
      stderr: v.stderr === undefined ? undefined : expandLists(String(v.stderr)),
      match: v.match === undefined ? undefined : new RegExp(String(v.match)),
      located: (v.located ?? 'line') as Case['located'],
    });
  }
  return out;
}

/** The placeholders in base/ and case files: where the counting listener is. */
export interface Where {
  addr: string;
  port: number;
}

const fill = (text: string, w: Where) => text.replaceAll('@ADDR@', w.addr).replaceAll('@PORT@', String(w.port));

/** Writes the case's spec tree into a new temporary directory. */
export function materialize(c: Case, w: Where): string {
  const root = mkdtempSync(join(tmpdir(), `berth-bad-${c.id}-`));
  cpSync(BASE_DIR, root, { recursive: true });
  for (const f of walk(root)) {
    const text = readFileSync(f, 'utf8');
    if (text.includes('@ADDR@') || text.includes('@PORT@')) writeFileSync(f, fill(text, w));
  }
  for (const [rel, text] of Object.entries(c.files)) {
    const abs = inside(root, rel);
    if (text === null) {
      rmSync(abs, { recursive: true, force: true });
      continue;
    }
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, fill(text, w));
  }
  for (const g of c.generate) {
    const abs = inside(root, g.path);
    mkdirSync(dirname(abs), { recursive: true });
    rmSync(abs, { recursive: true, force: true });
    if ('symlink' in g) symlinkSync(g.symlink, abs);
    else if ('base64' in g) writeFileSync(abs, Buffer.from(g.base64, 'base64'));
    else if ('repeat' in g) writeFileSync(abs, g.repeat.repeat(Math.ceil(g.size / Buffer.byteLength(g.repeat))));
    else {
      writeFileSync(abs, '');
      truncateSync(abs, g.sparse);
    }
  }
  return root;
}

function inside(root: string, rel: string): string {
  const abs = resolve(root, rel);
  if (!abs.startsWith(root + '/')) throw new Error(`case path ${rel} is outside the case's tree`);
  return abs;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}
