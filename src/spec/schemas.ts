import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { BerthError } from '../util/errors.js';
import type { SourcePos } from '../types.js';
import type { KeyPath } from './yamlfile.js';

// Ajv itself is loaded only to compile (the compiled validators below need just its runtime helpers).
const requireHere = createRequire(import.meta.url);
function loadAjv(): { Ajv: typeof Ajv; addFormats: (ajv: Ajv) => Ajv } {
  const formats = requireHere('ajv-formats') as { default?: unknown };
  return { Ajv: (requireHere('ajv') as { Ajv: typeof Ajv }).Ajv, addFormats: (formats.default ?? formats) as (ajv: Ajv) => Ajv };
}

/** berth's installation directory (holds schemas/, roles/, playbooks/). */
export const BERTH_HOME = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCHEMA_DIR = join(BERTH_HOME, 'schemas');

type AjvInstance = Ajv;

/** An Ajv holding every schema in schemas/; `source` keeps the generated code (for compiled validators). */
export function makeAjv(coerce: boolean, opts: { source?: boolean } = {}): AjvInstance {
  const { Ajv, addFormats } = loadAjv();
  const ajv = new Ajv({
    allErrors: true,
    verbose: true,
    strict: true,
    strictRequired: false,
    coerceTypes: coerce,
    useDefaults: false,
    allowUnionTypes: true,
    ...(opts.source ? { code: { source: true } } : {}),
  });
  addFormats(ajv);
  // `hint` on a schema is shown after the error for values it governs.
  ajv.addKeyword({ keyword: 'hint', schemaType: 'string' });
  // `keyOf: { var, what }`: the value must name a key of the top-level mapping `var`
  // (a project's `proxy` names one of `registries`): a cross-reference, checked with
  // the file:line of the value like any other schema error.
  ajv.addKeyword({
    keyword: 'keyOf',
    schemaType: 'object',
    metaSchema: {
      type: 'object',
      required: ['var', 'what'],
      additionalProperties: false,
      properties: { var: { type: 'string' }, what: { type: 'string' } },
    },
    errors: true,
    validate: function keyOf(schema: { var: string; what: string }, data: unknown, _parent?: unknown, cxt?: { rootData?: unknown }): boolean {
      if (typeof data !== 'string') return true;
      const map = (cxt?.rootData as Record<string, unknown> | undefined)?.[schema.var];
      const keys = map && typeof map === 'object' && !Array.isArray(map) ? Object.keys(map) : [];
      if (keys.includes(data)) return true;
      (keyOf as unknown as { errors: Partial<ErrorObject>[] }).errors = [
        { keyword: 'keyOf', message: `unknown ${schema.what}`, params: { var: schema.var, what: schema.what, known: keys } },
      ];
      return false;
    },
  });
  for (const file of listJson(SCHEMA_DIR)) {
    const schema = JSON.parse(readFileSync(file, 'utf8')) as { $id?: string };
    if (!schema.$id) schema.$id = relative(SCHEMA_DIR, file).replace(/\\/g, '/');
    ajv.addSchema(schema);
  }
  return ajv;
}

function listJson(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listJson(p));
    else if (e.name.endsWith('.json')) out.push(p);
  }
  return out.sort();
}

let strictAjv: AjvInstance | undefined;
let coercingAjv: AjvInstance | undefined;

// ---------------------------------------------------------------- compiled validators
//
// Compiling the schemas costs more CPU than anything else before berth first
// contacts a host (~0.1 s). `npm run build` therefore also writes their
// validators as code (scripts/compile-schemas.mjs, Ajv's standalone code, the
// same code Ajv compiles at run time) next to this file. They are used only
// while they match the schema files and the Ajv they came from; otherwise
// berth compiles the schemas as before.

type Compiled = { hash: string; ids: Record<string, string>; [name: string]: unknown };

export const compiledFile = (coerce: boolean) => join(dirname(fileURLToPath(import.meta.url)), `schemas-${coerce ? 'coerce' : 'strict'}.compiled.cjs`);

let schemasHash: string | undefined;

/** Identifies the schema files and the Ajv that compiles them. */
export function schemaFilesHash(): string {
  if (schemasHash) return schemasHash;
  const h = createHash('sha256');
  h.update(`ajv ${(requireHere('ajv/package.json') as { version: string }).version}\n`);
  for (const f of listJson(SCHEMA_DIR)) h.update(`${relative(SCHEMA_DIR, f)}\n`).update(readFileSync(f)).update('\n');
  return (schemasHash = h.digest('hex'));
}

/** Evaluates validators written by Ajv's standaloneCode (CommonJS text). */
export function loadCompiled(code: string): Compiled {
  const module = { exports: {} as Compiled };
  new Function('module', 'exports', 'require', code)(module, module.exports, requireHere);
  return module.exports;
}

