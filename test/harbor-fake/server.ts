// An in-process Harbor v2.12 for tests: node:http(s) on a 127.0.0.0/8 address.
//
// Per request: body (≤ 1 MiB) -> injected fault? -> route (against the
// swagger when loaded) -> CSRF trap -> contract check of the request (422 like
// Harbor's go-swagger binding) -> auth -> handler -> contract check of the
// response -> wire. Everything odd is recorded in `violations`; every request
// in `requests`.

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIPv4, type AddressInfo } from 'node:net';
import {
  contractUnavailableNotice,
  defaultContractAttempts,
  loadHarborContract,
  type HarborContract,
  type Operation,
} from './contract.js';
import {
  HarborHttpError,
  ROUTES,
  UNDOCUMENTED_HARBOR_STATUSES,
  type HandlerContext,
  type Reply,
  type RouteDef,
} from './handlers.js';
import { HarborState } from './state.js';

export const API_BASE = '/api/v2.0';
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_LOG = 10_000;
const MAX_FAULT_TIMES = 1000;
const MAX_DELAY_MS = 60_000;
/** Statuses the layers in front of the handlers (router, CSRF, binding, auth) answer for any operation. */
const FRAMEWORK_STATUSES: readonly number[] = [400, 401, 403, 404, 405, 413, 415, 422, 500, 501];

export type ViolationKind =
  /** The request breaks the swagger (answered 422, or 400 with requestViolationStatus). */
  | 'request'
  /** The request carries something Harbor silently drops (unknown body key, undeclared query parameter, PUT /projects fields...). */
  | 'request-ignored'
  /** A response the fake sent breaks the swagger. */
  | 'response'
  /** A path or method the swagger does not document. */
  | 'route'
  /** Documented, but the fake does not implement it (answered 501). */
  | 'unimplemented'
  /** A handler crashed (answered 500). */
  | 'fake-error';

export interface Violation {
  kind: ViolationKind;
  method: string;
  path: string;
  operationId?: string;
  status?: number;
  message: string;
}

export interface RequestLogEntry {
  method: string;
  /** Path without the query string. */
  path: string;
  query: string;
  /** 0 when the connection was reset. */
  status: number;
  operationId?: string;
  fault?: 'status' | 'delay' | 'reset';
  /** Who was authenticated (undefined: anonymous or bad credentials). */
  user?: string;
  /** The parsed JSON body, when there was one. */
  body?: unknown;
  durationMs: number;
}

export interface RouteScope {
  method?: string;
  /** Exact request path (e.g. /api/v2.0/projects) or a RegExp tested against it. */
  path?: string | RegExp;
  operationId?: string;
  /** How many matching requests it applies to: 1..1000, default 1. */
  times?: number;
}

export type FaultAction = { status: 500 | 502 | 503 | 504 } | { delayMs: number } | { reset: true };
export type FaultSpec = FaultAction & RouteScope;

export interface CorruptionSpec extends RouteScope {
  mutate?: (body: unknown) => unknown;
  status?: number;
}

export interface FaultHandle {
  readonly remaining: number;
  cancel(): void;
}

export interface HarborFakeOptions {
  /** An IPv4 address in 127.0.0.0/8 (default 127.0.0.1); anything else is refused. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  adminPassword: string;
  /** harbor_version of /systeminfo, default v2.12.4. */
  version?: string;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** undefined: load the pinned swagger (loud notice when missing); null: run without it (loud notice). */
  contract?: HarborContract | null;
  /** Status for requests that break the swagger. Harbor's go-swagger binding answers 422 UNPROCESSABLE_ENTITY. */
  requestViolationStatus?: 400 | 422;
  /** Harbor ships with a public `library` project; default true. */
  seedLibrary?: boolean;
  /** Where the loud notice goes; default console.warn. */
  warn?: (text: string) => void;
}

