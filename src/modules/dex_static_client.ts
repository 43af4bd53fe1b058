// dex_static_client: Harbor's OIDC client in dex's Helm values, which live in
// another git repository (the cluster's helmfile values). The controller reads
// the file at the branch tip (a controller fact, fingerprinted: a saved plan
// is refused when the branch moved since), the plan shows the YAML diff with
// secrets masked, and apply commits exactly that edit on exactly that commit
// and pushes it, to the branch or to a review branch.

import { createHash } from 'node:crypto';
import { SENSITIVE, Secret, isSecret } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import { specRevision } from '../git/spec-repo.js';
import { ValuesRepo, repoLocation, type PathAt, type RepoLocation } from '../git/values-repo.js';
import { editStaticClient, maskSecretValues, type DexClient, type EditResult } from '../git/yaml-edit.js';
import { maskedDiff } from '../plan/diff.js';
import { BERTH_VERSION } from '../version.js';
import type { AttrChange, ControllerFactQuery, Module, ModuleApplyContext, ModuleContext, PlannedChange } from '../types.js';

export interface DexClientArgs {
  repo: string;
  branch?: string;
  path: string;
  /** Dotted path of the list of static clients in the values file. */
  key?: string;
  /** Push here (one commit on top of `branch`) instead of to `branch`; "" for none. */
  review_branch?: string;
  id: string;
  name: string;
  redirect_uris: string[];
  secret?: string | Secret;
  /** Write `secretEnv: <this>` (dex reads the secret from its environment) instead of the secret; "" for none. */
  secret_env?: string;
}

/** What the controller read of the values repository (a controller fact). */
export interface ValuesFact {
  /** The branch's tip; null when the branch does not exist. */
  commit: string | null;
  file: Exclude<PathAt, { kind: 'file' }> | { kind: 'file'; blob: string; mode: string };
  /** The review branch, when the task names one: its tip and the file's blob there. */
  review?: { commit: string | null; blob: string | null };
  // The texts themselves are not enumerable: fingerprints (JSON) name the blobs, which fix them.
  readonly text?: string;
  readonly reviewText?: string;
}

interface Where {
  loc: RepoLocation;
  branch: string;
  path: string;
  keyPath: string[];
  review?: string;
}

