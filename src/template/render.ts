// Rendering templates (Handlebars, strict) into config files and task
// arguments, keeping secrets secret.
//
// A context may hold `Secret` values anywhere. Each template is rendered twice:
// once with every Secret replaced by its real value, and once with every
// Secret replaced by a stand-in carrying only its display text (helpers.ts,
// `Masked`). Equal results mean no secret reached the output and a plain string
// is returned; otherwise the result is `new Secret(real, shown)`, whose display
// keeps every non-secret line for diffs. The display pass runs first, so an
// error raised while rendering is raised (and worded) without secret values.

import Handlebars from 'handlebars';
import type { SourcePos } from '../types.js';
import { Secret } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import { HELPER_NAMES, HelperError, Masked, hasMasked, registerHelpers, type TemplateLoc } from './helpers.js';

export type TemplateContext = Record<string, unknown>;

/**
 * Where a template was written. For a template file: just `file`. For a
 * template inline in a YAML file: `line` (and `col`) of the string's first
 * line, so that template line N is reported as file line `line + N - 1`.
 */
export interface TemplateOrigin {
  file: string;
  line?: number;
  col?: number;
}

type AstNode = hbs.AST.Node;
type Path = hbs.AST.PathExpression;
type Template = (context: unknown, options?: Handlebars.RuntimeOptions) => string;

// ---------------------------------------------------------------- environment

const env = Handlebars.create();
registerHelpers(env);

const COMPILE_OPTIONS = { strict: true, noEscape: true } as const;
const CAPTURE = '__berth_value';

interface Box {
  value: unknown;
}

env.registerHelper('helperMissing', function (...all: unknown[]) {
  const opts = all.pop() as { name: string; loc?: TemplateLoc };
  if (all.length === 0) return undefined;
  throw new HelperError(opts.name, `unknown helper "${opts.name}"`, opts.loc);
});

// Captures the value of one expression without turning it into text (renderValue).
env.registerHelper(CAPTURE, function (value: unknown, opts: { data?: { berthCapture?: Box } }) {
  const box = opts.data?.berthCapture;
  if (box) box.value = value;
  return '';
});

// ---------------------------------------------------------------- cache

type Typed = { kind: 'path'; parts: string[] } | { kind: 'helper'; fn: Template } | { kind: 'text' };

interface Entry {
  source: string;
  fn: Template;
  /** Parsed lazily: for error positions and single-expression detection. `null` when unparsable. */
  ast?: hbs.AST.Program | null;
  typed?: Typed;
}

const CACHE_LIMIT = 5000;
const cache = new Map<string, Entry>();

function entryOf(source: string): Entry {
  let e = cache.get(source);
  if (e === undefined) {
    if (cache.size >= CACHE_LIMIT) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    // Handlebars compiles lazily, on first call; parse errors surface there.
    e = { source, fn: env.compile(source, COMPILE_OPTIONS) as Template };
    cache.set(source, e);
  }
  return e;
}

function astOf(e: Entry): hbs.AST.Program | null {
  if (e.ast === undefined) {
    try {
      e.ast = env.parse(e.source);
    } catch {
      e.ast = null;
    }
  }
  return e.ast;
}

/** Whether a template is exactly one `{{ expression }}` and so may yield a typed value. */
function typedOf(e: Entry): Typed {
  if (e.typed) return e.typed;
  e.typed = { kind: 'text' };
  const ast = astOf(e);
  const only = ast?.body.length === 1 ? ast.body[0] : undefined;
  if (only?.type === 'MustacheStatement') {
    const m = only as hbs.AST.MustacheStatement;
    const hasArgs = m.params.length > 0 || (m.hash !== undefined && m.hash.pairs.length > 0);
    if (!hasArgs && m.path.type === 'PathExpression') {
      const p = m.path as Path;
      const isHelper = p.parts.length === 1 && !p.data && p.parts[0] !== undefined && p.parts[0] in env.helpers;
      if (!isHelper && p.depth === 0 && (!p.data || p.parts[0] === 'root')) {
        e.typed = { kind: 'path', parts: p.data ? p.parts.slice(1) : p.parts };
      }
    } else if (hasArgs && m.path.type === 'PathExpression') {
      // {{ helper args }} → {{__berth_value (helper args)}}, on a fresh AST (compiling mutates it)
      const fresh = env.parse(e.source).body[0] as hbs.AST.MustacheStatement;
      const sub = { type: 'SubExpression', path: fresh.path, params: fresh.params, hash: fresh.hash, loc: fresh.loc };
      const capture = { type: 'PathExpression', data: false, depth: 0, parts: [CAPTURE], original: CAPTURE, loc: fresh.loc };
      const wrapped = { ...fresh, path: capture, params: [sub], hash: undefined };
      const program = { type: 'Program', body: [wrapped], blockParams: [], strip: {}, loc: fresh.loc };
      e.typed = { kind: 'helper', fn: env.compile(program, COMPILE_OPTIONS) as Template };
    }
  }
  return e.typed;
}

