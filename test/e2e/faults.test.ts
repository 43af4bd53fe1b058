// Faults during an apply, on real hosts (issue 8): berth SIGKILLed at exact
// points (the test hook BERTH_TEST_KILL_AT, src/util/fault.ts), the lock
// holder dying with it, a command left running by a dead berth, two applies
// at once, sshd killed on one of five hosts, a full filesystem. After each,
// the next apply must converge: every file exact, the service running the
// new configuration, a plan empty, nothing left behind. While berth runs,
// every target file is watched from outside the host, through its writable
// overlay layer: each version seen must be the old content or the new one.
//
// The results become the "faults" section of docs/RELIABILITY.md (last test).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BERTH_BIN, INVENTORY, SpecDir, buildBerth, json, onHost, removeSpecDirs, show, sleep, waitFor, webHost, type BerthRun } from './berth.js';
import { e2eHost, resetHosts, testHosts } from './hosts.js';
import { checkSection, ratio, type Row } from '../reliability/table.js';

const APP_ENV = '/etc/webapp/app.env';
const INDEX = '/opt/webapp/public/index.html';
const UNIT = '/etc/systemd/system/webapp.service';
const FILES = [APP_ENV, INDEX, UNIT];
const TEMP_DIRS = ['/etc/webapp', '/opt/webapp/public', '/etc/systemd/system', '/var/lib/berth'];

const th = testHosts();
const touched = new Set<string>();
const results = new Map<string, { tried: number; outcome: string; kept: string }>();

/** One case of a fault passed (called at the end of its test, so a failed case records nothing). */
function record(what: string, outcome: string, kept: string): void {
  const r = results.get(what) ?? { tried: 0, outcome, kept };
  r.tried++;
  results.set(what, r);
}

async function reset(...refs: number[]): Promise<string[]> {
  const names = refs.map((r) => th.name(r));
  names.forEach((n) => touched.add(n));
  await resetHosts(...names);
  return names;
}

beforeAll(async () => {
  await buildBerth();
});
afterAll(async () => {
  removeSpecDirs();
  await Promise.all([...touched].map((h) => th.exec(h, ['sh', '-c', 'systemctl stop webapp.service 2>/dev/null; umount /srv/full 2>/dev/null; true'])));
});

// ---------------------------------------------------------------- running berth

interface Killed {
  signal: string | undefined;
  code: number | undefined;
  stdout: string;
  stderr: string;
}

/** `berth apply` that is meant to die: returns how it ended instead of throwing. */
function startApply(spec: SpecDir, env: Record<string, string>, ...args: string[]): ResultPromise {
  return execa('node', [BERTH_BIN, 'apply', '-i', INVENTORY, ...args], {
    cwd: spec.root,
    env: { ...process.env, CI: 'true', BERTH_CI: 'false', NO_COLOR: '1', SSH_AUTH_SOCK: undefined, BERTH_INVENTORY: undefined, ...spec.env, ...env },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 180_000,
    stripFinalNewline: false,
  });
}

async function ended(p: ResultPromise): Promise<Killed> {
  const r = await p;
  return { signal: r.signal ?? undefined, code: r.exitCode ?? undefined, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const showKilled = (k: Killed) => `signal ${k.signal}, code ${k.code}\n--- stdout\n${k.stdout}--- stderr\n${k.stderr}---`;

// ---------------------------------------------------------------- watching files from outside

/**
 * Polls files in the host's writable layer (from this machine, not through
 * the host) and keeps every distinct content it saw. Reading a path that is
 * renamed over gives the old file or the new one, whole; a file written in
 * place would be seen half-written.
 */
class Watcher {
  readonly seen = new Map<string, Set<string>>();
  #stop = false;
  #done: Promise<void>;

  constructor(host: string, paths: string[]) {
    const upper = th.upperDir(host);
    for (const p of paths) this.seen.set(p, new Set());
    this.#done = (async () => {
      for (let i = 0; i < 200_000 && !this.#stop; i++) {
        for (const p of paths) {
          let content: string | undefined;
          try {
            content = readFileSync(join(upper, p), 'latin1');
          } catch {
            content = undefined;
          }
          if (content !== undefined) this.seen.get(p)!.add(content);
        }
        await sleep(2);
      }
    })();
  }

  async stop(): Promise<Map<string, Set<string>>> {
    this.#stop = true;
    await this.#done;
    return this.seen;
  }
}

