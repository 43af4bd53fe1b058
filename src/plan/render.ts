// Terraform-like text for plans and apply results. Everything printed passes
// through redact() as a last line of defence; Secrets already print masked.

import { redact } from '../secrets/secret.js';
import type { AttrChange, Change } from '../types.js';
import type { HostResult, RunResult } from '../engine.js';

export interface Style {
  color: boolean;
}

const SYMBOL: Record<Change['action'], string> = { create: '+', update: '~', delete: '-', run: '!' };
const COLOR: Record<Change['action'], number> = { create: 32, update: 33, delete: 31, run: 36 };

function paint(s: string, code: number, style: Style): string {
  return style.color ? `\x1b[${code}m${s}\x1b[0m` : s;
}

export function showValue(v: unknown): string {
  if (v === undefined) return '(none)';
  // an empty setting (Harbor's unset OIDC fields) must not vanish from the line
  if (v === '') return '""';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export function attrText(a: AttrChange): string {
  if (a.before === undefined) return `${a.name}: ${showValue(a.after)}`;
  if (a.after === undefined) return `${a.name}: ${showValue(a.before)} → (none)`;
  return `${a.name}: ${showValue(a.before)} → ${showValue(a.after)}`;
}

export interface Summary {
  create: number;
  update: number;
  delete: number;
  run: number;
  changedHosts: number;
  failedHosts: number;
  hosts: number;
}

export function summarize(r: RunResult): Summary {
  const s: Summary = { create: 0, update: 0, delete: 0, run: 0, changedHosts: 0, failedHosts: 0, hosts: r.hosts.length };
  for (const h of r.hosts) {
    if (h.error) s.failedHosts++;
    const counted = r.kind === 'apply' ? h.changes.filter((c) => h.status?.[c.id] === 'done') : h.changes;
    if (counted.length) s.changedHosts++;
    for (const c of counted) s[c.action]++;
  }
  return s;
}

function changeLines(c: Change, style: Style, status?: string): string[] {
  const head = `${paint(SYMBOL[c.action], COLOR[c.action], style)} ${c.resource}`;
  const via = c.notifiedBy ? ` (handler "${c.task}", notified by ${c.notifiedBy.join(', ')})` : '';
  const mark = status && status !== 'done' ? `  [${status}]` : '';
  const lines = [`  ${head}${via}${mark}`];
  const attrs = c.attrs.filter((a) => a.name !== 'content' || !c.diff);
  if (attrs.length) lines.push(`      ${attrs.map(attrText).join(', ')}`);
  if (c.diff) {
    for (const l of c.diff.replace(/\n$/, '').split('\n')) {
      const code = l.startsWith('+') && !l.startsWith('+++') ? 32 : l.startsWith('-') && !l.startsWith('---') ? 31 : l.startsWith('@@') ? 36 : 0;
      lines.push(`      ${code ? paint(l, code, style) : l}`);
    }
  }
  return lines;
}

function hostBlock(h: HostResult, kind: RunResult['kind'], style: Style): string[] {
  if (h.error && !h.changes.length) return [`${h.host}: ${paint('FAILED', 31, style)}: ${h.error}`];
  const out: string[] = [];
  if (!h.changes.length) out.push(`${h.host}: no changes`);
  else {
    out.push(`${h.host}:`);
    for (const c of h.changes) out.push(...changeLines(c, style, kind === 'apply' ? h.status?.[c.id] : undefined));
  }
  for (const n of h.notes) out.push(n.startsWith('warning: ') ? `  ${paint(n, 33, style)}` : `  note: ${n}`);
  if (h.error) out.push(`  ${paint('FAILED', 31, style)}: ${h.error}`);
  return out;
}

export function renderText(r: RunResult, style: Style): string {
  const rev = r.spec.commit ? ` · spec ${r.spec.commit.slice(0, 12)}${r.spec.dirty ? ' (uncommitted changes)' : ''}` : '';
  const out = [`berth ${r.kind} · ${r.options.inventory} · ${r.options.playbook} · ${r.hosts.length} host(s)${rev}`, ''];
  const notes = r.notes ?? [];
  for (const n of notes) out.push(n.startsWith('warning: ') ? paint(n, 33, style) : `controller: ${n}`);
  if (notes.length) out.push('');
  for (const h of r.hosts) out.push(...hostBlock(h, r.kind, style), '');
  const s = summarize(r);
  const counts = `${s.create} to create, ${s.update} to update, ${s.delete} to delete, ${s.run} to run`;
  if (r.kind === 'plan') {
    out.push(s.create + s.update + s.delete + s.run === 0 ? 'No changes. The hosts match the spec.' : `Plan: ${counts} (on ${s.changedHosts} of ${s.hosts} hosts).`);
  } else {
    out.push(`Applied: ${s.create} created, ${s.update} updated, ${s.delete} deleted, ${s.run} run (on ${s.changedHosts} of ${s.hosts} hosts).`);
  }
  if (s.failedHosts) out.push(paint(`${s.failedHosts} host(s) failed: ${r.hosts.filter((h) => h.error).map((h) => h.host).join(', ')}`, 31, style));
  return redact(out.join('\n')) + '\n';
}

/** JSON for --json and saved plans: no payloads, secrets masked. */
export function renderJson(r: RunResult): string {
  const hosts = r.hosts.map((h) => ({
    host: h.host,
    ...(h.error ? { error: h.error } : {}),
    changes: h.changes.map(({ payload: _p, ...c }) => (r.kind === 'apply' ? { ...c, status: h.status?.[c.id] ?? 'skipped' } : c)),
    fingerprints: h.fingerprints,
    notes: h.notes,
    stats: h.stats,
  }));
  return redact(JSON.stringify({ format: 'berth-plan/1', ...r, hosts, summary: summarize(r) }, null, 2)) + '\n';
}
