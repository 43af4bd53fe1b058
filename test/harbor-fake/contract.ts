// Harbor's REST contract (swagger.yaml of the pinned release), loaded at test
// time and used to check every request the fake receives and every response
// it sends.
//
// The swagger is third-party data: it is never copied into this repository.
// Where it comes from, in order:
//   1. $BERTH_CONTRACTS_DIR/harbor-swagger-v2.12.4.yaml
//   2. <repo>/../shared/contracts/harbor-swagger-v2.12.4.yaml
//   3. a previous verified download in <tmpdir>/berth-contracts/
//   4. a download from raw.githubusercontent.com at the pinned commit, accepted
//      only when its sha256 is HARBOR_SWAGGER.sha256 (set BERTH_CONTRACTS_OFFLINE=1
//      to skip it)
// When none works, loadHarborContract() resolves to undefined and the caller
// must print contractUnavailableNotice() and skip the contract checks.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv, ValidateFunction } from 'ajv';
import YAML from 'yaml';
import {
  collectFormats,
  convertSchema,
  formatAjvErrors,
  isObject,
  makeAjv,
  unknownFields,
  type JsonObject,
  type SchemaMode,
} from './schema.js';

/** The pinned upstream file (see ../shared/contracts/SOURCES.md). */
export const HARBOR_SWAGGER = {
  repo: 'goharbor/harbor',
  tag: 'v2.12.4',
  commit: '6b4981d4dd46a20481be5a3a7cdf435bc20f4dcb',
  path: 'api/v2.0/swagger.yaml',
  fileName: 'harbor-swagger-v2.12.4.yaml',
  /** sha256 of the file at that commit (computed from the shared copy). */
  sha256: '19560cc3847e198e11f959003e1cb8201b1d536a0ace6950e8ffe2aea39a5555',
} as const;

/** The raw-content URL of `path` in `repo` at `commit`. */
export function rawGitHubUrl(repo: string, commit: string, path: string): string {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new Error(`not an owner/name repository: ${repo}`);
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`not a full commit id: ${commit}`);
  const cleanPath = path.split('/').filter((s) => s !== '' && s !== '.' && s !== '..').map(encodeURIComponent).join('/');
  return `https://raw.githubusercontent.com/${repo}/${commit}/${cleanPath}`;
}

/** This repository's root (test/harbor-fake/ -> ../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export type ContractSourceKind = 'env' | 'shared' | 'cache' | 'download';

export interface ContractAttempt {
  source: ContractSourceKind;
  location: string;
  ok: boolean;
  reason?: string;
}

export interface ContractSource {
  kind: ContractSourceKind;
  location: string;
  sha256: string;
  /** The file is byte-for-byte the pinned upstream file. */
  pinned: boolean;
}

export interface LoadContractOptions {
  /** Defaults to process.env (BERTH_CONTRACTS_DIR, BERTH_CONTRACTS_OFFLINE). */
  env?: NodeJS.ProcessEnv;
  /** Defaults to REPO_ROOT; `<repoRoot>/../shared/contracts` is the second place looked at. */
  repoRoot?: string;
  /** Defaults to <tmpdir>/berth-contracts; `false` disables the download cache. */
  cacheDir?: string | false;
  /** Defaults to true unless BERTH_CONTRACTS_OFFLINE=1. */
  download?: boolean;
  /** Defaults to the global fetch. */
  fetchImpl?: typeof fetch;
  /** Download timeout, default 15 s. */
  timeoutMs?: number;
  /** Where warnings go (a source that was asked for but failed); default console.warn. */
  warn?: (line: string) => void;
}

export interface LoadContractResult {
  contract: HarborContract | undefined;
  attempts: ContractAttempt[];
}

const MAX_DOWNLOAD_BYTES = 8 * 1024 * 1024;

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}

async function download(url: string, fetchImpl: typeof fetch, timeoutMs: number): Promise<Buffer> {
  const res = await fetchImpl(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_DOWNLOAD_BYTES) throw new Error(`too large (${declared} bytes)`);
  const buf = Buffer.from(await res.arrayBuffer());
  if (buf.length > MAX_DOWNLOAD_BYTES) throw new Error(`too large (${buf.length} bytes)`);
  return buf;
}