export interface HarborFake {
  /** scheme://host:port (no trailing slash); the API is under `${url}/api/v2.0`. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly state: HarborState;
  readonly contract: HarborContract | undefined;
  /** False when the swagger was not available: nothing is validated. */
  readonly contractChecked: boolean;
  readonly violations: Violation[];
  readonly requests: RequestLogEntry[];
  /** The next `times` matching requests fail (500/502/503/504), wait, or have their connection reset. */
  fail(fault: FaultSpec): FaultHandle;
  /**
   * Test hook: the next matching replies get their JSON body replaced by
   * mutate(copy) and/or their status replaced, before the contract check
   * (which must then record a violation).
   */
  corruptResponses(spec: CorruptionSpec): FaultHandle;
  /** Returns the violations and empties the list. */
  takeViolations(): Violation[];
  close(): Promise<void>;
}

/** Refuses anything but a dotted IPv4 address in 127.0.0.0/8. */
export function assertLoopbackHost(host: string): void {
  if (!isIPv4(host) || host.split('.')[0] !== '127') {
    throw new Error(`the Harbor fake binds only to 127.0.0.0/8 addresses, not ${JSON.stringify(host)}`);
  }
}

interface ScopedEntry {
  scope: RouteScope;
  remaining: number;
}

function scopeMatches(scope: RouteScope, method: string, path: string, opId: string | undefined): boolean {
  if (scope.method && scope.method.toUpperCase() !== method) return false;
  if (scope.operationId && scope.operationId !== opId) return false;
  if (scope.path instanceof RegExp) return scope.path.test(path);
  if (typeof scope.path === 'string') return scope.path === path;
  return true;
}

function boundedTimes(times: number | undefined): number {
  const t = times ?? 1;
  if (!Number.isInteger(t) || t < 1 || t > MAX_FAULT_TIMES) throw new Error(`times must be an integer in 1..${MAX_FAULT_TIMES}, not ${t}`);
  return t;
}

function errorBody(code: string, message: string): unknown {
  return { errors: [{ code, message }] };
}