/** The contents seen that are neither `before` nor `after` (for each path). */
function partials(seen: Map<string, Set<string>>, before: Record<string, string | undefined>, after: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [p, set] of seen) {
    for (const c of set) if (c !== before[p] && c !== after[p]) out.push(`${p}: ${c.length} bytes: ${JSON.stringify(c.slice(0, 80))}`);
  }
  return out;
}

async function contents(host: string, paths = FILES): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const p of paths) {
    const f = join(th.upperDir(host), p);
    out[p] = existsSync(f) ? readFileSync(f, 'latin1') : undefined;
  }
  return out;
}

/** Temporary files berth's atomic writes use, left in the target directories. */
async function litter(host: string): Promise<string[]> {
  const out = await onHost(host, `for d in ${TEMP_DIRS.join(' ')}; do ls -A "$d" 2>/dev/null | sed "s|^|$d/|"; done`);
  return out.split('\n').filter((l) => /\/\.[^/]*\.berth-|\/\.state\.json\./.test(l));
}

// ---------------------------------------------------------------- what converged means

const appEnv = (host: string, address: string, greeting: string) => `# ${host}: managed by berth\nBIND=${address}\nPORT=8080\nGREETING=${greeting}\n`;
const indexHtml = (host: string, greeting: string) => `<h1>${greeting}</h1>\n<p>${host}</p>\n`;

async function service(host: string): Promise<{ active: string; enabled: string; mainStart: string }> {
  const out = await onHost(
    host,
    'echo "$(systemctl is-active webapp.service 2>/dev/null)|$(systemctl is-enabled webapp.service 2>/dev/null)|$(systemctl show -p ExecMainStartTimestampMonotonic --value webapp.service)"',
  );
  const [active, enabled, mainStart] = out.trim().split('|');
  return { active: active ?? '', enabled: enabled ?? '', mainStart: mainStart ?? '' };
}

async function served(host: string, greeting: string): Promise<void> {
  const url = `http://${e2eHost(host).address}:8080/index.html`;
  await waitFor(`${url} to serve "${greeting}"`, async () => {
    const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return r.ok && (await r.text()) === indexHtml(host, greeting) ? true : undefined;
  });
}

/** The webapp role is applied exactly on `host` (files, owners, modes, the running unit), and a plan finds nothing. */
async function expectConverged(spec: SpecDir, host: string, greeting: string): Promise<void> {
  const h = e2eHost(host);
  const c = await contents(host);
  expect(c[APP_ENV], `${host} ${APP_ENV}`).toBe(appEnv(host, h.address, greeting));
  expect(c[INDEX], `${host} ${INDEX}`).toBe(indexHtml(host, greeting));
  expect(c[UNIT], `${host} ${UNIT}`).toContain(`Description=berth e2e web app on ${host}\n`);
  const stat = await onHost(host, `stat -c '%n %U:%G %a' ${APP_ENV} ${INDEX} ${UNIT} /opt/webapp /etc/webapp`);
  expect(stat.trim().split('\n')).toEqual([
    `${APP_ENV} webapp:webapp 640`,
    `${INDEX} webapp:webapp 644`,
    `${UNIT} root:root 644`,
    '/opt/webapp webapp:webapp 750',
    '/etc/webapp root:webapp 750',
  ]);
  const s = await service(host);
  expect(s.active, `${host} webapp.service`).toBe('active');
  expect(s.enabled).toBe('enabled');
  await served(host, greeting);
  expect(await litter(host), `${host}: temporary files left`).toEqual([]);
  const again = await spec.plan('--detailed-exitcode', '-l', host);
  expect(again.code, show(again)).toBe(0);
}

