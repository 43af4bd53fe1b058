// plan and apply: spec → programs (no host contacted yet, so spec errors never
// leave anything half-done) → per host, in parallel: one connection, one
// round trip of facts, a pure plan → (apply) the planned changes in order.

import type { ListrTask } from 'listr2';
import { gatherFacts } from './facts/batch.js';
import { gatherControllerFacts, releaseControllerResources } from './facts/controller.js';
import { openTransport } from './transport/index.js';
import { loadSpec, type LoadOptions } from './spec/load.js';
import { buildProgram, hostsInScope, type HostProgram, type Selection } from './plan/program.js';
import { carriedSince, planHost, type HostPlan } from './plan/planner.js';
import { HostApplier } from './apply/batch.js';
import { acquireLock, inflightGuard } from './apply/lock.js';
import { STATE_KEY, nextRecord, stateRecordQuery, writeStateRecord, type PendingHandler, type RunRecord, type StateRecord } from './apply/record.js';
import { DEFAULT_CI_BRANCH, checkCiRevision, specRevision, type SpecRevision } from './git/spec-repo.js';
import { generatedNote, openSpecVault, saveVault } from './spec/vault-refs.js';
import { BerthError, isBerthError } from './util/errors.js';
import { redact } from './secrets/secret.js';
import { BERTH_VERSION } from './version.js';
import { displayPath } from './spec/yamlfile.js';
import { controllerStore } from './secrets/store.js';
import { specStore } from './secrets/spec-store.js';
import { resolve } from 'node:path';
import { faultArmed, faultKill, faultPoint } from './util/fault.js';
import { checkSharedResources } from './plan/shared.js';
import { Readable } from 'node:stream';
import type { Change, ExecOptions, Transport, TransportStats } from './types.js';
import type { Spec } from './spec/model.js';

export interface RunOptions extends LoadOptions, Selection {
  /** Hosts worked on at once. */
  forks?: number;
  /** Seconds to wait for another apply's host lock (0: fail at once). */
  lockTimeoutSec?: number;
  /** listr2 renderer for apply progress. */
  renderer?: 'default' | 'simple' | 'silent';
  /**
   * CI mode (--ci, or CI=true unless BERTH_CI=false): a missing generated
   * vault entry is an error, and apply refuses a dirty tree or a commit that
   * is not on `ciBranch`.
   */
  ci?: boolean;
  /** The branch CI applies from (default main). */
  ciBranch?: string;
  /** Store generated vault entries (default true; validate only reports them). */
  persistGenerated?: boolean;
}

export type ChangeStatus = 'done' | 'failed' | 'skipped';

export interface HostResult {
  host: string;
  /** Planned changes (display-safe; `payload` is stripped before anything is printed or saved). */
  changes: Change[];
  fingerprints: Record<string, string>;
  /** apply: what happened to each planned change, by id. */
  status?: Record<string, ChangeStatus>;
  error?: string;
  notes: string[];
  /** SSH connections and round trips; `apiRequests`: HTTP requests the controller made for facts (Harbor's API). */
  stats?: TransportStats & { apiRequests?: number };
}

export interface RunResult {
  kind: 'plan' | 'apply';
  createdAt: string;
  berth: string;
  options: SavedOptions;
  spec: SpecRevision;
  hosts: HostResult[];
  /** What berth did on the controller before contacting any host (vault entries or material it generated or renewed, warnings; never a value). Always set by plan and apply; optional for plans saved by older versions. */
  notes?: string[];
}

/** What a saved plan must repeat to be applied: the same spec and selection. */
export interface SavedOptions {
  root: string;
  inventory: string;
  playbook: string;
  extraVars: string[];
  limit?: string;
  tags?: string[];
  skipTags?: string[];
}

interface Prepared {
  spec: Spec;
  programs: HostProgram[];
  options: SavedOptions;
  revision: SpecRevision;
  notes: string[];
}

/**
 * Loads and renders everything for every host before any host is contacted:
 * the spec, the vault (generated entries are stored here, once), and with
 * `guard` (a CI apply) the check that the spec is a clean commit on the branch.
 */