function nginxPage(status: number): string {
  const text: Record<number, string> = { 502: 'Bad Gateway', 503: 'Service Temporarily Unavailable', 504: 'Gateway Time-out' };
  const t = `${status} ${text[status] ?? 'Error'}`;
  return `<html>\r\n<head><title>${t}</title></head>\r\n<body>\r\n<center><h1>${t}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}

function cookieNames(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';').slice(0, 64)) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    // An aborted upload never ends: settle anyway (a no-op after 'end').
    req.on('close', () => reject(new Error('request closed before its body ended')));
  });
}

interface Outcome {
  reply: Reply;
  /** For router misses: what to record. */
  violation?: { kind: ViolationKind; message: string };
  /** Replies of the layers in front of the handlers may use FRAMEWORK_STATUSES. */
  origin: 'framework' | 'handler';
  op?: Operation;
  opId?: string;
  user?: string;
  body?: unknown;
}

let noticePrinted = false;

class Fake implements HarborFake {
  readonly violations: Violation[] = [];
  readonly requests: RequestLogEntry[] = [];
  readonly state: HarborState;
  url = '';
  port = 0;
  private readonly faults: Array<ScopedEntry & { action: FaultAction }> = [];
  private readonly corruptions: Array<ScopedEntry & { spec: CorruptionSpec }> = [];
  private readonly timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private readonly csrfToken = randomBytes(24).toString('base64url');
  private readonly routes = new Map<string, RouteDef>();
  private readonly violationStatus: 400 | 422;
  private closed = false;
  server!: Server;

  constructor(
    readonly host: string,
    readonly contract: HarborContract | undefined,
    private readonly tls: boolean,
    options: HarborFakeOptions,
  ) {
    this.state = new HarborState({ adminPassword: options.adminPassword, ...(options.version ? { version: options.version } : {}), ...(options.seedLibrary === false ? { seedLibrary: false } : {}) });
    this.violationStatus = options.requestViolationStatus ?? 422;
    for (const r of ROUTES) this.routes.set(r.operationId, r);
    if (contract) {
      // The fake's own table must agree with the swagger.
      for (const r of ROUTES) {
        const m = contract.matchRoute(r.method, `${contract.basePath}${r.template.replace(/\{[^}]+\}/g, '1')}`);
        if (m.kind !== 'found' || m.op.id !== r.operationId || m.op.template !== r.template) {
          this.record({ kind: 'route', method: r.method, path: r.template, operationId: r.operationId, message: `the fake serves ${r.method} ${r.template} as ${r.operationId}, which the swagger does not document that way` });
        }
      }
    }
  }

  get contractChecked(): boolean {
    return this.contract !== undefined;
  }

  private record(v: Violation): void {
    if (this.violations.length < MAX_LOG) this.violations.push(v);
  }

  takeViolations(): Violation[] {
    return this.violations.splice(0);
  }

  fail(fault: FaultSpec): FaultHandle {
    const times = boundedTimes(fault.times);
    let action: FaultAction;
    if ('reset' in fault) action = { reset: true };
    else if ('delayMs' in fault) {
      if (!Number.isFinite(fault.delayMs) || fault.delayMs < 0 || fault.delayMs > MAX_DELAY_MS) throw new Error(`delayMs must be within 0..${MAX_DELAY_MS}`);
      action = { delayMs: fault.delayMs };
    } else if ('status' in fault && [500, 502, 503, 504].includes(fault.status)) action = { status: fault.status };
    else throw new Error('a fault is { status: 500|502|503|504 } | { delayMs } | { reset: true }');
    const entry = { scope: { ...fault }, remaining: times, action };
    this.faults.push(entry);
    return {
      get remaining() {
        return entry.remaining;
      },
      cancel: () => {
        entry.remaining = 0;
      },
    };
  }

  corruptResponses(spec: CorruptionSpec): FaultHandle {
    if (spec.status !== undefined && (!Number.isInteger(spec.status) || spec.status < 100 || spec.status > 599)) throw new Error(`bad status ${spec.status}`);
    const entry = { scope: { ...spec }, remaining: boundedTimes(spec.times), spec };
    this.corruptions.push(entry);
    return {
      get remaining() {
        return entry.remaining;
      },
      cancel: () => {
        entry.remaining = 0;
      },
    };
  }

  private take<T extends ScopedEntry>(list: T[], method: string, path: string, opId: string | undefined): T | undefined {
    for (const e of list) {
      if (e.remaining > 0 && scopeMatches(e.scope, method, path, opId)) {
        e.remaining -= 1;
        return e;
      }
    }
    return undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => {
        this.timers.delete(entry);
        resolve();
      }, ms), resolve };
      this.timers.add(entry);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) {
      clearTimeout(t.timer);
      t.resolve();
    }
    this.timers.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- per request

  /** Which route: the swagger decides when loaded; else the fake's own table. */
  private resolve(method: string, pathname: string): { op?: Operation; def?: RouteDef; pathParams: Record<string, string>; miss?: Outcome } {
    if (this.contract) {
      const m = this.contract.matchRoute(method, pathname);
      switch (m.kind) {
        case 'found': {
          const def = this.routes.get(m.op.id);
          if (!def) {
            return {
              op: m.op,
              pathParams: m.pathParams,
              miss: {
                origin: 'framework',
                op: m.op,
                opId: m.op.id,
                violation: { kind: 'unimplemented', message: `${m.op.id} (${method} ${m.op.template}) is documented but the fake does not implement it` },
                reply: { status: 501, body: errorBody('NOT_IMPLEMENTED', `the Harbor fake does not implement ${m.op.id}`) },
              },
            };
          }
          return { op: m.op, def, pathParams: m.pathParams };
        }
        case 'no-method':
          return {
            pathParams: {},
            miss: {
              origin: 'framework',
              violation: { kind: 'route', message: `${method} is not documented for ${pathname} (only ${m.allowed.join(', ')})` },
              reply: { status: 405, body: errorBody('METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${pathname}, only ${m.allowed.join(', ')}`) },
            },
          };
        case 'bad-encoding':
          return {
            pathParams: {},
            miss: {
              origin: 'framework',
              violation: { kind: 'request', message: `the path ${pathname} is not valid percent-encoding` },
              reply: { status: 400, body: errorBody('BAD_REQUEST', `the path ${pathname} is not valid percent-encoding`) },
            },
          };
        default:
          return { pathParams: {}, miss: this.notFound(method, pathname) };
      }
    }
    if (pathname.startsWith(`${API_BASE}/`)) {
      const rel = pathname.slice(API_BASE.length);
      let best: { def: RouteDef; params: Record<string, string>; literals: number } | undefined;
      let pathKnown = false;
      for (const def of ROUTES) {
        const names: string[] = [];
        const re = new RegExp(`^${def.template.split('/').map((s) => (/^\{.+\}$/.test(s) ? (names.push(s.slice(1, -1)), '([^/]+)') : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}$`);
        const m = re.exec(rel);
        if (!m) continue;
        pathKnown = true;
        if (def.method !== method) continue;
        const literals = def.template.split('/').filter((s) => s && !s.startsWith('{')).length;
        if (best && best.literals >= literals) continue;
        const params: Record<string, string> = {};
        try {
          names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1] ?? '')));
        } catch {
          continue;
        }
        best = { def, params, literals };
      }
      if (best) return { def: best.def, pathParams: best.params };
      if (pathKnown) {
        return {
          pathParams: {},
          miss: {
            origin: 'framework',
            violation: { kind: 'route', message: `the fake serves no ${method} on ${pathname}` },
            reply: { status: 405, body: errorBody('METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${pathname}`) },
          },
        };
      }
    }
    return { pathParams: {}, miss: this.notFound(method, pathname) };
  }

  private notFound(method: string, pathname: string): Outcome {
    return {
      origin: 'framework',
      violation: { kind: 'route', message: `${method} ${pathname} is not a ${this.contract ? 'documented Harbor API route' : 'route the fake serves'}` },
      reply: { status: 404, body: errorBody('NOT_FOUND', `path ${pathname} was not found`) },
    };
  }

  private authenticate(header: string | undefined): ReturnType<HarborState['userByName']> {
    const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
    if (!m || m[1] === undefined) return undefined;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return undefined;
    const u = this.state.userByName(decoded.slice(0, i));
    // Harbor: bad credentials make the request anonymous; handlers then answer 401 where it matters.
    return u && u.password === decoded.slice(i + 1) ? u : undefined;
  }

  private async dispatch(req: IncomingMessage, method: string, url: URL, raw: Buffer): Promise<Outcome> {
    const pathname = url.pathname;
    const r = this.resolve(method, pathname);
    if (r.miss) {
      const v = r.miss.violation ?? { kind: 'route', message: `${method} ${pathname}` };
      this.record({ kind: v.kind, method, path: pathname, ...(r.op ? { operationId: r.op.id } : {}), status: r.miss.reply.status, message: v.message });
      return r.miss;
    }
    const def = r.def!;
    const opId = def.operationId;
    const base = { op: r.op, opId } as const;

    // The CSRF trap: a client that keeps Harbor's sid cookie must send the token.
    const cookies = cookieNames(req.headers.cookie);
    if (['POST', 'PUT', 'DELETE', 'PATCH'].includes(method) && cookies.has('sid')) {
      const token = req.headers['x-harbor-csrf-token'];
      if (token !== this.csrfToken) {
        return { ...base, origin: 'framework', reply: { status: 403, body: errorBody('FORBIDDEN', 'CSRF token invalid') } };
      }
    }

    const contentType = req.headers['content-type'];
    const bodyPresent = raw.length > 0;
    let body: unknown;
    let bodyParseError: string | undefined;
    if (bodyPresent) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        bodyParseError = e instanceof Error ? e.message : String(e);
      }
    }
    if (this.contract && r.op) {
      const check = this.contract.validateRequest(r.op, { pathParams: r.pathParams, query: url.searchParams, headers: req.headers, bodyPresent, contentType, body, ...(bodyParseError !== undefined ? { bodyParseError } : {}) });
      for (const m of check.ignored) this.record({ kind: 'request-ignored', method, path: pathname, operationId: opId, message: m });
      if (check.errors.length > 0) {
        for (const m of check.errors) this.record({ kind: 'request', method, path: pathname, operationId: opId, status: this.violationStatus, message: m });
        const code = this.violationStatus === 422 ? 'UNPROCESSABLE_ENTITY' : 'BAD_REQUEST';
        return { ...base, origin: 'framework', body, reply: { status: this.violationStatus, body: errorBody(code, `validation failure list:\n${check.errors.join('\n')}`) } };
      }
    } else if (bodyParseError !== undefined) {
      const code = this.violationStatus === 422 ? 'UNPROCESSABLE_ENTITY' : 'BAD_REQUEST';
      return { ...base, origin: 'framework', reply: { status: this.violationStatus, body: errorBody(code, `validation failure list:\nparsing body failed: ${bodyParseError}`) } };
    }

    const user = this.authenticate(req.headers.authorization);
    const who = user ? { user: user.username } : {};
    if ((def.auth === 'user' || def.auth === 'admin') && !user) {
      return { ...base, ...who, body, origin: 'framework', reply: { status: 401, body: errorBody('UNAUTHORIZED', 'unauthorized') } };
    }
    if (def.auth === 'admin' && user && !user.sysadmin_flag) {
      return { ...base, ...who, body, origin: 'framework', reply: { status: 403, body: errorBody('FORBIDDEN', 'forbidden') } };
    }

    const ctx: HandlerContext = {
      method,
      pathname,
      query: url.searchParams,
      headers: req.headers,
      pathParams: r.pathParams,
      body,
      bodyPresent,
      user,
      state: this.state,
      baseUrl: this.url,
      contractChecked: this.contractChecked,
      flagIgnored: (message) => this.record({ kind: 'request-ignored', method, path: pathname, operationId: opId, message }),
    };
    try {
      return { ...base, ...who, body, origin: 'handler', reply: def.handler(ctx) };
    } catch (e) {
      if (e instanceof HarborHttpError) return { ...base, ...who, body, origin: 'handler', reply: { status: e.status, body: errorBody(e.code, e.message) } };
      this.record({ kind: 'fake-error', method, path: pathname, operationId: opId, status: 500, message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      return { ...base, ...who, body, origin: 'handler', reply: { status: 500, body: errorBody('UNKNOWN', 'internal server error') } };
    }
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://harbor-fake.invalid');
    const pathname = url.pathname;
    const log = (status: number, extra: Partial<RequestLogEntry>): void => {
      if (this.requests.length >= MAX_LOG) this.requests.shift();
      this.requests.push({ method, path: pathname, query: url.search, status, durationMs: Date.now() - started, ...extra });
    };

    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (e) {
      if (e instanceof BodyTooLarge && !res.headersSent) {
        res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' });
        res.end('request body too large for the Harbor fake\n');
      }
      log(413, {});
      return;
    }

    // Faults come first: they stand for the network or the proxy in front of Harbor.
    const preOp = this.contract?.matchRoute(method, pathname);
    const faultOpId = preOp?.kind === 'found' ? preOp.op.id : this.resolve(method, pathname).def?.operationId;
    const fault = this.take(this.faults, method, pathname, faultOpId);
    let faultKind: RequestLogEntry['fault'];
    if (fault) {
      const opExtra = faultOpId ? { operationId: faultOpId } : {};
      if ('reset' in fault.action) {
        req.socket.destroy();
        log(0, { ...opExtra, fault: 'reset' });
        return;
      }
      if ('status' in fault.action) {
        const status = fault.action.status;
        if (status === 500) {
          const text = `${JSON.stringify(errorBody('UNKNOWN', 'internal server error'))}\n`;
          res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        } else {
          const page = nginxPage(status);
          res.writeHead(status, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(page), server: 'nginx' });
          res.end(page);
        }
        log(status, { ...opExtra, fault: 'status' });
        return;
      }
      await this.sleep(fault.action.delayMs);
      if (this.closed || res.destroyed) return;
      faultKind = 'delay';
    }

    const outcome = await this.dispatch(req, method, url, raw);
    let { reply } = outcome;

    // Test hook: break the reply on purpose (the contract check below must notice).
    let jsonBody = reply.body;
    const corruption = this.take(this.corruptions, method, pathname, outcome.opId);
    if (corruption?.spec.mutate) jsonBody = corruption.spec.mutate(jsonBody === undefined ? undefined : structuredClone(jsonBody));
    if (corruption?.spec.status !== undefined) reply = { ...reply, status: corruption.spec.status };

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(reply.headers ?? {})) headers[k.toLowerCase()] = v;
    const rid = req.headers['x-request-id'];
    headers['x-request-id'] = typeof rid === 'string' && rid !== '' ? rid : randomUUID();
    let payload: Buffer | undefined;
    let wire: unknown;
    if (reply.text !== undefined) {
      payload = Buffer.from(reply.text);
      wire = reply.text;
      headers['content-type'] = 'text/plain';
    } else if (jsonBody !== undefined) {
      const text = `${JSON.stringify(jsonBody)}\n`;
      payload = Buffer.from(text);
      wire = JSON.parse(text) as unknown;
      headers['content-type'] = reply.status >= 400 ? 'application/json; charset=utf-8' : 'application/json';
    }

    if (this.contract) {
      const problems = outcome.op
        ? this.contract.validateResponse(
            outcome.op,
            { status: reply.status, headers, body: wire },
            [...(UNDOCUMENTED_HARBOR_STATUSES[outcome.op.id] ?? []), ...(outcome.origin === 'framework' ? FRAMEWORK_STATUSES : [])],
          )
        : reply.status >= 400 && wire !== undefined
          ? this.contract.validateDefinition('Errors', wire, 'response', `${reply.status} response body`)
          : [];
      for (const m of problems) this.record({ kind: 'response', method, path: pathname, ...(outcome.opId ? { operationId: outcome.opId } : {}), status: reply.status, message: m });
    }

    // Harbor hands every response a session cookie: the CSRF trap for cookie-keeping clients.
    headers['set-cookie'] = `sid=${randomBytes(16).toString('hex')}; Path=/; HttpOnly${this.tls ? '; Secure' : ''}`;
    if (method === 'GET' || method === 'HEAD') headers['x-harbor-csrf-token'] = this.csrfToken;
    if (method === 'HEAD') payload = undefined;
    headers['content-length'] = String(payload?.length ?? 0);
    if (!res.destroyed) {
      res.writeHead(reply.status, headers);
      res.end(payload);
    }
    log(reply.status, {
      ...(outcome.opId ? { operationId: outcome.opId } : {}),
      ...(faultKind ? { fault: faultKind } : {}),
      ...(outcome.user ? { user: outcome.user } : {}),
      ...(outcome.body !== undefined ? { body: outcome.body } : {}),
    });
  }
}

