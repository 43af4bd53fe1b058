// Starts the real test hosts once for the whole e2e project and stops them
// afterwards. Missing prerequisites fail the run: e2e is never skipped silently.
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';
import { TestHosts } from '../hosts/testhosts.js';
import { DEFAULT_E2E_HOSTS, e2eHarnessFromEnv } from './context.js';
import { isLoopback, listListeners } from './listeners.js';
import { takeRunLock } from './run-lock.js';

const SKIP_NOTICE = [
  '',
  '#'.repeat(72),
  '#  BERTH_SKIP_E2E=1: the end-to-end tests against real hosts did NOT run.',
  '#'.repeat(72),
  '',
].join('\n');

function e2eSkipped(): boolean {
  return process.env.BERTH_SKIP_E2E === '1';
}

function printSkipNotice(): void {
  process.stderr.write(`${SKIP_NOTICE}\n`);
}

async function missingPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (the hosts are systemd-nspawn containers)');
  for (const [cmd, pkg] of [
    ['systemd-nspawn', 'systemd-container'],
    ['ssh', 'openssh-client'],
    ['nsenter', 'util-linux'],
    ['ss', 'iproute2'],
  ] as const) {
    const r = await execa('sh', ['-c', `command -v ${cmd}`], { reject: false, timeout: 10_000 });
    if (r.exitCode !== 0) missing.push(`${cmd} (Debian package ${pkg})`);
  }
  return missing;
}

function hostCount(): number {
  const raw = process.env.BERTH_E2E_HOSTS ?? String(DEFAULT_E2E_HOSTS);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 40) {
    throw new Error(`BERTH_E2E_HOSTS must be an integer in 1..40, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (e2eSkipped()) {
    printSkipNotice();
    return undefined;
  }
  const missing = await missingPrerequisites();
  if (missing.length > 0) {
    throw new Error(
      `e2e tests need ${missing.join(', ')}.\n` +
        'Run them as root on Debian 12 after `bash .ci/run` has installed the packages, ' +
        'or set BERTH_SKIP_E2E=1 to skip them knowingly.',
    );
  }
  const n = hostCount();
  const harness = e2eHarnessFromEnv();
  const th = new TestHosts(harness);
  const release = await takeRunLock(th.stateDir);
  try {
    await startHosts(project, th, n);
  } catch (e) {
    // stop whatever did start; `down` keeps the console logs to read
    await th.down().catch(() => undefined);
    await release();
    throw e;
  }
  // Said now, not at teardown: the run's last line is the summary CI reads.
  const keep = process.env.BERTH_E2E_KEEP === '1';
  if (keep) process.stderr.write(`[e2e] BERTH_E2E_KEEP=1: the hosts stay up after the run (${th.stateDir})\n`);

  return async () => {
    try {
      // `down` keeps the state dir (console logs, writable layers) for a post-mortem
      if (!keep) await th.down();
    } finally {
      await release();
    }
  };
}

async function startHosts(project: TestProject, th: TestHosts, n: number): Promise<void> {
  const t0 = Date.now();
  await th.build();
  // Hosts left by an interrupted run would be reused as they are: start clean.
  await th.down({ purge: true });
  const before = (await listListeners()).filter((l) => !isLoopback(l.local));
  const hosts = await th.up(n);
  if (hosts.length !== n) throw new Error(`expected ${n} e2e hosts, the inventory lists ${hosts.length}`);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  process.stderr.write(`[e2e] ${n} hosts up (${hosts[0]?.name}..${hosts[n - 1]?.name}) in ${secs} s\n`);

  project.provide('e2eHarness', { prefix: th.prefix, addrOffset: th.addrOffset, stateDir: th.stateDir, cacheDir: th.cacheDir });
  project.provide('e2eHosts', hosts);
  project.provide('e2eKnownHostsFile', th.knownHostsFile);
  project.provide('e2eKeyFile', th.keyFile);
  project.provide('e2eStateDir', th.stateDir);
  project.provide('e2eListenersBefore', before);
}
