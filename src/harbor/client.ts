// A small client for Harbor's REST API (/api/v2.0), written against its
// traps (see DOMAIN.md):
//
// - cookie-less basic auth: Harbor hands every answer a `sid` cookie, and a
//   client that sends it back gets 403 "CSRF token invalid" on writes. This
//   client never reads Set-Cookie nor sends Cookie.
// - exact lookups: `GET /projects?name=` and `/registries?name=` are fuzzy;
//   lookups here use `q=name=<x>` or the project path, and filter exactly.
// - pagination: page_size 100 and X-Total-Count, bounded.
// - bounded retries with backoff on 5xx, 429, timeouts and connection errors.
// - TLS verified: Node's roots plus the spec's CA (tls.ca_cert).
// - 401/403 explained.

import { createHash, randomUUID } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { onRunEnd } from '../facts/controller.js';
import type { Secret } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';

export const API_BASE = '/api/v2.0';
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const PAGE_SIZE = 100;
const MAX_PAGES = 200;
const MAX_BACKOFF_MS = 8_000;

export interface HarborEndpoint {
  /** scheme://host[:port], no trailing slash and no /api/v2.0. */
  url: string;
  username: string;
  password: Secret;
  /** PEM of a CA to trust besides Node's roots (tls.ca_cert). */
  ca?: string;
  /** Where `ca` was read from, for messages. */
  caFile?: string;
  /** Per request, milliseconds. */
  timeoutMs: number;
  /** Tries after the first one, for failures that may pass. */
  retries: number;
  /** First wait between tries (doubles each time, ±20 %). */
  retryDelayMs: number;
}

/** Why a request failed: Harbor answered (http), or no answer came (network, timeout, tls). */
export type FailureKind = 'http' | 'network' | 'timeout' | 'tls';

export class HarborError extends BerthError {
  constructor(
    message: string,
    readonly kind: FailureKind,
    readonly status: number | undefined,
    readonly harborMessage: string,
    readonly code: string | undefined,
    opts: { hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts);
  }

  /** No answer at all: the address refuses or drops connections, or the name does not resolve. */
  get unreachable(): boolean {
    return this.kind === 'network' || (this.kind === 'timeout' && this.code === 'connect');
  }
}

export interface Response<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  body: T;
  /** How many tries it took. */
  attempts: number;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses returned rather than thrown (404 for a lookup, 409, 412). */
  accept?: number[];
  /** Counts requests (one per try) into these stats, e.g. a fact gathering's. */
  stats?: { requests: number };
}

interface RawResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNABORTED', 'EADDRNOTAVAIL']);
/** Worth another try: the connection broke or was refused (a restarting Harbor), not a name that does not resolve. */
const RETRY_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN']);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The `errors[0].message` of a Harbor error body, or the first line of an HTML/text page. */
export function harborMessage(text: string): { message: string; code?: string } {
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    const e = j.errors?.[0];
    if (e?.message) return { message: e.message.replace(/\s*\n\s*/g, '; '), ...(e.code ? { code: e.code } : {}) };
  } catch {
    // not JSON: an nginx page or plain text
  }
  const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1] ?? /<h1>([^<]*)<\/h1>/i.exec(text)?.[1];
  const line = (title ?? text).trim().split('\n')[0] ?? '';
  return { message: line.length > 160 ? `${line.slice(0, 157)}...` : line };
}

function tlsProblem(code: string | undefined): boolean {
  return !!code && (/^(ERR_TLS_|ERR_SSL_)/.test(code) || /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|DEPTH_ZERO/.test(code));
}

export class HarborClient {
  readonly endpoint: HarborEndpoint;
  private readonly base: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  /** Every try made, for tests and stats. */
  requests = 0;

