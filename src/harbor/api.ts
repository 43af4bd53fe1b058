// What the harbor_* modules share: the endpoint argument, the facts they read
// from Harbor's API (controller queries: HTTPS from the controller, beside the
// host's one SSH round trip), what an empty Harbor looks like, the rule for a
// Harbor that is not reachable yet, and keyed hashes of write-only secrets.
//
// Fact keys name the resource ("harbor_project:proxy.docker.io"), so a saved
// plan refused for drift says which Harbor resource changed since.

import { createHmac } from 'node:crypto';
import { unitInfo, unitKey, type UnitFact } from '../facts/queries.js';
import { REMEMBERED_KEY, rememberedQuery } from '../apply/record.js';
import { Secret, isSecret } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import type { AnyFactQuery, ControllerFactQuery, ControllerFetchContext, ModuleContext, SimState, SourcePos } from '../types.js';
import { HarborError, harborClient, type HarborClient, type HarborEndpoint } from './client.js';

// ---------------------------------------------------------------- the endpoint argument

/** The `api` argument every harbor_* module takes (schemas/harbor-api.json). */
export interface ApiArgs {
  /** https://harbor.example.com */
  url: string;
  username?: string;
  /** The admin password (the harbor role's harbor.admin_password). */
  password: string | Secret;
  /** A CA certificate (PEM) in the spec repository, trusted besides Node's roots; "" for none. */
  ca_cert?: string;
  /** Seconds per request. */
  timeout?: number;
  retries?: number;
  retry_delay_ms?: number;
  /** The systemd unit that runs Harbor on this host ("" when Harbor runs elsewhere): see reachability(). */
  service?: string;
  /** The version this spec installs, assumed while Harbor is not running yet. */
  version?: string;
}

/** The admin password as a Secret (for keyed hashes in a pure plan step: no file is read). */
export function passwordOf(api: ApiArgs): Secret {
  return isSecret(api.password) ? api.password : new Secret(api.password);
}

export function endpointOf(api: ApiArgs, ctx: ModuleContext): HarborEndpoint {
  const ca = api.ca_cert ? ctx.readSourceFile(api.ca_cert).toString('utf8') : undefined;
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw new BerthError(`${api.ca_cert} is not a PEM certificate`, { pos: ctx.locateArg?.(['api', 'ca_cert']) ?? ctx.pos, hint: 'the CA that signed the Harbor certificate, PEM encoded' });
  }
  return {
    url: api.url.replace(/\/+$/, ''),
    username: api.username ?? 'admin',
    password: passwordOf(api),
    ...(ca !== undefined ? { ca, caFile: api.ca_cert } : {}),
    timeoutMs: (api.timeout ?? 20) * 1000,
    retries: api.retries ?? 4,
    retryDelayMs: api.retry_delay_ms ?? 300,
  };
}

export function clientOf(api: ApiArgs, ctx: ModuleContext): HarborClient {
  return harborClient(endpointOf(api, ctx));
}

// ---------------------------------------------------------------- fact shapes

/** Every harbor fact is this when Harbor gave no answer at all (refused, unresolvable, timed out connecting). */
export interface Unreachable {
  unreachable: string;
}

export function isUnreachable(v: unknown): v is Unreachable {
  return v !== null && typeof v === 'object' && typeof (v as Unreachable).unreachable === 'string';
}

export interface VersionFact {
  version: string;
}

export type RegistryFact =
  | { exists: false }
  | {
      exists: true;
      id: number;
      created: string;
      type: string;
      url: string;
      insecure: boolean;
      description: string;
      credential: { type: string; access_key: string; secret: boolean };
    };

export type ProjectFact =
  | { exists: false }
  | {
      exists: true;
      id: number;
      public: boolean;
      /** The registry a proxy-cache project is bound to (by name; "#<id>" if it has none). */
      proxy: string | null;
      /** Storage quota in bytes (-1 unlimited); null when Harbor keeps none. */
      quota: number | null;
    };

export interface SettingFact {
  value: string | number | boolean;
  editable: boolean;
}

