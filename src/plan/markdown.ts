// A plan (or an apply result) as Markdown fit for a merge-request comment:
// a headline with the counts, a table of hosts, and per host a collapsible
// block with the changes as a `diff` code block (create lines green, delete
// lines red, file diffs at column 0 so they colour too). Kept under a size
// budget (GitHub comments hold 65 536 characters): hosts that do not fit keep
// their table row and say the job log has their details. Secrets print as
// "(sensitive)" like everywhere else, and the whole text passes redact().

import { redact } from '../secrets/secret.js';
import type { Change } from '../types.js';
import type { HostResult, RunResult } from '../engine.js';
import { attrText, summarize } from './render.js';

export interface MarkdownOptions {
  /** Upper bound on the text's length (default 60 000 characters). */
  maxChars?: number;
}

/** The first line of every berth comment: CI scripts find (and update) their own comment by it. */
export function markdownMarker(r: RunResult): string {
  return `<!-- berth ${r.kind}: ${r.options.inventory} -->`;
}

const SYMBOL: Record<Change['action'], string> = { create: '+', update: '~', delete: '-', run: '!' };

/** Text for a table cell or a summary: no line breaks, no HTML, no column breaks. */
function cell(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

/** Inline code that survives backticks inside it. */
function code(s: string): string {
  const run = Math.max(0, ...[...s.matchAll(/`+/g)].map((m) => m[0].length));
  const tick = '`'.repeat(run + 1);
  return run ? `${tick} ${s} ${tick}` : `${tick}${s}${tick}`;
}

/** A fenced block whose fence is longer than any backtick run in its body. */
function fence(body: string, lang: string): string {
  const run = Math.max(0, ...[...body.matchAll(/`{3,}/g)].map((m) => m[0].length));
  const f = '`'.repeat(Math.max(3, run + 1));
  return `${f}${lang}\n${body.replace(/\n$/, '')}\n${f}`;
}

function counts(h: HostResult, kind: RunResult['kind']): string {
  const n = { create: 0, update: 0, delete: 0, run: 0 };
  const counted = kind === 'apply' ? h.changes.filter((c) => h.status?.[c.id] === 'done') : h.changes;
  for (const c of counted) n[c.action]++;
  const words = kind === 'apply' ? { create: 'created', update: 'updated', delete: 'deleted', run: 'run' } : { create: 'to create', update: 'to update', delete: 'to delete', run: 'to run' };
  const parts = (['create', 'update', 'delete', 'run'] as const).filter((a) => n[a]).map((a) => `${n[a]} ${words[a]}`);
  return parts.join(', ') || (kind === 'apply' ? 'nothing applied' : 'none');
}

function changeBlock(c: Change, status: string | undefined): string[] {
  const via = c.notifiedBy ? ` (handler "${c.task}", notified by ${c.notifiedBy.join(', ')})` : '';
  const mark = status && status !== 'done' ? `  [${status}]` : '';
  const out = [`${SYMBOL[c.action]} ${c.resource}${via}${mark}`];
  const attrs = c.attrs.filter((a) => a.name !== 'content' || !c.diff);
  if (attrs.length) out.push(`    ${attrs.map(attrText).join(', ')}`);
  if (c.diff) out.push(...c.diff.replace(/\n$/, '').split('\n'));
  return out;
}

function hostDetails(h: HostResult, kind: RunResult['kind'], open: boolean): string {
  const lines = h.changes.flatMap((c) => changeBlock(c, kind === 'apply' ? h.status?.[c.id] : undefined));
  const extra = [
    ...h.notes.map((n) => `- ${cell(n)}`),
    ...(h.error ? [`- **failed:** ${cell(h.error)}`] : []),
  ];
  return [
    `<details${open ? ' open' : ''}><summary><code>${cell(h.host)}</code>: ${cell(counts(h, kind))}</summary>`,
    '',
    fence(lines.join('\n'), 'diff'),
    ...(extra.length ? ['', ...extra] : []),
    '',
    '</details>',
  ].join('\n');
}

export function renderMarkdown(r: RunResult, opts: MarkdownOptions = {}): string {
  const max = opts.maxChars ?? 60_000;
  const s = summarize(r);
  const total = s.create + s.update + s.delete + s.run;
  const headline =
    r.kind === 'plan'
      ? total === 0
        ? 'no changes'
        : `${s.create} to create, ${s.update} to update, ${s.delete} to delete, ${s.run} to run`
      : `${s.create} created, ${s.update} updated, ${s.delete} deleted, ${s.run} run`;
  const failed = s.failedHosts ? ` · ${s.failedHosts} host(s) failed` : '';
  const rev = r.spec.commit ? ` · spec ${code(r.spec.commit.slice(0, 12))}${r.spec.dirty ? ' (uncommitted changes)' : ''}` : '';
  const head: string[] = [
    markdownMarker(r),
    `### berth ${r.kind}: ${headline}${failed}`,
    '',
    `${code(r.options.inventory)} · ${code(r.options.playbook)} · ${s.hosts} host(s), ${s.changedHosts} with changes${rev}`,
    '',
  ];
  for (const n of r.notes ?? []) head.push(`> **note:** ${cell(n)}`, '');
  if (r.kind === 'plan' && total === 0 && !s.failedHosts) head.push('The hosts match the spec.', '');

  const rows = ['| host | changes | |', '| --- | --- | --- |'];
  for (const h of r.hosts) {
    const c = h.changes.length ? cell(counts(h, r.kind)) : h.error ? '—' : 'none';
    rows.push(`| ${code(h.host).replace(/\|/g, '\\|')} | ${c} |${h.error ? ` **failed:** ${cell(h.error)} ` : ' '}|`);
  }

  // hosts with changes (or notes) get a block; open them all when the plan is small
  const withBlocks = r.hosts.filter((h) => h.changes.length || h.notes.length);
  const lineCount = withBlocks.reduce((n, h) => n + h.changes.reduce((m, c) => m + 2 + (c.diff?.split('\n').length ?? 0), 0), 0);
  const open = lineCount <= 80;
  const blocks: string[] = [];
  let used = [...head, ...rows].join('\n').length + 400;
  const left: string[] = [];
  for (const h of withBlocks) {
    const b = redact(hostDetails(h, r.kind, open));
    if (used + b.length + 2 > max) {
      left.push(h.host);
      continue;
    }
    blocks.push(b);
    used += b.length + 2;
  }
  const tail = left.length
    ? [`_Details of ${left.length} host(s) left out to keep this comment under ${max} characters (${left.map(code).join(', ')}): the job log has the full plan._`, '']
    : [];
  return redact([...head, ...rows, '', ...blocks.flatMap((b) => [b, '']), ...tail].join('\n').replace(/\n+$/, '')) + '\n';
}

