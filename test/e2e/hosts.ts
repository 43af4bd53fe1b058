// What an e2e test file imports to reach the real test hosts started by
// global-setup.ts. The files run one at a time and share the hosts, so a file
// that changes a host resets it (resetHosts) before or after its tests.
import { inject } from 'vitest';
import { TestHosts, type HostInfo } from '../hosts/testhosts.js';
import './context.js';

let cached: TestHosts | undefined;

/** The harness the global setup started (same prefix, offset and state dir). */
export function testHosts(): TestHosts {
  cached ??= new TestHosts(inject('e2eHarness'));
  return cached;
}

/** All e2e hosts, berthtest1..N, in order. */
export function e2eHosts(): HostInfo[] {
  return inject('e2eHosts');
}

/** One host by 1-based index or machine name. */
export function e2eHost(ref: number | string): HostInfo {
  const name = testHosts().name(ref);
  const host = e2eHosts().find((h) => h.name === name);
  if (!host) throw new Error(`${name} is not among the ${e2eHosts().length} e2e hosts`);
  return host;
}

export function knownHostsFile(): string {
  return inject('e2eKnownHostsFile');
}

export function keyFile(): string {
  return inject('e2eKeyFile');
}

/** Throws away the named hosts' changes and boots them fresh (~1-3 s). */
export async function resetHosts(...names: string[]): Promise<void> {
  for (const n of names) e2eHost(n);
  await testHosts().reset(...names);
}