// ---------------------------------------------------------------- secrets in the context

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function hasSecret(v: unknown): boolean {
  if (v instanceof Secret) return true;
  if (Array.isArray(v)) return v.some(hasSecret);
  if (isPlainObject(v)) return Object.values(v).some(hasSecret);
  return false;
}

function swapSecrets(v: unknown, f: (s: Secret) => unknown): unknown {
  if (v instanceof Secret) return f(v);
  if (Array.isArray(v)) return v.map((x) => swapSecrets(x, f));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = swapSecrets(x, f);
    return out;
  }
  return v;
}

interface Prepared {
  original: TemplateContext;
  /** Every Secret replaced by its value. */
  real: TemplateContext;
  /** Every Secret replaced by a Masked with its display text. */
  shown: TemplateContext;
  secrets: boolean;
}

function prepare(context: TemplateContext): Prepared {
  if (!hasSecret(context)) return { original: context, real: context, shown: context, secrets: false };
  return {
    original: context,
    real: swapSecrets(context, (s) => s.reveal()) as TemplateContext,
    shown: swapSecrets(context, (s) => new Masked(s.display)) as TemplateContext,
    secrets: true,
  };
}

/**
 * Joins the results of the two passes: where they agree the value is plain;
 * where they differ the real value becomes a Secret showing the display one.
 */
function join(real: unknown, shown: unknown): unknown {
  if (shown instanceof Masked) return new Secret(toText(real), shown.display);
  if (typeof real === 'string') {
    if (typeof shown === 'string' && shown === real) return real;
    return new Secret(real, typeof shown === 'string' ? shown : toText(shown));
  }
  if (Array.isArray(real)) {
    if (Array.isArray(shown) && shown.length === real.length) return real.map((x, i) => join(x, shown[i]));
    return allSecret(real);
  }
  if (isPlainObject(real)) {
    if (isPlainObject(shown)) {
      const keys = Object.keys(real);
      if (keys.length === Object.keys(shown).length && keys.every((k) => Object.hasOwn(shown, k))) {
        const out: Record<string, unknown> = {};
        for (const k of keys) out[k] = join(real[k], shown[k]);
        return out;
      }
    }
    return allSecret(real);
  }
  if (Object.is(real, shown) || !hasMasked(shown)) return real;
  return new Secret(toText(real));
}

/** When the passes took different shapes: every text in the real value is secret. */
function allSecret(v: unknown): unknown {
  if (typeof v === 'string') return new Secret(v);
  if (Array.isArray(v)) return v.map(allSecret);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = allSecret(x);
    return out;
  }
  return v;
}

function toText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// ---------------------------------------------------------------- rendering

function runPass<T>(e: Entry, prep: Prepared, originOf: () => TemplateOrigin, run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw toBerthError(err, e, prep.original, originOf());
  }
}

function renderEntry(e: Entry, prep: Prepared, originOf: () => TemplateOrigin): string | Secret {
  const pass = (ctx: TemplateContext) => runPass(e, prep, originOf, () => e.fn(ctx));
  if (!prep.secrets) return pass(prep.real);
  const shown = pass(prep.shown);
  const real = pass(prep.real);
  return real === shown ? real : new Secret(real, shown);
}

function renderTyped(e: Entry, fn: Template, prep: Prepared, originOf: () => TemplateOrigin): unknown {
  const pass = (ctx: TemplateContext): unknown =>
    runPass(e, prep, originOf, () => {
      const box: Box = { value: undefined };
      fn(ctx, { data: { berthCapture: box } });
      return box.value === undefined ? '' : box.value;
    });
  if (!prep.secrets) return pass(prep.real);
  const shown = pass(prep.shown);
  const real = pass(prep.real);
  return join(real, shown);
}