// ---------------------------------------------------------------- 1. SIGKILL at exact points

/**
 * The webapp role on a bare host is 10 changes: group, user, 3 directories,
 * app.env (notifies restart), index.html, the unit, the service, the restart
 * handler; then the state record.
 */
const FIRST_APPLY_POINTS = ['locked', 'planned', 'journaled', 'change:2', 'change:3', 'change:5', 'upload:6', 'change:7', 'upload:8', 'change:9', 'change:10', 'applied', 'recorded'];

describe('berth SIGKILLed during the first apply of a host, at each of 13 points', () => {
  const HOST = 1;

  it.each(FIRST_APPLY_POINTS)('killed at %s: nothing half-written, the next apply converges', async (point) => {
    const [host] = await reset(HOST);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    const watch = new Watcher(host!, FILES);
    const killed = await ended(startApply(spec, { BERTH_TEST_KILL_AT: point }));
    expect(killed.signal, showKilled(killed)).toBe('SIGKILL');
    const afterKill = await contents(host!);

    const rerun = await spec.apply('--lock-timeout', '60');
    const seen = await watch.stop();
    expect(rerun.code, show(rerun)).toBe(0);
    const final = (await contents(host!)) as Record<string, string>;
    // after the kill, each file is absent or whole; while berth ran, never partial
    for (const p of FILES) expect([undefined, final[p]], `${p} right after the kill`).toContain(afterKill[p]);
    const bad = partials(seen, {}, final);
    expect(bad, 'partially written files seen from outside').toEqual([]);
    await expectConverged(spec, host!, 'hello from group_vars');
    // the run that died left no stale lock behind: its lock process saw EOF and cleaned up
    expect(`${rerun.stdout}${rerun.stderr}`).not.toContain('stale');
    record(
      'berth SIGKILLed during the first apply of a host, at 13 points (lock held, planned, journaled, before changes 2, 3, 5, 7, 9, 10, half-way through uploads 6 and 8, applied, recorded)',
      'the next apply converged, then a plan was empty',
      'no partial file seen from outside, no temporary file left, no stale lock',
    );
  });
});

describe('berth SIGKILLed during an update', () => {
  const HOST = 2;

  async function converged(): Promise<{ host: string; spec: SpecDir }> {
    const [host] = await reset(HOST);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    const first = await spec.apply();
    expect(first.code, show(first)).toBe(0);
    spec.setWebVars({ app: { greeting: 'second greeting' } });
    return { host: host!, spec };
  }

  it('half-way through replacing app.env: the old file stays whole until the new one is complete', async () => {
    const { host, spec } = await converged();
    const before = await contents(host);
    const plan = json(await spec.plan('--json'));
    expect(plan.hosts[0]!.changes.map((c) => `${c.action} ${c.resource}`)).toEqual([`update file ${APP_ENV}`, `update file ${INDEX}`, 'run service webapp.service']);
    const watch = new Watcher(host, FILES);
    const killed = await ended(startApply(spec, { BERTH_TEST_KILL_AT: 'upload:1' }));
    expect(killed.signal, showKilled(killed)).toBe('SIGKILL');
    // the host got half of the new app.env and an early end of input: it kept the old file
    await sleep(500);
    expect((await contents(host))[APP_ENV]).toBe(before[APP_ENV]);
    const rerun = await spec.apply('--lock-timeout', '60');
    expect(rerun.code, show(rerun)).toBe(0);
    const seen = await watch.stop();
    const final = (await contents(host)) as Record<string, string>;
    const bad = partials(seen, before, final);
    expect(bad).toEqual([]);
    await expectConverged(spec, host, 'second greeting');
    record('berth SIGKILLed half-way through replacing a file', 'the next apply converged', 'the old file stayed whole until the new one was complete');
  });

  it('between a changed config and its restart handler: the next apply still restarts the service', async () => {
    const { host, spec } = await converged();
    const started = (await service(host)).mainStart;
    const killed = await ended(startApply(spec, { BERTH_TEST_KILL_AT: 'change:3' }));
    expect(killed.signal, showKilled(killed)).toBe('SIGKILL');
    // both files are new, the service still runs the old configuration
    expect((await contents(host))[INDEX]).toBe(indexHtml(host, 'second greeting'));
    expect((await service(host)).mainStart).toBe(started);
    // a plan sees no file to change, but the restart the dead run owed
    const plan = json(await spec.plan('--json'));
    expect(plan.hosts[0]!.changes.map((c) => `${c.action} ${c.resource} ${c.task}`)).toEqual(['run service webapp.service restart']);
    expect(plan.hosts[0]!.changes[0]!.notifiedBy![0]).toMatch(/^a failed apply at /);
    const rerun = await spec.apply('--lock-timeout', '60');
    expect(rerun.code, show(rerun)).toBe(0);
    expect((await service(host)).mainStart, 'the service was restarted').not.toBe(started);
    await expectConverged(spec, host, 'second greeting');
    record('berth SIGKILLed between a change and the handler it notified', 'the next apply ran the handler (restart) it owed', 'the service runs the new configuration');
  });
});

