// The helpers every berth template can use. All of them are pure functions.
//
// Templates are rendered twice (see render.ts): once with every Secret replaced
// by its real value, and once with every Secret replaced by a `Masked` stand-in
// that carries only the secret's display text. A helper therefore never sees a
// Secret: in the real pass it sees plain strings, in the display pass it sees
// `Masked` values, and it must keep them masked. Helpers whose output still
// reads well when computed from the display text (shq, quote, json, indent, …)
// compute it from the display text and mark the result as masked; helpers
// whose output would look like a real value (b64, upper, replace, …) give
// "(sensitive)" instead.

import type Handlebars from 'handlebars';
import YAML from 'yaml';
import { stringify as tomlStringify } from 'smol-toml';
import { SENSITIVE } from '../secrets/secret.js';
import { shq } from '../util/shell.js';

type Env = typeof Handlebars;

/** Where a helper call is in its template (Handlebars passes it as `options.loc`). */
export interface TemplateLoc {
  start: { line: number; column: number };
  end: { line: number; column: number };
}

interface Options {
  name: string;
  hash: Record<string, unknown>;
  loc?: TemplateLoc;
  data?: Record<string, unknown>;
}

/** Stands in for a Secret during the display pass: only its printable text. */
export class Masked {
  constructor(readonly display: string) {}
  toString(): string {
    return this.display;
  }
  toJSON(): string {
    return this.display;
  }
}

export function isMasked(v: unknown): v is Masked {
  return v instanceof Masked;
}

/**
 * A helper was called wrongly. `arg` is the 0-based index of the offending
 * argument, so the renderer can name the expression the user wrote.
 */
export class HelperError extends Error {
  constructor(
    readonly helper: string,
    message: string,
    readonly loc?: TemplateLoc,
    readonly arg?: number,
  ) {
    super(message);
    this.name = 'HelperError';
  }
}

// ---------------------------------------------------------------- value utils

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** True when a value holds a Masked anywhere (plain objects and arrays). */
export function hasMasked(v: unknown): boolean {
  if (v instanceof Masked) return true;
  if (Array.isArray(v)) return v.some(hasMasked);
  if (isPlainObject(v)) return Object.values(v).some(hasMasked);
  return false;
}

/** Replaces every Masked by its display text (plain objects and arrays). */
export function unmask(v: unknown): unknown {
  if (v instanceof Masked) return v.display;
  if (Array.isArray(v)) return v.map(unmask);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unmask(x);
    return out;
  }
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `a ${typeof v}`;
}

/** Handlebars' notion of truth, used by and/or/not (an empty list is false). */
function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return Boolean(v);
}

// ---------------------------------------------------------------- quoting

/**
 * A double-quoted string that is valid (and means the same) in YAML, TOML and
 * JSON: only the escapes the three share are used.
 */
/**
 * A value for a systemd EnvironmentFile: double-quoted, with \\, " and $
 * escaped; newlines stay literal (systemd keeps them inside quotes, and does
 * not turn \n into one). Nothing in the value is expanded.
 */
