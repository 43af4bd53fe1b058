import { Secret, isSecret, reveal } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import type { AttrChange, Module, ModuleContext, PlannedChange } from '../types.js';
import {
  argPos,
  baseFacts,
  clientOf,
  endpointOf,
  passwordOf,
  harborFact,
  reachability,
  registryKey,
  registryQuery,
  remembered,
  resourceError,
  secretTag,
  type ApiArgs,
  type RegistryFact,
} from '../harbor/api.js';
import { findByName, HarborError, type HarborClient } from '../harbor/client.js';

export interface RegistryArgs {
  api: ApiArgs;
  name: string;
  /** Harbor's adapter: docker-hub, docker-registry, quay, google-gcr, ... */
  type: string;
  url: string;
  insecure?: boolean;
  description?: string;
  credential?: { type?: 'basic' | 'oauth'; access_key: string; access_secret: string | Secret } | null;
  state?: 'present' | 'absent';
}

interface Desired {
  type: string;
  url: string;
  insecure: boolean;
  description: string;
  credential?: { type: string; access_key: string; access_secret: Secret };
}

type Payload =
  | { op: 'create'; api: ApiArgs; name: string; want: Desired }
  | { op: 'update'; api: ApiArgs; name: string; want: Desired; send: { url?: string; insecure?: boolean; description?: string; credential?: boolean; clear?: boolean } }
  | { op: 'delete'; api: ApiArgs; name: string };

/** Harbor's own normalisation of a registry URL (lib.ValidateHTTPURL): no trailing slash, http:// by default, host in lower case. */
export function normalizeRegistryUrl(raw: string): string | undefined {
  let s = raw.trim().replace(/\/+$/, '');
  if (!s.includes('://')) s = `http://${s}`;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  return `${u.protocol}//${u.host}${path}`;
}

const secretKey = (name: string) => `harbor_registry:${name}:access_secret`;
/** A registry's secret is bound to that registry record (a recreated one gets it again). */
const secretScope = (id: number, created: string) => `registry/${id}/${created}`;

function desired(a: RegistryArgs, ctx: ModuleContext): Desired {
  const url = normalizeRegistryUrl(a.url);
  if (!url) throw new BerthError(`url ${JSON.stringify(a.url)} is not an http(s) URL`, { pos: argPos(ctx, ['url']) });
  const want: Desired = { type: a.type, url, insecure: a.insecure ?? false, description: a.description ?? '' };
  if (a.credential) {
    const s = a.credential.access_secret;
    want.credential = { type: a.credential.type ?? 'basic', access_key: a.credential.access_key, access_secret: isSecret(s) ? s : new Secret(s) };
  }
  return want;
}

const SENS = '(sensitive)';

/**
 * A Harbor registry endpoint (what a proxy-cache project pulls from). Its
 * secret is write-only in Harbor (GET shows "*****"): the host's state record
 * keeps a keyed hash of the secret berth last sent, and the plan sends it
 * again only when the spec's secret differs from that (or was never sent).
 */