// ---------------------------------------------------------------- 2. stale locks

describe('a stale host lock', () => {
  const HOST = 3;
  const INFO = '/run/lock/berth.lock.info';

  /** An apply of the slow playbook, killed with its lock process on the host, so the lock's record stays behind. */
  async function dieHoldingTheLock(spec: SpecDir): Promise<string> {
    const run = startApply(spec, {}, '-p', 'playbooks/slow.yml', '-e', 'slow_seconds=1');
    const info = await waitFor('the lock record', async () => ((await onHost(HOST, `cat ${INFO} 2>/dev/null || true`)).trim() || undefined), 20_000, 50);
    const pid = /remote_pid=(\d+)/.exec(info)![1]!;
    // the lock's shell dies first (as if the host killed it), then berth
    await onHost(HOST, `kill -9 ${pid}`);
    run.kill('SIGKILL');
    const k = await ended(run);
    expect(k.signal, showKilled(k)).toBe('SIGKILL');
    await waitFor('the lock to be free', async () => ((await th.exec(HOST, ['flock', '-n', '/run/lock/berth.lock', 'true'])).code === 0 ? true : undefined), 10_000, 100);
    expect((await onHost(HOST, `cat ${INFO}`)).trim()).toBe(info.trim());
    return info;
  }

  it('left by a run whose lock process died is cleared, and the next apply says whose it was', async () => {
    await reset(HOST);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    const info = await dieHoldingTheLock(spec);
    const pid = /remote_pid=(\d+)/.exec(info)![1];
    const controller = /controller=(\S+) pid=(\d+)/.exec(info)!;
    const next = await spec.apply('-p', 'playbooks/slow.yml', '-e', 'slow_seconds=0', '--lock-timeout', '30');
    expect(next.code, show(next)).toBe(0);
    expect(next.stdout).toContain(
      `note: cleared a stale host lock: the apply that held it (berth pid ${controller[2]} on ${controller[1]}, since ${/since=(\S+)/.exec(info)![1]}) died without releasing it; its lock process ${pid} on the host is gone`,
    );
    expect((await onHost(HOST, `cat ${INFO} 2>/dev/null || true`)).trim(), 'the new holder cleaned up after itself').toBe('');
    record('a stale host lock (its lock process died with berth)', 'detected by pid, cleared, and named in a note', 'the next apply ran');
  });

  it('left from before a reboot (another boot id) is cleared, saying the host rebooted', async () => {
    await reset(HOST);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    const info = await dieHoldingTheLock(spec);
    // /run is cleared by a reboot; where it is not (the /tmp fallback), the record names another boot
    const other = '00000000-0000-4000-8000-000000000001';
    await onHost(HOST, `sed -i 's/boot_id=[^ ]*/boot_id=${other}/' ${INFO}`);
    const next = await spec.apply('-p', 'playbooks/slow.yml', '-e', 'slow_seconds=0', '--lock-timeout', '30');
    expect(next.code, show(next)).toBe(0);
    expect(next.stdout).toMatch(new RegExp(`note: cleared a stale host lock: the apply that held it \\(berth pid \\d+ on \\S+, since \\S+\\) died without releasing it; the host rebooted since \\(boot id ${other}\\)`));
    expect(info).not.toContain(other);
    record('a stale host lock from before a reboot (/tmp fallback)', 'detected by boot id, cleared, and named in a note', 'the next apply ran');
  });
});

