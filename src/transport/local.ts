// Local transport: the same contract as ssh, for `berth_connection: local`
// (the machine berth runs on). Scripts run under `sh -c`, as root through
// `sudo -n` only when become is asked and berth is not already root.

import { Readable } from 'node:stream';
import type { execa as Execa } from 'execa';
import type { ExecOptions, ExecResult, Transport, TransportStats } from '../types.js';
import { BerthError } from '../util/errors.js';
import { LineFeed, signalExitCode, toBuffer, type TransportSession } from './common.js';

export interface LocalOptions {
  /** Default for ExecOptions.become. */
  become?: boolean;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

// execa is loaded on first use: most runs never touch the local transport, and it is one of berth's slowest imports
let execaFn: typeof Execa | undefined;
const loadExeca = async (): Promise<typeof Execa> => (execaFn ??= (await import('execa')).execa);

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

export class LocalTransport implements Transport {
  readonly host: string;
  /** A local transport opens no network connections: `connections` stays 0. */
  readonly stats: TransportStats = { connections: 0, roundTrips: 0 };
  readonly #become: boolean;
  #closed = false;
  /** end() of every session still running. */
  readonly #sessions = new Set<() => void>();

  constructor(host = 'localhost', opts: LocalOptions = {}) {
    this.host = host;
    this.#become = opts.become ?? false;
  }

  #argv(script: string, become: boolean | undefined): [string, string[]] {
    const sudo = (become ?? this.#become) && !isRoot();
    return sudo ? ['sudo', ['-n', '-H', '--', 'sh', '-c', script]] : ['sh', ['-c', script]];
  }

  #checkOpen(): void {
    if (this.#closed) throw new BerthError(`the local transport for ${this.host} is already closed`, { host: this.host });
  }

  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.#checkOpen();
    this.stats.roundTrips++;
    const [file, args] = this.#argv(script, opts.become);
    const timed = opts.timeoutMs !== undefined && opts.timeoutMs > 0;
    const child = (await loadExeca())(file, args, {
      input: opts.stdin === undefined ? '' : opts.stdin instanceof Readable ? opts.stdin : toBuffer(opts.stdin),
      encoding: 'buffer',
      stripFinalNewline: false,
      reject: false,
      maxBuffer: 1024 * 1024 * 1024,
      // with a timeout: its own process group, so the timeout ends the whole
      // tree (a `sleep` left holding stdout open would keep us waiting);
      // without one it stays in ours and dies with berth on Ctrl-C
      detached: timed,
    });
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (timed) {
      timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid, 'SIGTERM');
        setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2000).unref();
      }, opts.timeoutMs);
    }
    const r = await child;
    if (timer) clearTimeout(timer);
    if (timedOut) {
      throw new BerthError(`command timed out after ${((opts.timeoutMs ?? 0) / 1000).toFixed(1)} s on host ${this.host}`, { host: this.host });
    }
    const stdout = Buffer.from(r.stdout).toString('utf8');
    const stderr = Buffer.from(r.stderr).toString('utf8');
    if (r.exitCode === undefined && !r.signal) {
      const cause = r.cause as Error | undefined;
      throw new BerthError(`cannot run ${file} on host ${this.host}: ${cause?.message ?? r.shortMessage ?? 'spawn failed'}`, {
        host: this.host,
        cause,
      });
    }
    const code = r.exitCode ?? signalExitCode(r.signal);
    return { stdout, stderr, code };
  }

  async session(script: string, opts: ExecOptions = {}): Promise<TransportSession> {
    this.#checkOpen();
    this.stats.roundTrips++;
    const [file, args] = this.#argv(script, opts.become);
    const child = (await loadExeca())(file, args, {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
    });
    const feed = new LineFeed();
    const err: Buffer[] = [];
    let errLen = 0;
    child.stdout.on('data', (b: Buffer) => feed.push(b));
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < 64 * 1024) {
        err.push(b);
        errLen += b.length;
      }
    });
    child.stdin.on('error', () => {
      // EPIPE when the command exited before reading: its exit code tells
    });
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      this.#sessions.delete(end);
      child.stdin.end();
    };
    this.#sessions.add(end);
    const done = (async (): Promise<number> => {
      const r = await child;
      this.#sessions.delete(end);
      feed.flush();
      if (r.exitCode === undefined && !r.signal) {
        const cause = r.cause as Error | undefined;
        throw new BerthError(`cannot run ${file} on host ${this.host}: ${cause?.message ?? 'spawn failed'}`, { host: this.host, cause });
      }
      return r.exitCode ?? signalExitCode(r.signal);
    })();
    done.catch(() => {
      // surfaced through `done`
    });
    // report spawn failures (no such program) as the session call's own error
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => reject(new BerthError(`cannot run ${file} on host ${this.host}: ${e.message}`, { host: this.host, cause: e })));
    });
    await Promise.race([spawned, done.then(() => undefined)]);
    if (opts.stdin !== undefined && !(opts.stdin instanceof Readable)) child.stdin.write(toBuffer(opts.stdin));
    return {
      onLine: (cb) => feed.subscribe(cb),
      done,
      end,
      get stderr() {
        return Buffer.concat(err).toString('utf8');
      },
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    // sessions still running (a lock holder) see EOF, like an SSH connection closing
    for (const end of [...this.#sessions]) end();
  }
}