export const harborRegistryModule: Module<RegistryArgs> = {
  name: 'harbor_registry',
  schema: 'harbor_registry',
  check(a, ctx) {
    endpointOf(a.api, ctx);
    if (a.state !== 'absent') desired(a, ctx);
  },
  facts: (a, ctx) => [...baseFacts(a.api, ctx), registryQuery(a.api, ctx, a.name)],
  plan(a, state, ctx): PlannedChange[] {
    const view = reachability(a.api, state, ctx);
    const key = registryKey(a.name);
    const cur = harborFact<RegistryFact>(state, key, view, { exists: false });
    const resource = `harbor registry ${a.name}`;
    if (a.state === 'absent') {
      if (!cur.exists) return [];
      state.set(key, { exists: false });
      return [{ resource, action: 'delete', attrs: [{ name: 'type', before: cur.type }, { name: 'url', before: cur.url }], payload: { op: 'delete', api: a.api, name: a.name } satisfies Payload }];
    }
    const want = desired(a, ctx);
    const after = (c: Extract<RegistryFact, { exists: true }> | undefined): RegistryFact => ({
      exists: true,
      id: c?.id ?? -1,
      created: c?.created ?? '',
      type: want.type,
      url: want.url,
      insecure: want.insecure,
      description: want.description,
      credential: want.credential ? { type: want.credential.type, access_key: want.credential.access_key, secret: true } : { type: c?.credential.type ?? '', access_key: '', secret: false },
    });
    if (!cur.exists) {
      const attrs: AttrChange[] = [
        { name: 'type', after: want.type },
        { name: 'url', after: want.url },
        ...(want.insecure ? [{ name: 'insecure', after: true }] : []),
        ...(want.description ? [{ name: 'description', after: want.description }] : []),
      ];
      if (want.credential) {
        attrs.push({ name: 'credential.type', after: want.credential.type }, { name: 'credential.access_key', after: want.credential.access_key }, { name: 'credential.access_secret', after: SENS });
      }
      state.set(key, after(undefined));
      return [{ resource, action: 'create', attrs, ...(want.credential ? { sensitive: true } : {}), payload: { op: 'create', api: a.api, name: a.name, want } satisfies Payload }];
    }
    if (cur.type !== want.type) {
      throw new BerthError(`registry ${a.name} is of type ${cur.type} in Harbor, the spec says ${want.type}: Harbor cannot change a registry's type`, {
        pos: argPos(ctx, ['type']),
        hint: 'give the new endpoint another name (and point its projects at it), or delete this one in Harbor first',
      });
    }
    const attrs: AttrChange[] = [];
    const send: Extract<Payload, { op: 'update' }>['send'] = {};
    if (cur.url !== want.url) {
      attrs.push({ name: 'url', before: cur.url, after: want.url });
      send.url = want.url;
    }
    if (cur.insecure !== want.insecure) {
      attrs.push({ name: 'insecure', before: cur.insecure, after: want.insecure });
      send.insecure = want.insecure;
    }
    if (cur.description !== want.description) {
      attrs.push({ name: 'description', before: cur.description, after: want.description });
      send.description = want.description;
    }
    let sensitive = false;
    if (want.credential) {
      const c = want.credential;
      const tag = secretTag(passwordOf(a.api), secretScope(cur.id, cur.created), c.access_secret.reveal());
      const stale = !cur.credential.secret || remembered(state)[secretKey(a.name)] !== tag;
      if (cur.credential.type !== c.type) attrs.push({ name: 'credential.type', before: cur.credential.type || undefined, after: c.type });
      if (cur.credential.access_key !== c.access_key) attrs.push({ name: 'credential.access_key', before: cur.credential.access_key || undefined, after: c.access_key });
      if (stale) {
        attrs.push({ name: 'credential.access_secret', ...(cur.credential.secret ? { before: SENS } : {}), after: SENS });
        sensitive = true;
      }
      if (stale || cur.credential.type !== c.type || cur.credential.access_key !== c.access_key) send.credential = true;
    } else if (cur.credential.access_key || cur.credential.secret) {
      // no credential in the spec: anonymous access, as Harbor's "no credential"
      attrs.push({ name: 'credential.access_key', before: cur.credential.access_key || undefined, after: '' });
      if (cur.credential.secret) attrs.push({ name: 'credential.access_secret', before: SENS, after: undefined });
      send.clear = true;
    }
    if (!attrs.length) return [];
    state.set(key, after(cur));
    return [{ resource, action: 'update', attrs, ...(sensitive ? { sensitive } : {}), payload: { op: 'update', api: a.api, name: a.name, want, send } satisfies Payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const client = clientOf(p.api, ctx);
    const password = passwordOf(p.api);
    try {
      if (p.op === 'delete') {
        const r = await findByName<{ id: number; name: string }>(client, '/registries', p.name);
        if (!r) return; // gone already: what the plan wanted
        const res = await client.request('DELETE', `/registries/${r.id}`, { accept: [412] });
        if (res.status === 412) {
          throw new BerthError(`Harbor refuses to delete it while a proxy-cache project uses it (412)`, { hint: 'delete or prune the projects bound to it first' });
        }
        return { remember: { [secretKey(p.name)]: null } };
      }
      if (p.op === 'create') return await create(client, p, password);
      return await update(client, p, password);
    } catch (e) {
      throw resourceError(change.resource, explainUnhealthy(e, p), ctx.host);
    }
  },
};

type Registry = { id: number; name: string; creation_time?: string };

async function create(client: HarborClient, p: Extract<Payload, { op: 'create' }>, password: Secret) {
  const w = p.want;
  const body = {
    name: p.name,
    url: w.url,
    type: w.type,
    insecure: w.insecure,
    description: w.description,
    ...(w.credential ? { credential: { type: w.credential.type, access_key: w.credential.access_key, access_secret: w.credential.access_secret.reveal() } } : {}),
  };
  const res = await client.request('POST', '/registries', { body, accept: [409] });
  if (res.status === 409) {
    // an earlier try of this request made it (a 5xx lost its answer): bring that one to the spec
    if (res.attempts < 2) throw new BerthError('a registry of this name exists in Harbor already (it was created since the plan was made)', { hint: 'run berth plan again' });
    return update(client, { op: 'update', api: p.api, name: p.name, want: w, send: { url: w.url, insecure: w.insecure, description: w.description, credential: !!w.credential, clear: !w.credential } }, password);
  }
  const r = await lookup(client, p.name);
  return { remember: { [secretKey(p.name)]: w.credential ? secretTag(password, secretScope(r.id, r.creation_time ?? ''), w.credential.access_secret.reveal()) : null } };
}

async function update(client: HarborClient, p: Extract<Payload, { op: 'update' }>, password: Secret) {
  const r = await lookup(client, p.name);
  const s = p.send;
  // RegistryUpdate is flat (credential_type, access_key, access_secret); the masked "*****" is never sent back
  const body: Record<string, unknown> = {
    ...(s.url !== undefined ? { url: s.url } : {}),
    ...(s.insecure !== undefined ? { insecure: s.insecure } : {}),
    ...(s.description !== undefined ? { description: s.description } : {}),
    ...(s.credential && p.want.credential
      ? { credential_type: p.want.credential.type, access_key: p.want.credential.access_key, access_secret: reveal(p.want.credential.access_secret) }
      : {}),
    ...(s.clear ? { access_key: '', access_secret: '' } : {}),
  };
  await client.request('PUT', `/registries/${r.id}`, { body });
  if (s.credential && p.want.credential) return { remember: { [secretKey(p.name)]: secretTag(password, secretScope(r.id, r.creation_time ?? ''), p.want.credential.access_secret.reveal()) } };
  if (s.clear) return { remember: { [secretKey(p.name)]: null } };
  return {};
}

async function lookup(client: HarborClient, name: string): Promise<Registry> {
  const r = await findByName<Registry>(client, '/registries', name);
  if (!r) throw new BerthError('it is not in Harbor (deleted since the plan was made?)', { hint: 'run berth plan again' });
  return r;
}

/** Harbor pings the upstream when a registry is created or changed: say so. */
function explainUnhealthy(e: unknown, p: Payload): unknown {
  if (e instanceof HarborError && e.status === 400 && /unhealthy/i.test(e.harborMessage) && p.op !== 'delete') {
    return new BerthError(`Harbor could not reach ${p.want.url} (400: ${e.harborMessage})`, {
      hint: "Harbor pings a registry endpoint when it is created or changed: check the URL, the credential and the cache VM's outbound network (proxy settings)",
      cause: e,
    });
  }
  return e;
}