export async function prepare(opts: RunOptions, guard = false): Promise<Prepared> {
  if (guard && opts.ci) await checkCiRevision(opts.root, opts.ciBranch ?? DEFAULT_CI_BRANCH);
  // material is generated (and said so) while the spec is loaded: before any host is contacted
  const store = controllerStore(resolve(opts.root));
  store.drainNotes();
  const spec = loadSpec(opts);
  const persist = opts.persistGenerated !== false;
  const secrets = await openSpecVault(spec, { ci: opts.ci, dry: !persist });
  spec.store = specStore({ root: spec.root, inventoryDir: spec.inventory.dir, vault: secrets.vault, paths: secrets.paths, ci: opts.ci === true });
  const hosts = hostsInScope(spec, opts);
  if (!hosts.length) throw new BerthError(opts.limit ? `--limit ${opts.limit} matches no host of the playbook` : 'the playbook targets no host');
  const programs = hosts.map((h) => buildProgram(spec, h, opts));
  checkSharedResources(programs);
  // one write of what building the programs set in the vault: generated secrets
  // (not in a dry run, such as validate) and TLS keys
  const generated = await saveVault(spec.secrets);
  const shownVault = spec.secrets?.paths.shownFile ?? 'vault.age';
  return {
    spec,
    programs,
    notes: [...generated.map((g) => generatedNote(g, shownVault, persist)), ...store.drainNotes()],
    revision: await specRevision(spec.root),
    options: {
      root: spec.root,
      inventory: displayPath(spec.inventory.dir, spec.root),
      playbook: displayPath(spec.playbook, spec.root),
      extraVars: opts.extraVars ?? [],
      limit: opts.limit,
      tags: opts.tags,
      skipTags: opts.skipTags,
    },
  };
}

async function forEachLimit<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function oneLine(e: unknown): string {
  if (isBerthError(e)) return e.format();
  return redact(`internal error: ${(e as Error)?.message ?? String(e)}`);
}

const DEFAULT_FORKS = 25;

export async function runPlan(opts: RunOptions): Promise<RunResult & { records: Map<string, StateRecord | undefined> }> {
  const prep = await prepare(opts);
  const results: HostResult[] = [];
  const records = new Map<string, StateRecord | undefined>();
  await forEachLimit(prep.programs, opts.forks ?? DEFAULT_FORKS, async (p) => {
    const t = openTransport(p.connection);
    const hr: HostResult = { host: p.host, changes: [], fingerprints: {}, notes: [] };
    let apiRequests = 0;
    try {
      const plan = await planOn(t, p, (n) => (apiRequests += n));
      hr.changes = plan.changes;
      hr.fingerprints = plan.fingerprints;
      hr.notes.push(...plan.warnings.map((w) => `warning: ${w}`));
      records.set(p.host, plan.record);
    } catch (e) {
      hr.error = oneLine(e);
    } finally {
      await t.close().catch(() => undefined);
      hr.stats = hostStats(t, p, apiRequests);
    }
    results.push(hr);
  }).finally(releaseControllerResources);
  return { ...finish('plan', prep, results), records };
}

/** A host's SSH counts, and the controller's API requests for it when it has controller facts. */
function hostStats(t: Transport, p: HostProgram, apiRequests: number): HostResult['stats'] {
  return { ...t.stats, ...(p.controllerQueries.length ? { apiRequests } : {}) };
}

/**
 * Facts, then the pure plan. The host's queries go out in one round trip; the
 * controller's own (Harbor's API over HTTPS) run at the same time.
 */
async function planOn(t: Transport, p: HostProgram, countRequests: (n: number) => void = () => undefined): Promise<HostPlan & { record?: StateRecord }> {
  const [facts, api] = await Promise.all([
    gatherFacts(t, [...p.queries, stateRecordQuery()]),
    gatherControllerFacts(p.controllerQueries, p.host).then((g) => {
      countRequests(g.requests);
      return g.facts;
    }),
  ]);
  for (const [k, v] of api) facts.set(k, v);
  const record = facts.get(STATE_KEY) as StateRecord | undefined;
  facts.delete(STATE_KEY); // changes with every apply; not part of the desired state
  return { ...planHost(p, facts, record?.pending_handlers ?? []), record };
}