/**
 * Starts the fake. Resolves once it listens; `url` is then final.
 * Without the swagger, prints a loud notice (once per process) and runs
 * unchecked (`contractChecked` false).
 */
export async function startHarborFake(options: HarborFakeOptions): Promise<HarborFake> {
  const host = options.host ?? '127.0.0.1';
  assertLoopbackHost(host);
  if (typeof options.adminPassword !== 'string' || options.adminPassword === '') throw new Error('adminPassword is required');
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port ${port}`);
  const warn = options.warn ?? ((t: string) => console.warn(t));
  let contract: HarborContract | undefined;
  if (options.contract === undefined) {
    contract = await loadHarborContract();
    if (!contract && !noticePrinted) {
      noticePrinted = true;
      warn(contractUnavailableNotice(await defaultContractAttempts()));
    }
  } else if (options.contract === null) {
    warn(contractUnavailableNotice([{ source: 'env', location: 'startHarborFake({ contract: null })', ok: false, reason: 'contract checks turned off by the caller' }]));
  } else contract = options.contract;

  const fake = new Fake(host, contract, options.tls !== undefined, options);
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    fake.handle(req, res).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`harbor fake crashed: ${String(e)}\n`);
      }
    });
  };
  const server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler) : createHttpServer(handler);
  server.keepAliveTimeout = 5_000;
  fake.server = server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  fake.port = addr.port;
  fake.url = `${options.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  return fake;
}
