// What the e2e global setup hands to the test files (vitest provide/inject),
// and the fixed layout of the e2e hosts. No vitest runtime import here: the
// global setup runs in vitest's main process, the tests in workers.
import type { HostInfo } from '../hosts/testhosts.js';

/** A TCP/UDP listening socket as `ss -lntupH` shows it. */
export interface Listener {
  proto: string;
  local: string;
  pids: number[];
}

export interface E2EHarnessConfig {
  prefix: string;
  addrOffset: number;
  stateDir: string;
  cacheDir: string;
}

// Distinct from the demo's and a developer's own hosts (prefix testhost,
// state /tmp/berth-testhosts), so the suite can run beside them.
export const E2E_HARNESS: E2EHarnessConfig = {
  prefix: 'berthtest',
  addrOffset: 10, // berthtest1..N on 127.0.0.11..(10+N)
  stateDir: '/tmp/berth-e2e',
  cacheDir: '/var/cache/berth-testhosts',
};

/**
 * E2E_HARNESS, or another set of hosts named by BERTH_E2E_PREFIX,
 * BERTH_E2E_OFFSET and BERTH_E2E_STATE: two people's e2e runs on one machine
 * can then use disjoint hosts instead of waiting for each other.
 */
export function e2eHarnessFromEnv(env: NodeJS.ProcessEnv = process.env): E2EHarnessConfig {
  const offset = env.BERTH_E2E_OFFSET === undefined ? E2E_HARNESS.addrOffset : Number(env.BERTH_E2E_OFFSET);
  if (!Number.isInteger(offset) || offset < 1 || offset > 250) {
    throw new Error(`BERTH_E2E_OFFSET must be an integer in 1..250, got ${env.BERTH_E2E_OFFSET}`);
  }
  return {
    prefix: env.BERTH_E2E_PREFIX ?? E2E_HARNESS.prefix,
    addrOffset: offset,
    stateDir: env.BERTH_E2E_STATE ?? E2E_HARNESS.stateDir,
    cacheDir: E2E_HARNESS.cacheDir,
  };
}

export const DEFAULT_E2E_HOSTS = 6;

declare module 'vitest' {
  export interface ProvidedContext {
    e2eHarness: E2EHarnessConfig;
    e2eHosts: HostInfo[];
    e2eKnownHostsFile: string;
    e2eKeyFile: string;
    e2eStateDir: string;
    /** Non-loopback listeners on this machine before the hosts started. */
    e2eListenersBefore: Listener[];
  }
}