export function envFileQuote(s: string): string {
  return `"${s.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}

export function quoteString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || (c >= 0xd800 && c <= 0xdfff)) {
      out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

const BARE_TOML_KEY = /^[A-Za-z0-9_-]+$/;

/** A TOML value written inline (scalars, arrays, inline tables). */
function tomlInline(v: unknown, where: string): string {
  if (typeof v === 'string') return quoteString(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'nan';
    if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map((x, i) => tomlInline(x, `${where}[${i}]`)).join(', ')}]`;
  if (isPlainObject(v)) {
    const parts = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${BARE_TOML_KEY.test(k) ? k : quoteString(k)} = ${tomlInline(x, where ? `${where}.${k}` : k)}`);
    return parts.length === 0 ? '{}' : `{ ${parts.join(', ')} }`;
  }
  throw new Error(`${where || 'the value'} is ${typeName(v)}, which TOML cannot hold`);
}

function rejectNull(v: unknown, where: string): void {
  if (v === null) throw new Error(`${where || 'the value'} is null, which TOML cannot hold`);
  if (Array.isArray(v)) v.forEach((x, i) => rejectNull(x, `${where}[${i}]`));
  else if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) rejectNull(x, where ? `${where}.${k}` : k);
}

/** A map becomes a TOML document (tables); anything else an inline TOML value. */
export function toToml(v: unknown): string {
  rejectNull(v, '');
  if (isPlainObject(v)) return tomlStringify(v).replace(/\n+$/, '');
  return tomlInline(v, '');
}

// ---------------------------------------------------------------- registration

interface HelperSpec {
  /** Fewest and most positional arguments (without Handlebars' options). */
  min: number;
  max: number;
  /** Arguments that may be undefined (only `default` allows a missing value). */
  allowUndefined?: boolean;
  fn: (args: unknown[], opts: Options, fail: (message: string, arg?: number) => never) => unknown;
}

function define(env: Env, name: string, spec: HelperSpec): void {
  env.registerHelper(name, function (this: unknown, ...all: unknown[]) {
    const opts = all.pop() as Options;
    const args = all;
    const fail = (message: string, arg?: number): never => {
      throw new HelperError(name, message, opts.loc, arg);
    };
    if (args.length < spec.min || args.length > spec.max) {
      const want = spec.min === spec.max ? `${spec.min}` : spec.max === Infinity ? `at least ${spec.min}` : `${spec.min} to ${spec.max}`;
      fail(`takes ${want} argument${want === '1' ? '' : 's'}, got ${args.length}`);
    }
    if (!spec.allowUndefined) {
      const i = args.findIndex((a) => a === undefined);
      if (i >= 0) fail(`argument ${i + 1} is not defined`, i);
    }
    try {
      return spec.fn(args, opts, fail);
    } catch (e) {
      if (e instanceof HelperError) throw e;
      // messages from our own code and from yaml/smol-toml describe types, never values
      return fail(e instanceof Error ? e.message : String(e));
    }
  });
}

/** Text of a scalar argument (Masked → its display text). */
function text(v: unknown, i: number, fail: (m: string, arg?: number) => never): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Masked) return v.display;
  return fail(`argument ${i + 1} must be text, got ${typeName(v)}`, i);
}

/**
 * A one-argument text transform. `shown`: the display pass computes it from
 * the display text ("display") or shows only "(sensitive)" ("opaque").
 */
function textHelper(env: Env, name: string, shown: 'display' | 'opaque', f: (s: string) => string): void {
  define(env, name, {
    min: 1,
    max: 1,
    fn: ([v], _o, fail) => {
      const s = text(v, 0, fail);
      if (v instanceof Masked) return new Masked(shown === 'display' ? f(s) : SENSITIVE);
      return f(s);
    },
  });
}

/** Applies `f` to a structure; in the display pass the result stays masked if the input was. */
function structural(v: unknown, f: (plain: unknown) => string): unknown {
  if (hasMasked(v)) return new Masked(f(unmask(v)));
  return f(v);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$|^[A-Za-z0-9_-]*={0,2}$/;

export function registerHelpers(env: Env): void {
  textHelper(env, 'shq', 'display', shq);
  textHelper(env, 'quote', 'display', quoteString);
  textHelper(env, 'envq', 'display', envFileQuote);
  textHelper(env, 'trim', 'display', (s) => s.trim());
  textHelper(env, 'upper', 'opaque', (s) => s.toUpperCase());
  textHelper(env, 'lower', 'opaque', (s) => s.toLowerCase());
  textHelper(env, 'b64', 'opaque', (s) => Buffer.from(s, 'utf8').toString('base64'));
  textHelper(env, 'b64decode', 'opaque', (s) => {
    const clean = s.replace(/\s+/g, '');
    if (clean.length % 4 === 1 || !BASE64.test(clean)) throw new Error('argument 1 is not valid base64');
    return Buffer.from(clean, 'base64').toString('utf8');
  });

  define(env, 'json', {
    min: 1,
    max: 2,
    fn: ([v, indent], _o, fail) => {
      if (indent !== undefined && (typeof indent !== 'number' || !Number.isInteger(indent) || indent < 0)) {
        fail('indent (argument 2) must be a whole number', 1);
      }
      return structural(v, (plain) => JSON.stringify(plain, null, indent as number | undefined) ?? 'null');
    },
  });

  define(env, 'yaml', {
    min: 1,
    max: 1,
    fn: ([v]) => structural(v, (plain) => YAML.stringify(plain, { lineWidth: 0 }).replace(/\n$/, '')),
  });

  define(env, 'toml', {
    min: 1,
    max: 1,
    fn: ([v]) => structural(v, toToml),
  });

  define(env, 'indent', {
    min: 2,
    max: 2,
    fn: ([n, v], opts, fail) => {
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) fail('the count (argument 1) must be a whole number', 0);
      const first = opts.hash.first;
      if (first !== undefined && typeof first !== 'boolean') fail('first= must be true or false');
      const pad = ' '.repeat(n as number);
      const s = text(v, 1, fail);
      const out = s
        .split('\n')
        .map((line, i) => ((i > 0 || first === true) && line.trim() !== '' ? pad + line : line))
        .join('\n');
      return v instanceof Masked ? new Masked(out) : out;
    },
  });

  define(env, 'lines', {
    min: 1,
    max: 1,
    fn: ([v], _o, fail) => {
      const s = text(v, 0, fail);
      if (s === '') return [];
      const out = s.split(/\r?\n/);
      if (out.length > 1 && out[out.length - 1] === '') out.pop();
      return v instanceof Masked ? out.map((l) => new Masked(l)) : out;
    },
  });

  define(env, 'join', {
    min: 1,
    max: 2,
    fn: ([list, sep], _o, fail) => {
      if (!Array.isArray(list)) return fail(`argument 1 must be a list, got ${typeName(list)}`, 0);
      const separator = sep === undefined ? ',' : text(sep, 1, fail);
      const out = list.map((x, i) => (x instanceof Masked ? x.display : text(x, 0, () => fail(`item ${i} of the list is ${typeName(x)}, not text`, 0)))).join(separator);
      return hasMasked(list) || sep instanceof Masked ? new Masked(out) : out;
    },
  });

  define(env, 'replace', {
    min: 3,
    max: 3,
    fn: ([v, from, to], _o, fail) => {
      const s = text(v, 0, fail);
      const f = text(from, 1, fail);
      const t = text(to, 2, fail);
      if (f === '') fail('the text to replace (argument 2) is empty', 1);
      if (v instanceof Masked || from instanceof Masked) return new Masked(SENSITIVE);
      const out = s.split(f).join(t);
      return to instanceof Masked ? new Masked(out) : out;
    },
  });

  define(env, 'default', {
    min: 2,
    max: 2,
    allowUndefined: true,
    fn: ([v, fallback]) => (v === undefined || v === null || v === '' ? fallback : v),
  });

  define(env, 'keys', {
    min: 1,
    max: 1,
    fn: ([v], _o, fail) => (isPlainObject(v) ? Object.keys(v) : fail(`argument 1 must be a map, got ${typeName(v)}`, 0)),
  });

  define(env, 'eq', { min: 2, max: 2, fn: ([a, b]) => a === b });
  define(env, 'ne', { min: 2, max: 2, fn: ([a, b]) => a !== b });
  define(env, 'and', { min: 1, max: Infinity, fn: (args) => args.every(truthy) });
  define(env, 'or', { min: 1, max: Infinity, fn: (args) => args.some(truthy) });
  define(env, 'not', { min: 1, max: 1, fn: ([v]) => !truthy(v) });
}

/** The names of berth's helpers (for error hints and docs). */
export const HELPER_NAMES = [
  'shq', 'envq', 'quote', 'json', 'yaml', 'toml', 'b64', 'b64decode', 'indent', 'lines', 'join', 'replace',
  'trim', 'upper', 'lower', 'default', 'keys', 'eq', 'ne', 'and', 'or', 'not',
] as const;
