import { hostname } from 'node:os';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { Session, Transport } from '../types.js';

export interface HostLock {
  /** A message about a stale lock that was found and cleared, if any. */
  staleNote?: string;
  /** A message when the lock waited for commands a dead run left running. */
  inflightNote?: string;
  release(): Promise<void>;
}

// The lock lives in /run/lock (gone at reboot), or /tmp where that is not writable.
const LOCK_DIR = 'd=/run/lock; [ -d "$d" ] && [ -w "$d" ] || d=/tmp';

/**
 * Takes the host's apply lock: `flock` on /run/lock/berth.lock, held by a
 * command whose stdin stays open for the whole apply. If berth dies, SSH
 * drops, the command sees EOF or is killed, and the kernel releases the lock:
 * a lock can never outlive its run. The holder's pid and boot id sit beside
 * it (berth.lock.info), so a waiting run can say who holds it, and a new run
 * that finds the record of a holder that never cleaned up says so, naming
 * the run and why it is stale (its process is gone, or the host rebooted).
 *
 * A command berth started on the host does not die with berth: sshd leaves
 * it running. Every command of an apply holds berth.lock.run shared while it
 * runs (see inflightGuard), so a new run, once it holds the lock, first waits
 * (within the same --lock-timeout) until the commands of a dead run are done:
 * two applies' changes never run at the same time.
 */
export async function acquireLock(transport: Transport, opts: { timeoutSec: number; become: boolean; onWait?: (holder: string) => void }): Promise<HostLock> {
  const who = shq(`controller=${hostname()} pid=${process.pid}`);
  const wait = Math.max(0, Math.floor(opts.timeoutSec));
  const script = [
    LOCK_DIR,
    'f="$d/berth.lock"',
    'exec 9>>"$f" || { echo "BERTH-LOCK-ERROR cannot open $f"; exit 1; }',
    'if ! flock -n 9; then',
    '  echo "BERTH-LOCK-BUSY $(cat "$f.info" 2>/dev/null)"',
    `  flock -w ${wait} 9 || { echo BERTH-LOCK-TIMEOUT; exit 75; }`,
    'fi',
    'boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)',
    // a holder record left behind means the previous run died while holding the lock
    'if [ -s "$f.info" ]; then',
    '  info=$(head -n 1 "$f.info")',
    '  pid=$(printf "%s\\n" "$info" | sed -n "s/^remote_pid=\\([0-9]*\\) .*/\\1/p")',
    '  was=$(printf "%s\\n" "$info" | sed -n "s/.* boot_id=\\([^ ]*\\) .*/\\1/p")',
    '  if [ -n "$was" ] && [ "$was" != "$boot" ]; then why=rebooted',
    '  elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then why=alive',
    '  else why=gone; fi',
    '  echo "BERTH-LOCK-STALE why=$why $info"',
    'fi',
    // commands a dead run left running hold berth.lock.run shared: wait for them
    'r="$f.run"',
    '[ -e "$r" ] || { : >> "$r" && chmod 0644 "$r"; } || { echo "BERTH-LOCK-ERROR cannot create $r"; exit 1; }',
    'exec 7<"$r"',
    'if ! flock -n -x 7; then',
    '  echo BERTH-LOCK-INFLIGHT',
    `  flock -w ${wait} -x 7 || { echo BERTH-LOCK-INFLIGHT-TIMEOUT; exit 76; }`,
    '  echo BERTH-LOCK-INFLIGHT-DONE',
    'fi',
    'flock -u 7; exec 7<&-',
    `printf '%s\\n' "remote_pid=$$ boot_id=$boot since=$(date -u +%Y-%m-%dT%H:%M:%SZ) "${who} > "$f.info"`,
    'echo BERTH-LOCK-HELD',
    'cat >/dev/null',
    'rm -f "$f.info"',
  ].join('\n');
  const session: Session = await transport.session(script, { become: opts.become });
  return await new Promise<HostLock>((resolve, reject) => {
    let stale: string | undefined;
    let busy: string | undefined;
    let inflight: 'waiting' | 'done' | undefined;
    session.onLine((line) => {
      if (line.startsWith('BERTH-LOCK-BUSY')) {
        busy = line.slice('BERTH-LOCK-BUSY'.length).trim() || 'another berth run';
        if (opts.timeoutSec > 0) opts.onWait?.(busy);
      } else if (line.startsWith('BERTH-LOCK-STALE')) {
        stale = staleMessage(line.slice('BERTH-LOCK-STALE'.length).trim());
      } else if (line === 'BERTH-LOCK-INFLIGHT') {
        inflight = 'waiting';
        if (opts.timeoutSec > 0) opts.onWait?.('commands of an earlier apply that are still running');
      } else if (line === 'BERTH-LOCK-INFLIGHT-DONE') {
        inflight = 'done';
      } else if (line.startsWith('BERTH-LOCK-HELD')) {
        resolve({
          staleNote: stale,
          inflightNote: inflight === 'done' ? 'waited for commands an earlier apply (which died) left running on the host' : undefined,
          release: async () => {
            session.end();
            await session.done;
          },
        });
      }
    });
    session.done.then(
      (code) => {
        if (code === 75) {
          reject(
            new BerthError(`host is locked by another berth apply (${busy ?? 'unknown holder'})`, {
              host: transport.host,
              hint: opts.timeoutSec > 0 ? `still locked after ${opts.timeoutSec}s` : 'wait for it, or pass --lock-timeout 300 to wait up to 5 minutes',
            }),
          );
        } else if (code === 76) {
          reject(
            new BerthError('host is busy: commands of an earlier berth apply (which died) are still running on it', {
              host: transport.host,
              hint: opts.timeoutSec > 0 ? `still running after ${opts.timeoutSec}s` : 'pass --lock-timeout 300 to wait up to 5 minutes for them',
            }),
          );
        } else {
          reject(new BerthError(`could not take the apply lock (exit ${code})`, { host: transport.host }));
        }
      },
      (e: unknown) => reject(e),
    );
  });
}

/** "why=gone remote_pid=… boot_id=… since=… controller=… pid=…" → the note shown to the user. */
export function staleMessage(line: string): string {
  const why = /^why=(\w+)\s*/.exec(line);
  const info = why ? line.slice(why[0].length) : line;
  const field = (k: string) => new RegExp(`(?:^|\\s)${k}=(\\S+)`).exec(info)?.[1];
  const run = [field('controller') && `berth pid ${field('pid') ?? '?'} on ${field('controller')}`, field('since') && `since ${field('since')}`].filter(Boolean).join(', ');
  const reason =
    why?.[1] === 'rebooted'
      ? `the host rebooted since (boot id ${field('boot_id')})`
      : why?.[1] === 'alive'
        ? `its lock process ${field('remote_pid')} no longer holds the lock`
        : `its lock process ${field('remote_pid') ?? '?'} on the host is gone`;
  return `cleared a stale host lock: the apply that held it (${run || info}) died without releasing it; ${reason}`;
}

/**
 * Wraps a script an apply runs on the host so that it holds berth.lock.run
 * shared while it runs (see acquireLock). The script runs in a child shell
 * that does not inherit the lock's descriptor, so a daemon it starts never
 * holds the lock. Where the file cannot be opened the script runs unguarded.
 */
export function inflightGuard(script: string): string {
  return [LOCK_DIR, 'if [ -f "$d/berth.lock.run" ] && [ -r "$d/berth.lock.run" ]; then exec 8<"$d/berth.lock.run"; flock -s 8; fi', `sh -c ${shq(script)} 8<&-`].join('\n');
}