function finish(kind: 'plan' | 'apply', prep: Prepared, results: HostResult[]): RunResult {
  const order = new Map(prep.programs.map((p, i) => [p.host, i]));
  results.sort((a, b) => order.get(a.host)! - order.get(b.host)!);
  return {
    kind,
    createdAt: new Date().toISOString(),
    berth: BERTH_VERSION,
    options: prep.options,
    spec: prep.revision,
    hosts: results,
    // always present (an empty list when berth made nothing), so --json readers need no special case
    notes: prep.notes,
  };
}

/** The part of a change that must match between a saved plan and a fresh one. */
function comparable(c: Change): string {
  // a saved plan went through redact() when it was written: compare like with like
  return redact(JSON.stringify([c.resource, c.action, c.attrs, c.diff ?? null, c.notifiedBy ?? null]));
}

function driftMessage(saved: Record<string, string>, now: Record<string, string>): string | undefined {
  const keys = new Set([...Object.keys(saved), ...Object.keys(now)]);
  const drifted = [...keys].filter((k) => saved[k] !== now[k]).sort();
  if (!drifted.length) return undefined;
  const names = drifted.map((k) => k.replace(':', ' '));
  return `${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''} changed since the plan was made`;
}

/**
 * Applies a fresh plan, or exactly a saved one (refused per host if the host
 * drifted or the spec changed since). Hosts run in parallel; a failing host
 * stops at its failing change and the others go on.
 */