const compiledSets = new Map<boolean, Compiled | null>();

function compiled(coerce: boolean): Compiled | null {
  let set = compiledSets.get(coerce);
  if (set === undefined) {
    set = null;
    const file = compiledFile(coerce);
    if (existsSync(file)) {
      try {
        const c = loadCompiled(readFileSync(file, 'utf8'));
        if (c.hash === schemaFilesHash()) set = c;
      } catch {
        // unreadable or from another Ajv: compile instead
      }
    }
    compiledSets.set(coerce, set);
  }
  return set;
}

/** The validator for a schema in schemas/ by its id ("inventory.json", "modules/file.json"). */
export function schemaValidator(id: string, opts: { coerce?: boolean } = {}): ValidateFunction {
  const c = compiled(opts.coerce === true);
  const name = c?.ids[id];
  if (c && name && typeof c[name] === 'function') return c[name] as ValidateFunction;
  const ajv = opts.coerce ? (coercingAjv ??= makeAjv(true)) : (strictAjv ??= makeAjv(false));
  const v = ajv.getSchema(id);
  if (!v) throw new Error(`internal: no schema ${id} in ${SCHEMA_DIR}`);
  return v;
}

/** Every schema id in schemas/, as schemaValidator knows them. */
export function schemaIds(): string[] {
  return listJson(SCHEMA_DIR).map((f) => {
    const s = JSON.parse(readFileSync(f, 'utf8')) as { $id?: string };
    return s.$id ?? relative(SCHEMA_DIR, f).replace(/\\/g, '/');
  });
}

/** A validator for a schema that is not in schemas/ (a role's inputs). */
export function compileSchema(schema: object, where: SourcePos): ValidateFunction {
  const ajv = (strictAjv ??= makeAjv(false));
  try {
    return ajv.compile(schema);
  } catch (e) {
    throw new BerthError(`invalid JSON Schema: ${(e as Error).message}`, { pos: where });
  }
}

export interface Locator {
  locate(path: KeyPath): SourcePos | undefined;
  locateKey(path: KeyPath): SourcePos | undefined;
}

/** Validates `value`; on failure throws one BerthError for the most useful error. */
export function validateOrThrow(
  validate: ValidateFunction,
  value: unknown,
  loc: Locator,
  opts: { basePath?: KeyPath; what?: string; fallback?: SourcePos } = {},
): void {
  if (validate(value)) return;
  const err = pickError(validate.errors ?? []);
  if (!err) throw new BerthError(`invalid ${opts.what ?? 'value'}`, { pos: opts.fallback });
  throw schemaError(err, value, loc, opts.basePath ?? [], opts.fallback, validate.errors ?? []);
}

