// Applying a host's changes in as few round trips as the changes allow.
//
// A module marked `batchable` applies a change only through commands whose
// output it does not read (modules/common.ts `run`). Its apply step is run
// once against a recording transport, which keeps the commands and their
// input instead of sending them. Consecutive such changes (same become) then
// go to the host as one script on one channel: each change's commands run as
// before, in order, in a subshell with their own input (a heredoc, or
// /dev/null), and the script stops at the first change that fails. Every
// change reports its exit code in a frame marked with a per-run nonce, as it
// finishes, so progress stays per change, and a failed change gets the same
// error as when it ran alone. Writes stay atomic: each change's own script
// (temp file + rename) is unchanged.
//
//   <nonce> S <i>\n<stdout of change i>\n<nonce> E <i> <code>\n[<stderr, when code != 0>\n<nonce> Z <i>\n]

import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { getModule } from '../modules/registry.js';
import { runFailure } from '../modules/common.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { ApplyOutcome, Change, ExecOptions, ExecResult, ModuleApplyContext, ModuleContext, Session, Transport } from '../types.js';

/** One command a change sends, with what it gets on stdin. */
export interface Step {
  script: string;
  stdin?: Buffer;
}

/** Input bigger than this goes through the change's own round trip (a heredoc holds it in the script). */
const MAX_STEP_INPUT = 1024 * 1024;
/** A script holding more input than this is cut into several. */
const MAX_BATCH_INPUT = 8 * 1024 * 1024;

class NotBatchable extends Error {}

/** A transport that only records what it is asked to run (the commands' output must not matter). */
class Recorder implements Transport {
  readonly stats = { connections: 0, roundTrips: 0 };
  readonly steps: Step[] = [];
  readonly becomes = new Set<boolean>();
  constructor(
    readonly host: string,
    private readonly become: boolean,
  ) {}

  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (opts.stdin instanceof Readable) throw new NotBatchable('streamed input');
    const stdin = opts.stdin === undefined ? undefined : Buffer.isBuffer(opts.stdin) ? opts.stdin : Buffer.from(opts.stdin, 'utf8');
    if (stdin && stdin.length > MAX_STEP_INPUT) throw new NotBatchable('large input');
    if (opts.timeoutMs !== undefined) throw new NotBatchable('timeout');
    this.becomes.add(opts.become ?? this.become);
    this.steps.push({ script, ...(stdin ? { stdin } : {}) });
    return { stdout: '', stderr: '', code: 0 };
  }

  session(): Promise<Session> {
    throw new NotBatchable('session');
  }

  async close(): Promise<void> {
    // nothing was opened
  }
}

type Payload = { become: boolean; data: unknown; ctx: ModuleContext };

/** Applies one change on its own (its own round trips); a module may return what the state record should remember. */
export async function applyChange(c: Change, t: Transport): Promise<ApplyOutcome | void> {
  const mod = getModule(c.module)!;
  const p = c.payload as Payload;
  const ctx: ModuleApplyContext = { ...p.ctx, transport: t, become: p.become };
  return mod.apply({ resource: c.resource, action: c.action, attrs: c.attrs, payload: p.data }, ctx);
}

/** The commands a batchable change would send, or undefined when it must run on its own. */
export async function recordChange(c: Change, host: string): Promise<{ steps: Step[]; become: boolean } | undefined> {
  const mod = getModule(c.module);
  if (!mod?.batchable) return undefined;
  const p = c.payload as Payload;
  const rec = new Recorder(host, p.become);
  try {
    await mod.apply({ resource: c.resource, action: c.action, attrs: c.attrs, payload: p.data }, { ...p.ctx, transport: rec, become: p.become });
  } catch (e) {
    if (e instanceof NotBatchable) return undefined;
    throw e;
  }
  if (rec.becomes.size > 1) return undefined;
  return { steps: rec.steps, become: rec.becomes.size ? [...rec.becomes][0]! : p.become };
}

function base64Lines(b: Buffer): string[] {
  const s = b.toString('base64');
  const out: string[] = [];
  for (let i = 0; i < s.length; i += 76) out.push(s.slice(i, i + 76));
  return out;
}

