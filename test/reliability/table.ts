// docs/RELIABILITY.md is written by the tests that produce its figures. Each
// test file owns one section of it, between
//   <!-- reliability:begin <id> --> and <!-- reliability:end <id> -->
// and checks, in its last test, that the section is what this run found:
// each row is a fault or input class, the cases tried, the outcome, and what
// was checked to be lost (nothing). Rows hold no timings, host names or
// random values, so the same code gives the same table on every run.
//
// When a section is out of date (cases were added, an outcome changed), the
// check fails and says how to regenerate it:
//   BERTH_WRITE_RELIABILITY=1 CI=true npx vitest run <the test file>
// (or `npm run reliability` for every section), then commit the file.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RELIABILITY_DOC = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'docs', 'RELIABILITY.md');

export interface Row {
  /** The fault or the class of bad input. */
  what: string;
  /** How many cases were run. */
  tried: number;
  /** What happened, for every case (e.g. "exit 1, one line with file:line: 12/12"). */
  outcome: string;
  /** What was checked to be kept (nothing lost, nothing half-written, no host contacted). */
  kept: string;
}

const cell = (s: string | number) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderSection(rows: Row[]): string {
  const lines = ['| fault or input | cases tried | outcome | nothing lost |', '| --- | ---: | --- | --- |'];
  for (const r of rows) lines.push(`| ${cell(r.what)} | ${cell(r.tried)} | ${cell(r.outcome)} | ${cell(r.kept)} |`);
  return lines.join('\n');
}

const begin = (id: string) => `<!-- reliability:begin ${id} -->`;
const end = (id: string) => `<!-- reliability:end ${id} -->`;

/** The section `id` of the committed document, or undefined when it has none. */
export function committedSection(id: string, doc = readFileSync(RELIABILITY_DOC, 'utf8')): string | undefined {
  const a = doc.indexOf(begin(id));
  const b = doc.indexOf(end(id));
  if (a < 0 || b < a) return undefined;
  return doc.slice(a + begin(id).length, b).replace(/^\n/, '').replace(/\n$/, '');
}

/** Replaces section `id` in the document text (the markers must exist). */
export function replaceSection(doc: string, id: string, body: string): string {
  const a = doc.indexOf(begin(id));
  const b = doc.indexOf(end(id));
  if (a < 0 || b < a) throw new Error(`${RELIABILITY_DOC} has no markers for section "${id}": add ${begin(id)} and ${end(id)}`);
  return `${doc.slice(0, a + begin(id).length)}\n${body}\n${doc.slice(b)}`;
}

/**
 * Compares section `id` with this run's rows. With BERTH_WRITE_RELIABILITY=1
 * it writes them instead. Returns undefined when they match (or were
 * written), else the message to fail with.
 */
export function checkSection(id: string, rows: Row[], regenerate: string): string | undefined {
  const body = renderSection(rows);
  const doc = readFileSync(RELIABILITY_DOC, 'utf8');
  if (process.env.BERTH_WRITE_RELIABILITY === '1') {
    writeFileSync(RELIABILITY_DOC, replaceSection(doc, id, body));
    return undefined;
  }
  const have = committedSection(id, doc);
  if (have === body) return undefined;
  return [
    `docs/RELIABILITY.md, section "${id}", does not match what this run found.`,
    `Regenerate it with: BERTH_WRITE_RELIABILITY=1 ${regenerate}`,
    'then review and commit it. This run found:',
    body,
    'The committed section is:',
    have ?? '(missing)',
  ].join('\n');
}

/** "n/n" when every case had the outcome, else "k of n" (the check fails on such a row anyway). */
export function ratio(k: number, n: number): string {
  return k === n ? `${k}/${n}` : `${k} of ${n}`;
}