/** Who this Harbor is: its admin account's creation time (a reinstalled Harbor has a new one). */
export interface InstanceFact {
  id: string;
}

export const VERSION_KEY = 'harbor:version';
export const INSTANCE_KEY = 'harbor:instance';
export const registryKey = (name: string) => `harbor_registry:${name}`;
export const projectKey = (name: string) => `harbor_project:${name}`;
export const settingKey = (name: string) => `harbor_setting:${name}`;
export const REGISTRY_LIST_KEY = 'harbor:registries';
export const PROJECT_LIST_KEY = 'harbor:projects';

// ---------------------------------------------------------------- what an empty Harbor has

/** Settings of a fresh Harbor v2 install, for the keys berth manages. */
export const FRESH_SETTINGS: Readonly<Record<string, string | number | boolean>> = {
  auth_mode: 'db_auth',
  oidc_name: '',
  oidc_endpoint: '',
  oidc_client_id: '',
  oidc_client_secret: '',
  oidc_groups_claim: '',
  oidc_admin_group: '',
  oidc_scope: '',
  oidc_user_claim: '',
  oidc_verify_cert: true,
  oidc_auto_onboard: false,
  self_registration: false,
  project_creation_restriction: 'everyone',
};

/** A fresh Harbor has one project: the public `library`. */
const FRESH_PROJECTS: Record<string, ProjectFact> = { library: { exists: true, id: 1, public: true, proxy: null, quota: -1 } };

// ---------------------------------------------------------------- controller queries

interface Raw {
  registries: { id: number; name: string; url: string; type: string; insecure?: boolean; description?: string; creation_time?: string; credential?: { type?: string; access_key?: string; access_secret?: string } }[];
  projects: { project_id: number; name: string; registry_id?: number; metadata?: { public?: string } }[];
  quotas: { id: number; ref?: { id?: number }; hard?: { storage?: number } }[];
  configurations: Record<string, { value: string | number | boolean; editable: boolean }>;
}

function query<T>(api: ApiArgs, ctx: ModuleContext, key: string, read: (c: HarborClient, f: ControllerFetchContext) => Promise<T>): ControllerFactQuery<T | Unreachable> {
  const url = api.url.replace(/\/+$/, '');
  return {
    key,
    source: url,
    async fetch(f) {
      try {
        return await read(clientOf(api, ctx), f);
      } catch (e) {
        if (e instanceof HarborError && e.unreachable) return { unreachable: e.code ?? 'no answer' };
        if (e instanceof BerthError) {
          const what = key.replace(':', ' ');
          throw new BerthError(`${what}: ${e.message}`, { host: ctx.host, hint: e.hint, cause: e });
        }
        throw e;
      }
    },
  };
}

const registries = (c: HarborClient, f: ControllerFetchContext) => f.memo('registries', () => c.listAll<Raw['registries'][number]>('/registries', {}, f.stats));
const projects = (c: HarborClient, f: ControllerFetchContext) => f.memo('projects', () => c.listAll<Raw['projects'][number]>('/projects', {}, f.stats));
const quotas = (c: HarborClient, f: ControllerFetchContext) => f.memo('quotas', () => c.listAll<Raw['quotas'][number]>('/quotas', { reference: 'project' }, f.stats));
const configurations = (c: HarborClient, f: ControllerFetchContext) =>
  f.memo('configurations', async () => (await c.get<Raw['configurations']>('/configurations', { stats: f.stats })).body ?? {});

export function versionQuery(api: ApiArgs, ctx: ModuleContext) {
  return query<VersionFact>(api, ctx, VERSION_KEY, async (c, f) => {
    const info = await f.memo('systeminfo', async () => (await c.get<{ harbor_version?: string }>('/systeminfo', { stats: f.stats })).body);
    // "v2.12.4-abcdef12": the release, without the build
    return { version: /^v?\d+\.\d+\.\d+/.exec(info?.harbor_version ?? '')?.[0] ?? String(info?.harbor_version ?? 'unknown') };
  });
}