// ---------------------------------------------------------------- 3. a command a dead berth left running

describe('a command left running by a berth that died', () => {
  const HOST = 4;

  it('the next apply waits for it (or fails fast without --lock-timeout): the two never run at once', async () => {
    const [host] = await reset(HOST);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    const runs = async () => (await onHost(host!, 'cat /root/slow-runs 2>/dev/null || true')).split('\n').filter(Boolean).map(Number);
    const first = startApply(spec, {}, '-p', 'playbooks/slow.yml', '-e', 'slow_seconds=8');
    // the slow command runs on the host: kill berth
    await waitFor('the slow command to start', async () => ((await th.exec(host!, ['pgrep', '-x', 'sleep'])).code === 0 ? true : undefined), 20_000, 50);
    first.kill('SIGKILL');
    const k = await ended(first);
    expect(k.signal).toBe('SIGKILL');
    const killedAt = Date.now();
    await waitFor('the dead run\'s lock to be released', async () => ((await th.exec(host!, ['flock', '-n', '/run/lock/berth.lock', 'true'])).code === 0 ? true : undefined), 10_000, 50);

    // at once, without waiting: refused, naming why
    const fast = await spec.apply('-p', 'playbooks/slow.yml', '-e', 'slow_seconds=0');
    expect(fast.code, show(fast)).toBe(1);
    expect(fast.stdout).toContain(`${host}: host is busy: commands of an earlier berth apply (which died) are still running on it (pass --lock-timeout 300 to wait up to 5 minutes for them)`);
    expect(await runs(), 'the orphaned command has not finished yet').toEqual([]);

    // with --lock-timeout: it waits until the orphan is done, says so, then runs its own
    const waiting = await spec.apply('-p', 'playbooks/slow.yml', '-e', 'slow_seconds=0', '--lock-timeout', '60');
    expect(waiting.code, show(waiting)).toBe(0);
    expect(waiting.stdout).toContain(`${host}: waiting up to 60s for the host lock (held by commands of an earlier apply that are still running)`);
    expect(waiting.stdout).toContain('note: waited for commands an earlier apply (which died) left running on the host');
    const done = await runs();
    expect(done, 'the orphan, then the new run').toHaveLength(2);
    expect(done[1]!).toBeGreaterThanOrEqual(done[0]!);
    expect(waiting.endedAt - killedAt).toBeGreaterThan(2_000);
    record('a command left running on the host by a killed berth', 'the next apply fails fast, or waits for it with --lock-timeout, saying so', 'the two runs never overlapped');
  });
});

// ---------------------------------------------------------------- 4. two applies at once

