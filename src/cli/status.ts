import { runPlan, type RunOptions } from '../engine.js';
import { redact } from '../secrets/secret.js';

/** berth status: per host, the last apply's commit and time (from its state record) and drift now. */
export async function runStatus(opts: RunOptions, style: { json: boolean; color: boolean }, out: (s: string) => void): Promise<number> {
  const r = await runPlan(opts);
  const rows = r.hosts.map((h) => {
    const last = r.records.get(h.host)?.last;
    return {
      host: h.host,
      applied_commit: last?.spec.commit ?? null,
      applied_dirty: last?.spec.dirty ?? null,
      applied_at: last?.at ?? null,
      applied_status: last?.status ?? null,
      berth: last?.berth ?? null,
      drift: h.error ? null : h.changes.length > 0,
      pending_changes: h.error ? null : h.changes.length,
      ...(h.error ? { error: h.error } : {}),
    };
  });
  if (style.json) out(redact(JSON.stringify({ spec: r.spec, notes: r.notes ?? [], hosts: rows }, null, 2)) + '\n');
  else {
    const head = `spec now: ${r.spec.commit ? r.spec.commit.slice(0, 12) + (r.spec.dirty ? ' (uncommitted changes)' : '') : '(not a git repository)'}`;
    const lines = rows.map((x) => {
      if (x.error) return `${x.host}: unreachable: ${x.error}`;
      const applied = x.applied_at ? `applied ${x.applied_commit ? x.applied_commit.slice(0, 12) : '(no commit)'}${x.applied_dirty ? '+dirty' : ''} at ${x.applied_at} (${x.applied_status})` : 'never applied by berth';
      return `${x.host}: ${applied}; ${x.drift ? `drift: ${x.pending_changes} change(s) pending` : 'in sync'}`;
    });
    const notes = (r.notes ?? []).map((n) => (n.startsWith('warning: ') ? n : `controller: ${n}`));
    out(redact([head, ...notes, ...lines].join('\n')) + '\n');
  }
  return rows.some((x) => x.error) ? 1 : 0;
}