export function pathOf(instancePath: string): KeyPath {
  if (!instancePath) return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

export function formatKeyPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

const PREFERRED = ['additionalProperties', 'required', 'type', 'enum', 'const', 'keyOf', 'pattern', 'format', 'minimum', 'maximum'];

function pickError(errors: ErrorObject[]): ErrorObject | undefined {
  const useful = errors.filter((e) => !['anyOf', 'oneOf', 'if', 'allOf', 'not', 'propertyNames'].includes(e.keyword));
  const pool = useful.length ? useful : errors;
  return [...pool].sort((a, b) => {
    const da = pathOf(a.instancePath).length + (a.keyword === 'additionalProperties' || a.keyword === 'required' ? 1 : 0);
    const db = pathOf(b.instancePath).length + (b.keyword === 'additionalProperties' || b.keyword === 'required' ? 1 : 0);
    if (da !== db) return db - da;
    return rank(a.keyword) - rank(b.keyword);
  })[0];
}

function rank(k: string): number {
  const i = PREFERRED.indexOf(k);
  return i < 0 ? PREFERRED.length : i;
}

function valueAt(root: unknown, path: KeyPath): unknown {
  let v = root;
  for (const seg of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[seg as string] : undefined;
  return v;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  if (typeof v === 'object' && v.constructor?.name === 'Secret') return '(sensitive)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** What a value is, for "got ...": null, a list, a mapping, string "x", number 42. */
function described(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return show(v) === '(sensitive)' ? 'a secret' : 'a mapping';
  return `${typeof v} ${show(v)}`;
}

const TYPE_WORDS: Record<string, string> = { object: 'a mapping', array: 'a list' };

const truncated = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);

/** The keys of an anyOf/oneOf whose branches are each just `required: [key]`. */
function requiredBranches(schema: unknown): string[] | undefined {
  if (!Array.isArray(schema)) return undefined;
  const keys: string[] = [];
  for (const b of schema as { required?: unknown }[]) {
    if (!b || typeof b !== 'object' || Object.keys(b).length !== 1 || !Array.isArray(b.required) || b.required.length !== 1) return undefined;
    keys.push(String(b.required[0]));
  }
  return keys;
}

const list = (keys: string[], last: string) => (keys.length <= 1 ? keys.join('') : `${keys.slice(0, -1).join(', ')} ${last} ${keys.at(-1)}`);

function schemaError(err: ErrorObject, root: unknown, loc: Locator, base: KeyPath, fallback: SourcePos | undefined, all: ErrorObject[]): BerthError {
  const path = pathOf(err.instancePath);
  const value = valueAt(root, path);
  const full = [...base, ...path];
  const schemaHint = (err.parentSchema as { hint?: string } | undefined)?.hint;
  let message: string;
  let hint: string | undefined = schemaHint;
  let keyPath = formatKeyPath(full);
  let pos = loc.locate(full);
  const params = err.params as Record<string, unknown>;
  if (err.propertyName !== undefined) {
    // a key that breaks the mapping's propertyNames rule (host, group or variable names)
    const name = err.propertyName;
    return new BerthError(`invalid name ${JSON.stringify(truncated(name))}`, {
      pos: loc.locateKey([...full, name]) ?? pos ?? fallback,
      keyPath: name.length > 60 ? formatKeyPath(full) || undefined : formatKeyPath([...full, name]) || undefined,
      hint: schemaHint ?? (err.keyword === 'pattern' ? `must match ${String(params.pattern)}` : err.message),
    });
  }
  // a key the schema wants one of (anyOf/oneOf of `required` branches), or only one of
  const choice = all.find((e) => (e.keyword === 'anyOf' || e.keyword === 'oneOf') && e.instancePath === err.instancePath && requiredBranches(e.schema));
  const missing = err.keyword === 'required' ? String(params.missingProperty) : undefined;
  if (choice && (err.keyword === 'oneOf' || (missing !== undefined && requiredBranches(choice.schema)!.includes(missing)))) {
    const keys = requiredBranches(choice.schema)!;
    const many = choice.keyword === 'oneOf' && Array.isArray((choice.params as { passingSchemas?: unknown }).passingSchemas);
    return new BerthError(many ? `set only one of ${list(keys, 'or')}` : `needs ${choice.keyword === 'oneOf' ? 'exactly one' : 'at least one'} of ${list(keys, 'or')}`, {
      pos: pos ?? fallback,
      keyPath: keyPath || undefined,
      hint: schemaHint,
    });
  }
  if (err.keyword === 'not') {
    const req = (err.schema as { required?: unknown } | undefined)?.required;
    if (Array.isArray(req) && req.length > 1) {
      return new BerthError(`${list(req.map(String), 'and')} cannot be set together`, { pos: pos ?? fallback, keyPath: keyPath || undefined, hint: 'keep one of them' });
    }
  }
  if (path.length === 0 && (value === null || value === undefined) && err.keyword === 'type') {
    const want = String(params.type).split(',').filter((t) => t !== 'null').map((t) => TYPE_WORDS[t] ?? t);
    return new BerthError(`the file is empty; expected ${want.join(' or ')}`, { pos: fallback?.file ? { file: fallback.file } : pos });
  }
  switch (err.keyword) {
    case 'additionalProperties': {
      const extra = String(params.additionalProperty);
      const known = Object.keys((err.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      message = `unknown key "${extra}"`;
      hint = known.length ? `known keys: ${known.join(', ')}` : undefined;
      keyPath = formatKeyPath([...full, extra]);
      pos = loc.locateKey([...full, extra]) ?? pos;
      break;
    }
    case 'required':
      message = `missing required key "${String(params.missingProperty)}"`;
      break;
    case 'type':
      message = `must be ${String(params.type).split(',').map((t) => TYPE_WORDS[t] ?? t).join(' or ')}, got ${described(value)}`;
      break;
    case 'enum':
      message = `${show(value)} is not allowed`;
      hint = `one of: ${(params.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`;
      break;
    case 'const':
      message = `must be ${JSON.stringify(params.allowedValue)}, got ${show(value)}`;
      break;
    case 'keyOf': {
      const known = params.known as string[];
      message = `unknown ${String(params.what)} ${show(value)}`;
      hint = known.length ? `known ${String(params.var)}: ${known.join(', ')}` : `${String(params.var)} defines none`;
      break;
    }
    case 'pattern':
      message = `${show(value)} is not valid`;
      hint = schemaHint ?? `must match ${String(params.pattern)}`;
      break;
    default:
      message = `${show(value)} ${err.message ?? 'is invalid'}`;
  }
  return new BerthError(message, { pos: pos ?? fallback, keyPath: keyPath || undefined, hint });
}