describe('two applies at once on one host', () => {
  const HOST = 5;

  it('their changes never interleave: the second waits for the first, saying for whom, and its steps come after', async () => {
    let rounds = 0;
    const [host] = await reset(HOST);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    // step 3 of the first run holds on (bounded, 30 s) until the test says the second run is waiting:
    // the two overlap for sure, however slow this machine is
    const hold = `if [ {{ first }} = yes ]; then n=0; while [ ! -e /root/go ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; fi`;
    spec.write(
      'roles/steps/tasks/main.yml',
      Array.from({ length: 5 }, (_, i) => `- name: step ${i + 1}\n  command:\n    cmd: "echo {{ run }} ${i + 1} >> /root/steps${i === 2 ? `; ${hold}` : ''}"\n`).join('\n'),
    );
    spec.write('playbooks/steps.yml', '- name: steps\n  hosts: web\n  roles: [steps]\n');
    const steps = async () => (await onHost(host!, 'cat /root/steps 2>/dev/null || true')).trim().split('\n').filter(Boolean);
    for (let round = 0; round < 3; round++) {
      await onHost(host!, 'rm -f /root/go');
      const first = startApply(spec, {}, '-p', 'playbooks/steps.yml', '-e', `run=A${round}`, '-e', 'first=yes', '--lock-timeout', '60');
      await waitFor(`A${round} at step 3`, async () => ((await steps()).includes(`A${round} 3`) ? true : undefined), 60_000, 100);
      const second = startApply(spec, {}, '-p', 'playbooks/steps.yml', '-e', `run=B${round}`, '-e', 'first=no', '--lock-timeout', '60');
      let out = '';
      second.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(`B${round} to wait for the lock`, async () => (out.includes('waiting up to 60s for the host lock (held by remote_pid=') ? true : undefined), 60_000, 50);
      expect((await steps()).filter((l) => l.startsWith(`B${round} `)), 'B ran nothing while waiting').toEqual([]);
      await onHost(host!, 'touch /root/go');
      const [a, b] = await Promise.all([ended(first), ended(second)]);
      expect(a.code, showKilled(a)).toBe(0);
      expect(b.code, showKilled(b)).toBe(0);
      expect(a.stdout, 'the first did not wait').not.toContain('waiting up to 60s');
      rounds++;
    }
    const lines = await steps();
    expect(lines).toHaveLength(30);
    // each run's 5 steps are one unbroken block, A before B in each round
    expect(lines).toEqual([0, 1, 2].flatMap((r) => ['A', 'B'].flatMap((x) => [1, 2, 3, 4, 5].map((n) => `${x}${r} ${n}`))));
    for (let i = 0; i < rounds; i++) record('two applies at once on one host (5 steps each)', 'the second waited for the lock, saying for whom, then applied', 'the steps of the two runs never interleaved');
  });
});

// ---------------------------------------------------------------- 5. sshd killed on one of five hosts