function whereOf(a: DexClientArgs, ctx: ModuleContext): Where {
  const review = a.review_branch ? a.review_branch : undefined;
  return {
    loc: repoLocation(a.repo, ctx.root),
    branch: a.branch ?? 'main',
    path: a.path.replace(/^\.\//, ''),
    keyPath: (a.key ?? 'config.staticClients').split('.'),
    ...(review ? { review } : {}),
  };
}

const factKey = (w: Where) => `dex_values:${w.loc.display} ${w.branch}:${w.path}${w.review ? ` (review branch ${w.review})` : ''}`;
const label = (w: Where, branch = w.branch) => ({ file: `${w.loc.display} ${branch}:${w.path}` });

function desired(a: DexClientArgs): DexClient {
  const env = a.secret_env ? a.secret_env : undefined;
  return {
    id: a.id,
    name: a.name,
    redirectURIs: [...a.redirect_uris],
    ...(env ? { secretEnv: env } : { secret: isSecret(a.secret) ? a.secret.reveal() : String(a.secret ?? '') }),
  };
}

function withText<T extends object>(o: T, texts: { text?: string; reviewText?: string }): T {
  for (const [k, v] of Object.entries(texts)) if (v !== undefined) Object.defineProperty(o, k, { value: v, enumerable: false });
  return o;
}

/** Reads the branch tip (and the review branch's), and the file at each. */
async function readValues(repo: ValuesRepo, w: Where, stats?: { requests: number }): Promise<ValuesFact> {
  const tips = await repo.tips(w.review ? [w.branch, w.review] : [w.branch], stats);
  const commit = tips.get(w.branch) ?? null;
  const at = commit ? await repo.read(commit, w.path) : ({ kind: 'absent' } as const);
  const fact: ValuesFact = { commit, file: at.kind === 'file' ? { kind: 'file', blob: at.blob, mode: at.mode } : at };
  let reviewText: string | undefined;
  if (w.review) {
    const rc = tips.get(w.review) ?? null;
    const rat = rc ? await repo.read(rc, w.path) : undefined;
    fact.review = { commit: rc, blob: rat?.kind === 'file' ? rat.blob : null };
    if (rat?.kind === 'file') reviewText = rat.text;
  }
  return withText(fact, { text: at.kind === 'file' ? at.text : undefined, reviewText });
}

interface Payload {
  where: Where;
  client: { id: string; name: string; redirectURIs: string[]; secret?: Secret; secretEnv?: string };
  action: 'create' | 'update';
  /** The commit the edit is made on, and the review branch's tip the push replaces (null: none yet). */
  base: string;
  reviewBase: string | null;
  mode: string;
  text: Secret;
  /** The client's source text before (null: absent) and after: a retry on a moved branch must find the same. */
  itemBefore: Secret | null;
  itemAfter: Secret;
}

const short = (sha: string) => sha.slice(0, 12);

function attrsOf(w: Where, f: ValuesFact, edit: Extract<EditResult, { changed: true }>, want: DexClient): AttrChange[] {
  const attrs: AttrChange[] = [
    { name: 'values', after: `${w.loc.display} ${w.branch}:${w.path} @ ${short(f.commit!)}` },
    { name: 'push', after: w.review ? `${w.review} (review branch${f.review?.commit ? ', replaced' : ''}; ${w.branch} stays as it is)` : w.branch },
  ];
  if (edit.fields.includes('secret')) {
    const had = edit.itemBefore !== undefined && /(^|[\s{,-])secret:/.test(edit.itemBefore);
    attrs.push(want.secret !== undefined ? { name: 'secret', ...(had ? { before: SENSITIVE } : {}), after: SENSITIVE } : { name: 'secret', before: SENSITIVE });
  }
  if (edit.fields.includes('secretEnv') && want.secretEnv !== undefined) attrs.push({ name: 'secretEnv', after: want.secretEnv });
  return attrs;
}

/**
 * A static client (id, name, redirectURIs, secret or secretEnv) in a dex
 * values file in another git repository: added, or brought up to date in
 * place, with every other byte of the file left as it was.
 */
export const dexStaticClientModule: Module<DexClientArgs> = {
  name: 'dex_static_client',
  schema: 'dex_static_client',
  check(a, ctx) {
    const w = whereOf(a, ctx);
    if (w.review && w.review === w.branch) {
      throw new BerthError(`review_branch is the branch itself (${w.branch})`, { pos: ctx.locateArg?.(['review_branch']) ?? ctx.pos, hint: 'name another branch, or leave review_branch empty to push to the branch' });
    }
    if (!a.secret_env && (a.secret === undefined || a.secret === '')) {
      throw new BerthError('the client needs a secret (or secret_env)', { pos: ctx.locateArg?.(['secret']) ?? ctx.pos, hint: 'oidc.client_secret, the same secret Harbor gets' });
    }
  },
  shared(a, ctx) {
    const w = whereOf(a, ctx);
    const want = desired(a);
    const show = `name "${want.name}", redirectURIs ${want.redirectURIs.join(' ')}${want.secretEnv !== undefined ? `, secretEnv ${want.secretEnv}` : ''}`;
    // the secret counts through a hash only; the review branch is part of what is wanted
    const wants = createHash('sha256').update(JSON.stringify([want, w.review ?? null])).digest('hex');
    return {
      id: `dex static client ${a.id} in ${w.loc.display} ${w.branch}:${w.path} (${w.keyPath.join('.')})`,
      wants,
      show,
      hint: 'one client serves one cache VM: give each its own oidc.client_id and client_secret in host_vars',
    };
  },
  facts(a, ctx): ControllerFactQuery<ValuesFact>[] {
    const w = whereOf(a, ctx);
    return [
      {
        key: factKey(w),
        source: w.loc.display,
        fetch: async (f) => readValues(await ValuesRepo.open(w.loc), w, f.stats),
      },
    ];
  },
  plan(a, state, ctx): PlannedChange[] {
    const w = whereOf(a, ctx);
    const f = state.get<ValuesFact>(factKey(w));
    if (!f) throw new BerthError(`internal: fact ${factKey(w)} was not gathered`);
    if (!f.commit) throw new BerthError(`branch ${w.branch} does not exist in ${w.loc.display}`, { pos: ctx.locateArg?.(['branch']) ?? ctx.pos, hint: 'oidc.dex_values.branch names the branch that holds dex\'s values' });
    if (f.file.kind === 'absent') throw new BerthError(`${w.path} does not exist on branch ${w.branch} of ${w.loc.display} (at ${short(f.commit)})`, { pos: ctx.locateArg?.(['path']) ?? ctx.pos, hint: 'oidc.dex_values.path is the values file\'s path in that repository' });
    if (f.file.kind === 'not-a-file') throw new BerthError(`${w.path} on branch ${w.branch} of ${w.loc.display} is a ${f.file.type}, not a file`, { pos: ctx.locateArg?.(['path']) ?? ctx.pos });
    const text = f.text!;
    const want = desired(a);
    const edit = editStaticClient(text, label(w), w.keyPath, want);
    if (!edit.changed) return [];
    if (w.review && f.reviewText === edit.text) {
      ctx.warn?.(`dex static client ${a.id}: the change waits for review on branch ${w.review} of ${w.loc.display} (not in ${w.branch} yet)`);
      return [];
    }
    const resource = `dex static client ${a.id}`;
    const secret = isSecret(a.secret) ? a.secret : a.secret ? new Secret(String(a.secret)) : undefined;
    const payload: Payload = {
      where: w,
      client: { id: want.id, name: want.name, redirectURIs: want.redirectURIs, ...(want.secretEnv !== undefined ? { secretEnv: want.secretEnv } : { secret }) },
      action: edit.action,
      base: f.commit,
      reviewBase: f.review?.commit ?? null,
      mode: f.file.mode,
      text: new Secret(edit.text, maskSecretValues(edit.text)),
      itemBefore: edit.itemBefore !== undefined ? new Secret(edit.itemBefore, maskSecretValues(edit.itemBefore)) : null,
      itemAfter: new Secret(edit.itemAfter, maskSecretValues(edit.itemAfter)),
    };
    return [
      {
        resource,
        action: edit.action,
        attrs: attrsOf(w, f, edit, want),
        diff: maskedDiff(w.path, text, edit.text, maskSecretValues(text), maskSecretValues(edit.text)),
        ...(want.secret !== undefined ? { sensitive: true } : {}),
        payload,
      },
    ];
  },
  async apply(change, ctx) {
    try {
      await pushEdit(change, ctx);
    } catch (e) {
      // apply-time errors name the host and the resource (as the harbor_* modules' do)
      if (e instanceof BerthError) {
        const msg = e.message.startsWith(change.resource) ? e.message : `${change.resource}: ${e.message}`;
        throw new BerthError(msg, { host: ctx.host, hint: e.hint, cause: e });
      }
      throw e;
    }
  },
};

/** Commits the planned edit on the planned commit and pushes it; once more on a moved branch (see retryEdit). */
async function pushEdit(change: PlannedChange, ctx: ModuleApplyContext): Promise<void> {
  const p = change.payload as Payload;
  const w = p.where;
  const repo = await ValuesRepo.open(w.loc);
  const message = await commitMessage(p, ctx);
  const target = w.review ?? w.branch;
  const client: DexClient = { ...p.client, secret: p.client.secret?.reveal() };
  let base = p.base;
  let text = p.text.reveal();
  let expected = w.review ? p.reviewBase : p.base;
  for (let attempt = 1; ; attempt++) {
    const commit = await repo.commitFile(base, w.path, p.mode, text, message);
    const pushed = await repo.push(commit, target, expected);
    if (pushed.ok) return;
    if (attempt === 2) {
      throw new BerthError(`${change.resource}: the push to ${target} of ${w.loc.display} was rejected again (${pushed.rejected}): someone keeps pushing to it; berth pushed nothing`, {
        hint: 'run berth apply again once the branch is quiet',
      });
    }
    // someone pushed meanwhile: the same edit on the new tip, if the client there is as planned
    const now = await readValues(repo, w);
    const tipNow = w.review ? (now.review?.commit ?? null) : now.commit;
    if (tipNow === expected) {
      throw new BerthError(`${change.resource}: the push to ${target} of ${w.loc.display} was rejected (${pushed.rejected}) although the branch did not move`, { hint: 'check the remote repository (permissions, hooks)' });
    }
    const retry = retryEdit(change.resource, p, now, client);
    if (!retry) return;
    ({ base, text, expected } = retry);
  }
}

/**
 * The edit again on a branch that moved after the plan. It is exact only when
 * the client's own lines are on the new tip as they were in the plan (the
 * lines berth writes are then the planned ones too; only what others changed
 * around them differs): otherwise the planned diff no longer says what would
 * happen, and apply refuses. Undefined: the new tip already holds the client
 * as planned (someone made the same change), nothing to push.
 */
function retryEdit(resource: string, p: Payload, now: ValuesFact, client: DexClient): { base: string; text: string; expected: string | null } | undefined {
  const w = p.where;
  const moved = `${w.branch} of ${w.loc.display} moved since the plan (now at ${now.commit ? short(now.commit) : 'nothing'})`;
  const refuse = (why: string) => new BerthError(`${resource}: ${moved}, and ${why}: the planned edit no longer applies as shown`, { hint: 'run berth plan again and review the new diff' });
  if (!now.commit || now.file.kind !== 'file') throw refuse(`${w.path} is not there any more`);
  const edit = editStaticClient(now.text!, label(w), w.keyPath, client);
  if (!edit.changed) return undefined;
  if (w.review && now.reviewText === edit.text) return undefined;
  const before = p.itemBefore?.reveal();
  if (edit.itemBefore !== before || edit.itemAfter !== p.itemAfter.reveal()) throw refuse(`client ${client.id} changed there too`);
  return { base: now.commit, text: edit.text, expected: w.review ? (now.review?.commit ?? null) : now.commit };
}

/** Names the spec commit (and its state), never a secret. */
async function commitMessage(p: Payload, ctx: ModuleContext): Promise<string[]> {
  const rev = await specRevision(ctx.root);
  const from = rev.commit ? `spec commit ${rev.commit}${rev.dirty ? ' (with uncommitted changes)' : ''}` : 'a spec that is not a git checkout';
  const what = p.action === 'create' ? 'add' : 'update';
  return [
    `dex: ${what} static client ${p.client.id}`,
    `Written by berth ${BERTH_VERSION} for ${ctx.host} from ${from}.`,
    `Berth-Spec-Commit: ${rev.commit ?? 'none'}`,
  ];
}
