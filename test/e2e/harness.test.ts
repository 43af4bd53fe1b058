// The harness itself: real hosts, reachable only the intended way, isolated
// from each other, and resettable.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, inject, it } from 'vitest';
import { e2eHosts, knownHostsFile, resetHosts, testHosts } from './hosts.js';
import { isLoopback, listenerKey, listListeners, listenHost, owningHost } from './listeners.js';

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

describe('test hosts harness', () => {
  it('every host answers hostname over SSH, host key checked strictly', async () => {
    const th = testHosts();
    expect(e2eHosts().length).toBeGreaterThanOrEqual(2);
    const results = await Promise.all(e2eHosts().map((h) => th.ssh(h.name, 'hostname')));
    results.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(e2eHosts()[i]?.name);
    });
    const opts = th.sshOptions().join(' ');
    expect(opts).toContain('StrictHostKeyChecking=yes');
    expect(opts).toContain(`UserKnownHostsFile=${knownHostsFile()}`);
  });

  it('refuses a host whose key is not in known_hosts (the check is real)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-kh-'));
    try {
      const empty = join(dir, 'known_hosts');
      await writeFile(empty, '');
      const th = testHosts();
      const args = th.sshOptions().map((a) => (a.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${empty}` : a));
      const r = await execa('ssh', [...args, `root@${th.address(1)}`, 'true'], { reject: false, timeout: 30_000, stdin: 'ignore' });
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/Host key verification failed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('nsenter exec reaches the host without SSH', async () => {
    const r = await testHosts().exec(2, ['hostname']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(testHosts().name(2));
  });

  it('every socket the hosts listen on is on 127.0.0.0/8', async () => {
    const { prefix } = inject('e2eHarness');
    const now = await listListeners();
    const owned = now.flatMap((l) => l.pids.map((pid) => ({ l, host: owningHost(pid, prefix) })));
    const byHosts = owned.filter((o) => o.host !== undefined);
    // sshd of each host, attributed to that host: the ownership check works
    for (const h of e2eHosts()) {
      expect(byHosts.some((o) => o.host === h.name && o.l.local === `${h.address}:22`), `${h.name} sshd`).toBe(true);
    }
    const bad = byHosts.filter((o) => !isLoopback(o.l.local)).map((o) => `${o.host}: ${listenerKey(o.l)}`);
    expect(bad).toEqual([]);
    // Nothing new on a non-loopback address since before the hosts started,
    // unless it is plainly some other (non-host) process's.
    const before = new Set(inject('e2eListenersBefore').map(listenerKey));
    const added = now
      .filter((l) => !isLoopback(l.local) && !before.has(listenerKey(l)))
      .filter((l) => l.pids.length === 0 || l.pids.some((pid) => owningHost(pid, prefix) !== undefined))
      .map(listenerKey);
    expect(added).toEqual([]);
    expect(listenHost('[::1]:22')).toBe('::1');
    expect(isLoopback('0.0.0.0:22')).toBe(false);
    expect(isLoopback('*:68')).toBe(false);
  });

  it('a file written on one host is absent on another, and reset wipes it', async () => {
    const th = testHosts();
    const [a, b] = e2eHosts();
    if (!a || !b) throw new Error('need two hosts');
    const path = `/root/isolation-${process.pid}-${Date.now()}`;
    const w = await th.ssh(a.name, `echo marker > ${path} && cat ${path}`);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout.trim()).toBe('marker');
    expect(await exists(join(th.upperDir(a.name), path))).toBe(true);

    const onB = await th.ssh(b.name, `test -e ${path}`);
    expect(onB.code).toBe(1);
    expect(await exists(join(th.upperDir(b.name), path))).toBe(false);

    await resetHosts(a.name);
    const after = await th.ssh(a.name, `hostname; test -e ${path}; echo "exists=$?"`);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toBe(`${a.name}\nexists=1\n`);
    expect(await exists(join(th.upperDir(a.name), path))).toBe(false);
    const running = await th.ssh(a.name, 'systemctl is-system-running --wait');
    expect(running.stdout.trim()).toBe('running');
  });
});