describe('sshd killed on one of five hosts mid-apply', () => {
  it('the other four complete, the failed host is reported, exit 1; the next apply converges it', async () => {
    const hosts = await reset(1, 2, 3, 4, 5);
    const victim = hosts[2]!;
    const spec = await SpecDir.create({ hosts: hosts.map(webHost) });
    spec.write('roles/marker/tasks/main.yml', '- name: marker, then a pause\n  command:\n    cmd: "touch /root/marker; sleep 6"\n');
    spec.write('roles/after/tasks/main.yml', '- name: a file after the pause\n  file:\n    path: /root/after\n    content: "after\\n"\n');
    spec.write('playbooks/long.yml', '- name: web app\n  hosts: web\n  roles: [webapp]\n- name: pause\n  hosts: web\n  roles: [marker]\n- name: after\n  hosts: web\n  roles: [after]\n');

    const run = startApply(spec, {}, '-p', 'playbooks/long.yml');
    await waitFor(`${victim} to reach the pause`, async () => ((await th.exec(victim, ['test', '-e', '/root/marker'])).code === 0 ? true : undefined), 60_000, 50);
    // every sshd process on the host: the listener and this connection's (systemd starts the listener again)
    await onHost(victim, 'kill -9 $(ps -eo pid=,comm= | awk \'$2 == "sshd" { print $1 }\')');
    const r = await ended(run);
    expect(r.code, showKilled(r)).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^${victim}:\\n(.*\\n)*  FAILED: lost connection to host ${victim} \\(${e2eHost(victim).address}\\) while `, 'm'));
    expect(r.stdout).toContain(`1 host(s) failed: ${victim}\n`);
    for (const h of hosts.filter((x) => x !== victim)) {
      await expectConverged(spec, h, 'hello from group_vars');
      expect((await contents(h, ['/root/after']))['/root/after']).toBe('after\n');
    }
    expect((await contents(victim, ['/root/after']))['/root/after'], 'the victim stopped before the last play').toBeUndefined();

    await waitFor(`sshd on ${victim} again`, async () => ((await th.ssh(victim, 'true')).code === 0 ? true : undefined), 30_000, 200);
    const again = await spec.apply('-p', 'playbooks/long.yml', '--lock-timeout', '60');
    expect(again.code, show(again)).toBe(0);
    await expectConverged(spec, victim, 'hello from group_vars');
    expect((await contents(victim, ['/root/after']))['/root/after']).toBe('after\n');
    const none = await spec.plan('-p', 'playbooks/long.yml', '--json');
    // the pause command always runs; everything else is in place on all five
    expect(json(none).hosts.map((h) => h.changes.map((c) => c.resource))).toEqual(hosts.map(() => ['command touch /root/marker; sleep 6']));
    record('sshd killed on 1 of 5 hosts mid-apply', 'the other 4 completed, the 5th was reported, exit 1; the next apply converged it', 'all 5 hosts exact afterwards');
  });
});

// ---------------------------------------------------------------- 6. a full filesystem

describe('the target directory full', () => {
  const HOST = 6;
  const DIR = '/srv/full';
  const CONF = `${DIR}/app.conf`;
  const OLD = 'the old configuration\n';

  async function fullHost(tmpfs: string): Promise<{ host: string; spec: SpecDir }> {
    const [host] = await reset(HOST);
    await onHost(host!, `mkdir -p ${DIR} && mount -t tmpfs -o ${tmpfs} berth-full ${DIR} && printf '${OLD.replace('\n', '\\n')}' > ${CONF}`);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    spec.write('roles/conf/tasks/main.yml', `- name: a big config\n  file:\n    path: ${CONF}\n    content: "{{ big }}"\n    mode: "0644"\n`);
    spec.write('playbooks/conf.yml', '- name: conf\n  hosts: web\n  roles: [conf]\n');
    spec.write('big.yml', `big: "${'x'.repeat(20_000)}"\n`);
    return { host: host!, spec };
  }

  for (const [what, tmpfs, fill, why] of [
    ['no space left', 'size=64k', `head -c 60000 /dev/zero > ${DIR}/filler`, /No space left on device/],
    ['no inode left', 'size=1m,nr_inodes=3', `touch ${DIR}/filler`, /No space left on device/],
  ] as const) {
    it(`${what}: a clear error naming the file, the old file intact, no temporary file left; once there is room, it applies`, async () => {
      const { host, spec } = await fullHost(tmpfs);
      await onHost(host, fill);
      const r = await spec.apply('-p', 'playbooks/conf.yml', '-e', '@big.yml');
      expect(r.code, show(r)).toBe(1);
      const failed = r.stdout.split('\n').find((l) => l.startsWith('  FAILED: '));
      expect(failed, show(r)).toMatch(new RegExp(`^  FAILED: ${host}: file ${CONF}: failed \\(exit 1\\): .*`));
      expect(failed).toMatch(why);
      expect(await onHost(host, `cat ${CONF}`)).toBe(OLD);
      expect((await onHost(host, `ls -A ${DIR}`)).trim().split('\n').sort()).toEqual(['app.conf', 'filler']);
      await onHost(host, `rm -f ${DIR}/filler`);
      const ok = await spec.apply('-p', 'playbooks/conf.yml', '-e', '@big.yml');
      expect(ok.code, show(ok)).toBe(0);
      expect((await onHost(host, `wc -c < ${CONF}`)).trim()).toBe('20000');
      record('the target directory full (a tmpfs out of space, or out of inodes)', 'a clear error naming the file and the cause, exit 1; applied once there was room', 'the old file intact, no temporary file left');
    });
  }
});

// ---------------------------------------------------------------- the table

describe('docs/RELIABILITY.md', () => {
  it('lists the faults this file put berth through', () => {
    const rows: Row[] = [...results].map(([what, r]) => ({ what, tried: r.tried, outcome: `${r.outcome}: ${ratio(r.tried, r.tried)}`, kept: r.kept }));
    expect(rows.length, 'a fault test did not record its result (it failed above)').toBe(9);
    const msg = checkSection('faults', rows, 'CI=true npx vitest run test/e2e/faults.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});