/**
 * Finds, verifies and parses the pinned swagger. Never throws: every place
 * tried is reported in `attempts`.
 */
export async function loadHarborContractWithReport(options: LoadContractOptions = {}): Promise<LoadContractResult> {
  const env = options.env ?? process.env;
  const warn = options.warn ?? ((line: string) => console.warn(line));
  const attempts: ContractAttempt[] = [];
  const fromFile = (kind: ContractSourceKind, file: string, mustMatchPin: boolean): HarborContract | undefined => {
    try {
      if (!existsSync(file)) {
        attempts.push({ source: kind, location: file, ok: false, reason: 'no such file' });
        return undefined;
      }
      const data = readFileSync(file);
      const sha = sha256Hex(data);
      const pinned = sha === HARBOR_SWAGGER.sha256;
      if (mustMatchPin && !pinned) {
        attempts.push({ source: kind, location: file, ok: false, reason: `sha256 ${sha} is not the pinned ${HARBOR_SWAGGER.sha256}` });
        return undefined;
      }
      const contract = HarborContract.fromYaml(data.toString('utf8'), { kind, location: file, sha256: sha, pinned });
      attempts.push({ source: kind, location: file, ok: true, ...(pinned ? {} : { reason: `sha256 ${sha} differs from the pin (used anyway)` }) });
      if (!pinned) warn(`[harbor-fake] ${file}: sha256 ${sha} is not the pinned ${HARBOR_SWAGGER.sha256}; using it anyway`);
      return contract;
    } catch (e) {
      attempts.push({ source: kind, location: file, ok: false, reason: errorText(e) });
      return undefined;
    }
  };

  const envDir = env.BERTH_CONTRACTS_DIR;
  if (envDir) {
    const c = fromFile('env', join(resolve(envDir), HARBOR_SWAGGER.fileName), false);
    if (c) return { contract: c, attempts };
    warn(`[harbor-fake] BERTH_CONTRACTS_DIR=${envDir} has no usable ${HARBOR_SWAGGER.fileName} (${attempts.at(-1)?.reason ?? '?'}); trying the other places`);
  }
  const shared = join(resolve(options.repoRoot ?? REPO_ROOT), '..', 'shared', 'contracts', HARBOR_SWAGGER.fileName);
  {
    const c = fromFile('shared', shared, false);
    if (c) return { contract: c, attempts };
  }
  const cacheDir = options.cacheDir === false ? undefined : (options.cacheDir ?? join(tmpdir(), 'berth-contracts'));
  const cached = cacheDir ? join(cacheDir, `${HARBOR_SWAGGER.sha256}-${HARBOR_SWAGGER.fileName}`) : undefined;
  if (cached && existsSync(cached)) {
    const c = fromFile('cache', cached, true);
    if (c) return { contract: c, attempts };
  }
  const url = rawGitHubUrl(HARBOR_SWAGGER.repo, HARBOR_SWAGGER.commit, HARBOR_SWAGGER.path);
  const allowDownload = options.download ?? env.BERTH_CONTRACTS_OFFLINE !== '1';
  if (!allowDownload) {
    attempts.push({ source: 'download', location: url, ok: false, reason: 'download disabled (BERTH_CONTRACTS_OFFLINE=1 or download: false)' });
    return { contract: undefined, attempts };
  }
  try {
    const fetchImpl = options.fetchImpl ?? globalThis.fetch;
    const data = await download(url, fetchImpl, options.timeoutMs ?? 15_000);
    const sha = sha256Hex(data);
    if (sha !== HARBOR_SWAGGER.sha256) {
      attempts.push({ source: 'download', location: url, ok: false, reason: `sha256 mismatch: got ${sha}, pinned ${HARBOR_SWAGGER.sha256}` });
      return { contract: undefined, attempts };
    }
    const contract = HarborContract.fromYaml(data.toString('utf8'), { kind: 'download', location: url, sha256: sha, pinned: true });
    attempts.push({ source: 'download', location: url, ok: true });
    if (cached && cacheDir) {
      try {
        mkdirSync(cacheDir, { recursive: true });
        const tmp = `${cached}.${process.pid}.tmp`;
        writeFileSync(tmp, data);
        renameSync(tmp, cached);
      } catch (e) {
        warn(`[harbor-fake] could not cache the downloaded swagger in ${cacheDir}: ${errorText(e)}`);
      }
    }
    return { contract, attempts };
  } catch (e) {
    attempts.push({ source: 'download', location: url, ok: false, reason: errorText(e) });
    return { contract: undefined, attempts };
  }
}

