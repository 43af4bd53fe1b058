// Harbor v2.12 behaviour for the operations berth uses. Each handler gets a
// parsed request and the in-memory state and returns a reply or throws
// HarborHttpError; server.ts does routing, CSRF, contract checks, auth and
// faults around them.

import type { IncomingHttpHeaders } from 'node:http';
import { swaggerBool } from './contract.js';
import { isObject, type JsonObject } from './schema.js';
import {
  AUTH_MODES,
  HEALTH_COMPONENTS,
  REGISTRY_TYPES,
  proxyCacheTypesOf,
  SECRET_CONFIG_KEYS,
  type ConfigValue,
  type HarborState,
  type ProjectRecord,
  type QuotaRecord,
  type RegistryRecord,
  type UserRecord,
} from './state.js';

export class HarborHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (m: string): HarborHttpError => new HarborHttpError(400, 'BAD_REQUEST', m);
export const unauthorized = (m = 'unauthorized'): HarborHttpError => new HarborHttpError(401, 'UNAUTHORIZED', m);
export const forbidden = (m = 'forbidden'): HarborHttpError => new HarborHttpError(403, 'FORBIDDEN', m);
export const notFound = (m: string): HarborHttpError => new HarborHttpError(404, 'NOT_FOUND', m);
export const conflict = (m: string): HarborHttpError => new HarborHttpError(409, 'CONFLICT', m);
export const precondition = (m: string): HarborHttpError => new HarborHttpError(412, 'PRECONDITION', m);
/** Harbor hides the cause of a 500 behind this fixed text. */
export const internalError = (): HarborHttpError => new HarborHttpError(500, 'UNKNOWN', 'internal server error');

export interface Reply {
  status: number;
  /** JSON body (serialised by the server); absent: no body. */
  body?: unknown;
  /** A text/plain body instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
}

export type AuthLevel = 'none' | 'optional' | 'user' | 'admin';

export interface HandlerContext {
  method: string;
  pathname: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  pathParams: Record<string, string>;
  body: unknown;
  bodyPresent: boolean;
  /** The authenticated user, if any. */
  user: UserRecord | undefined;
  state: HarborState;
  /** Base URL of the fake (scheme://host:port). */
  baseUrl: string;
  /** The contract checks run (so handlers need not flag what the contract already flags). */
  contractChecked: boolean;
  /** Records something Harbor silently ignores (a likely client bug). */
  flagIgnored(message: string): void;
}

export interface RouteDef {
  method: string;
  /** Path template below /api/v2.0, spelled as in the swagger. */
  template: string;
  operationId: string;
  auth: AuthLevel;
  handler: (ctx: HandlerContext) => Reply;
}

/**
 * Statuses the real Harbor answers for an operation although its swagger does
 * not list them (so the fake may answer them without a contract violation).
 */
export const UNDOCUMENTED_HARBOR_STATUSES: Readonly<Record<string, readonly number[]>> = {
  // admin asking for a missing project: 404 (goharbor/harbor#17586, #21800);
  // others: 403 for missing or private projects.
  getProject: [403, 404],
  headProject: [401, 403],
  // non-admin creating a proxy-cache project, or any project under adminonly.
  createProject: [403],
  // the registry controller re-validates (URL, upstream ping) on update.
  updateRegistry: [400],
  // invalid values and the auth_mode rule are 400s.
  updateConfigurations: [400],
  // a malformed q.
  listProjects: [400],
  listRegistries: [400],
  listUsers: [400],
};

// ---------------------------------------------------------------- helpers

const PROJECT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const MASK = '*****';

function int(raw: string | null, fallback: number): number {
  if (raw === null || raw.trim() === '') return fallback;
  const n = Number(raw.trim());
  return Number.isInteger(n) ? n : fallback;
}