  constructor(endpoint: HarborEndpoint) {
    this.endpoint = endpoint;
    try {
      this.base = new URL(endpoint.url);
    } catch {
      throw new BerthError(`harbor_api.url ${JSON.stringify(endpoint.url)} is not a URL`);
    }
    if (this.base.protocol === 'https:') {
      const ca = endpoint.ca ? [...rootCertificates, endpoint.ca] : undefined;
      this.agent = new HttpsAgent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}) });
    } else {
      this.agent = new HttpAgent({ keepAlive: true, maxSockets: 8 });
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private where(method: string, path: string): string {
    return `${method} ${API_BASE}${path}`;
  }

  /** One try; resolves with whatever Harbor answered, rejects with a HarborError when nothing usable came back. */
  private once(method: string, path: string, opts: RequestOptions): Promise<RawResult> {
    const url = new URL(`${API_BASE}${path}`, this.base);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, String(v));
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const auth = Buffer.from(`${this.endpoint.username}:${this.endpoint.password.reveal()}`).toString('base64');
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Basic ${auth}`,
      'x-request-id': randomUUID(),
      ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}),
      ...opts.headers,
    };
    const send = this.base.protocol === 'https:' ? httpsRequest : httpRequest;
    const timeoutMs = this.endpoint.timeoutMs;
    return new Promise<RawResult>((resolve, reject) => {
      let settled = false;
      let connected = false;
      const done = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const req = send(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY_BYTES) {
            req.destroy();
            done(() => reject(new HarborError(`${this.where(method, path)}: the answer is larger than ${MAX_BODY_BYTES >> 20} MiB`, 'network', res.statusCode, '', 'ETOOBIG')));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => done(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') })));
        res.on('error', (e) => done(() => reject(this.networkError(method, path, e as NodeJS.ErrnoException))));
        res.on('aborted', () => done(() => reject(this.networkError(method, path, Object.assign(new Error('the connection was reset'), { code: 'ECONNRESET' })))));
      });
      req.on('socket', (sock) => {
        if (!sock.connecting) connected = true;
        sock.once('connect', () => (connected = true));
        sock.once('secureConnect', () => (connected = true));
      });
      const timer = setTimeout(() => {
        req.destroy();
        done(() =>
          reject(
            new HarborError(
              `${this.where(method, path)}: no answer within ${timeoutMs / 1000}s`,
              'timeout',
              undefined,
              '',
              connected ? 'response' : 'connect',
            ),
          ),
        );
      }, timeoutMs);
      req.on('error', (e) => done(() => reject(this.networkError(method, path, e as NodeJS.ErrnoException))));
      req.end(body);
    });
  }

  private networkError(method: string, path: string, e: NodeJS.ErrnoException): HarborError {
    const code = e.code ?? (e.message === 'socket hang up' ? 'ECONNRESET' : undefined);
    if (tlsProblem(code)) {
      const trust = this.endpoint.caFile ? `Node's CA roots and ${this.endpoint.caFile}` : "Node's CA roots (set tls.ca_cert or harbor_api.ca_cert to trust your CA)";
      return new HarborError(`${this.where(method, path)}: the TLS certificate of ${this.base.host} is not trusted (${code}: ${e.message})`, 'tls', undefined, e.message, code, {
        hint: `berth checks it against ${trust}`,
        cause: e,
      });
    }
    const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? `${this.base.hostname} does not resolve` : code === 'ECONNRESET' ? 'the connection was reset' : `${code ?? 'network error'}: ${e.message}`;
    return new HarborError(`${this.where(method, path)}: ${what}`, 'network', undefined, e.message, code && NETWORK_CODES.has(code) ? code : (code ?? 'ENETWORK'), { cause: e });
  }

  /**
   * A request with bounded retries. Tries again, after a growing pause, on
   * 429/5xx answers, timeouts and broken or refused connections; a POST too
   * (the module then treats a 409 after a retry as its own earlier try).
   */
  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<Response<T>> {
    const tries = 1 + Math.max(0, this.endpoint.retries);
    const started = Date.now();
    let last: HarborError | undefined;
    let made = 0;
    for (let attempt = 1; attempt <= tries; attempt++) {
      if (attempt > 1) {
        const base = Math.min(MAX_BACKOFF_MS, this.endpoint.retryDelayMs * 2 ** (attempt - 2));
        await sleep(Math.round(base * (0.8 + Math.random() * 0.4)));
      }
      made = attempt;
      this.requests++;
      if (opts.stats) opts.stats.requests++;
      let raw: RawResult;
      try {
        raw = await this.once(method, path, opts);
      } catch (e) {
        if (!(e instanceof HarborError)) throw e;
        last = e;
        const retry = e.kind === 'timeout' || (e.kind === 'network' && RETRY_CODES.has(e.code ?? ''));
        if (retry) continue;
        break;
      }
      if ((raw.status >= 200 && raw.status < 300) || opts.accept?.includes(raw.status)) {
        return { status: raw.status, headers: raw.headers, body: parseBody(raw.text) as T, attempts: attempt };
      }
      last = this.httpError(method, path, raw);
      if (RETRY_STATUSES.has(raw.status)) continue;
      break;
    }
    const e = last!;
    if (made < 2) throw e;
    const spent = ((Date.now() - started) / 1000).toFixed(1);
    throw new HarborError(`${e.message} (${made} tries in ${spent}s)`, e.kind, e.status, e.harborMessage, e.code, { hint: e.hint, cause: e });
  }

  private httpError(method: string, path: string, raw: RawResult): HarborError {
    const { message, code } = harborMessage(raw.text);
    const where = this.where(method, path);
    const m = message ? `: ${message}` : '';
    if (raw.status === 401) {
      return new HarborError(`${where}: Harbor refused the credentials of user ${this.endpoint.username} (401${m})`, 'http', 401, message, code, {
        hint: "check harbor.admin_password: Harbor reads harbor.yml's password only on its first start, so a password changed later must be changed in Harbor too",
      });
    }
    if (raw.status === 403) {
      const csrf = /csrf/i.test(message);
      return new HarborError(`${where}: forbidden (403${m})`, 'http', 403, message, code, {
        hint: csrf
          ? 'a client that sends Harbor\'s sid cookie back must also send its CSRF token; berth sends no cookies, so something between berth and Harbor keeps them'
          : `user ${this.endpoint.username} must be a Harbor system administrator`,
      });
    }
    return new HarborError(`${where}: Harbor answered ${raw.status}${m}`, 'http', raw.status, message, code);
  }

  get<T = unknown>(path: string, opts: RequestOptions = {}): Promise<Response<T>> {
    return this.request<T>('GET', path, opts);
  }

  /** Every item of a paged list (page_size 100), bounded to MAX_PAGES pages. */
  async listAll<T>(path: string, query: Record<string, string | number | boolean> = {}, stats?: { requests: number }): Promise<T[]> {
    const out: T[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const r = await this.get<T[]>(path, { query: { ...query, page, page_size: PAGE_SIZE }, ...(stats ? { stats } : {}) });
      if (!Array.isArray(r.body)) throw new HarborError(`GET ${API_BASE}${path}: expected a list, got ${typeof r.body}`, 'http', r.status, '', undefined);
      out.push(...r.body);
      const total = Number(r.headers['x-total-count']);
      if (r.body.length < PAGE_SIZE || (Number.isFinite(total) && out.length >= total)) return out;
    }
    throw new HarborError(`GET ${API_BASE}${path}: more than ${MAX_PAGES * PAGE_SIZE} items`, 'http', 200, '', undefined);
  }
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