let defaultLoad: Promise<LoadContractResult> | undefined;

/**
 * The contract, or undefined when it cannot be found (then print
 * contractUnavailableNotice(); never skip the checks silently). Without
 * options the result is memoised for the process.
 */
export async function loadHarborContract(options?: LoadContractOptions): Promise<HarborContract | undefined> {
  if (options) return (await loadHarborContractWithReport(options)).contract;
  defaultLoad ??= loadHarborContractWithReport();
  return (await defaultLoad).contract;
}

/** The attempts of the memoised default load (after loadHarborContract() resolved). */
export async function defaultContractAttempts(): Promise<ContractAttempt[]> {
  defaultLoad ??= loadHarborContractWithReport();
  return (await defaultLoad).attempts;
}

/** A banner that cannot be missed in a test log. */
export function contractUnavailableNotice(attempts: ContractAttempt[]): string {
  const bar = '!'.repeat(78);
  const lines = [
    bar,
    '!!! HARBOR CONTRACT NOT AVAILABLE: the Harbor fake runs WITHOUT swagger checks.',
    `!!! Requests and responses are NOT validated against ${HARBOR_SWAGGER.repo}@${HARBOR_SWAGGER.tag} ${HARBOR_SWAGGER.path}.`,
    '!!! Places tried:',
    ...attempts.map((a) => `!!!   [${a.source}] ${a.location}: ${a.ok ? 'ok' : (a.reason ?? 'failed')}`),
    `!!! Fix: set BERTH_CONTRACTS_DIR to a folder holding ${HARBOR_SWAGGER.fileName} (sha256 ${HARBOR_SWAGGER.sha256}),`,
    '!!!      or allow the download from raw.githubusercontent.com.',
    bar,
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------- YAML

/**
 * Harbor's swagger has quoted scalars whose continuation lines are indented
 * no deeper than their key (e.g. ProjectMetadata.reuse_sys_cve_allowlist).
 * PyYAML and Go's yaml accept that; the `yaml` package refuses it. This
 * indents such continuation lines past the key, which does not change the
 * value (line folding drops leading white space), and touches nothing else.
 */
export function repairQuotedContinuations(text: string): { text: string; repaired: number } {
  const lines = text.split('\n');
  let repaired = 0;
  const closes = (s: string, quote: string, from: number): boolean => {
    for (let k = from; k < s.length; k++) {
      const c = s[k];
      if (quote === '"' && c === '\\') k++;
      else if (c === quote) {
        if (quote === "'" && s[k + 1] === "'") k++;
        else return true;
      }
    }
    return false;
  };
  for (let i = 0; i < lines.length; i++) {
    const m = /^( *)(- +)?[^\s'"#-][^:]*: +(['"])/.exec(lines[i]!);
    if (!m || m[1] === undefined || m[3] === undefined) continue;
    const keyIndent = m[1].length + (m[2]?.length ?? 0);
    if (closes(lines[i]!, m[3], m[0].length)) continue;
    for (let j = i + 1; j < lines.length && j < i + 1000; j++) {
      const l = lines[j]!;
      const lead = /^ */.exec(l)![0].length;
      if (l.trim() !== '' && lead <= keyIndent) {
        lines[j] = ' '.repeat(keyIndent + 2 - lead) + l;
        repaired++;
      }
      i = j;
      if (closes(l, m[3], 0)) break;
    }
  }
  return { text: lines.join('\n'), repaired };
}

/**
 * Parses the swagger YAML after repairQuotedContinuations() (a no-op on YAML
 * the `yaml` package accepts as is; repairing first spares its slow error path).
 */
export function parseSwaggerYaml(text: string): unknown {
  const doc = YAML.parseDocument(repairQuotedContinuations(text).text);
  if (doc.errors.length > 0) throw doc.errors[0]!;
  return doc.toJS({ maxAliasCount: 1000 }) as unknown;
}

// ---------------------------------------------------------------- the contract

export type ParamLocation = 'path' | 'query' | 'header' | 'body' | 'formData';

export interface ParamSpec {
  name: string;
  in: ParamLocation;
  required: boolean;
  /** The raw Swagger parameter object ($ref resolved). */
  raw: JsonObject;
}

export interface ResponseSpec {
  schema?: unknown;
  headers: Record<string, JsonObject>;
}

export interface Operation {
  id: string;
  method: string;
  /** Path template below basePath, e.g. /projects/{project_name_or_id}. */
  template: string;
  params: ParamSpec[];
  responses: Map<string, ResponseSpec>;
  consumes: string[];
  produces: string[];
}

export type RouteMatch =
  | { kind: 'found'; op: Operation; pathParams: Record<string, string> }
  | { kind: 'outside-base-path' }
  | { kind: 'no-path' }
  | { kind: 'no-method'; allowed: string[] }
  | { kind: 'bad-encoding' };

export interface RequestInput {
  /** Path parameters as captured (still percent-encoded). */
  pathParams: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  bodyPresent: boolean;
  contentType: string | undefined;
  /** The parsed JSON body, when it parsed. */
  body: unknown;
  /** Set when the body is present but is not JSON. */
  bodyParseError?: string;
}

export interface RequestCheck {
  /** Contract violations: Harbor answers 422 to these. */
  errors: string[];
  /** Things the contract allows but Harbor silently drops (unknown body keys, undeclared query parameters). */
  ignored: string[];
}

export interface ResponseInput {
  status: number;
  headers: Record<string, string>;
  /** undefined: no body was sent. For JSON replies: the value as it goes on the wire. */
  body: unknown;
  contentType?: string;
}

interface CompiledPath {
  template: string;
  regex: RegExp;
  names: string[];
  literals: number;
  methods: Map<string, Operation>;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'];

/** go-openapi/swag ConvertBool: never fails, these are true, anything else is false. */
const TRUE_WORDS = new Set(['true', '1', 'yes', 'ok', 'y', 'on', 'selected', 'checked', 'enabled']);
export function swaggerBool(raw: string): boolean {
  return TRUE_WORDS.has(raw.trim().toLowerCase());
}

function mediaType(ct: string | undefined): string {
  return (ct ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase();
}

export class HarborContract {
  readonly source: ContractSource;
  readonly basePath: string;
  readonly version: string;
  readonly operations = new Map<string, Operation>();
  private readonly doc: JsonObject;
  private readonly definitions: JsonObject;
  private readonly paths: CompiledPath[] = [];
  private readonly ajv: Partial<Record<SchemaMode, Ajv>> = {};
  private readonly formats: Set<string>;
  private readonly validators = new Map<string, ValidateFunction>();

  static fromYaml(text: string, source: ContractSource): HarborContract {
    return new HarborContract(parseSwaggerYaml(text), source);
  }

  constructor(doc: unknown, source: ContractSource) {
    if (!isObject(doc) || doc.swagger !== '2.0') throw new Error('not a Swagger 2.0 document');
    if (!isObject(doc.paths) || !isObject(doc.definitions)) throw new Error('swagger document without paths/definitions');
    this.doc = doc;
    this.source = source;
    this.definitions = doc.definitions;
    this.basePath = typeof doc.basePath === 'string' ? doc.basePath.replace(/\/+$/, '') : '';
    this.version = isObject(doc.info) && typeof doc.info.version === 'string' ? doc.info.version : '?';
    this.formats = collectFormats(doc);
    const globalConsumes = Array.isArray(doc.consumes) ? doc.consumes.map(String) : ['application/json'];
    const globalProduces = Array.isArray(doc.produces) ? doc.produces.map(String) : ['application/json'];
    for (const [template, item] of Object.entries(doc.paths)) {
      if (!isObject(item)) continue;
      const names: string[] = [];
      let literals = 0;
      const segs = template.split('/').map((seg) => {
        const m = /^\{([^}]+)\}$/.exec(seg);
        if (m && m[1] !== undefined) {
          names.push(m[1]);
          return '([^/]+)';
        }
        if (seg !== '') literals++;
        return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      });
      const compiled: CompiledPath = { template, regex: new RegExp(`^${segs.join('/')}$`), names, literals, methods: new Map() };
      const pathParams = Array.isArray(item.parameters) ? item.parameters : [];
      for (const method of HTTP_METHODS) {
        const raw = item[method];
        if (!isObject(raw)) continue;
        const id = typeof raw.operationId === 'string' ? raw.operationId : `${method} ${template}`;
        const params = new Map<string, ParamSpec>();
        for (const p of [...pathParams, ...(Array.isArray(raw.parameters) ? raw.parameters : [])]) {
          const spec = this.resolveParam(p);
          if (spec) params.set(`${spec.in}:${spec.in === 'header' ? spec.name.toLowerCase() : spec.name}`, spec);
        }
        const responses = new Map<string, ResponseSpec>();
        if (isObject(raw.responses)) {
          for (const [code, r] of Object.entries(raw.responses)) responses.set(code, this.resolveResponse(r));
        }
        const op: Operation = {
          id,
          method: method.toUpperCase(),
          template,
          params: [...params.values()],
          responses,
          consumes: Array.isArray(raw.consumes) ? raw.consumes.map(String) : globalConsumes,
          produces: Array.isArray(raw.produces) ? raw.produces.map(String) : globalProduces,
        };
        compiled.methods.set(op.method, op);
        this.operations.set(id, op);
      }
      this.paths.push(compiled);
    }
  }

  private resolveRef(ref: string, section: 'parameters' | 'responses'): unknown {
    const m = new RegExp(`^#/${section}/(.+)$`).exec(ref);
    const table = this.doc[section];
    if (!m || m[1] === undefined || !isObject(table)) throw new Error(`unresolvable $ref ${ref}`);
    return table[decodeURIComponent(m[1])];
  }

  private resolveParam(p: unknown): ParamSpec | undefined {
    const raw = isObject(p) && typeof p.$ref === 'string' ? this.resolveRef(p.$ref, 'parameters') : p;
    if (!isObject(raw) || typeof raw.name !== 'string' || typeof raw.in !== 'string') return undefined;
    return { name: raw.name, in: raw.in as ParamLocation, required: raw.required === true, raw };
  }

  private resolveResponse(r: unknown): ResponseSpec {
    const raw = isObject(r) && typeof r.$ref === 'string' ? this.resolveRef(r.$ref, 'responses') : r;
    if (!isObject(raw)) return { headers: {} };
    const headers: Record<string, JsonObject> = {};
    if (isObject(raw.headers)) for (const [k, v] of Object.entries(raw.headers)) if (isObject(v)) headers[k] = v;
    return raw.schema === undefined ? { headers } : { schema: raw.schema, headers };
  }

  /** Which documented operation `method pathname` is. */
  matchRoute(method: string, pathname: string): RouteMatch {
    if (pathname !== this.basePath && !pathname.startsWith(`${this.basePath}/`)) return { kind: 'outside-base-path' };
    const rel = pathname.slice(this.basePath.length);
    let best: { path: CompiledPath; values: string[] } | undefined;
    for (const p of this.paths) {
      const m = p.regex.exec(rel);
      if (!m) continue;
      if (!best || p.literals > best.path.literals) best = { path: p, values: m.slice(1).map((v) => v ?? '') };
    }
    if (!best) return { kind: 'no-path' };
    const op = best.path.methods.get(method.toUpperCase());
    if (!op) return { kind: 'no-method', allowed: [...best.path.methods.keys()] };
    const pathParams: Record<string, string> = {};
    for (const [i, name] of best.path.names.entries()) {
      const v = best.values[i] ?? '';
      try {
        pathParams[name] = decodeURIComponent(v);
      } catch {
        return { kind: 'bad-encoding' };
      }
    }
    return { kind: 'found', op, pathParams };
  }

  private ajvFor(mode: SchemaMode): Ajv {
    let a = this.ajv[mode];
    if (!a) {
      a = makeAjv(mode, this.definitions, this.formats);
      this.ajv[mode] = a;
    }
    return a;
  }

  private validator(key: string, mode: SchemaMode, schema: unknown): ValidateFunction {
    let v = this.validators.get(key);
    if (!v) {
      v = this.ajvFor(mode).compile(convertSchema(schema, mode));
      this.validators.set(key, v);
    }
    return v;
  }

  /** Validates a definition by name (e.g. "Errors") in `mode`. */
  validateDefinition(name: string, value: unknown, mode: SchemaMode, where = name): string[] {
    if (!(name in this.definitions)) return [`unknown definition ${name}`];
    const v = this.validator(`def:${mode}:${name}`, mode, { $ref: `#/definitions/${name}` });
    return v(value) ? [] : formatAjvErrors(where, v.errors);
  }

  /** A parameter's schema as JSON Schema (the parameter object itself minus its Swagger-only keys). */
  private paramSchema(p: ParamSpec): JsonObject {
    const s: JsonObject = {};
    for (const k of ['type', 'format', 'enum', 'pattern', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'multipleOf', 'items', 'minItems', 'maxItems', 'uniqueItems']) {
      if (p.raw[k] !== undefined) s[k] = p.raw[k];
    }
    return s;
  }

  /** A raw parameter string -> typed value, or an error text (go-swagger's binding rules). */
  private coerce(raw: string, type: unknown): { value: unknown } | { error: string } {
    switch (type) {
      case 'integer':
        return /^[+-]?\d+$/.test(raw.trim()) ? { value: Number(raw.trim()) } : { error: `must be of type integer: "${raw}"` };
      case 'number': {
        const n = Number(raw.trim());
        return raw.trim() !== '' && Number.isFinite(n) ? { value: n } : { error: `must be of type number: "${raw}"` };
      }
      case 'boolean':
        return { value: swaggerBool(raw) };
      default:
        return { value: raw };
    }
  }

  private checkParamValue(op: Operation, p: ParamSpec, raw: string | string[], errors: string[]): void {
    const where = `${p.name} in ${p.in}`;
    let value: unknown;
    if (p.raw.type === 'array') {
      const parts = Array.isArray(raw) ? raw : raw.split(p.raw.collectionFormat === 'pipes' ? '|' : p.raw.collectionFormat === 'ssv' ? ' ' : p.raw.collectionFormat === 'tsv' ? '\t' : ',');
      const itemType = isObject(p.raw.items) ? p.raw.items.type : 'string';
      const arr: unknown[] = [];
      for (const part of parts) {
        const c = this.coerce(part, itemType);
        if ('error' in c) {
          errors.push(`${where} ${c.error}`);
          return;
        }
        arr.push(c.value);
      }
      value = arr;
    } else {
      const c = this.coerce(Array.isArray(raw) ? (raw[0] ?? '') : raw, p.raw.type);
      if ('error' in c) {
        errors.push(`${where} ${c.error}`);
        return;
      }
      value = c.value;
    }
    const v = this.validator(`param:${op.id}:${p.in}:${p.name}`, 'request', this.paramSchema(p));
    if (!v(value)) errors.push(...formatAjvErrors(where, v.errors));
  }

  /** Checks a request against operation `op`. */
  validateRequest(op: Operation, input: RequestInput): RequestCheck {
    const errors: string[] = [];
    const ignored: string[] = [];
    const declaredQuery = new Set<string>();
    let bodyParam: ParamSpec | undefined;
    for (const p of op.params) {
      switch (p.in) {
        case 'path': {
          const raw = input.pathParams[p.name];
          if (raw === undefined || raw === '') errors.push(`${p.name} in path is required`);
          else this.checkParamValue(op, p, raw, errors);
          break;
        }
        case 'query': {
          declaredQuery.add(p.name);
          const all = input.query.getAll(p.name);
          const raw = p.raw.type === 'array' && p.raw.collectionFormat === 'multi' ? all : (all[0] ?? '');
          // go-swagger: an empty value is "not provided".
          if (raw === '' || (Array.isArray(raw) && raw.length === 0)) {
            if (p.required) errors.push(`${p.name} in query is required`);
          } else this.checkParamValue(op, p, raw, errors);
          break;
        }
        case 'header': {
          const h = input.headers[p.name.toLowerCase()];
          const raw = Array.isArray(h) ? h.join(',') : h;
          if (raw === undefined || raw === '') {
            if (p.required) errors.push(`${p.name} in header is required`);
          } else this.checkParamValue(op, p, raw, errors);
          break;
        }
        case 'body':
          bodyParam = p;
          break;
        case 'formData':
          break;
      }
    }
    for (const k of new Set(input.query.keys())) {
      if (!declaredQuery.has(k)) ignored.push(`query parameter "${k}" is not declared for ${op.id}`);
    }
    if (input.bodyPresent) {
      const mt = mediaType(input.contentType);
      if (!op.consumes.some((c) => mediaType(c) === mt)) {
        errors.push(`unsupported media type "${input.contentType ?? ''}" (consumes: ${op.consumes.join(', ')})`);
      } else if (bodyParam) {
        const where = `${bodyParam.name} in body`;
        if (input.bodyParseError !== undefined) errors.push(`parsing ${where} failed: ${input.bodyParseError}`);
        else {
          const schema = bodyParam.raw.schema;
          const v = this.validator(`body:${op.id}`, 'request', schema);
          if (!v(input.body)) errors.push(...formatAjvErrors(where, v.errors));
          for (const f of unknownFields(schema, input.body, this.definitions, bodyParam.name)) ignored.push(`${f} is not in the ${op.id} body schema (Harbor drops it)`);
        }
      }
    } else if (bodyParam?.required) {
      errors.push(`${bodyParam.name} in body is required`);
    }
    return { errors, ignored };
  }

  /** Statuses documented for `op` (and "default" when present). */
  documentedStatuses(op: Operation): string[] {
    return [...op.responses.keys()];
  }

  /**
   * Checks a response. `extraStatuses` are statuses Harbor really answers for
   * this operation although its swagger does not list them; their body is
   * checked against the Errors definition.
   */
  validateResponse(op: Operation, res: ResponseInput, extraStatuses: readonly number[] = []): string[] {
    const errors: string[] = [];
    const code = String(res.status);
    const spec = op.responses.get(code) ?? op.responses.get('default');
    const where = `${op.id} ${res.status} response`;
    if (!spec) {
      if (!extraStatuses.includes(res.status)) {
        errors.push(`${where}: status ${res.status} is not documented (documented: ${this.documentedStatuses(op).join(', ')})`);
        return errors;
      }
      if (res.status >= 400 && res.body !== undefined) errors.push(...this.validateDefinition('Errors', res.body, 'response', `${where} body`));
      return errors;
    }
    for (const [name, h] of Object.entries(spec.headers)) {
      const value = res.headers[name.toLowerCase()];
      if (value === undefined) continue;
      if (h.type === 'integer' && !/^-?\d+$/.test(value)) errors.push(`${where}: header ${name} must be an integer, got "${value}"`);
      if (h.type === 'boolean' && !/^(true|false)$/.test(value)) errors.push(`${where}: header ${name} must be a boolean, got "${value}"`);
    }
    const schema = spec.schema;
    if (schema === undefined) {
      if (res.body !== undefined && res.body !== '') errors.push(`${where}: has a body but the swagger documents none`);
      return errors;
    }
    if (isObject(schema) && schema.type === 'file') return errors;
    if (res.body === undefined) {
      errors.push(`${where}: has no body but the swagger documents one`);
      return errors;
    }
    const v = this.validator(`response:${op.id}:${code}`, 'response', schema);
    if (!v(res.body)) errors.push(...formatAjvErrors(`${where} body`, v.errors));
    // Fields this Harbor version does not have (e.g. Registry.ca_certificate, added in v2.15).
    for (const f of unknownFields(schema, res.body, this.definitions, 'body')) errors.push(`${where}: ${f} is not in the ${op.id} response schema`);
    return errors;
  }
}
