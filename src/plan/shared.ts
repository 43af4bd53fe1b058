// Resources outside the hosts that several hosts' tasks may name (see
// Module.shared): before any host is contacted, their tasks must agree on what
// the resource should be. Two cache VMs that share one dex client id but have
// different hostnames would otherwise take turns rewriting its redirectURIs.

import { BerthError, formatPos } from '../util/errors.js';
import type { HostProgram } from './program.js';
import type { SourcePos } from '../types.js';

interface Claim {
  host: string;
  wants: string;
  show: string;
  pos: SourcePos;
}

/** Throws a BerthError naming the two hosts when tasks of a shared resource want it different. */
export function checkSharedResources(programs: readonly HostProgram[]): void {
  const claims = new Map<string, Claim>();
  for (const p of programs) {
    for (const seg of p.segments) {
      for (const t of [...seg.tasks, ...seg.handlers]) {
        const r = t.module.shared?.(t.args as never, t.ctx);
        if (!r) continue;
        const first = claims.get(r.id);
        const pos = t.ctx.locateArg?.(['id']) ?? t.ctx.pos;
        if (!first) {
          claims.set(r.id, { host: p.host, wants: r.wants, show: r.show, pos });
          continue;
        }
        if (first.wants === r.wants) continue;
        const how = first.show === r.show ? 'the same fields but another secret' : `${first.host}: ${first.show}; ${p.host}: ${r.show}`;
        const elsewhere = formatPos(first.pos) === formatPos(pos) ? '' : `; ${first.host}'s task is at ${formatPos(first.pos)}`;
        throw new BerthError(`${r.id}: hosts ${first.host} and ${p.host} want it different (${how}); each apply would undo the other's`, { pos, hint: r.hint + elsewhere });
      }
    }
  }
}
