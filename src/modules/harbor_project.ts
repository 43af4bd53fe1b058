import { BerthError } from '../util/errors.js';
import type { AttrChange, Module, ModuleContext, PlannedChange } from '../types.js';
import {
  argPos,
  baseFacts,
  clientOf,
  endpointOf,
  freshProject,
  harborFact,
  projectKey,
  projectQuery,
  proxyCacheTypes,
  reachability,
  registryKey,
  registryQuery,
  resourceError,
  type ApiArgs,
  type ProjectFact,
  type RegistryFact,
} from '../harbor/api.js';
import { findByName, type HarborClient } from '../harbor/client.js';

export interface ProjectArgs {
  api: ApiArgs;
  name: string;
  public?: boolean;
  /** A proxy-cache project: the name of the registry endpoint it pulls through. */
  proxy?: string | null;
  /** Storage quota: bytes, -1 (unlimited), or "500MiB" / "20GiB" / "1TiB". Left as it is when not given. */
  quota?: number | string | null;
  state?: 'present' | 'absent';
}

type Payload =
  | { op: 'create'; api: ApiArgs; name: string; public: boolean; proxy?: string; quota?: number }
  | { op: 'update'; api: ApiArgs; name: string; public?: boolean; quota?: number }
  | { op: 'delete'; api: ApiArgs; name: string };