export async function runApply(opts: RunOptions, saved?: RunResult): Promise<RunResult> {
  const prep = await prepare(opts, true);
  if (saved) checkSavedScope(saved, prep);
  const results: HostResult[] = [];
  const lockTimeout = opts.lockTimeoutSec ?? 0;

  // outside a terminal, lines of different hosts interleave: name the host on each
  const tree = opts.renderer === 'default';
  const label = (host: string, s: string) => (tree ? s : `${host}: ${s}`);
  const hostTask = (p: HostProgram): ListrTask => {
    const hr: HostResult = { host: p.host, changes: [], fingerprints: {}, notes: [], status: {} };
    results.push(hr);
    const t = openTransport(p.connection);
    let release: (() => Promise<void>) | undefined;
    let record: StateRecord | undefined;
    let failed = false;
    let apiRequests = 0;
    const remember: Record<string, string | null> = {};
    const fail = (e: unknown) => {
      failed = true;
      hr.error ??= oneLine(e);
      throw new Error(hr.error);
    };
    return {
      title: p.host,
      task: async (_ctx, task) => {
        const steps: ListrTask[] = [
          {
            title: label(p.host, 'lock, facts, plan'),
            task: async (_c, step) => {
              try {
                const lock = await acquireLock(t, {
                  timeoutSec: lockTimeout,
                  become: p.connection.become,
                  onWait: (holder) => (step.output = label(p.host, `waiting up to ${lockTimeout}s for the host lock (held by ${holder})`)),
                });
                release = lock.release;
                if (lock.staleNote) hr.notes.push(lock.staleNote);
                if (lock.inflightNote) hr.notes.push(lock.inflightNote);
                faultPoint('locked');
                const plan = await planOn(t, p, (n) => (apiRequests += n));
                record = plan.record;
                hr.changes = plan.changes;
                hr.fingerprints = plan.fingerprints;
                hr.notes.push(...plan.warnings.map((w) => `warning: ${w}`));
                if (saved) checkSavedHost(saved, hr);
                step.title = label(p.host, hr.changes.length ? `plan: ${hr.changes.length} change(s)` : 'plan: no changes');
                faultPoint('planned');
                if (hr.changes.length) {
                  // write-ahead: should this run die before its handlers ran, the next one still runs them
                  await writeStateRecord(t, p.connection.become, nextRecord(record, runRecord(prep, hr, 'incomplete'), journaledHandlers(hr, record)));
                  faultPoint('journaled');
                }
              } catch (e) {
                fail(e);
              }
            },
          },
          {
            title: label(p.host, 'apply'),
            skip: () => failed || hr.changes.length === 0,
            task: (_c, step) => {
              // consecutive changes that allow it go to the host in one round trip, each still reported on its own;
              // every command holds the host's in-flight lock, and a change armed with a test fault runs on its own
              // (a kill before change n must find it unsent, not already run in the batch of an earlier change)
              const applier = new HostApplier(
                hr.changes,
                (i) => applyTransport(t, i + 1),
                (i) => !faultArmed(`upload:${i + 1}`) && !faultArmed(`change:${i + 1}`),
              );
              return step.newListr(
                hr.changes.map((c, i) => ({
                  title: label(p.host, `${SYMBOL[c.action]} ${c.resource}`),
                  skip: () => failed,
                  task: async () => {
                    try {
                      faultPoint(`change:${i + 1}`);
                      const outcome = await applier.apply(c);
                      hr.status![c.id] = 'done';
                      Object.assign(remember, outcome?.remember ?? {});
                    } catch (e) {
                      hr.status![c.id] = 'failed';
                      fail(e);
                    }
                  },
                })),
                { concurrent: false, exitOnError: true },
              );
            },
          },
          {
            // always runs: it is the step that releases the host
            title: label(p.host, 'record and unlock'),
            task: async () => {
              for (const c of hr.changes) hr.status![c.id] ??= 'skipped';
              try {
                if (release && hr.changes.length) {
                  if (!failed) faultPoint('applied');
                  await writeStateRecord(t, p.connection.become, nextRecord(record, runRecord(prep, hr, failed ? 'failed' : 'ok'), pendingHandlers(hr), remember));
                  faultPoint('recorded');
                }
              } catch (e) {
                failed = true;
                hr.error ??= oneLine(e);
                throw new Error(hr.error);
              } finally {
                await release?.().catch(() => undefined);
                await t.close().catch(() => undefined);
                hr.stats = hostStats(t, p, apiRequests);
              }
            },
          },
        ];
        await task.newListr(steps, { concurrent: false, exitOnError: false }).run();
        // the host's own line ends ✖ when one of its steps failed (listr2 marks a
        // parent done when its subtasks do not exit on error)
        if (failed) throw new Error(hr.error);
      },
    };
  };

  // listr2 only for apply: a plan never loads it
  const { Listr } = await import('listr2');
  const list = new Listr(prep.programs.map(hostTask), {
    concurrent: opts.forks ?? DEFAULT_FORKS,
    exitOnError: false,
    renderer: opts.renderer ?? 'simple',
    fallbackRenderer: 'simple',
    collectErrors: false,
    rendererOptions: { collapseSubtasks: false },
  });
  try {
    await list.run().catch(() => undefined);
  } finally {
    await releaseControllerResources();
  }
  return finish('apply', prep, results);
}

const SYMBOL: Record<Change['action'], string> = { create: '+', update: '~', delete: '-', run: '!' };

/**
 * Handlers a done change notified that did not run because the apply stopped
 * (a handler's own failure counts too): the state record keeps them, and the
 * next plan runs them. A handler notified only by changes that did not happen
 * is not pending: those changes are planned again.
 */
function pendingHandlers(hr: HostResult): PendingHandler[] {
  const isChange = (by: string) => by.startsWith(`${hr.host}#`);
  const out = new Map<string, PendingHandler>();
  for (const c of hr.changes) {
    if (!c.notifiedBy || hr.status?.[c.id] === 'done') continue;
    const carried = c.notifiedBy.map(carriedSince).find((x) => x !== undefined);
    if (!carried && !c.notifiedBy.some((by) => isChange(by) && hr.status?.[by] === 'done')) continue;
    out.set(`${c.play}\u0000${c.task}`, { play: c.play, handler: c.task, since: carried ?? new Date().toISOString() });
  }
  return [...out.values()];
}

/**
 * The handlers to keep pending while an apply runs (written before its first
 * change): every handler this plan runs, and those an earlier run left
 * pending. If the run dies after a change notified a handler and before the
 * handler ran, no change is left to notify it again; the record still has
 * it. The price of dying before the notifying change: one extra run of the
 * handler next time.
 */