function stripQuotes(v: string): string {
  return /^(["']).*\1$/.test(v) && v.length >= 2 ? v.slice(1, -1) : v;
}

type Matcher =
  | { kind: 'exact'; value: string }
  | { kind: 'fuzzy'; value: string }
  | { kind: 'range'; min: string; max: string }
  | { kind: 'or'; values: string[] }
  | { kind: 'and'; values: string[] };

/** Harbor's `q`: `k=v` exact, `k=~v` fuzzy, `k=[a~b]` range, `k={a b}` any, `k=(a b)` all. */
export function parseQ(q: string | null): Map<string, Matcher> {
  const out = new Map<string, Matcher>();
  if (q === null || q.trim() === '') return out;
  const parts = q.split(',');
  if (parts.length > 64) throw badRequest('the query has too many conditions');
  for (const part of parts) {
    const i = part.indexOf('=');
    const key = i > 0 ? part.slice(0, i).trim() : '';
    if (key === '') throw badRequest(`the query condition "${part}" is not k=v`);
    const v = part.slice(i + 1).trim();
    let m: Matcher;
    if (v.startsWith('~')) m = { kind: 'fuzzy', value: stripQuotes(v.slice(1)) };
    else if (/^\[.*~.*\]$/.test(v)) {
      const [min = '', max = ''] = v.slice(1, -1).split('~');
      m = { kind: 'range', min: stripQuotes(min.trim()), max: stripQuotes(max.trim()) };
    } else if (/^\{.*\}$/.test(v)) m = { kind: 'or', values: v.slice(1, -1).trim().split(/\s+/).map(stripQuotes) };
    else if (/^\(.*\)$/.test(v)) m = { kind: 'and', values: v.slice(1, -1).trim().split(/\s+/).map(stripQuotes) };
    else m = { kind: 'exact', value: stripQuotes(v) };
    out.set(key, m);
  }
  return out;
}

type Field<T> = (r: T) => string | number | boolean | undefined;

function equal(a: string | number | boolean | undefined, b: string): boolean {
  if (a === undefined) return false;
  if (typeof a === 'number') return b.trim() !== '' && Number(b) === a;
  return String(a) === b;
}

function matches(m: Matcher, a: string | number | boolean | undefined): boolean {
  switch (m.kind) {
    case 'exact':
      return equal(a, m.value);
    case 'fuzzy':
      return a !== undefined && String(a).includes(m.value);
    case 'or':
      return m.values.some((v) => equal(a, v));
    case 'and':
      return m.values.every((v) => equal(a, v));
    case 'range': {
      if (a === undefined) return false;
      const cmp = (x: string | number | boolean, bound: string): number =>
        typeof x === 'number' ? x - Number(bound) : String(x) < bound ? -1 : String(x) > bound ? 1 : 0;
      return (m.min === '' || cmp(a, m.min) >= 0) && (m.max === '' || cmp(a, m.max) <= 0);
    }
  }
}

/** Filters by `q` (unknown keys: flagged and ignored, as Harbor ignores them). */
function filterByQ<T>(ctx: HandlerContext, items: T[], fields: Record<string, Field<T>>): T[] {
  const q = parseQ(ctx.query.get('q'));
  let out = items;
  for (const [key, m] of q) {
    const f = fields[key];
    if (!f) {
      ctx.flagIgnored(`q key "${key}" is not a filterable field here (known: ${Object.keys(fields).join(', ')})`);
      continue;
    }
    out = out.filter((r) => matches(m, f(r)));
  }
  return out;
}

function sortBy<T>(ctx: HandlerContext, items: T[], fields: Record<string, Field<T>>, fallback: string): T[] {
  const spec = ctx.query.get('sort') || fallback;
  const keys: Array<{ f: Field<T>; desc: boolean }> = [];
  for (const raw of spec.split(',').slice(0, 8)) {
    const desc = raw.startsWith('-');
    const name = raw.replace(/^[-+]/, '').trim();
    const f = fields[name];
    if (f) keys.push({ f, desc });
    else if (name !== '') ctx.flagIgnored(`sort key "${name}" is not sortable here`);
  }
  return [...items].sort((a, b) => {
    for (const { f, desc } of keys) {
      const x = f(a);
      const y = f(b);
      if (x === y) continue;
      const c = x === undefined ? -1 : y === undefined ? 1 : x < y ? -1 : 1;
      return desc ? -c : c;
    }
    return 0;
  });
}

/** page/page_size (≤ 100), X-Total-Count and Link, as Harbor does. */
function paginate<T>(ctx: HandlerContext, items: T[]): { page: T[]; headers: Record<string, string> } {
  const page = Math.max(1, int(ctx.query.get('page'), 1));
  const size = int(ctx.query.get('page_size'), 10);
  if (size > 100) throw new HarborHttpError(422, 'UNPROCESSABLE_ENTITY', 'validation failure list:\npage_size in query should be less than or equal to 100');
  const total = items.length;
  const headers: Record<string, string> = { 'x-total-count': String(total) };
  if (size <= 0) return { page: items, headers };
  const links: string[] = [];
  const link = (p: number, rel: string): string => {
    const q = new URLSearchParams(ctx.query);
    q.set('page', String(p));
    q.set('page_size', String(size));
    return `<${ctx.pathname}?${q.toString()}>; rel="${rel}"`;
  };
  if (page > 1 && (page - 1) * size < total) links.push(link(page - 1, 'prev'));
  if (page * size < total) links.push(link(page + 1, 'next'));
  if (links.length > 0) headers.link = links.join(' , ');
  return { page: items.slice((page - 1) * size, page * size), headers };
}

function isAdmin(u: UserRecord | undefined): boolean {
  return u?.sysadmin_flag === true;
}

function requireUser(ctx: HandlerContext): UserRecord {
  if (!ctx.user) throw unauthorized();
  return ctx.user;
}

/** Harbor's lib.ValidateHTTPURL: trims, drops trailing slashes, defaults to http://, keeps scheme://host/path. */
export function normalizeRegistryUrl(raw: string): string {
  let s = raw.trim().replace(/\/+$/, '');
  if (s === '') throw badRequest('the registry URL is empty');
  if (!s.includes('://')) s = `http://${s}`;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw badRequest(`the registry URL ${raw} does not parse`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badRequest(`the registry URL scheme ${u.protocol.replace(/:$/, '')} is not http or https`);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  return `${u.protocol}//${u.host}${path}`;
}

function locationOf(ctx: HandlerContext, id: string | number): string {
  return `${ctx.pathname.replace(/\/+$/, '')}/${String(id)}`;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function bodyObject(ctx: HandlerContext, what: string): JsonObject {
  if (!isObject(ctx.body)) throw badRequest(`the ${what} must be a JSON object`);
  return ctx.body;
}

// ---------------------------------------------------------------- views

function registryView(r: RegistryRecord): JsonObject {
  const credential: JsonObject = {};
  if (r.credential.type) credential.type = r.credential.type;
  if (r.credential.access_key) credential.access_key = r.credential.access_key;
  if (r.credential.access_secret) credential.access_secret = MASK;
  const out: JsonObject = { id: r.id, url: r.url, name: r.name, credential, type: r.type };
  if (r.insecure) out.insecure = true;
  if (r.description) out.description = r.description;
  out.status = r.status;
  out.creation_time = r.creation_time;
  out.update_time = r.update_time;
  return out;
}

function projectView(s: HarborState, p: ProjectRecord, viewer: UserRecord | undefined): JsonObject {
  const owner = s.users.get(p.owner_id);
  const out: JsonObject = { project_id: p.project_id, owner_id: p.owner_id, name: p.name };
  if (p.registry_id > 0) out.registry_id = p.registry_id;
  out.creation_time = p.creation_time;
  out.update_time = p.update_time;
  if (owner) out.owner_name = owner.username;
  if (viewer && viewer.user_id === p.owner_id) {
    out.togglable = true;
    out.current_user_role_id = 1;
    out.current_user_role_ids = [1];
  }
  out.repo_count = p.repositories.length;
  out.metadata = { ...p.metadata };
  const a = p.cve_allowlist;
  const allowlist: JsonObject = { id: a.id, project_id: a.project_id, items: a.items.map((i) => ({ ...i })) };
  if (a.expires_at !== null) allowlist.expires_at = a.expires_at;
  allowlist.creation_time = a.creation_time;
  allowlist.update_time = a.update_time;
  out.cve_allowlist = allowlist;
  return out;
}

function quotaView(s: HarborState, q: QuotaRecord): JsonObject {
  const p = s.projects.get(Number(q.reference_id));
  const ref: JsonObject = { id: Number(q.reference_id) };
  if (p) {
    ref.name = p.name;
    ref.owner_name = s.users.get(p.owner_id)?.username ?? '';
  }
  return { id: q.id, ref, hard: { ...q.hard }, used: { ...q.used }, creation_time: q.creation_time, update_time: q.update_time };
}

function userView(u: UserRecord): JsonObject {
  const out: JsonObject = { email: u.email, realname: u.realname };
  if (u.comment) out.comment = u.comment;
  out.user_id = u.user_id;
  out.username = u.username;
  out.sysadmin_flag = u.sysadmin_flag;
  out.admin_role_in_auth = false;
  out.creation_time = u.creation_time;
  out.update_time = u.update_time;
  return out;
}

// ---------------------------------------------------------------- system

function getHealth(ctx: HandlerContext): Reply {
  const names = [...HEALTH_COMPONENTS, ...[...ctx.state.componentHealth.keys()].filter((n) => !(HEALTH_COMPONENTS as readonly string[]).includes(n))];
  const components = names.map((name) => {
    const o = ctx.state.componentHealth.get(name);
    const c: JsonObject = { name, status: o?.status ?? 'healthy' };
    if (o?.error) c.error = o.error;
    return c;
  });
  const healthy = components.every((c) => c.status === 'healthy');
  return { status: 200, body: { status: healthy ? 'healthy' : 'unhealthy', components } };
}

function getPing(): Reply {
  return { status: 200, text: 'Pong' };
}

function getSystemInfo(ctx: HandlerContext): Reply {
  const c = ctx.state.configuration;
  const authMode = String(c.get('auth_mode'));
  const body: JsonObject = {
    auth_mode: authMode,
    primary_auth_mode: c.get('primary_auth_mode') === true,
    self_registration: c.get('self_registration') === true,
    harbor_version: ctx.state.harborVersion,
    banner_message: String(c.get('banner_message') ?? ''),
  };
  if (authMode === 'oidc_auth') body.oidc_provider_name = String(c.get('oidc_name') ?? '');
  if (ctx.user) {
    const u = new URL(ctx.baseUrl);
    body.has_ca_root = false;
    body.project_creation_restriction = String(c.get('project_creation_restriction'));
    body.external_url = ctx.baseUrl;
    body.registry_url = u.host;
    body.read_only = c.get('read_only') === true;
    body.registry_storage_provider_name = 'filesystem';
    body.notification_enable = c.get('notification_enable') === true;
    body.current_time = ctx.state.timestamp();
  }
  return { status: 200, body };
}

// ---------------------------------------------------------------- registries

const REGISTRY_FIELDS: Record<string, Field<RegistryRecord>> = {
  id: (r) => r.id,
  name: (r) => r.name,
  type: (r) => r.type,
  url: (r) => r.url,
  description: (r) => r.description,
  creation_time: (r) => r.creation_time,
  update_time: (r) => r.update_time,
};

function getRegistryById(ctx: HandlerContext): RegistryRecord {
  const id = Number(ctx.pathParams.id);
  const r = ctx.state.registries.get(id);
  if (!r) throw notFound(`no registry with id ${String(ctx.pathParams.id)}`);
  return r;
}

/** Name, URL and upstream checks of Harbor's registry controller (create and update). */
function validateRegistry(ctx: HandlerContext, r: { name: string; url: string; type: string }): string {
  if (r.name === '') throw badRequest('the registry name is empty');
  if (r.name.length > 64) throw badRequest('the registry name is longer than 64 characters');
  if (!(REGISTRY_TYPES as readonly string[]).includes(r.type)) throw badRequest(`no registry adapter for type "${r.type}"`);
  const url = normalizeRegistryUrl(r.url);
  const ping = ctx.state.upstreamPing(url);
  if (!ping.ok) throw badRequest('the registry is unhealthy');
  return url;
}

function listRegistries(ctx: HandlerContext): Reply {
  let items = filterByQ(ctx, [...ctx.state.registries.values()], REGISTRY_FIELDS);
  const name = ctx.query.get('name');
  if (name) items = items.filter((r) => r.name.includes(name));
  items = sortBy(ctx, items, REGISTRY_FIELDS, 'id');
  const { page, headers } = paginate(ctx, items);
  return { status: 200, body: page.map(registryView), headers };
}

function createRegistry(ctx: HandlerContext): Reply {
  const b = bodyObject(ctx, 'registry');
  const name = str(b.name) ?? '';
  const type = str(b.type) ?? '';
  const url = validateRegistry(ctx, { name, url: str(b.url) ?? '', type });
  if (ctx.state.findRegistryByName(name)) throw conflict(`a registry named ${name} exists already`);
  const cred = isObject(b.credential) ? b.credential : {};
  const t = ctx.state.timestamp();
  const rec: RegistryRecord = {
    id: ctx.state.nextId('registry'),
    name,
    url,
    type,
    insecure: b.insecure === true,
    description: str(b.description) ?? '',
    credential: { type: str(cred.type) ?? '', access_key: str(cred.access_key) ?? '', access_secret: str(cred.access_secret) ?? '' },
    status: 'healthy',
    creation_time: t,
    update_time: t,
  };
  ctx.state.registries.set(rec.id, rec);
  return { status: 201, headers: { location: locationOf(ctx, rec.id) } };
}

function getRegistry(ctx: HandlerContext): Reply {
  return { status: 200, body: registryView(getRegistryById(ctx)) };
}

function updateRegistry(ctx: HandlerContext): Reply {
  const r = getRegistryById(ctx);
  const b = bodyObject(ctx, 'registry update');
  const next = { ...r, credential: { ...r.credential } };
  if (typeof b.name === 'string') next.name = b.name;
  if (typeof b.description === 'string') next.description = b.description;
  if (typeof b.url === 'string') next.url = b.url;
  if (typeof b.insecure === 'boolean') next.insecure = b.insecure;
  if (typeof b.credential_type === 'string') next.credential.type = b.credential_type;
  if (typeof b.access_key === 'string') next.credential.access_key = b.access_key;
  // Sending back the masked value overwrites the real secret with "*****", as in Harbor.
  if (typeof b.access_secret === 'string') next.credential.access_secret = b.access_secret;
  next.url = validateRegistry(ctx, next);
  const other = ctx.state.findRegistryByName(next.name);
  if (other && other.id !== r.id) throw conflict(`a registry named ${next.name} exists already`);
  next.update_time = ctx.state.timestamp();
  ctx.state.registries.set(r.id, next);
  return { status: 200 };
}

function deleteRegistry(ctx: HandlerContext): Reply {
  const r = getRegistryById(ctx);
  const users = ctx.state.projectsUsingRegistry(r.id);
  if (users.length > 0) throw precondition(`registry ${r.id} backs the proxy-cache project(s) ${users.map((p) => p.name).join(', ')} and cannot be deleted`);
  ctx.state.registries.delete(r.id);
  return { status: 200 };
}

function pingRegistry(ctx: HandlerContext): Reply {
  const b = bodyObject(ctx, 'registry ping');
  let type = '';
  let url = '';
  if (typeof b.id === 'number') {
    const r = ctx.state.registries.get(b.id);
    if (!r) throw notFound(`no registry with id ${b.id}`);
    type = r.type;
    url = r.url;
  }
  if (typeof b.type === 'string') type = b.type;
  if (typeof b.url === 'string') url = normalizeRegistryUrl(b.url);
  if (type === '' || url === '') throw badRequest('both type and url are needed to ping a registry');
  if (!ctx.state.upstreamPing(url).ok) throw badRequest('the registry is unhealthy');
  return { status: 200 };
}

function listRegistryProviderTypes(): Reply {
  return { status: 200, body: [...REGISTRY_TYPES] };
}

// ---------------------------------------------------------------- projects

const PROJECT_FIELDS: Record<string, Field<ProjectRecord>> = {
  name: (p) => p.name,
  project_id: (p) => p.project_id,
  public: (p) => p.metadata.public === 'true',
  registry_id: (p) => p.registry_id,
  owner_id: (p) => p.owner_id,
  creation_time: (p) => p.creation_time,
  update_time: (p) => p.update_time,
};

/** X-Is-Resource-Name: true -> a name; else an integer is an id, anything else a name. */
export function projectKey(raw: string, headers: IncomingHttpHeaders): string | number {
  const h = headers['x-is-resource-name'];
  const isName = swaggerBool(Array.isArray(h) ? (h[0] ?? '') : (h ?? 'false'));
  if (!isName && /^[+-]?\d+$/.test(raw)) return Number(raw);
  return raw;
}

function canRead(u: UserRecord | undefined, p: ProjectRecord): boolean {
  return p.metadata.public === 'true' || isAdmin(u) || u?.user_id === p.owner_id;
}

function canWrite(u: UserRecord | undefined, p: ProjectRecord): boolean {
  return isAdmin(u) || (u !== undefined && u.user_id === p.owner_id);
}

/** Harbor's answers for a project the caller cannot see: 404 (admin, missing), 403 (others), 401 (anonymous). */
function projectFor(ctx: HandlerContext, access: 'read' | 'write'): ProjectRecord {
  const raw = ctx.pathParams.project_name_or_id ?? '';
  const key = projectKey(raw, ctx.headers);
  const p = ctx.state.findProject(key);
  const allowed = p !== undefined && (access === 'read' ? canRead(ctx.user, p) : canWrite(ctx.user, p));
  if (p && allowed) return p;
  if (!ctx.user) throw unauthorized();
  if (!p && isAdmin(ctx.user)) throw notFound(`no project ${typeof key === 'number' ? `with id ${key}` : `named ${key}`}`);
  throw forbidden();
}

const METADATA_KEYS = [
  'public',
  'enable_content_trust',
  'enable_content_trust_cosign',
  'prevent_vul',
  'severity',
  'auto_scan',
  'auto_sbom_generation',
  'reuse_sys_cve_allowlist',
  'retention_id',
  'proxy_speed_kb',
];

/** The metadata keys a ProjectReq sets (nulls and unknown keys are dropped, as Go's decoder does). */
function metadataOf(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(raw)) return out;
  for (const k of METADATA_KEYS) {
    const v = raw[k];
    if (typeof v === 'string' && (k !== 'public' || v !== '')) out[k] = v;
  }
  return out;
}

function checkPublic(v: string | undefined): void {
  if (v !== undefined && v !== 'true' && v !== 'false') throw badRequest(`metadata.public must be "true" or "false", not "${v}"`);
}

function allowlistItems(raw: unknown): Array<{ cve_id: string }> {
  if (!isObject(raw) || !Array.isArray(raw.items)) return [];
  return raw.items.filter(isObject).map((i) => ({ cve_id: str(i.cve_id) ?? '' }));
}

function listProjects(ctx: HandlerContext): Reply {
  const publicParam = ctx.query.get('public');
  if (!ctx.user && publicParam !== null && publicParam !== '' && !swaggerBool(publicParam)) {
    return { status: 200, body: [], headers: { 'x-total-count': '0' } };
  }
  let items = [...ctx.state.projects.values()].filter((p) => canRead(ctx.user, p));
  items = filterByQ(ctx, items, PROJECT_FIELDS);
  const name = ctx.query.get('name');
  if (name) items = items.filter((p) => p.name.includes(name)); // fuzzy, like Harbor
  const owner = ctx.query.get('owner');
  if (owner) items = items.filter((p) => ctx.state.users.get(p.owner_id)?.username === owner);
  if (publicParam !== null && publicParam !== '') {
    const want = swaggerBool(publicParam);
    items = items.filter((p) => (p.metadata.public === 'true') === want);
  }
  items = sortBy(ctx, items, PROJECT_FIELDS, 'name');
  const { page, headers } = paginate(ctx, items);
  return { status: 200, body: page.map((p) => projectView(ctx.state, p, ctx.user)), headers };
}

function headProject(ctx: HandlerContext): Reply {
  const name = ctx.query.get('project_name') ?? '';
  const p = ctx.state.findProject(name);
  if (!p) {
    if (!ctx.user) throw unauthorized();
    throw notFound(`no project named ${name}`);
  }
  return { status: 200 };
}

function createProject(ctx: HandlerContext): Reply {
  const user = requireUser(ctx);
  const s = ctx.state;
  const admin = isAdmin(user);
  if (s.configuration.get('project_creation_restriction') === 'adminonly' && !admin) throw forbidden('only system admins may create projects');
  const b = bodyObject(ctx, 'project');
  const registryId = typeof b.registry_id === 'number' ? b.registry_id : undefined;
  if (registryId !== undefined && !admin) throw forbidden('only system admins may create proxy-cache projects');

  const name = str(b.project_name) ?? '';
  if (name === '') throw badRequest('project_name is required');
  if (name.length > 255 || !PROJECT_NAME.test(name)) throw badRequest(`project name "${name}" must be lower case letters and digits separated by single ".", "_" or "-"`);

  let storageLimit: number | undefined;
  if (s.configuration.get('quota_per_project_enable') === true) {
    const asked = typeof b.storage_limit === 'number' ? b.storage_limit : undefined;
    storageLimit = asked === undefined || asked === 0 || !admin ? Number(s.configuration.get('storage_per_project')) : asked;
  }

  const metadata = metadataOf(b.metadata);
  if (metadata.public === undefined && typeof b.public === 'boolean') metadata.public = String(b.public);
  metadata.public ??= 'false';
  checkPublic(metadata.public);
  if (registryId === undefined) delete metadata.proxy_speed_kb;
  else delete metadata.enable_content_trust;
  if (metadata.retention_id !== undefined && metadata.retention_id !== '') throw badRequest('retention_id must be omitted (or empty) when creating a project');
  delete metadata.retention_id;

  if (registryId !== undefined) {
    if (registryId <= 0) throw badRequest(`registry_id must be greater than 0, not ${registryId}`);
    const reg = s.registries.get(registryId);
    // Harbor wraps the registry lookup error without its code: a missing registry is a 500.
    if (!reg) throw internalError();
    if (!proxyCacheTypesOf(s.harborVersion).includes(reg.type)) throw badRequest(`bad request: unsupported registry type ${reg.type}`);
    if (metadata.proxy_speed_kb !== undefined && !/^[+-]?\d+$/.test(metadata.proxy_speed_kb)) throw badRequest('metadata.proxy_speed_kb must be an integer');
  }
  if (storageLimit !== undefined && !(storageLimit === -1 || storageLimit > 0)) throw badRequest(`storage_limit must be -1 (unlimited) or a positive number of bytes, not ${storageLimit}`);
  if (s.findProject(name)) throw conflict(`a project named ${name} exists already`);

  const p = s.createProject({
    name,
    ownerId: user.user_id,
    metadata,
    ...(registryId !== undefined ? { registryId } : {}),
    ...(storageLimit !== undefined ? { storageLimit } : {}),
    allowlist: allowlistItems(b.cve_allowlist),
    allowlistExpiresAt: isObject(b.cve_allowlist) && typeof b.cve_allowlist.expires_at === 'number' ? b.cve_allowlist.expires_at : null,
  });
  const inLocation = ctx.headers['x-resource-name-in-location'];
  const byName = swaggerBool(Array.isArray(inLocation) ? (inLocation[0] ?? '') : (inLocation ?? 'false'));
  return { status: 201, headers: { location: locationOf(ctx, byName ? p.name : p.project_id) } };
}

function getProject(ctx: HandlerContext): Reply {
  return { status: 200, body: projectView(ctx.state, projectFor(ctx, 'read'), ctx.user) };
}

/** PUT /projects/{p}: Harbor applies metadata and cve_allowlist only (project_name, registry_id, storage_limit, public are ignored). */
function updateProject(ctx: HandlerContext): Reply {
  requireUser(ctx);
  const p = projectFor(ctx, 'write');
  const b = bodyObject(ctx, 'project');
  // Harbor ignores these silently; a value that differs from the current one is a client bug.
  const current: Record<string, unknown> = {
    project_name: p.name,
    registry_id: p.registry_id,
    storage_limit: ctx.state.quotaOfProject(p.project_id)?.hard.storage,
    public: p.metadata.public === 'true',
  };
  for (const [k, now] of Object.entries(current)) {
    const sent = b[k];
    if (sent !== undefined && sent !== null && sent !== now) {
      ctx.flagIgnored(`PUT /projects ignores ${k} (${JSON.stringify(sent)} sent, ${JSON.stringify(now)} kept)${k === 'storage_limit' ? ': quotas change through PUT /quotas/{id}' : ''}`);
    }
  }
  let allowlist = p.cve_allowlist;
  if (isObject(b.cve_allowlist)) {
    const pid = typeof b.cve_allowlist.project_id === 'number' ? b.cve_allowlist.project_id : 0;
    if (pid !== 0 && pid !== p.project_id) throw badRequest(`cve_allowlist.project_id must be ${p.project_id}, not ${pid}`);
    allowlist = {
      ...p.cve_allowlist,
      items: allowlistItems(b.cve_allowlist),
      expires_at: typeof b.cve_allowlist.expires_at === 'number' ? b.cve_allowlist.expires_at : null,
      update_time: ctx.state.timestamp(),
    };
  }
  const changes = metadataOf(b.metadata);
  checkPublic(changes.public);
  if (p.registry_id > 0) delete changes.enable_content_trust;
  else delete changes.proxy_speed_kb;
  if (changes.retention_id !== undefined && changes.retention_id !== p.metadata.retention_id) {
    throw badRequest('retention_id must be omitted or equal to the one the project has');
  }
  p.metadata = { ...p.metadata, ...changes };
  p.cve_allowlist = allowlist;
  p.update_time = ctx.state.timestamp();
  return { status: 200 };
}

function deletable(p: ProjectRecord): { deletable: boolean; message?: string } {
  return p.repositories.length > 0 ? { deletable: false, message: `project ${p.name} still holds ${p.repositories.length} repositories` } : { deletable: true };
}

function deleteProject(ctx: HandlerContext): Reply {
  requireUser(ctx);
  const p = projectFor(ctx, 'write');
  const d = deletable(p);
  if (!d.deletable) throw precondition(d.message ?? 'the project cannot be deleted');
  ctx.state.deleteProject(p.project_id);
  return { status: 200 };
}

function getProjectDeletable(ctx: HandlerContext): Reply {
  requireUser(ctx);
  return { status: 200, body: deletable(projectFor(ctx, 'write')) };
}

// ---------------------------------------------------------------- quotas

function listQuotas(ctx: HandlerContext): Reply {
  const reference = ctx.query.get('reference');
  const referenceId = ctx.query.get('reference_id');
  let items = [...ctx.state.quotas.values()];
  if (reference) items = items.filter((q) => q.reference === reference);
  if (referenceId) items = items.filter((q) => q.reference_id === referenceId);
  items = sortBy(ctx, items, { id: (q) => q.id, 'hard.storage': (q) => q.hard.storage, 'used.storage': (q) => q.used.storage }, 'id');
  const { page, headers } = paginate(ctx, items);
  return { status: 200, body: page.map((q) => quotaView(ctx.state, q)), headers };
}

function quotaById(ctx: HandlerContext): QuotaRecord {
  const q = ctx.state.quotas.get(Number(ctx.pathParams.id));
  if (!q) throw notFound(`no quota with id ${String(ctx.pathParams.id)}`);
  return q;
}

function getQuota(ctx: HandlerContext): Reply {
  return { status: 200, body: quotaView(ctx.state, quotaById(ctx)) };
}

function updateQuota(ctx: HandlerContext): Reply {
  const b = bodyObject(ctx, 'quota update');
  const hard = isObject(b.hard) ? b.hard : undefined;
  if (!hard || Object.keys(hard).length === 0) throw badRequest('hard must name at least one resource');
  const q = quotaById(ctx);
  const next: Record<string, number> = {};
  for (const [k, v] of Object.entries(hard)) {
    if (k !== 'storage') throw badRequest(`resource ${k} has no quota in Harbor (only storage)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || !(v === -1 || v > 0)) throw badRequest(`storage must be -1 (unlimited) or a positive number of bytes, not ${JSON.stringify(v)}`);
    next[k] = v;
  }
  q.hard = { ...q.hard, ...next };
  q.update_time = ctx.state.timestamp();
  return { status: 200 };
}

// ---------------------------------------------------------------- configurations

function getConfigurations(ctx: HandlerContext): Reply {
  const s = ctx.state;
  const body: JsonObject = {};
  for (const [k, v] of s.configuration) {
    if (SECRET_CONFIG_KEYS.has(k)) continue;
    body[k] = { value: v, editable: !s.configurationReadOnly };
  }
  body.auth_mode = { value: s.configuration.get('auth_mode'), editable: s.otherUserCount() === 0 && !s.configurationReadOnly };
  return { status: 200, body };
}

const POSITIVE_SETTINGS = ['token_expiration', 'robot_token_duration', 'session_timeout'];

function updateConfigurations(ctx: HandlerContext): Reply {
  const s = ctx.state;
  if (s.configurationReadOnly) throw forbidden('the configuration is read-only (set through CONFIG_OVERWRITE_JSON)');
  const b = bodyObject(ctx, 'configurations');
  const changes = new Map<string, ConfigValue>();
  for (const [k, v] of Object.entries(b)) {
    if (v === null) continue; // a nil pointer in Harbor's model: not an update
    const current = s.configuration.get(k);
    if (current === undefined) {
      if (!ctx.contractChecked) ctx.flagIgnored(`configuration key "${k}" is unknown to Harbor and dropped`);
      continue;
    }
    if (typeof v !== typeof current) throw new HarborHttpError(422, 'UNPROCESSABLE_ENTITY', `validation failure list:\n${k} in body must be of type ${typeof current}`);
    changes.set(k, v as ConfigValue);
  }
  const mode = changes.get('auth_mode');
  if (mode !== undefined) {
    if (!(AUTH_MODES as readonly unknown[]).includes(mode)) throw badRequest(`auth_mode must be one of ${AUTH_MODES.join(', ')}, not ${String(mode)}`);
    if (mode !== s.configuration.get('auth_mode') && s.otherUserCount() > 0) {
      throw badRequest('the auth mode cannot be modified as new users have been inserted into database');
    }
  }
  const restriction = changes.get('project_creation_restriction');
  if (restriction !== undefined && restriction !== 'adminonly' && restriction !== 'everyone') throw badRequest(`project_creation_restriction must be adminonly or everyone, not ${String(restriction)}`);
  for (const k of POSITIVE_SETTINGS) {
    const v = changes.get(k);
    if (v !== undefined && (typeof v !== 'number' || v <= 0)) throw badRequest(`${k} must be a positive number`);
  }
  for (const [k, v] of changes) s.configuration.set(k, v);
  return { status: 200 };
}

function pingOIDC(ctx: HandlerContext): Reply {
  const b = bodyObject(ctx, 'OIDC endpoint');
  const url = str(b.url) ?? '';
  if (url === '') throw badRequest('url is required');
  const r = ctx.state.oidcPing(url);
  if (!r.ok) throw badRequest(r.message ?? `the OIDC endpoint ${url} could not be verified`);
  return { status: 200 };
}

// ---------------------------------------------------------------- users

const USER_FIELDS: Record<string, Field<UserRecord>> = {
  user_id: (u) => u.user_id,
  username: (u) => u.username,
  email: (u) => u.email,
  creation_time: (u) => u.creation_time,
};

function listUsers(ctx: HandlerContext): Reply {
  let items = filterByQ(ctx, [...ctx.state.users.values()], USER_FIELDS);
  items = sortBy(ctx, items, USER_FIELDS, 'user_id');
  const { page, headers } = paginate(ctx, items);
  return { status: 200, body: page.map(userView), headers };
}

function getCurrentUserInfo(ctx: HandlerContext): Reply {
  return { status: 200, body: userView(requireUser(ctx)) };
}

// ---------------------------------------------------------------- the table

export const ROUTES: readonly RouteDef[] = [
  { method: 'GET', template: '/health', operationId: 'getHealth', auth: 'none', handler: getHealth },
  { method: 'GET', template: '/ping', operationId: 'getPing', auth: 'none', handler: getPing },
  { method: 'GET', template: '/systeminfo', operationId: 'getSystemInfo', auth: 'optional', handler: getSystemInfo },
  { method: 'GET', template: '/registries', operationId: 'listRegistries', auth: 'admin', handler: listRegistries },
  { method: 'POST', template: '/registries', operationId: 'createRegistry', auth: 'admin', handler: createRegistry },
  { method: 'POST', template: '/registries/ping', operationId: 'pingRegistry', auth: 'admin', handler: pingRegistry },
  { method: 'GET', template: '/registries/{id}', operationId: 'getRegistry', auth: 'admin', handler: getRegistry },
  { method: 'PUT', template: '/registries/{id}', operationId: 'updateRegistry', auth: 'admin', handler: updateRegistry },
  { method: 'DELETE', template: '/registries/{id}', operationId: 'deleteRegistry', auth: 'admin', handler: deleteRegistry },
  { method: 'GET', template: '/replication/adapters', operationId: 'listRegistryProviderTypes', auth: 'admin', handler: listRegistryProviderTypes },
  { method: 'GET', template: '/projects', operationId: 'listProjects', auth: 'optional', handler: listProjects },
  { method: 'HEAD', template: '/projects', operationId: 'headProject', auth: 'optional', handler: headProject },
  { method: 'POST', template: '/projects', operationId: 'createProject', auth: 'user', handler: createProject },
  { method: 'GET', template: '/projects/{project_name_or_id}', operationId: 'getProject', auth: 'optional', handler: getProject },
  { method: 'PUT', template: '/projects/{project_name_or_id}', operationId: 'updateProject', auth: 'user', handler: updateProject },
  { method: 'DELETE', template: '/projects/{project_name_or_id}', operationId: 'deleteProject', auth: 'user', handler: deleteProject },
  { method: 'GET', template: '/projects/{project_name_or_id}/_deletable', operationId: 'getProjectDeletable', auth: 'user', handler: getProjectDeletable },
  { method: 'GET', template: '/quotas', operationId: 'listQuotas', auth: 'admin', handler: listQuotas },
  { method: 'GET', template: '/quotas/{id}', operationId: 'getQuota', auth: 'admin', handler: getQuota },
  { method: 'PUT', template: '/quotas/{id}', operationId: 'updateQuota', auth: 'admin', handler: updateQuota },
  { method: 'GET', template: '/configurations', operationId: 'getConfigurations', auth: 'admin', handler: getConfigurations },
  { method: 'PUT', template: '/configurations', operationId: 'updateConfigurations', auth: 'admin', handler: updateConfigurations },
  { method: 'POST', template: '/system/oidc/ping', operationId: 'pingOIDC', auth: 'admin', handler: pingOIDC },
  { method: 'GET', template: '/users', operationId: 'listUsers', auth: 'admin', handler: listUsers },
  { method: 'GET', template: '/users/current', operationId: 'getCurrentUserInfo', auth: 'user', handler: getCurrentUserInfo },
];