// ---------------------------------------------------------------- one client per endpoint per run

const clients = new Map<string, HarborClient>();

function clientKey(e: HarborEndpoint): string {
  const h = createHash('sha256');
  for (const part of [e.url, e.username, e.password.reveal(), e.ca ?? '', String(e.timeoutMs), String(e.retries), String(e.retryDelayMs)]) h.update(part).update('\0');
  return h.digest('hex');
}

/** The client for an endpoint, shared by every fact and change of the run (its connections are kept alive, then released). */
export function harborClient(e: HarborEndpoint): HarborClient {
  const key = clientKey(e);
  let c = clients.get(key);
  if (!c) {
    c = new HarborClient(e);
    clients.set(key, c);
    const made = c;
    onRunEnd(() => {
      made.close();
      clients.delete(key);
    });
  }
  return c;
}

/** Characters that would break Harbor's `q` syntax (k=v,k2=v2, ~fuzzy, {or}, (and), [range]). */
const Q_SPECIAL = /[,~{}()[\]"'=\s]/;

/**
 * Exact lookup in a list that Harbor only filters fuzzily with `name=`: asks
 * with `q=name=<x>` (exact) when the name can be written in `q`, else lists
 * everything; filters exactly either way.
 */
export async function findByName<T extends { name?: string }>(client: HarborClient, path: string, name: string, stats?: { requests: number }): Promise<T | undefined> {
  const query: Record<string, string> = Q_SPECIAL.test(name) ? {} : { q: `name=${name}` };
  const items = await client.listAll<T>(path, query, stats);
  return items.find((x) => x.name === name);
}