function journaledHandlers(hr: HostResult, prev: StateRecord | undefined): PendingHandler[] {
  const now = new Date().toISOString();
  const out = new Map<string, PendingHandler>();
  for (const h of prev?.pending_handlers ?? []) out.set(`${h.play}\u0000${h.handler}`, h);
  for (const c of hr.changes) {
    if (!c.notifiedBy) continue;
    const key = `${c.play}\u0000${c.task}`;
    if (!out.has(key)) out.set(key, { play: c.play, handler: c.task, since: c.notifiedBy.map(carriedSince).find((x) => x !== undefined) ?? now });
  }
  return [...out.values()];
}

/**
 * The transport a change is applied through: each command holds the host's
 * in-flight lock while it runs (see inflightGuard). With the test hook
 * BERTH_TEST_KILL_AT=upload:<n>, the n-th change's data is cut half-way.
 */
function applyTransport(t: Transport, n: number): Transport {
  const cut = faultArmed(`upload:${n}`);
  return {
    host: t.host,
    get stats() {
      return t.stats;
    },
    exec: (script: string, opts?: ExecOptions) => t.exec(inflightGuard(script), cut && opts?.stdin !== undefined ? { ...opts, stdin: halfThenDie(opts.stdin) } : opts),
    session: (script: string, opts?: ExecOptions) => t.session(inflightGuard(script), opts),
    close: () => t.close(),
  };
}

/** Test hook: sends the first half of `data`, then SIGKILLs berth while the host waits for the rest. */
function halfThenDie(data: string | Buffer | Readable): Readable {
  const die = () => setTimeout(faultKill, 300);
  if (data instanceof Readable) {
    let first = true;
    return data.map((chunk: Buffer) => {
      if (first) die();
      first = false;
      return chunk;
    });
  }
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  let sent = false;
  return new Readable({
    read() {
      if (sent) return; // the rest never comes
      sent = true;
      this.push(buf.subarray(0, Math.floor(buf.length / 2)));
      die();
    },
  });
}

function runRecord(prep: Prepared, hr: HostResult, status: RunRecord['status']) {
  return {
    at: new Date().toISOString(),
    berth: BERTH_VERSION,
    spec: prep.revision,
    inventory: prep.options.inventory,
    playbook: prep.options.playbook,
    status,
    changes: hr.changes.map((c) => ({ resource: c.resource, action: c.action, task: c.task, status: hr.status?.[c.id] ?? 'skipped' })),
    ...(hr.error ? { error: hr.error } : {}),
  };
}

function checkSavedScope(saved: RunResult, prep: Prepared): void {
  const want = saved.hosts.map((h) => h.host).sort().join(',');
  const now = prep.programs.map((p) => p.host).sort().join(',');
  if (want !== now) throw new BerthError(`the saved plan covers hosts ${want}, the spec now selects ${now}`, { hint: 'make a new plan' });
}

function checkSavedHost(saved: RunResult, hr: HostResult): void {
  const s = saved.hosts.find((h) => h.host === hr.host)!;
  if (s.error) throw new BerthError(`the saved plan has no plan for this host (it failed: ${s.error})`, { host: hr.host, hint: 'make a new plan' });
  const drift = driftMessage(s.fingerprints, hr.fingerprints);
  if (drift) throw new BerthError(`refusing the saved plan: ${drift}`, { host: hr.host, hint: 'run berth plan again and review the new plan' });
  const a = s.changes.map(comparable);
  const b = hr.changes.map(comparable);
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
    const i = a.findIndex((x, k) => x !== b[k]);
    const which = s.changes[i]?.resource ?? hr.changes[i]?.resource ?? '';
    throw new BerthError(`refusing the saved plan: the spec changed since the plan was made (first difference: ${which})`, { host: hr.host, hint: 'run berth plan again' });
  }
}

/** Changes without their payloads: safe to print, save and compare. */
export function publicResult(r: RunResult): RunResult {
  return { ...r, hosts: r.hosts.map((h) => ({ ...h, changes: h.changes.map(({ payload: _p, ...c }) => c) })) };
}
