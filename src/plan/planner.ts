// The planner is a pure function of (program, facts): no I/O. Each task sees
// the state that the changes planned before it will produce (a simulated
// overlay over the gathered facts), so a file in a directory created in the
// same run, or chowned to a user created in the same run, is planned exactly.

import { createHash } from 'node:crypto';
import { BerthError } from '../util/errors.js';
import type { Change, Facts, SimState } from '../types.js';
import type { BoundTask, HostProgram } from './program.js';
import type { PendingHandler } from '../apply/record.js';

export class SimulatedState implements SimState {
  private readonly overlay = new Map<string, unknown>();
  constructor(private readonly facts: Facts) {}
  get<T>(key: string): T | undefined {
    return (this.overlay.has(key) ? this.overlay.get(key) : this.facts.get(key)) as T | undefined;
  }
  has(key: string): boolean {
    return this.overlay.has(key) || this.facts.has(key);
  }
  set(key: string, value: unknown): void {
    this.overlay.set(key, value);
  }
  gathered<T>(key: string): T | undefined {
    return this.facts.get(key) as T | undefined;
  }
}

export interface HostPlan {
  host: string;
  changes: Change[];
  /** sha256 of every fact the plan was computed from, by fact key (for drift checks). */
  fingerprints: Record<string, string>;
  /** Warnings from the plan (preflight findings below the minimums, ...). */
  warnings: string[];
}

export function fingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value) ?? 'undefined').digest('hex');
}

const CARRIED = 'a failed apply at ';

/** The notifier that stands for a handler left pending by a failed apply (see PendingHandler). */
export const carriedNotifier = (since: string) => `${CARRIED}${since}`;

/** The time of the failed apply, when `by` is such a notifier. */
export function carriedSince(by: string): string | undefined {
  return by.startsWith(CARRIED) ? by.slice(CARRIED.length) : undefined;
}

/**
 * `pending` are the handlers a failed apply left notified (from the host's
 * state record): they run at the first flush of their play, as if notified.
 */
export function planHost(program: HostProgram, facts: Facts, pending: PendingHandler[] = []): HostPlan {
  const state = new SimulatedState(facts);
  const changes: Change[] = [];
  const warnings: string[] = [];
  for (const seg of program.segments) for (const t of [...seg.tasks, ...seg.handlers]) t.ctx.warn = (m) => warnings.push(m);
  let n = 0;
  const emit = (t: BoundTask, extra: Partial<Change> = {}) => {
    const planned = planTask(t, state);
    const out: Change[] = planned.map((p) => ({
      id: `${program.host}#${++n}`,
      host: program.host,
      play: t.play,
      ...(t.role ? { role: t.role } : {}),
      task: t.name,
      module: t.module.name,
      resource: p.resource,
      action: p.action,
      attrs: p.attrs,
      ...(p.diff !== undefined ? { diff: p.diff } : {}),
      ...(p.sensitive ? { sensitive: true } : {}),
      ...(t.notify.length ? { notify: t.notify } : {}),
      tags: t.tags,
      ...extra,
      payload: { become: t.become, data: p.payload, ctx: t.ctx },
    }));
    changes.push(...out);
    return out;
  };
  for (const seg of program.segments) {
    let notified = new Map<string, string[]>();
    let carried = pending.filter((p) => p.play === seg.play);
    // handlers run once, in the order they are defined: at the end of the play, or at a flush_handlers task
    const flush = () => {
      for (const h of seg.handlers) {
        const by = [...new Set((h.names ?? []).flatMap((name) => notified.get(name) ?? []))];
        const left = carried.find((p) => p.handler === h.name);
        if (left) by.push(carriedNotifier(left.since));
        if (by.length) emit(h, { notifiedBy: by });
      }
      notified = new Map();
      carried = [];
    };
    for (const t of seg.tasks) {
      if (t.module.name === 'flush_handlers') {
        flush();
        continue;
      }
      const made = emit(t);
      if (made.length) for (const h of t.notify) notified.set(h, [...(notified.get(h) ?? []), ...made.map((c) => c.id)]);
    }
    flush();
  }
  const fingerprints: Record<string, string> = {};
  for (const [k, v] of [...facts.entries()].sort(([a], [b]) => a.localeCompare(b))) fingerprints[k] = fingerprint(v);
  return { host: program.host, changes, fingerprints, warnings };
}

function planTask(t: BoundTask, state: SimulatedState) {
  try {
    return t.module.plan(t.args, state, t.ctx);
  } catch (e) {
    if (e instanceof BerthError) {
      if (e.pos) throw e;
      throw new BerthError(e.message, { pos: t.ctx.pos, hint: e.hint, keyPath: e.keyPath });
    }
    throw e;
  }
}