export const PROJECT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** -1, a number of bytes, or "<n>KiB|MiB|GiB|TiB" → bytes; undefined when invalid. */
export function parseQuota(q: number | string): number | undefined {
  if (typeof q === 'number') return Number.isInteger(q) && (q === -1 || q > 0) ? q : undefined;
  const m = /^\s*(-1|\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?\s*$/.exec(q);
  if (!m) return undefined;
  if (m[1] === '-1') return m[2] ? undefined : -1;
  const n = Math.round(Number(m[1]) * UNITS[m[2] ?? 'B']!);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** 10737418240 → "10GiB (10737418240 bytes)", -1 → "-1 (unlimited)". */
export function showQuota(q: number | null | undefined): string | undefined {
  if (q === null || q === undefined) return undefined;
  if (q === -1) return '-1 (unlimited)';
  for (const u of ['TiB', 'GiB', 'MiB', 'KiB']) {
    const f = UNITS[u]!;
    if (q >= f && q % f === 0) return `${q / f}${u} (${q} bytes)`;
  }
  return `${q} bytes`;
}

function quotaOf(a: ProjectArgs, ctx: ModuleContext): number | undefined {
  if (a.quota === undefined || a.quota === null) return undefined;
  const q = parseQuota(a.quota);
  if (q === undefined) {
    throw new BerthError(`quota ${JSON.stringify(a.quota)} is not a storage size`, { pos: argPos(ctx, ['quota']), hint: '-1 (unlimited), a number of bytes, or e.g. "500MiB", "20GiB", "1TiB"' });
  }
  return q;
}

/**
 * A Harbor project: public or private, optionally a proxy-cache project bound
 * to a registry endpoint by name, with a storage quota (changed through
 * /quotas: PUT /projects ignores storage_limit). A proxy-cache project cannot
 * be re-bound (PUT ignores registry_id either): that is a plan-time error.
 */
export const harborProjectModule: Module<ProjectArgs> = {
  name: 'harbor_project',
  schema: 'harbor_project',
  check(a, ctx) {
    endpointOf(a.api, ctx);
    if (!PROJECT_NAME.test(a.name) || a.name.length > 255) {
      throw new BerthError(`invalid project name ${JSON.stringify(a.name)}`, { pos: argPos(ctx, ['name']), hint: 'lower-case letters and digits, separated by single ".", "_" or "-" (Harbor\'s rule)' });
    }
    quotaOf(a, ctx);
  },
  facts: (a, ctx) => [...baseFacts(a.api, ctx), projectQuery(a.api, ctx, a.name), ...(a.proxy ? [registryQuery(a.api, ctx, a.proxy)] : [])],
  plan(a, state, ctx): PlannedChange[] {
    const view = reachability(a.api, state, ctx);
    const key = projectKey(a.name);
    const cur = harborFact<ProjectFact>(state, key, view, freshProject(a.name));
    const resource = `harbor project ${a.name}`;
    if (a.state === 'absent') {
      if (!cur.exists) return [];
      state.set(key, { exists: false });
      return [{ resource, action: 'delete', attrs: projectAttrsBefore(cur), payload: { op: 'delete', api: a.api, name: a.name } satisfies Payload }];
    }
    const pub = a.public ?? false;
    const quota = quotaOf(a, ctx);
    const proxy = a.proxy ?? null;
    if (proxy !== null) {
      const reg = harborFact<RegistryFact>(state, registryKey(proxy), view, { exists: false });
      if (!reg.exists) {
        throw new BerthError(`proxy: registry ${JSON.stringify(proxy)} does not exist in Harbor and no earlier task creates it`, {
          pos: argPos(ctx, ['proxy']),
          hint: 'define it under registries (the harbor_api role creates those first)',
        });
      }
      const allowed = proxyCacheTypes(view.version);
      if (!allowed.includes(reg.type)) {
        throw new BerthError(`proxy: registry ${JSON.stringify(proxy)} is of type ${reg.type}, which Harbor ${view.version} does not accept behind a proxy-cache project`, {
          pos: argPos(ctx, ['proxy']),
          hint: `types Harbor ${view.version} accepts: ${allowed.join(', ')}${reg.type === 'quay' ? ' (for quay.io, type docker-registry works)' : ''}`,
        });
      }
    }
    if (!cur.exists) {
      const attrs: AttrChange[] = [{ name: 'public', after: pub }];
      if (proxy !== null) attrs.push({ name: 'proxy', after: proxy });
      if (quota !== undefined) attrs.push({ name: 'quota', after: showQuota(quota) });
      state.set(key, { exists: true, id: -1, public: pub, proxy, quota: quota ?? -1 } satisfies ProjectFact);
      return [{ resource, action: 'create', attrs, payload: { op: 'create', api: a.api, name: a.name, public: pub, ...(proxy !== null ? { proxy } : {}), ...(quota !== undefined ? { quota } : {}) } satisfies Payload }];
    }
    if (cur.proxy !== proxy) {
      const is = cur.proxy === null ? 'is not a proxy-cache project' : `is a proxy-cache project of registry ${JSON.stringify(cur.proxy)}`;
      throw new BerthError(`project ${a.name} ${is} in Harbor, the spec says ${proxy === null ? 'none' : `proxy ${JSON.stringify(proxy)}`}: Harbor cannot re-bind a project (PUT /projects ignores registry_id)`, {
        pos: argPos(ctx, [proxy === null ? 'name' : 'proxy']),
        hint: 'use a new project name, or delete the project in Harbor (prune) and let berth create it again',
      });
    }
    const attrs: AttrChange[] = [];
    const payload: Extract<Payload, { op: 'update' }> = { op: 'update', api: a.api, name: a.name };
    if (cur.public !== pub) {
      attrs.push({ name: 'public', before: cur.public, after: pub });
      payload.public = pub;
    }
    if (quota !== undefined && cur.quota !== quota) {
      if (cur.quota === null) ctx.warn?.(`harbor project ${a.name}: Harbor keeps no quota for it (per-project quotas are off), quota ${showQuota(quota)} is not applied`);
      else {
        attrs.push({ name: 'quota', before: showQuota(cur.quota), after: showQuota(quota) });
        payload.quota = quota;
      }
    }
    if (!attrs.length) return [];
    state.set(key, { ...cur, public: pub, quota: payload.quota ?? cur.quota });
    return [{ resource, action: 'update', attrs, payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const client = clientOf(p.api, ctx);
    try {
      if (p.op === 'delete') await remove(client, p.name);
      else if (p.op === 'create') await create(client, p);
      else await update(client, p);
    } catch (e) {
      throw resourceError(change.resource, e, ctx.host);
    }
  },
};

function projectAttrsBefore(cur: Extract<ProjectFact, { exists: true }>): AttrChange[] {
  return [{ name: 'public', before: cur.public }, ...(cur.proxy ? [{ name: 'proxy', before: cur.proxy }] : []), ...(cur.quota !== null ? [{ name: 'quota', before: showQuota(cur.quota) }] : [])];
}

const BY_NAME = { 'X-Is-Resource-Name': 'true' };
const path = (name: string) => `/projects/${encodeURIComponent(name)}`;

async function create(client: HarborClient, p: Extract<Payload, { op: 'create' }>): Promise<void> {
  let registryId: number | undefined;
  if (p.proxy !== undefined) {
    const r = await findByName<{ id: number; name: string }>(client, '/registries', p.proxy);
    if (!r) throw new BerthError(`registry ${p.proxy} is not in Harbor`, { hint: 'the registry task before this one should have created it; run berth plan again' });
    registryId = r.id;
  }
  const body = {
    project_name: p.name,
    // ProjectMetadata values are strings: "true" / "false"
    metadata: { public: String(p.public) },
    ...(registryId !== undefined ? { registry_id: registryId } : {}),
    ...(p.quota !== undefined ? { storage_limit: p.quota } : {}),
  };
  const res = await client.request('POST', '/projects', { body, accept: [409] });
  if (res.status === 409) {
    if (res.attempts < 2) throw new BerthError('a project of this name exists in Harbor already (it was created since the plan was made)', { hint: 'run berth plan again' });
    // an earlier try of this request made it (its answer was lost): bring it to the spec
    await update(client, { op: 'update', api: p.api, name: p.name, public: p.public, ...(p.quota !== undefined ? { quota: p.quota } : {}) });
  }
}

async function update(client: HarborClient, p: Extract<Payload, { op: 'update' }>): Promise<void> {
  if (p.public !== undefined) {
    // PUT /projects applies metadata (and the CVE allowlist) only
    await client.request('PUT', path(p.name), { headers: BY_NAME, body: { metadata: { public: String(p.public) } } });
  }
  if (p.quota !== undefined) {
    // ... so the quota goes through /quotas
    const proj = await client.get<{ project_id: number }>(path(p.name), { headers: BY_NAME });
    const quotas = await client.listAll<{ id: number }>('/quotas', { reference: 'project', reference_id: String(proj.body.project_id) });
    const q = quotas[0];
    if (!q) throw new BerthError('Harbor keeps no quota for this project (per-project quotas are off?)');
    await client.request('PUT', `/quotas/${q.id}`, { body: { hard: { storage: p.quota } } });
  }
}

async function remove(client: HarborClient, name: string): Promise<void> {
  const res = await client.request('DELETE', path(name), { headers: BY_NAME, accept: [404, 412] });
  if (res.status === 412) {
    const why = (res.body as { errors?: { message?: string }[] } | undefined)?.errors?.[0]?.message;
    throw new BerthError(`Harbor refuses to delete it while it holds repositories (412${why ? `: ${why}` : ''})`, {
      hint: 'delete its repositories in Harbor first, or keep the project: add it to harbor_api.keep (or to projects)',
    });
  }
}