export function instanceQuery(api: ApiArgs, ctx: ModuleContext) {
  return query<InstanceFact>(api, ctx, INSTANCE_KEY, async (c, f) => {
    const me = await f.memo('me', async () => (await c.get<{ user_id?: number; creation_time?: string }>('/users/current', { stats: f.stats })).body);
    return { id: `${me?.user_id ?? '?'}@${me?.creation_time ?? '?'}` };
  });
}

function registryFactOf(r: Raw['registries'][number] | undefined): RegistryFact {
  if (!r) return { exists: false };
  return {
    exists: true,
    id: r.id,
    created: r.creation_time ?? '',
    type: r.type,
    url: r.url,
    insecure: r.insecure === true,
    description: r.description ?? '',
    credential: { type: r.credential?.type ?? '', access_key: r.credential?.access_key ?? '', secret: !!r.credential?.access_secret },
  };
}

export function registryQuery(api: ApiArgs, ctx: ModuleContext, name: string) {
  // the whole list, filtered exactly (GET /registries?name= is fuzzy), read once for every registry fact
  return query<RegistryFact>(api, ctx, registryKey(name), async (c, f) => registryFactOf((await registries(c, f)).find((r) => r.name === name)));
}

export function projectQuery(api: ApiArgs, ctx: ModuleContext, name: string) {
  return query<ProjectFact>(api, ctx, projectKey(name), async (c, f) => {
    const [ps, regs, qs] = await Promise.all([projects(c, f), registries(c, f), quotas(c, f)]);
    const p = ps.find((x) => x.name === name);
    if (!p) return { exists: false };
    const regId = p.registry_id ?? 0;
    const quota = qs.find((q) => q.ref?.id === p.project_id)?.hard?.storage;
    return {
      exists: true,
      id: p.project_id,
      public: p.metadata?.public === 'true',
      proxy: regId > 0 ? (regs.find((r) => r.id === regId)?.name ?? `#${regId}`) : null,
      quota: typeof quota === 'number' ? quota : null,
    };
  });
}

export function settingQuery(api: ApiArgs, ctx: ModuleContext, name: string) {
  return query<SettingFact>(api, ctx, settingKey(name), async (c, f) => {
    const all = await configurations(c, f);
    const s = all[name];
    // write-only settings (oidc_client_secret) never come back: their value is unknown
    return s ? { value: s.value, editable: s.editable } : { value: '', editable: true };
  });
}

export function listQuery(api: ApiArgs, ctx: ModuleContext, kind: 'project' | 'registry') {
  return query<string[]>(api, ctx, kind === 'project' ? PROJECT_LIST_KEY : REGISTRY_LIST_KEY, async (c, f) =>
    (kind === 'project' ? await projects(c, f) : await registries(c, f)).map((x) => x.name).sort(),
  );
}

/** The facts every harbor_* module plans on, besides its own. */
export function baseFacts(api: ApiArgs, ctx: ModuleContext): AnyFactQuery[] {
  const out: AnyFactQuery[] = [versionQuery(api, ctx), rememberedQuery()];
  if (api.service) out.push(unitInfo(unitName(api.service)));
  return out;
}

const unitName = (n: string) => (/\.[a-z]+$/.test(n) ? n : `${n}.service`);

// ---------------------------------------------------------------- reachability

export interface ApiView {
  /** True when Harbor was not reachable and this plan starts it: every fact is an empty Harbor's. */
  fresh: boolean;
  version: string;
}

/**
 * Harbor answered: plan on what it said. Harbor gave no answer at all: that
 * is expected only on a VM this very plan brings Harbor up on (a first
 * install or a disaster rebuild: the service was not running, and an earlier
 * change of this plan starts it); then Harbor will be empty when the API tasks
 * run (after the health wait), and everything is planned as created.
 * Otherwise it is an error: nothing can be planned exactly.
 */
