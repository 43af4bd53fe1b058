// npm run bench: berth against Ansible on the same real hosts (systemd-nspawn
// containers with sshd on 127.0.0.N, from test/hosts/testhosts.sh), the same
// desired state written once for each tool (bench/spec, bench/ansible).
//
// 1. Self-test: each tool converges bare hosts; the files they leave must be
//    the same, and each tool's check must find the other's result converged.
// 2. Per host count (1, 5, 20): cold apply (hosts reset to bare first), no-op
//    apply, no-op plan vs `ansible-playbook --check --diff`. Each timed several
//    times, the tools alternating, after an untimed warm-up. One more untimed
//    run per tool counts SSH logins (sshd's log) and commands sent.
// 3. berth's no-op plan on 50 hosts.
// 4. bench/RESULTS.md: the machine, its load meanwhile, the tables, the targets.
//
//   npm run bench -- --sizes 1,5 --runs 2 --cold-runs 1 --scale 0   a quick look
//   npm run bench -- --selftest                                      the fairness check only
//
// It is a benchmark, not a test: nothing here runs in CI.

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestHosts } from '../test/hosts/testhosts.js';
import { ansibleInventory, berthInventory, type BenchHost } from './lib/inventory.js';
import { describeMachine, loadavg, machineBusyMs } from './lib/machine.js';
import { renderResults, type ResultsData } from './lib/report.js';
import { compareSnapshots, IGNORED, snapshot } from './lib/snapshot.js';
import {
  checkRecap,
  countAccepted,
  countInvocations,
  fmtSeconds,
  median,
  parseGnuTime,
  SCENARIO_TITLE,
  type Cell,
  type Counts,
  type Sample,
  type Scenario,
  type Tool,
} from './lib/stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BENCH = join(REPO, 'bench');
const BERTH_BIN = join(REPO, 'bin', 'berth.js');
const RUN_TIMEOUT_MS = 30 * 60_000;

// ---------------------------------------------------------------- options

interface Options {
  sizes: number[];
  runs: number;
  coldRuns: number;
  /** Host count of berth's no-op plan scaling row (0: none). */
  scale: number;
  /** Also time Ansible's --check at the scaling row (slow). */
  ansibleScale: boolean;
  strategy: 'linear' | 'free';
  selftestOnly: boolean;
  skipSelftest: boolean;
  keepHosts: boolean;
  /** Count SSH costs of a cold apply only up to this many hosts (each count is one more reset and run). */
  countColdUpTo: number;
  out: string;
  work: string;
  /** Only write RESULTS.md again from this RESULTS.json. */
  report?: string;
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    sizes: [1, 5, 20],
    runs: 5,
    coldRuns: 3,
    scale: 50,
    ansibleScale: false,
    strategy: 'free',
    selftestOnly: false,
    skipSelftest: false,
    keepHosts: false,
    countColdUpTo: 5,
    out: join(BENCH, 'RESULTS.md'),
    work: '/tmp/berth-bench',
  };
  const int = (v: string | undefined, name: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected a whole number ≥ ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    switch (a) {
      case '--sizes':
        o.sizes = (next() ?? '').split(',').map((s) => int(s, '--sizes', 1));
        break;
      case '--runs':
        o.runs = int(next(), '--runs', 1);
        break;
      case '--cold-runs':
        o.coldRuns = int(next(), '--cold-runs', 1);
        break;
      case '--scale':
        o.scale = int(next(), '--scale', 0);
        break;
      case '--ansible-scale':
        o.ansibleScale = true;
        break;
      case '--strategy': {
        const s = next();
        if (s !== 'linear' && s !== 'free') throw new Error('--strategy: linear or free');
        o.strategy = s;
        break;
      }
      case '--selftest':
        o.selftestOnly = true;
        break;
      case '--skip-selftest':
        o.skipSelftest = true;
        break;
      case '--keep-hosts':
        o.keepHosts = true;
        break;
      case '--count-cold-up-to':
        o.countColdUpTo = int(next(), '--count-cold-up-to', 0);
        break;
      case '--out':
        o.out = resolve(next() ?? '');
        break;
      case '--work':
        o.work = resolve(next() ?? '');
        break;
      case '--report':
        o.report = resolve(next() ?? '');
        break;
      default:
        throw new Error(`unknown option ${a} (see the top of bench/run.ts)`);
    }
  }
  const most = Math.max(...o.sizes, o.scale, 2);
  if (most > 90) throw new Error('at most 90 hosts');
  return o;
}

