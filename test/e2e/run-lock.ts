// One e2e run at a time per set of hosts: a second run's setup would
// otherwise stop the first run's hosts under it (it starts from `down`).
import { open, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const WAIT_MS = 20 * 60_000;
const POLL_MS = 2_000;

function alive(pid: number): boolean {
  try {
    // a zombie counts as gone; PID 1 here reaps late
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Takes `${stateDir}.lock`, waiting (bounded) for a live holder; returns the release. */
export async function takeRunLock(stateDir: string): Promise<() => Promise<void>> {
  const path = `${stateDir}.lock`;
  const deadline = Date.now() + WAIT_MS;
  let told = false;
  while (Date.now() < deadline) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        const holder = await readFile(path, 'utf8').catch(() => '');
        if (Number(holder.trim()) === process.pid) await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
      await rm(path, { force: true }); // left by a run that was killed
      continue;
    }
    if (!told) {
      process.stderr.write(
        `[e2e] waiting for the e2e run of pid ${holder} (it holds ${path}); ` +
          'BERTH_E2E_PREFIX/BERTH_E2E_OFFSET/BERTH_E2E_STATE pick other hosts\n',
      );
      told = true;
    }
    await sleep(POLL_MS);
  }
  throw new Error(`gave up after ${WAIT_MS / 60_000} min waiting for ${path}`);
}
