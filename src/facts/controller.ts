// Facts the controller reads itself (an HTTP API instead of a shell command).
// They run concurrently with the host's one round trip; queries of one
// gathering share work through `memo` (Harbor's project list is read once
// for every project fact). Resources such queries keep open for the run
// (keep-alive HTTP agents) are released with releaseControllerResources().

import { BerthError } from '../util/errors.js';
import type { ControllerFactQuery, ControllerFetchContext, Facts } from '../types.js';

export interface ControllerGathering {
  facts: Facts;
  /** What the gathering cost: HTTP requests made. */
  requests: number;
}

/**
 * Runs every query (de-duplicated by key, all at once) and returns their
 * values by key. Two queries of one key from different sources (two Harbor
 * endpoints on one host) are refused: their facts would be mixed up. A query
 * that fails fails the gathering with its own (BerthError) message.
 */
export async function gatherControllerFacts(queries: readonly ControllerFactQuery[], host: string): Promise<ControllerGathering> {
  const unique = new Map<string, ControllerFactQuery>();
  for (const q of queries) {
    const seen = unique.get(q.key);
    if (!seen) unique.set(q.key, q);
    else if (seen.source !== q.source) {
      throw new BerthError(`fact ${q.key} is asked of two sources (${seen.source} and ${q.source})`, {
        host,
        hint: 'the tasks of one host must talk to one Harbor (one harbor_api.url)',
      });
    }
  }
  const facts: Facts = new Map();
  if (unique.size === 0) return { facts, requests: 0 };
  const memos = new Map<string, Promise<unknown>>();
  const ctx: ControllerFetchContext = {
    memo<V>(key: string, compute: () => Promise<V>): Promise<V> {
      let p = memos.get(key) as Promise<V> | undefined;
      if (!p) {
        p = compute();
        memos.set(key, p);
        // a rejection is handled by whichever query awaits it; don't let an unawaited copy crash the process
        p.catch(() => undefined);
      }
      return p;
    },
    stats: { requests: 0 },
  };
  const settled = await Promise.allSettled([...unique.values()].map(async (q) => [q.key, await q.fetch(ctx)] as const));
  for (const s of settled) {
    if (s.status === 'rejected') {
      const e = s.reason as unknown;
      if (e instanceof BerthError) throw e;
      throw new BerthError(`controller fact failed: ${(e as Error)?.message ?? String(e)}`, { host, cause: e });
    }
    facts.set(s.value[0], s.value[1]);
  }
  return { facts, requests: ctx.stats.requests };
}

const releasers = new Set<() => Promise<void> | void>();

/** Registers what to release when a run ends (an HTTP agent's idle connections). */
export function onRunEnd(release: () => Promise<void> | void): void {
  releasers.add(release);
}

/** Releases everything registered with onRunEnd (the CLI process can then exit at once). */
export async function releaseControllerResources(): Promise<void> {
  const all = [...releasers];
  releasers.clear();
  await Promise.allSettled(all.map(async (r) => r()));
}