function renderString(source: string, prep: Prepared, originOf: () => TemplateOrigin): unknown {
  const e = entryOf(source);
  const typed = typedOf(e);
  if (typed.kind === 'path') {
    const v = lookupPath(prep.original, typed.parts);
    if (v !== undefined) return v;
  } else if (typed.kind === 'helper') {
    return renderTyped(e, typed.fn, prep, originOf);
  }
  return renderEntry(e, prep, originOf);
}

/**
 * Renders a template. Returns a Secret when a secret reached the output (its
 * `display` is the same text with each secret shown as its display text).
 * Throws BerthError (position: the line in the template) on any mistake.
 */
export function renderTemplate(source: string, context: TemplateContext, origin: TemplateOrigin): string | Secret {
  return renderEntry(entryOf(source), prepare(context), () => origin);
}

/**
 * Renders every string containing `{{` in a structure (task arguments); other
 * values are returned untouched. A string that is exactly one expression
 * (`"{{ ports.https }}"`, `"{{ eq a b }}"`) yields the expression's value with
 * its type: a number, boolean, list, map, null or Secret. `locate` gives the
 * position of the string at a path, for errors.
 */
export function renderValue(
  value: unknown,
  context: TemplateContext,
  locate: (path: (string | number)[]) => SourcePos,
): unknown {
  const prep = prepare(context);
  const walk = (v: unknown, path: (string | number)[]): unknown => {
    if (typeof v === 'string') return v.includes('{{') ? renderString(v, prep, () => locate(path)) : v;
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, i]));
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, [...path, k]);
      return out;
    }
    return v;
  };
  return walk(value, []);
}

/**
 * The variable a template takes its value from, when it is one expression
 * naming one: `{{ item.value.proxy }}` → ["item", "value", "proxy"]; for a
 * helper call, its first variable argument (`{{ default item.value.quota -1 }}`
 * → ["item", "value", "quota"]). Undefined for anything else. Used to point an
 * error about a task argument at the line that wrote the variable.
 */
export function sourceVariable(source: string): string[] | undefined {
  if (!source.includes('{{')) return undefined;
  const ast = astOf(entryOf(source));
  const only = ast?.body.filter((n) => !(n.type === 'ContentStatement' && (n as hbs.AST.ContentStatement).value.trim() === ''));
  if (only?.length !== 1 || only[0]!.type !== 'MustacheStatement') return undefined;
  const m = only[0] as hbs.AST.MustacheStatement;
  const candidates = m.params.length === 0 ? [m.path] : m.params;
  const p = candidates.find((x) => x.type === 'PathExpression') as Path | undefined;
  if (!p || p.depth !== 0 || (p.data && p.parts[0] !== 'root')) return undefined;
  if (m.params.length === 0 && p.parts.length === 1 && p.parts[0]! in env.helpers) return undefined;
  return pathParts(p);
}

// ---------------------------------------------------------------- conditions

const FALSE_WORDS = new Set(['', 'false', '0', 'no', 'null', 'undefined']);
const VARIABLE_PATH = /^[A-Za-z_][\w-]*(?:\.[\w-]+)*$/;

function textTruth(s: string): boolean {
  return !FALSE_WORDS.has(s.trim().toLowerCase());
}

function valueTruth(v: unknown): boolean {
  if (v instanceof Secret) return textTruth(v.reveal());
  if (typeof v === 'string') return textTruth(v);
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
  if (Array.isArray(v)) return v.length > 0;
  if (isPlainObject(v)) return Object.keys(v).length > 0;
  return Boolean(v);
}

/**
 * A task's `when:`. Either a template (`{{eq tls.mode 'selfsigned'}}`) whose
 * output is false when it is "", "false", "0", "no", "null" or "undefined"
 * (any case), or a variable path (`tls.enabled`, `not tls.enabled`), which must
 * be defined.
 */
