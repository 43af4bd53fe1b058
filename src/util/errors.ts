import type { SourcePos } from '../types.js';
import { redact } from '../secrets/secret.js';

/**
 * A mistake the user can act on: printed as one line, exit code 1, no stack
 * trace (unless --debug). Format:
 *   file:line:col: key.path: what is wrong (hint)
 */
export class BerthError extends Error {
  readonly pos?: SourcePos;
  readonly keyPath?: string;
  readonly hint?: string;
  /** The host the error belongs to, if any. */
  readonly host?: string;

  constructor(message: string, opts: { pos?: SourcePos; keyPath?: string; hint?: string; host?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BerthError';
    this.pos = opts.pos;
    this.keyPath = opts.keyPath;
    this.hint = opts.hint;
    this.host = opts.host;
  }

  /** The one line shown to the user (secrets scrubbed). */
  format(): string {
    const parts: string[] = [];
    if (this.pos) parts.push(formatPos(this.pos));
    // transport errors already name their host; don't say it twice
    if (this.host && !this.pos && !this.message.includes(this.host)) parts.push(this.host);
    if (this.keyPath) parts.push(this.keyPath);
    let msg = this.message;
    if (this.hint) msg += ` (${this.hint})`;
    parts.push(msg);
    // one line, and no control characters from spec values (a terminal would act on escape sequences)
    return redact(parts.join(': ').replace(/\s*\n\s*/g, ' ')).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  }
}

/** `file:line:col`, as much of it as is known. */
export function formatPos(pos: SourcePos): string {
  if (pos.line === undefined) return pos.file;
  return pos.col === undefined ? `${pos.file}:${pos.line}` : `${pos.file}:${pos.line}:${pos.col}`;
}

export function isBerthError(e: unknown): e is BerthError {
  return e instanceof BerthError;
}