/** The script that runs every change's steps in order and stops at the first that fails. */
export function batchApplyScript(changes: readonly Step[][], nonce: string): string {
  const lines = ['__berth_f=$(mktemp) || exit 1', `trap 'rm -f "$__berth_f"' EXIT`];
  changes.forEach((steps, i) => {
    // a subshell, not { }: dash drops the </dev/null of a ( ) inside a redirected { } group
    lines.push(`printf '%s\\n' '${nonce} S ${i}'`, '(');
    if (!steps.length) lines.push(':');
    steps.forEach((s, k) => {
      if (s.stdin === undefined) {
        lines.push(`( eval ${shq(s.script)} ) </dev/null`);
      } else {
        const eof = `${nonce}_D${i}_${k}`;
        lines.push(`base64 -d <<'${eof}' | ( eval ${shq(s.script)} )`, ...base64Lines(s.stdin), eof);
      }
      // not `a && b`: inside an AND-OR list the shell ignores the steps' own `set -e`
      if (k < steps.length - 1) lines.push('__berth_s=$?; [ "$__berth_s" = 0 ] || exit "$__berth_s"');
    });
    lines.push(
      `) 2>"$__berth_f" </dev/null`,
      '__berth_c=$?',
      `printf '\\n%s %s\\n' '${nonce} E ${i}' "$__berth_c"`,
      `if [ "$__berth_c" != 0 ]; then cat "$__berth_f"; printf '\\n%s\\n' '${nonce} Z ${i}'; exit 0; fi`,
    );
  });
  return lines.join('\n') + '\n';
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Follows the batch's output line by line and reports each change's outcome as its frame completes. */
export class FrameReader {
  #cur: { i: number; out: string[]; err?: string[]; code?: number } | undefined;
  constructor(
    private readonly nonce: string,
    private readonly onDone: (i: number, o: Outcome) => void,
  ) {}

  line(l: string): void {
    const n = this.nonce;
    const cur = this.#cur;
    if (l.startsWith(`${n} S `)) {
      this.#cur = { i: Number(l.slice(n.length + 3)), out: [] };
      return;
    }
    if (!cur) return;
    if (cur.code === undefined && l.startsWith(`${n} E ${cur.i} `)) {
      cur.code = Number(l.slice(`${n} E ${cur.i} `.length));
      // stdout ends with the newline printed before the marker
      if (cur.out.length && cur.out[cur.out.length - 1] === '') cur.out.pop();
      if (cur.code === 0) {
        this.#cur = undefined;
        this.onDone(cur.i, { code: 0, stdout: cur.out.join('\n'), stderr: '' });
      } else {
        cur.err = [];
      }
      return;
    }
    if (cur.code !== undefined && l === `${n} Z ${cur.i}`) {
      const err = cur.err ?? [];
      if (err.length && err[err.length - 1] === '') err.pop();
      this.#cur = undefined;
      this.onDone(cur.i, { code: cur.code, stdout: cur.out.join('\n'), stderr: err.join('\n') });
      return;
    }
    (cur.code === undefined ? cur.out : cur.err!).push(l);
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // a change after a failed one is never awaited (the engine skips it)
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * A host's changes, applied in order: `apply(c)` is called for each change in
 * turn, and the first call of a run of batchable changes sends the whole run.
 */
export class HostApplier {
  readonly #pending = new Map<string, Promise<ApplyOutcome | void>>();

  /**
   * `transportFor(i)`: the transport change i (0-based) is applied through (a
   * run of batched changes uses its first change's); `mayBatch(i)`: false
   * keeps change i out of any batch.
   */
  constructor(
    private readonly changes: readonly Change[],
    private readonly transportFor: (index: number) => Transport,
    private readonly mayBatch: (index: number) => boolean = () => true,
  ) {}

  apply(c: Change): Promise<ApplyOutcome | void> {
    let p = this.#pending.get(c.id);
    if (!p) {
      p = this.#start(c);
      this.#pending.set(c.id, p);
    }
    return p;
  }

  async #start(first: Change): Promise<ApplyOutcome | void> {
    const from = this.changes.indexOf(first);
    const t = this.transportFor(from);
    const run: { change: Change; steps: Step[] }[] = [];
    let become: boolean | undefined;
    let input = 0;
    for (let j = from; j >= 0 && j < this.changes.length; j++) {
      const c = this.changes[j]!;
      if (!this.mayBatch(j)) break;
      let rec: Awaited<ReturnType<typeof recordChange>>;
      try {
        rec = await recordChange(c, t.host);
      } catch (e) {
        // its apply fails before sending anything: that is its own failure, when its turn comes
        if (j === from) throw e;
        break;
      }
      if (!rec || (become !== undefined && rec.become !== become)) break;
      const size = rec.steps.reduce((n, s) => n + (s.stdin?.length ?? 0), 0);
      if (run.length && input + size > MAX_BATCH_INPUT) break;
      become = rec.become;
      input += size;
      run.push({ change: c, steps: rec.steps });
    }
    if (run.length < 2) return applyChange(first, t);
    const waits = run.map(() => deferred());
    run.slice(1).forEach((r, k) => this.#pending.set(r.change.id, waits[k + 1]!.promise));
    void this.#send(t, run, become!, waits);
    return waits[0]!.promise;
  }

  async #send(t: Transport, run: { change: Change; steps: Step[] }[], become: boolean, waits: Deferred[]): Promise<void> {
    const host = t.host;
    const nonce = `berth-${randomBytes(12).toString('hex')}`;
    let open = 0; // the first change whose frame has not completed
    let failed = false;
    const reader = new FrameReader(nonce, (i, o) => {
      if (i !== open) return; // frames arrive in order; anything else is not ours
      open++;
      if (o.code === 0) waits[i]!.resolve();
      else {
        failed = true;
        waits[i]!.reject(runFailure(run[i]!.change.resource, host, o));
      }
    });
    const rest = (e: unknown) => {
      for (; open < waits.length; open++) waits[open]!.reject(e);
    };
    try {
      const s = await t.session('exec sh -s', { stdin: batchApplyScript(run.map((r) => r.steps), nonce), become });
      s.onLine((l) => reader.line(l));
      s.end();
      const code = await s.done;
      if (failed) rest(new BerthError('not run: an earlier change failed', { host }));
      else if (open < waits.length) {
        // the script ended before this change's frame did: it died, or could not start
        const why = ((s as Session & { stderr?: string }).stderr ?? '').trim().split('\n').slice(-3).join(' | ');
        rest(new BerthError(`${run[open]!.change.resource}: failed (the script of changes ended with exit ${code}${why ? `: ${why}` : ''})`, { host }));
      }
    } catch (e) {
      rest(e instanceof BerthError ? e : new BerthError(`${run[open]?.change.resource ?? 'apply'}: ${(e as Error)?.message ?? String(e)}`, { host }));
    }
  }
}
