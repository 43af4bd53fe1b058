// Small pieces shared by the ssh and local transports.

import { constants as osConstants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { shq } from '../util/shell.js';
import type { Session } from '../types.js';

/** A Session that also exposes what the command wrote to stderr so far (for error messages). */
export interface TransportSession extends Session {
  readonly stderr: string;
}

/** `sh -c <script>`, prefixed with `sudo -n -H --` when root is needed and the login user is not root. */
export function wrapScript(script: string, sudo: boolean): string {
  const inner = `sh -c ${shq(script)}`;
  return sudo ? `sudo -n -H -- ${inner}` : inner;
}

/** The exit code a shell reports for a command killed by `signal` (128 + number). */
export function signalExitCode(signal: string | undefined | null): number {
  if (!signal) return 255;
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`) as keyof typeof osConstants.signals;
  const n = osConstants.signals[name];
  return typeof n === 'number' ? 128 + n : 255;
}

export function toBuffer(data: string | Buffer): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/**
 * Splits a byte stream into lines (utf8-safe across chunk boundaries) and
 * hands them to subscribers; lines that arrive before anyone subscribes are
 * kept and replayed to the first subscriber.
 */
export class LineFeed {
  readonly #decoder = new StringDecoder('utf8');
  #partial = '';
  readonly #backlog: string[] = [];
  readonly #subscribers: ((line: string) => void)[] = [];

  push(chunk: Buffer): void {
    this.#partial += this.#decoder.write(chunk);
    let i: number;
    while ((i = this.#partial.indexOf('\n')) >= 0) {
      this.#emit(this.#partial.slice(0, i).replace(/\r$/, ''));
      this.#partial = this.#partial.slice(i + 1);
    }
  }

  /** Delivers a last line without a trailing newline, if any. */
  flush(): void {
    this.#partial += this.#decoder.end();
    if (this.#partial !== '') this.#emit(this.#partial.replace(/\r$/, ''));
    this.#partial = '';
  }

  subscribe(cb: (line: string) => void): void {
    this.#subscribers.push(cb);
    for (const line of this.#backlog.splice(0)) cb(line);
  }

  #emit(line: string): void {
    if (this.#subscribers.length === 0) {
      this.#backlog.push(line);
      return;
    }
    for (const cb of this.#subscribers) {
      try {
        cb(line);
      } catch {
        // a subscriber's bug must not break the stream
      }
    }
  }
}

/** Counting semaphore (bounded concurrent channels on one connection). */
export class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  async acquire(): Promise<() => void> {
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