export function evalCondition(expr: string | boolean, context: TemplateContext, pos: SourcePos): boolean {
  if (typeof expr === 'boolean') return expr;
  const s = expr.trim();
  if (s.includes('{{')) {
    const out = renderTemplate(s, context, pos);
    return textTruth(out instanceof Secret ? out.reveal() : out);
  }
  const neg = /^(?:not\s+|!\s*)(.*)$/.exec(s);
  const path = neg ? (neg[1] ?? '').trim() : s;
  if (!VARIABLE_PATH.test(path)) {
    throw new BerthError(`condition "${s}" is neither a template nor a variable name`, {
      pos,
      hint: `write a variable like tls.enabled or a template like {{eq tls.mode 'selfsigned'}}`,
    });
  }
  const parts = path.split('.');
  if (!hasPath(context, parts)) {
    throw new BerthError(`condition: variable "${path}" is not defined`, { pos, hint: knownHint(parts, context) });
  }
  const truth = valueTruth(lookupPath(context, parts));
  return neg ? !truth : truth;
}

// ---------------------------------------------------------------- paths

function step(cur: unknown, key: string | number): { found: boolean; value: unknown } {
  if (Array.isArray(cur)) {
    const i = typeof key === 'number' ? key : /^\d+$/.test(key) ? Number(key) : NaN;
    return Number.isInteger(i) && i < cur.length ? { found: true, value: cur[i] } : { found: false, value: undefined };
  }
  if (cur !== null && typeof cur === 'object' && !(cur instanceof Secret) && Object.hasOwn(cur, key)) {
    return { found: true, value: (cur as Record<string, unknown>)[key] };
  }
  return { found: false, value: undefined };
}

function splitPath(path: string | readonly (string | number)[]): readonly (string | number)[] {
  if (typeof path !== 'string') return path;
  return path === '' ? [] : path.split('.');
}

/** The value at `a.b.0.c` (or a list of keys); undefined when any step is missing. Own keys only. */
export function lookupPath(context: unknown, path: string | readonly (string | number)[]): unknown {
  let cur = context;
  for (const key of splitPath(path)) {
    const r = step(cur, key);
    if (!r.found) return undefined;
    cur = r.value;
  }
  return cur;
}

function hasPath(context: unknown, parts: readonly (string | number)[]): boolean {
  let cur = context;
  for (const key of parts) {
    const r = step(cur, key);
    if (!r.found) return false;
    cur = r.value;
  }
  return true;
}

// ---------------------------------------------------------------- errors

