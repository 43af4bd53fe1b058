import { hostname } from 'node:os';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { Session, Transport } from '../types.js';

export interface HostLock {
  /** A message about a stale lock that was found and cleared, if any. */
  staleNote?: string;
  release(): Promise<void>;
}

/**
 * Takes the host's apply lock: `flock` on /run/lock/berth.lock, held by a
 * command whose stdin stays open for the whole apply. If berth dies, SSH
 * drops, the command sees EOF or is killed, and the kernel releases the lock:
 * a lock can never outlive its run. The holder's pid and boot id sit beside
 * it, so a waiting run can say who holds it and a new run can say that the
 * previous one died without finishing.
 */
export async function acquireLock(transport: Transport, opts: { timeoutSec: number; become: boolean; onWait?: (holder: string) => void }): Promise<HostLock> {
  const who = shq(`controller=${hostname()} pid=${process.pid}`);
  const script = [
    'd=/run/lock; [ -d "$d" ] && [ -w "$d" ] || d=/tmp',
    'f="$d/berth.lock"',
    'exec 9>>"$f" || { echo "BERTH-LOCK-ERROR cannot open $f"; exit 1; }',
    'if ! flock -n 9; then',
    '  echo "BERTH-LOCK-BUSY $(cat "$f.info" 2>/dev/null)"',
    `  flock -w ${Math.max(0, Math.floor(opts.timeoutSec))} 9 || { echo BERTH-LOCK-TIMEOUT; exit 75; }`,
    'fi',
    // a holder record left behind means the previous run died while holding the lock
    'if [ -s "$f.info" ]; then echo "BERTH-LOCK-STALE $(cat "$f.info")"; fi',
    `printf '%s\\n' "remote_pid=$$ boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) since=$(date -u +%Y-%m-%dT%H:%M:%SZ) "${who} > "$f.info"`,
    'echo BERTH-LOCK-HELD',
    'cat >/dev/null',
    'rm -f "$f.info"',
  ].join('\n');
  const session: Session = await transport.session(script, { become: opts.become });
  return await new Promise<HostLock>((resolve, reject) => {
    let stale: string | undefined;
    let busy: string | undefined;
    session.onLine((line) => {
      if (line.startsWith('BERTH-LOCK-BUSY')) {
        busy = line.slice('BERTH-LOCK-BUSY'.length).trim() || 'another berth run';
        if (opts.timeoutSec > 0) opts.onWait?.(busy);
      } else if (line.startsWith('BERTH-LOCK-STALE')) {
        stale = line.slice('BERTH-LOCK-STALE'.length).trim();
      } else if (line.startsWith('BERTH-LOCK-HELD')) {
        resolve({
          staleNote: stale ? `cleared a stale lock left by a run that died (${stale})` : undefined,
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
        } else {
          reject(new BerthError(`could not take the apply lock (exit ${code})`, { host: transport.host }));
        }
      },
      (e: unknown) => reject(e),
    );
  });
}
