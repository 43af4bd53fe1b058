import { createRequire } from 'node:module';
import type * as DiffLib from 'diff';
import { SENSITIVE, Secret } from '../secrets/secret.js';

const MAX_DIFF_LINES = 400;

// diff is loaded on the first diff: a plan with nothing to change never needs it
let diffLib: typeof DiffLib | undefined;
const diff = (): typeof DiffLib => (diffLib ??= createRequire(import.meta.url)('diff') as typeof DiffLib);

/** True for text that is safe to show line by line (no NUL, valid UTF-8 round trip). */
export function isText(buf: Buffer): boolean {
  if (buf.includes(0)) return false;
  return Buffer.from(buf.toString('utf8'), 'utf8').equals(buf);
}

/**
 * Lines of the old file that hold a secret are found by the shape of the new
 * file's display text: a display line `password: (sensitive)` masks any old
 * line `password: <anything>`. So changing a password shows no value, old or new.
 */
export function maskLikeDisplay(old: string, displayNew: string): string {
  const masks = displayNew
    .split('\n')
    .filter((l) => l.includes(SENSITIVE))
    // a quoting helper may quote the placeholder where the real value needed no quotes
    .map((l) => ({ line: l, re: new RegExp('^' + l.split(/'\(sensitive\)'|"\(sensitive\)"|\(sensitive\)/).map(escapeRe).join('.*') + '$') }));
  if (!masks.length) return old;
  return old
    .split('\n')
    .map((line) => masks.find((m) => m.re.test(line))?.line ?? line)
    .join('\n');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A unified diff of a file's content for the plan, with secrets masked.
 * `before` is the host's current content (undefined when the file is absent
 * or too big to fetch).
 */
export function contentDiff(path: string, before: Buffer | undefined, after: string | Secret | Buffer): string | undefined {
  if (Buffer.isBuffer(after)) {
    if (!isText(after) || (before && !isText(before))) return `Binary content differs (${before?.length ?? 0} → ${after.length} bytes)\n`;
    return unified(path, before?.toString('utf8'), after.toString('utf8'));
  }
  if (before && !isText(before)) return `Binary content replaced by text (${before.length} bytes before)\n`;
  const oldText = before?.toString('utf8');
  if (after instanceof Secret) {
    const shownOld = oldText === undefined ? undefined : maskLikeDisplay(oldText, after.display);
    const d = unified(path, shownOld, after.display);
    return d === undefined ? '(sensitive content changed)\n' : hideRemovedLines(d);
  }
  return unified(path, oldText, after);
}

/**
 * In a file that holds secrets, a removed line may carry an old secret berth
 * never knew as one (a changed password on a line that also changed): show
 * that a line went, not what it said. Added and unchanged lines are safe:
 * they come from the masked display text.
 */
function hideRemovedLines(diff: string): string {
  return diff
    .split('\n')
    .map((l) => (l.startsWith('-') && !l.startsWith('--- ') ? '-(old line not shown: this file holds secrets)' : l))
    .join('\n');
}

function unified(path: string, before: string | undefined, after: string): string | undefined {
  if (before === after) return undefined;
  const patch = diff().createTwoFilesPatch(before === undefined ? '/dev/null' : path, path, before ?? '', after, '', '', { context: 3 });
  // drop the "Index:"/"====" preamble some versions add; keep ---/+++ and hunks
  const lines = patch.split('\n');
  const start = lines.findIndex((l) => l.startsWith('--- '));
  const body = lines.slice(start < 0 ? 0 : start).map((l) => l.replace(/\t$/, ''));
  if (body.length > MAX_DIFF_LINES) {
    return [...body.slice(0, MAX_DIFF_LINES), `… ${body.length - MAX_DIFF_LINES} more diff lines`].join('\n') + '\n';
  }
  return body.join('\n');
}

/**
 * A unified diff of `before` → `after` (the real texts, so a changed secret
 * shows as a changed line) printed with the lines of `shownBefore` and
 * `shownAfter`: the same texts with their secrets masked, line for line
 * (see maskSecretValues in git/yaml-edit.ts). `before` undefined: a new file.
 */
export function maskedDiff(path: string, before: string | undefined, after: string, shownBefore: string | undefined, shownAfter: string): string | undefined {
  if (before === after) return undefined;
  const oldLines = (shownBefore ?? '').split('\n');
  const newLines = shownAfter.split('\n');
  if ((before ?? '').split('\n').length !== oldLines.length || after.split('\n').length !== newLines.length) {
    throw new Error('internal: masked text must keep the lines of the real one');
  }
  const patch = diff().structuredPatch(before === undefined ? '/dev/null' : path, path, before ?? '', after, '', '', { context: 3 });
  const body = [`--- ${patch.oldFileName}`, `+++ ${patch.newFileName}`];
  for (const h of patch.hunks) {
    // the unified format's quirk: an empty side names the line before it
    body.push(`@@ -${h.oldLines ? h.oldStart : h.oldStart - 1},${h.oldLines} +${h.newLines ? h.newStart : h.newStart - 1},${h.newLines} @@`);
    let o = h.oldStart - 1;
    let n = h.newStart - 1;
    for (const l of h.lines) {
      if (l.startsWith('\\')) body.push(l);
      else if (l.startsWith('-')) body.push(`-${oldLines[o++] ?? ''}`);
      else if (l.startsWith('+')) body.push(`+${newLines[n++] ?? ''}`);
      else {
        body.push(` ${newLines[n++] ?? ''}`);
        o++;
      }
    }
  }
  if (body.length > MAX_DIFF_LINES) return [...body.slice(0, MAX_DIFF_LINES), `… ${body.length - MAX_DIFF_LINES} more diff lines`].join('\n') + '\n';
  return body.join('\n') + '\n';
}