/** Edit distance where swapping two neighbouring letters counts as one edit. */
function distance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [];
    for (let j = 0; j <= b.length; j++) {
      if (i === 0 || j === 0) {
        row.push(i + j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((rows[i - 1]?.[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (rows[i - 1]?.[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

/** "did you mean …?" plus up to `limit` names, the close ones first. */
function suggest(name: string, names: string[], label: string, limit = 8): string {
  if (names.length === 0) return `${label}: none`;
  // close names first (by distance), then the rest in alphabetical order
  const near = Math.max(1, Math.floor(name.length / 3));
  const ranked = names
    .map((n) => {
      const d = distance(name.toLowerCase(), n.toLowerCase());
      return { n, d: d <= near ? d : Infinity };
    })
    .sort((x, y) => (x.d === y.d ? x.n.localeCompare(y.n) : x.d < y.d ? -1 : 1));
  const shown = ranked.slice(0, limit).map((r) => r.n);
  const more = names.length > shown.length ? `, … (${names.length - shown.length} more)` : '';
  const best = ranked[0];
  const mean = best && best.d !== Infinity ? `did you mean "${best.n}"? ` : '';
  return `${mean}${label}: ${shown.join(', ')}${more}`;
}

function describe(v: unknown): string {
  if (v instanceof Secret) return 'a secret';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a map' : `a ${typeof v}`;
}

/** Names what exists along `parts` in the context. */
function knownHint(parts: readonly string[], context: TemplateContext): string {
  let cur: unknown = context;
  for (let i = 0; i < parts.length; i++) {
    const key = parts[i] ?? '';
    const r = step(cur, key);
    if (r.found) {
      cur = r.value;
      continue;
    }
    const where = parts.slice(0, i).join('.');
    if (i === 0) return suggest(key, Object.keys(context), 'known variables');
    if (Array.isArray(cur)) return `"${where}" is a list of ${cur.length}`;
    if (cur !== null && typeof cur === 'object' && !(cur instanceof Secret)) {
      return suggest(key, Object.keys(cur), `known keys of "${where}"`);
    }
    return `"${where}" is ${describe(cur)}, not a map`;
  }
  return suggest(parts[0] ?? '', Object.keys(context), 'known variables');
}

interface Found {
  node: AstNode;
  parent?: AstNode;
  /** Inside a block (#each, #with, …) whose body sees another context. */
  scoped: boolean;
}

function findNodes(ast: hbs.AST.Program | null, pred: (n: AstNode, parent?: AstNode) => boolean): Found[] {
  const found: Found[] = [];
  const visit = (n: AstNode, parent: AstNode | undefined, scoped: boolean): void => {
    if (pred(n, parent)) found.push({ node: n, parent, scoped });
    for (const [key, v] of Object.entries(n)) {
      if (key === 'loc') continue;
      const inner =
        scoped ||
        (n.type === 'BlockStatement' && key === 'program' && !['if', 'unless'].includes((n as hbs.AST.BlockStatement).path.original as string));
      const kids = Array.isArray(v) ? v : [v];
      for (const k of kids) {
        if (k !== null && typeof k === 'object' && typeof (k as AstNode).type === 'string') visit(k as AstNode, n, inner);
      }
    }
  };
  if (ast) visit(ast, undefined, false);
  return found;
}

function isPath(n: AstNode): n is Path {
  return n.type === 'PathExpression';
}

function templatePos(origin: TemplateOrigin, line?: number, column0?: number): SourcePos {
  if (origin.line === undefined) {
    const pos: SourcePos = { file: origin.file };
    if (line !== undefined) pos.line = line;
    if (line !== undefined && column0 !== undefined) pos.col = column0 + 1;
    return pos;
  }
  const pos: SourcePos = { file: origin.file, line: origin.line + (line ?? 1) - 1 };
  if ((line ?? 1) === 1 && origin.col !== undefined) pos.col = origin.col;
  return pos;
}

function pathParts(p: Path): string[] {
  return p.data && p.parts[0] === 'root' ? p.parts.slice(1) : p.parts;
}

function missingVariable(f: Found, context: TemplateContext, origin: TemplateOrigin, detail = ''): BerthError {
  const p = f.node as Path;
  const parts = pathParts(p);
  let hint = knownHint(parts, context);
  if (f.scoped && !p.data) {
    const inBlock = `inside {{#each}}/{{#with}} names refer to the current item`;
    hint = hasPath(context, parts)
      ? `${inBlock}; write @root.${p.original} for the top-level variable`
      : `${inBlock}; top-level variables are @root.<name>; ${hint}`;
  }
  return new BerthError(`template variable "${p.original}"${detail} is not defined`, {
    pos: templatePos(origin, p.loc?.start.line, p.loc?.start.column),
    hint,
  });
}

const SYNTAX_TOKENS: Record<string, string> = {
  EOF: 'end of template (a {{ or a block is not closed)',
  INVALID: 'character',
  CLOSE: '"}}"',
  OPEN: '"{{"',
  OPEN_ENDBLOCK: '"{{/"',
  OPEN_BLOCK: '"{{#"',
  CLOSE_SEXPR: '")"',
  OPEN_SEXPR: '"("',
  EQUALS: '"="',
  ID: 'name',
  STRING: 'string',
  NUMBER: 'number',
};

function toBerthError(err: unknown, e: Entry, context: TemplateContext, origin: TemplateOrigin): BerthError {
  if (err instanceof BerthError) return err;
  const message = err instanceof Error ? err.message : String(err);

  // a helper called wrongly (our helpers, or an unknown helper)
  if (err instanceof HelperError) {
    const at = err.loc?.start;
    if (message.startsWith('unknown helper')) {
      return new BerthError(message, {
        pos: templatePos(origin, at?.line, at?.column),
        hint: suggest(err.helper, [...HELPER_NAMES], 'helpers', Infinity),
      });
    }
    const call = findNodes(astOf(e), (n) => {
      const c = n as hbs.AST.SubExpression;
      return (
        (n.type === 'MustacheStatement' || n.type === 'SubExpression' || n.type === 'BlockStatement') &&
        c.loc?.start.line === at?.line &&
        c.loc?.start.column === at?.column &&
        isPath(c.path) &&
        c.path.original === err.helper
      );
    })[0];
    const param = err.arg !== undefined && call ? (call.node as hbs.AST.SubExpression).params[err.arg] : undefined;
    if (param && isPath(param) && / is not defined$/.test(message)) {
      return missingVariable({ node: param, scoped: call?.scoped ?? false }, context, origin, ` (argument ${(err.arg ?? 0) + 1} of ${err.helper})`);
    }
    const what = param && isPath(param) ? ` ("${param.original}")` : '';
    return new BerthError(`helper ${err.helper}: ${message}${what}`, { pos: templatePos(origin, at?.line, at?.column) });
  }

  // Handlebars' own errors that carry a position: strict lookups, block mismatches
  const located = err as { lineNumber?: unknown; column?: unknown };
  if (typeof located.lineNumber === 'number') {
    const line = located.lineNumber;
    const column = typeof located.column === 'number' ? located.column : undefined;
    const missing = /^"(.*)" not defined in /.exec(message);
    if (missing) {
      const hit = findNodes(astOf(e), (n) => isPath(n) && n.loc?.start.line === line && n.loc?.start.column === column)[0];
      if (hit) {
        const parent = hit.parent as hbs.AST.MustacheStatement | undefined;
        const calls = parent && parent.path === hit.node && (parent.params.length > 0 || (parent.hash?.pairs.length ?? 0) > 0);
        if (calls) {
          const name = (hit.node as Path).original;
          return new BerthError(`unknown helper "${name}"`, {
            pos: templatePos(origin, line, column),
            hint: suggest(name, [...HELPER_NAMES], 'helpers', Infinity),
          });
        }
        return missingVariable(hit, context, origin);
      }
      return new BerthError(`template variable "${missing[1] ?? ''}" is not defined`, {
        pos: templatePos(origin, line, column),
        hint: knownHint([missing[1] ?? ''], context),
      });
    }
    return new BerthError(`template error: ${message.replace(/ - \d+:\d+$/, '')}`, { pos: templatePos(origin, line, column) });
  }

  // syntax errors from the parser/lexer: only a line
  const syntax = /^(?:Parse|Lexical) error on line (\d+)/.exec(message);
  if (syntax) {
    const line = Number(syntax[1]);
    const got = /got '([^']+)'\s*$/.exec(message)?.[1];
    const what = got ? `unexpected ${SYNTAX_TOKENS[got] ?? got.toLowerCase()}` : 'unrecognised text';
    const text = (e.source.split('\n')[line - 1] ?? '').trim();
    return new BerthError(`template syntax error: ${what}`, {
      pos: templatePos(origin, line),
      hint: text ? `line reads: ${text.length > 60 ? `${text.slice(0, 57)}...` : text}` : undefined,
    });
  }

  // lookups through something missing: Handlebars' strict mode does not guard
  // the middle of a path (`a.b.c` when `a` is missing) nor helper arguments
  const through = /Cannot read properties of (?:undefined|null) \(reading '([^']*)'\)/.exec(message);
  const inPrimitive = /Cannot use 'in' operator to search for '([^']*)'/.exec(message);
  const prop = through?.[1] ?? inPrimitive?.[1];
  if (err instanceof TypeError && prop !== undefined) {
    const candidates = findNodes(astOf(e), (n) => isPath(n) && pathParts(n).indexOf(prop) >= (through ? 1 : 0));
    const unresolved = candidates.find((f) => {
      const parts = pathParts(f.node as Path);
      return !f.scoped && !hasPath(context, parts.slice(0, Math.max(0, parts.indexOf(prop))));
    });
    const hit = unresolved ?? candidates[0];
    if (hit) return missingVariable(hit, context, origin);
    return new BerthError(`template variable "${prop}" is not defined`, { pos: templatePos(origin) });
  }

  // {{> name}}: berth registers no partials
  const partial = /^The partial (.+) could not be found/.exec(message);
  if (partial) {
    const hit = findNodes(astOf(e), (n) => n.type === 'PartialStatement')[0]?.node as hbs.AST.PartialStatement | undefined;
    return new BerthError(`partials are not supported ({{> ${partial[1]}}})`, {
      pos: templatePos(origin, hit?.loc?.start.line, hit?.loc?.start.column),
      hint: 'a template is one file: put the shared text in a variable',
    });
  }

  return new BerthError(`template error: ${message}`, { pos: templatePos(origin), cause: err });
}