// ---------------------------------------------------------------- tools

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** ansible-core and GNU time from Debian's packages (never pip). */
function ensureTools(): void {
  const missing: string[] = [];
  if (!existsSync('/usr/bin/ansible-playbook')) missing.push('ansible-core');
  if (!existsSync('/usr/bin/time')) missing.push('time');
  if (!missing.length) return;
  log(`installing ${missing.join(', ')} with apt-get`);
  const install = () => execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    install();
  }
}

function log(s: string): void {
  process.stderr.write(`[bench] ${s}\n`);
}

// ---------------------------------------------------------------- the bench

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  sample: Sample;
}

class Bench {
  readonly th: TestHosts;
  readonly o: Options;
  readonly berthDir: string;
  readonly ansibleDir: string;
  readonly cells: Cell[] = [];
  readonly loads: { what: string; load: string; foreignCpuShare: number }[] = [];
  selftest: string[] = [];
  floor = new Map<number, Sample[]>();
  private up = 0;
  private readonly keepers: ReturnType<typeof spawn>[] = [];
  /** Ansible's ControlPersist directory for timed runs (a counting run starts a fresh one, which the next timed runs reuse). */
  private cpDir: string;

  constructor(o: Options) {
    this.o = o;
    this.th = new TestHosts({
      prefix: process.env.TESTHOSTS_PREFIX ?? 'bbench',
      addrOffset: Number(process.env.TESTHOSTS_ADDR_OFFSET ?? 160),
      stateDir: process.env.TESTHOSTS_STATE ?? '/tmp/bench-hosts',
      cacheDir: process.env.TESTHOSTS_CACHE,
    });
    this.berthDir = join(o.work, 'berth');
    this.ansibleDir = join(o.work, 'ansible');
    this.cpDir = join(o.work, 'cp');
  }

  hosts(n: number): BenchHost[] {
    return Array.from({ length: n }, (_, i) => ({ name: this.th.name(i + 1), address: this.th.address(i + 1) }));
  }

  async ensureUp(n: number): Promise<void> {
    if (n <= this.up) return;
    log(`starting hosts 1..${n}`);
    await this.th.up(n);
    this.up = n;
  }

