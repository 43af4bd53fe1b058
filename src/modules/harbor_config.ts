import { Secret, isSecret } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import type { AttrChange, Module, ModuleContext, PlannedChange, SourcePos } from '../types.js';
import {
  FRESH_SETTINGS,
  INSTANCE_KEY,
  argPos,
  baseFacts,
  clientOf,
  endpointOf,
  passwordOf,
  harborFact,
  instanceQuery,
  reachability,
  remembered,
  resourceError,
  secretTag,
  settingKey,
  settingQuery,
  type ApiArgs,
  type InstanceFact,
  type SettingFact,
} from '../harbor/api.js';
import type { HarborClient } from '../harbor/client.js';

type Value = string | number | boolean;

export interface ConfigArgs {
  api: ApiArgs;
  /** Names the change: "harbor configuration <name>". */
  name?: string;
  /** Harbor configuration keys (PUT /configurations); oidc_scope may be a list. */
  settings: Record<string, Value | string[] | Secret>;
}

/** Settings Harbor never returns (GET /configurations leaves them out): compared through a keyed hash. */
export const WRITE_ONLY = new Set(['oidc_client_secret']);
/** The order settings are shown and sent in (auth_mode last: Harbor checks the OIDC settings when it switches). */
const ORDER = Object.keys(FRESH_SETTINGS).filter((k) => k !== 'auth_mode').concat('auth_mode');

type Payload = { api: ApiArgs; values: Record<string, Value | Secret>; authMode?: { from: Value; to: Value } };

const secretKey = (k: string) => `harbor_setting:${k}`;
/** A setting's secret is bound to this Harbor (its admin account): a reinstalled Harbor gets it again. */
const secretScope = (instance: string) => `config/${instance}`;

function normalized(k: string, v: Value | string[] | Secret): Value | Secret {
  if (Array.isArray(v)) return v.join(',');
  if (k === 'oidc_scope' && typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean).join(',');
  if (k === 'oidc_endpoint' && typeof v === 'string') return v.replace(/\/+$/, '');
  return v;
}

const SENS = '(sensitive)';

/**
 * Where the settings were written: auth_mode's own line when it comes from a
 * variable, else the first setting that does (the role's `oidc:` block in
 * group_vars, which is what asks for OIDC), else the task.
 */
function specPos(ctx: ModuleContext, keys: string[]): SourcePos {
  for (const k of ['auth_mode', ...keys]) {
    const p = ctx.locateArg?.(['settings', k]);
    if (p && p.file !== ctx.pos.file) return p;
  }
  return argPos(ctx, ['settings', 'auth_mode']);
}

function authModeRule(from: Value, to: Value): string {
  return `auth_mode cannot change from ${String(from)} to ${String(to)}: Harbor changes the authentication mode only while no user but admin exists, and this Harbor has other users (it would answer 400 "the auth mode cannot be modified as new users have been inserted into database", goharbor/harbor#15419)`;
}

/**
 * Harbor's configuration keys: OIDC (auth_mode oidc_auth, oidc_* with the
 * client secret write-only) and system settings (self_registration,
 * project_creation_restriction). Only the keys the task names are managed;
 * one PUT /configurations carries every change. Changing auth_mode when
 * users other than admin exist is refused at plan time and again before the
 * call, with Harbor's rule explained.
 */
export const harborConfigModule: Module<ConfigArgs> = {
  name: 'harbor_config',
  schema: 'harbor_config',
  check(a, ctx) {
    endpointOf(a.api, ctx);
  },
  facts(a, ctx) {
    const keys = Object.keys(a.settings);
    return [
      ...baseFacts(a.api, ctx),
      ...keys.filter((k) => !WRITE_ONLY.has(k)).map((k) => settingQuery(a.api, ctx, k)),
      ...(keys.some((k) => WRITE_ONLY.has(k)) ? [instanceQuery(a.api, ctx)] : []),
    ];
  },
  plan(a, state, ctx): PlannedChange[] {
    const view = reachability(a.api, state, ctx);
    const resource = `harbor configuration ${a.name ?? 'settings'}`;
    const attrs: AttrChange[] = [];
    const values: Payload['values'] = {};
    let authMode: Payload['authMode'];
    let sensitive = false;
    const keys = ORDER.filter((k) => k in a.settings).concat(Object.keys(a.settings).filter((k) => !ORDER.includes(k)));
    for (const k of keys) {
      const want = normalized(k, a.settings[k]!);
      if (WRITE_ONLY.has(k)) {
        const secret = isSecret(want) ? want : new Secret(String(want));
        const instance = harborFact<InstanceFact>(state, INSTANCE_KEY, view, { id: 'fresh' });
        const tag = secretTag(passwordOf(a.api), secretScope(instance.id), secret.reveal());
        const known = remembered(state)[secretKey(k)];
        if (view.fresh || known !== tag) {
          attrs.push({ name: k, ...(known && !view.fresh ? { before: SENS } : {}), after: SENS });
          values[k] = secret;
          sensitive = true;
        }
        continue;
      }
      const cur = harborFact<SettingFact>(state, settingKey(k), view, { value: FRESH_SETTINGS[k] ?? '', editable: true });
      const w = want as Value;
      if (cur.value === w) continue;
      if (k === 'auth_mode') {
        if (!cur.editable) throw new BerthError(authModeRule(cur.value, w), { pos: specPos(ctx, keys), hint: 'delete the other users in Harbor first, or keep auth_mode as it is' });
        authMode = { from: cur.value, to: w };
      }
      attrs.push({ name: k, before: cur.value, after: w });
      values[k] = w;
      state.set(settingKey(k), { value: w, editable: cur.editable });
    }
    if (!attrs.length) return [];
    return [{ resource, action: 'update', attrs, ...(sensitive ? { sensitive } : {}), payload: { api: a.api, values, ...(authMode ? { authMode } : {}) } satisfies Payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const client = clientOf(p.api, ctx);
    try {
      if (p.authMode) await checkAuthMode(client, p.authMode);
      const body: Record<string, Value> = {};
      for (const [k, v] of Object.entries(p.values)) body[k] = isSecret(v) ? v.reveal() : v;
      await client.request('PUT', '/configurations', { body });
      const remember: Record<string, string> = {};
      const secrets = Object.entries(p.values).filter(([k]) => WRITE_ONLY.has(k));
      if (secrets.length) {
        const me = (await client.get<{ user_id?: number; creation_time?: string }>('/users/current')).body;
        const instance = `${me?.user_id ?? '?'}@${me?.creation_time ?? '?'}`;
        const password = passwordOf(p.api);
        for (const [k, v] of secrets) remember[secretKey(k)] = secretTag(password, secretScope(instance), isSecret(v) ? v.reveal() : String(v));
      }
      return { remember };
    } catch (e) {
      throw resourceError(change.resource, e, ctx.host);
    }
  },
};

/** The auth_mode rule, checked again right before the call: no PUT is sent that Harbor would refuse for it. */
async function checkAuthMode(client: HarborClient, mode: { from: Value; to: Value }): Promise<void> {
  const cfg = (await client.get<Record<string, { value: Value; editable: boolean }>>('/configurations')).body;
  const cur = cfg?.auth_mode;
  if (cur && cur.value !== mode.to && !cur.editable) {
    throw new BerthError(authModeRule(cur.value, mode.to), { hint: 'delete the other users in Harbor first, or keep auth_mode as it is' });
  }
}