export function reachability(api: ApiArgs, state: SimState, ctx: ModuleContext): ApiView {
  const v = state.get<VersionFact | Unreachable>(VERSION_KEY);
  if (v && !isUnreachable(v)) return { fresh: false, version: v.version };
  const why = v ? v.unreachable : 'not asked';
  const url = api.url.replace(/\/+$/, '');
  if (api.service) {
    const unit = unitKey(unitName(api.service));
    const before = state.gathered<UnitFact>(unit);
    const after = state.get<UnitFact>(unit);
    if (before?.active !== 'active' && after?.active === 'active') return { fresh: true, version: api.version ?? 'unknown' };
    throw new BerthError(`Harbor's API at ${url} does not answer (${why}), and ${unitName(api.service)} is ${before?.active === 'active' ? 'running' : 'not started by this plan'}`, {
      pos: ctx.pos,
      hint:
        before?.active === 'active'
          ? `Harbor should be up: check it on ${ctx.host} (systemctl status ${unitName(api.service)}), and that the controller reaches ${url}`
          : `the API is planned as an empty Harbor only when the same plan starts ${unitName(api.service)}`,
    });
  }
  throw new BerthError(`Harbor's API at ${url} does not answer (${why})`, { pos: ctx.pos, hint: 'check harbor_api.url and that the controller reaches it' });
}

/** A fact, or what an empty Harbor has, or what earlier planned changes make it. */
export function harborFact<T>(state: SimState, key: string, view: ApiView, fresh: T): T {
  const v = state.get<T | Unreachable>(key);
  if (v === undefined || isUnreachable(v)) {
    if (!view.fresh) throw new BerthError(`internal: fact ${key} was not gathered`);
    return fresh;
  }
  return v;
}

export function freshProject(name: string): ProjectFact {
  return FRESH_PROJECTS[name] ?? { exists: false };
}

export function freshList(kind: 'project' | 'registry'): string[] {
  return kind === 'project' ? Object.keys(FRESH_PROJECTS) : [];
}

// ---------------------------------------------------------------- versions

/** "v2.14.0" → [2, 14, 0]; undefined when it does not parse. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function versionAtLeast(v: string, want: string): boolean {
  const a = parseVersion(v);
  const b = parseVersion(want)!;
  if (!a) return false;
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return true;
}

/**
 * Registry types a proxy-cache project may be bound to in a Harbor version
 * (PERMITTED_REGISTRY_TYPES_FOR_PROXY_CACHE): quay went away in v2.14
 * (goharbor/harbor-helm#2262: "unsupported registry type quay").
 */
export function proxyCacheTypes(version: string): string[] {
  const types = ['docker-hub', 'harbor', 'azure-acr', 'aws-ecr', 'google-gcr', 'quay', 'docker-registry', 'github-ghcr', 'jfrog-artifactory'];
  return versionAtLeast(version, 'v2.14.0') ? types.filter((t) => t !== 'quay') : types;
}

// ---------------------------------------------------------------- write-only secrets

/**
 * A keyed hash of a write-only secret as sent to one Harbor resource. The key
 * is derived from the admin password (a secret the spec already holds), and
 * the message binds the Harbor instance and resource (a recreated registry or
 * a reinstalled Harbor gets the secret again): the state record can keep it
 * without revealing the secret, and the next plan compares it to tell
 * whether the spec's secret changed.
 */
export function secretTag(password: Secret, scope: string, value: string): string {
  const key = createHmac('sha256', password.reveal()).update('berth/harbor-secret-tag/v1').digest();
  return `hmac-sha256:${createHmac('sha256', key).update(scope).update('\0').update(value).digest('hex')}`;
}

export function remembered(state: SimState): Record<string, string> {
  return state.get<Record<string, string>>(REMEMBERED_KEY) ?? {};
}

/** The position of an argument's value (its group_vars line when it came from one), for plan-time errors. */
export function argPos(ctx: ModuleContext, path: (string | number)[]): SourcePos {
  return ctx.locateArg?.(path) ?? ctx.pos;
}

/** Apply-time errors name the resource first. */
export function resourceError(resource: string, e: unknown, host: string): BerthError {
  if (e instanceof BerthError) return new BerthError(`${resource}: ${e.message}`, { host, hint: e.hint, cause: e });
  return new BerthError(`${resource}: ${(e as Error)?.message ?? String(e)}`, { host, cause: e });
}