  /** Fresh copies of both specs in the work directory; the berth spec is a git repository, as a real one is. */
  prepareWork(): void {
    rmSync(this.o.work, { recursive: true, force: true });
    mkdirSync(join(this.o.work, 'cp'), { recursive: true, mode: 0o700 });
    cpSync(join(BENCH, 'spec'), this.berthDir, { recursive: true });
    cpSync(join(BENCH, 'ansible'), this.ansibleDir, { recursive: true });
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=berth bench', '-c', 'user.email=bench@berth.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd: this.berthDir, stdio: 'ignore' });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-q', '-m', 'bench spec');
    // counting wrappers: one log line per ssh/sftp/scp that Ansible starts
    for (const bin of ['ssh', 'sftp', 'scp']) {
      const p = join(this.o.work, `count-${bin}`);
      writeFileSync(p, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${join(this.o.work, 'invocations.log')}\nexec /usr/bin/${bin} "$@"\n`);
      chmodSync(p, 0o755);
    }
  }

  writeInventories(n: number): void {
    const access = { keyFile: this.th.keyFile, knownHosts: this.th.knownHostsFile };
    const inv = berthInventory(this.hosts(n), access);
    mkdirSync(join(this.berthDir, 'inventories', 'bench', 'group_vars'), { recursive: true });
    writeFileSync(join(this.berthDir, 'inventories', 'bench', 'hosts.yml'), inv.hostsYml);
    writeFileSync(join(this.berthDir, 'inventories', 'bench', 'group_vars', 'all.yml'), inv.allYml);
    writeFileSync(join(this.ansibleDir, 'hosts.ini'), ansibleInventory(this.hosts(n), access));
    // a real spec's inventory is committed: berth reads the commit and whether the tree is clean
    execFileSync('sh', ['-c', 'git add -A && { git diff --cached --quiet || git -c user.name="berth bench" -c user.email=bench@berth.invalid commit -q -m inventory; }'], { cwd: this.berthDir, stdio: 'ignore' });
  }

  berthArgs(kind: 'plan' | 'apply', forks: number): { cmd: string[]; cwd: string; env: NodeJS.ProcessEnv } {
    const args = [kind, '-i', 'inventories/bench', '--json', '--forks', String(forks)];
    if (kind === 'plan') args.push('--detailed-exitcode');
    const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true', NO_COLOR: '1' };
    delete env.SSH_AUTH_SOCK;
    delete env.BERTH_INVENTORY;
    return { cmd: ['node', BERTH_BIN, ...args], cwd: this.berthDir, env };
  }

  ansibleArgs(kind: 'check' | 'apply', opts: { counting?: boolean; limit?: string } = {}): { cmd: string[]; cwd: string; env: NodeJS.ProcessEnv } {
    const args = ['-i', 'hosts.ini', 'site.yml'];
    if (kind === 'check') args.push('--check', '--diff');
    if (opts.limit) args.push('--limit', opts.limit);
    const w = this.o.work;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ANSIBLE_CONFIG: join(this.ansibleDir, 'ansible.cfg'),
      ANSIBLE_STRATEGY: this.o.strategy,
      ANSIBLE_HOME: join(w, 'ansible-home'),
      ANSIBLE_LOCAL_TEMP: join(w, 'ansible-local'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: opts.counting ? (this.cpDir = join(w, `cp-${Date.now()}`)) : this.cpDir,
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_FORCE_COLOR: '0',
      LC_ALL: 'C.UTF-8',
    };
    delete env.SSH_AUTH_SOCK;
    if (opts.counting) {
      env.ANSIBLE_SSH_EXECUTABLE = join(w, 'count-ssh');
      env.ANSIBLE_SFTP_EXECUTABLE = join(w, 'count-sftp');
      env.ANSIBLE_SCP_EXECUTABLE = join(w, 'count-scp');
    }
    return { cmd: ['ansible-playbook', ...args], cwd: this.ansibleDir, env };
  }

  // ------------------------------------------------------------ measuring

  hostCpuMs(n: number): number | undefined {
    let total = 0;
    for (const h of this.hosts(n)) {
      const f = [`/sys/fs/cgroup/unified/testhosts/${h.name}/cpu.stat`, `/sys/fs/cgroup/testhosts/${h.name}/cpu.stat`].find((p) => existsSync(p));
      if (!f) return undefined;
      const m = /^usage_usec (\d+)/m.exec(readFileSync(f, 'utf8'));
      if (!m) return undefined;
      total += Number(m[1]) / 1000;
    }
    return total;
  }

  /** Runs a command under GNU time, its output to files (the bench itself stays idle meanwhile). */
  async timed(run: { cmd: string[]; cwd: string; env: NodeJS.ProcessEnv }, n: number): Promise<RunResult> {
    const out = join(this.o.work, 'out.txt');
    const err = join(this.o.work, 'err.txt');
    const tf = join(this.o.work, 'time.txt');
    const fo = openSync(out, 'w');
    const fe = openSync(err, 'w');
    const hostsBefore = this.hostCpuMs(n);
    const busyBefore = machineBusyMs();
    const t0 = performance.now();
    const code = await new Promise<number>((res, rej) => {
      const p = spawn('/usr/bin/time', ['-v', '-o', tf, ...run.cmd], { cwd: run.cwd, env: run.env, stdio: ['ignore', fo, fe] });
      const timer = setTimeout(() => p.kill('SIGKILL'), RUN_TIMEOUT_MS);
      p.on('error', rej);
      p.on('exit', (c, sig) => {
        clearTimeout(timer);
        res(c ?? (sig ? 128 : 1));
      });
    });
    const wallMs = performance.now() - t0;
    const busy = machineBusyMs() - busyBefore;
    const hostsAfter = this.hostCpuMs(n);
    closeSync(fo);
    closeSync(fe);
    const t = parseGnuTime(readFileSync(tf, 'utf8'));
    const cpuMs = (t.userS + t.sysS) * 1000;
    const hostCpuMs = hostsBefore !== undefined && hostsAfter !== undefined ? hostsAfter - hostsBefore : undefined;
    const sample: Sample = { wallMs, cpuMs, maxRssKb: t.maxRssKb, foreignMs: Math.max(0, busy - cpuMs - (hostCpuMs ?? 0)), ...(hostCpuMs !== undefined ? { hostCpuMs } : {}) };
    return { code, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8'), sample };
  }

  /** Throws unless the run did what the scenario says (so a broken run never becomes a number). */
  verify(tool: Tool, scenario: Scenario | 'converge', n: number, r: RunResult): { roundTrips?: number[] } {
    const where = `${tool} ${scenario} on ${n} host(s)`;
    const tail = `\n--- stdout (end)\n${r.stdout.slice(-3000)}\n--- stderr (end)\n${r.stderr.slice(-3000)}`;
    const names = this.hosts(n).map((h) => h.name);
    if (tool === 'berth') {
      let j: { summary?: { create: number; update: number; delete: number; run: number; failedHosts: number }; hosts?: { host: string; error?: string; stats?: { roundTrips: number } }[] };
      try {
        j = JSON.parse(r.stdout) as typeof j;
      } catch {
        throw new Error(`${where}: exit ${r.code}, output is not JSON${tail}`);
      }
      const s = j.summary!;
      const changes = s.create + s.update + s.delete + s.run;
      const noop = scenario === 'noop-plan' || scenario === 'noop-apply';
      if (r.code !== 0 || s.failedHosts) throw new Error(`${where}: exit ${r.code}, ${s.failedHosts} failed host(s): ${j.hosts?.find((h) => h.error)?.error ?? ''}${tail}`);
      if (noop && changes) throw new Error(`${where}: ${changes} change(s) on converged hosts${tail}`);
      if (scenario === 'cold-apply' && !changes) throw new Error(`${where}: nothing to do on bare hosts?${tail}`);
      const byHost = new Map((j.hosts ?? []).map((h) => [h.host, h.stats?.roundTrips ?? NaN]));
      return { roundTrips: names.map((h) => byHost.get(h) ?? NaN) };
    }
    if (r.code !== 0) throw new Error(`${where}: exit ${r.code}${tail}`);
    const bad = checkRecap(r.stdout, names, scenario === 'noop-plan' || scenario === 'noop-apply');
    if (bad) throw new Error(`${where}: ${bad}${tail}`);
    return {};
  }

  async resetHosts(n: number): Promise<void> {
    await this.th.reset(...Array.from({ length: n }, (_, i) => i + 1));
  }

  async sshdAccepted(n: number): Promise<number[]> {
    const one = async (i: number) => countAccepted((await this.th.exec(i, ['journalctl', '-u', 'ssh', '--no-pager', '-q', '-o', 'cat'])).stdout);
    const out: number[] = new Array<number>(n);
    let next = 1;
    const worker = async () => {
      while (next <= n) {
        const i = next++;
        out[i - 1] = await one(i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, n) }, worker));
    return out;
  }

  /** sshd's counts once journald has them all: two reads 0.5 s apart agree (at most 10 s). */
  async settledAccepted(n: number, atLeast: number[]): Promise<number[]> {
    const deadline = Date.now() + 10_000;
    let prev = await this.sshdAccepted(n);
    for (;;) {
      await sleep(500);
      const cur = await this.sshdAccepted(n);
      const same = cur.every((x, i) => x === prev[i]);
      if ((same && cur.every((x, i) => x >= atLeast[i]!)) || Date.now() > deadline) return cur;
      prev = cur;
    }
  }

  cell(scenario: Scenario, hosts: number, tool: Tool): Cell {
    let c = this.cells.find((x) => x.scenario === scenario && x.hosts === hosts && x.tool === tool);
    if (!c) {
      c = { scenario, hosts, tool, samples: [] };
      this.cells.push(c);
    }
    return c;
  }

  command(tool: Tool, scenario: Scenario, n: number, counting = false) {
    const forks = Math.max(64, n);
    if (tool === 'berth') return this.berthArgs(scenario === 'noop-plan' ? 'plan' : 'apply', forks);
    return this.ansibleArgs(scenario === 'noop-plan' ? 'check' : 'apply', { counting });
  }

  /** One untimed run that counts logins (sshd) and commands (berth's stats, Ansible's ssh/sftp calls). */
  async count(tool: Tool, scenario: Scenario, n: number): Promise<Counts> {
    if (scenario === 'cold-apply') await this.resetHosts(n);
    const before = await this.settledAccepted(n, new Array<number>(n).fill(0));
    const logFile = join(this.o.work, 'invocations.log');
    rmSync(logFile, { force: true });
    const r = await this.timed(this.command(tool, scenario, n, true), n);
    const v = this.verify(tool, scenario, n, r);
    const after = await this.settledAccepted(
      n,
      before.map((b) => b + 1),
    );
    const connections = after.map((a, i) => a - before[i]!);
    let roundTrips: number[];
    if (tool === 'berth') roundTrips = v.roundTrips!;
    else {
      const calls = countInvocations(existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
      roundTrips = this.hosts(n).map((h) => calls.get(h.address) ?? 0);
    }
    return { connections, roundTrips };
  }

  async scenario(scenario: Scenario, n: number, runs: number, tools: Tool[]): Promise<void> {
    log(`${SCENARIO_TITLE[scenario]}, ${n} host(s): ${runs} run(s) per tool (${tools.join(', ')}), load ${loadavg()}`);
    if (scenario !== 'cold-apply') {
      // the counting run is also the warm-up: page cache, Python's and V8's compiled code, the
      // hosts' user managers, and for Ansible the ControlPersist masters its timed runs then reuse
      for (const t of tools) this.cell(scenario, n, t).counts = await this.count(t, scenario, n);
    }
    const foreign: number[] = [];
    const wall: number[] = [];
    for (let i = 0; i < runs; i++) {
      // alternate which tool goes first, so neither always runs on a machine the other just warmed
      const order = i % 2 === 0 ? tools : [...tools].reverse();
      for (const t of order) {
        if (scenario === 'cold-apply') await this.resetHosts(n);
        const r = await this.timed(this.command(t, scenario, n), n);
        this.verify(t, scenario, n, r);
        this.cell(scenario, n, t).samples.push(r.sample);
        foreign.push(r.sample.foreignMs ?? 0);
        wall.push(r.sample.wallMs);
        log(`  ${t}: ${fmtSeconds(r.sample.wallMs)}`);
      }
    }
    // a counted cold apply costs a reset and a whole run more; the counts per host do not depend on how many hosts there are
    if (scenario === 'cold-apply' && n <= this.o.countColdUpTo) for (const t of tools) this.cell(scenario, n, t).counts = await this.count(t, scenario, n);
    const cores = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
    const share = foreign.reduce((a, b) => a + b, 0) / (wall.reduce((a, b) => a + b, 0) * cores);
    this.loads.push({ what: `${SCENARIO_TITLE[scenario]}, ${n} host(s)`, load: loadavg(), foreignCpuShare: share });
  }

  /**
   * One idle SSH session per host for the no-op scenarios, so that each host's systemd user
   * manager (which pam_systemd starts at a login and stops 10 s after the last session ends) is
   * running for every timed run of both tools. Ansible's ControlPersist masters hold such a
   * session anyway; without this, berth's runs would pay the manager's start (about 50-90 ms of
   * host CPU per host) whenever the runs are more than 10 s apart, and Ansible's would not.
   */
  async holdSessions(n: number): Promise<() => void> {
    const kids = this.hosts(n).map((h) =>
      spawn('ssh', [...this.th.sshOptions(), '-o', 'ServerAliveInterval=30', `root@${h.address}`, 'exec sleep 7200'], { stdio: 'ignore' }),
    );
    for (const k of kids) k.on('error', () => undefined);
    this.keepers.push(...kids);
    await sleep(1500);
    return () => {
      for (const k of kids) if (k.exitCode === null) k.kill('SIGTERM');
    };
  }

  stopAllSessions(): void {
    for (const k of this.keepers) if (k.exitCode === null) k.kill('SIGTERM');
  }

  /** The floor: N parallel OpenSSH logins running `true` (what a no-op plan cannot go below). */
  async measureFloor(n: number, runs: number): Promise<void> {
    const ssh = this.th.sshOptions().map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const script = this.hosts(n).map((h) => `ssh ${ssh} root@${h.address} true &`).join('\n') + '\nwait\n';
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await this.timed({ cmd: ['sh', '-c', script], cwd: this.o.work, env: process.env }, n);
      if (r.code !== 0) throw new Error(`floor: ${r.stderr}`);
      samples.push(r.sample);
    }
    this.floor.set(n, samples);
  }

  /**
   * Host CPU of update-ca-certificates, the heaviest step of the desired state, on one host (outside
   * any tool): over ssh (an nsenter'd command would not run in the host's cgroup), less an `ssh true`.
   */
  async caUpdateCost(): Promise<number | undefined> {
    const cost = async (cmd: string) => {
      const before = this.hostCpuMs(1);
      const r = await this.th.ssh(1, cmd);
      await sleep(300);
      const after = this.hostCpuMs(1);
      return r.code === 0 && before !== undefined && after !== undefined ? after - before : NaN;
    };
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) runs.push((await cost('update-ca-certificates >/dev/null')) - (await cost('true')));
    const m = median(runs);
    return Number.isFinite(m) ? m : undefined;
  }

  // ------------------------------------------------------------ self-test

  async runSelftest(): Promise<void> {
    const n = 2;
    await this.ensureUp(n);
    this.writeInventories(n);
    const names = this.hosts(n).map((h) => h.name);
    log('self-test: berth converges 2 bare hosts, then Ansible does');
    await this.resetHosts(n);
    this.verify('berth', 'converge', n, await this.timed(this.berthArgs('apply', 64), n));
    const byBerth = names.map((_, i) => snapshot(this.th.upperDir(i + 1)));
    this.verify('ansible', 'noop-plan', n, await this.timed(this.ansibleArgs('check'), n));
    this.verify('berth', 'noop-plan', n, await this.timed(this.berthArgs('plan', 64), n));

    await this.resetHosts(n);
    this.verify('ansible', 'converge', n, await this.timed(this.ansibleArgs('apply'), n));
    const byAnsible = names.map((_, i) => snapshot(this.th.upperDir(i + 1)));
    this.verify('berth', 'noop-plan', n, await this.timed(this.berthArgs('plan', 64), n));
    this.verify('ansible', 'noop-plan', n, await this.timed(this.ansibleArgs('check'), n));

    const diffs = names.flatMap((h, i) => compareSnapshots(byBerth[i]!, byAnsible[i]!, ['berth', 'Ansible']).map((d) => `${h}: ${d}`));
    if (diffs.length) throw new Error(`self-test: the tools leave different files:\n${diffs.join('\n')}`);
    this.selftest = [
      `Each tool converged ${names.join(' (cache VM and node) and ')} (node) from bare; the hosts' writable layers then held the same ${byBerth.map((s) => s.length).join(' and ')} entries (type, mode, owner, content) after either tool.`,
      "After berth's apply, `ansible-playbook --check` reported changed=0 on both hosts; after Ansible's apply, `berth plan` found no change.",
      `Not compared: ${IGNORED.map((i) => `${i.pattern.source.replace(/\\\//g, '/').replace(/^\^|\(\/\|\$\)|\$$/g, '')} (${i.why})`).join('; ')}; /etc/shadow's day of the last password change.`,
    ];
    log('self-test: same files, and each tool finds the other converged');
  }

  // ------------------------------------------------------------ results

  write(started: string, machine: string[], caCostMs: number | undefined): void {
    const o = this.o;
    const data: ResultsData = {
      started,
      options: { sizes: o.sizes, runs: o.runs, coldRuns: o.coldRuns, scale: o.scale, strategy: o.strategy, countColdUpTo: o.countColdUpTo },
      machine,
      cores: cpus().length,
      loads: this.loads,
      selftest: this.selftest,
      cells: this.cells,
      floor: [...this.floor.entries()],
      ...(caCostMs !== undefined ? { caCostMs } : {}),
    };
    writeResults(o.out, data);
  }
}

/** RESULTS.md and, beside it, the data it was written from (RESULTS.json). */
function writeResults(out: string, data: ResultsData): void {
  writeFileSync(out.replace(/(\.md)?$/, '.json'), JSON.stringify(data, null, 1) + '\n');
  writeFileSync(out, renderResults(data));
  log(`wrote ${out}`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.report) {
    writeResults(o.out, JSON.parse(readFileSync(o.report, 'utf8')) as ResultsData);
    return;
  }
  if (process.getuid?.() !== 0) throw new Error('the bench needs root: its hosts are systemd-nspawn containers');
  if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) throw new Error('berth is not built: run npm run build (npm run bench does)');
  ensureTools();
  const started = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const machine = describeMachine(REPO);
  const b = new Bench(o);
  b.prepareWork();
  const startLoad = loadavg();
  try {
    await b.ensureUp(o.selftestOnly ? 2 : Math.max(...o.sizes, 2));
    if (!o.skipSelftest) await b.runSelftest();
    if (o.selftestOnly) return;
    for (const n of [...o.sizes].sort((x, y) => x - y)) {
      b.writeInventories(n);
      await b.scenario('cold-apply', n, o.coldRuns, ['berth', 'ansible']);
      const release = await b.holdSessions(n);
      await b.scenario('noop-apply', n, o.runs, ['berth', 'ansible']);
      await b.scenario('noop-plan', n, o.runs, ['berth', 'ansible']);
      await b.measureFloor(n, o.runs);
      release();
    }
    if (o.scale > 0) {
      await b.ensureUp(o.scale);
      b.writeInventories(o.scale);
      log(`converging hosts 1..${o.scale} with berth (untimed)`);
      b.verify('berth', 'converge', o.scale, await b.timed(b.berthArgs('apply', Math.max(64, o.scale)), o.scale));
      const release = await b.holdSessions(o.scale);
      await b.scenario('noop-plan', o.scale, o.runs, o.ansibleScale ? ['berth', 'ansible'] : ['berth']);
      await b.measureFloor(o.scale, o.runs);
      release();
    }
    const ca = await b.caUpdateCost();
    machine.push(`load average (1, 5, 15 min) at the start: ${startLoad}; at the end: ${loadavg()}`);
    b.write(started, machine, ca);
  } finally {
    b.stopAllSessions();
    if (!o.keepHosts) {
      log('stopping the hosts');
      await b.th.down().catch((e: unknown) => log(`down failed: ${String(e)}`));
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
