// Drives the real berth CLI (node bin/berth.js) the way a user or CI does,
// against a spec copied from test/fixtures/e2e/spec into a temporary
// directory, with an inventory written per test that points at the harness
// hosts (their key and known_hosts file).
//
//   BERTH_E2E_TIMINGS=1     print every berth run's exit code and duration
//   BERTH_E2E_KEEP_SPECS=1  keep the temporary spec directories

import { expect } from 'vitest';
import { execa } from 'execa';
import { cpSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { HostInfo } from '../hosts/testhosts.js';
import { e2eHost, keyFile, knownHostsFile, testHosts } from './hosts.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BERTH_BIN = join(REPO, 'bin', 'berth.js');
export const FIXTURE_SPEC = join(REPO, 'test', 'fixtures', 'e2e', 'spec');
/** Where the generated inventory lives inside a spec directory. */
export const INVENTORY = 'inventories/e2e';

const RUN_TIMEOUT_MS = 180_000;

// ---------------------------------------------------------------- building

let built: Promise<void> | undefined;

/** `npm run build`, once per test file: the CLI runs from dist/. */
export function buildBerth(): Promise<void> {
  built ??= (async () => {
    const r = await execa('npm', ['run', 'build', '--silent'], { cwd: REPO, reject: false, timeout: 180_000, stdin: 'ignore', all: true });
    if (r.exitCode !== 0) throw new Error(`npm run build failed (exit ${r.exitCode}):\n${String(r.all)}`);
  })();
  return built;
}

// ---------------------------------------------------------------- running

export interface BerthRun {
  /** The command line, for messages. */
  cmd: string;
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock start and end (ms since the epoch) and duration. */
  startedAt: number;
  endedAt: number;
  ms: number;
}

export interface RunOptions {
  cwd: string;
  /** Added to the environment (a value of undefined removes the variable). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/**
 * Runs `node bin/berth.js <args>` with CI=true (plain progress lines, no
 * colours) and stdin closed. Never throws for a non-zero exit. CI mode's
 * guards (apply only a clean commit on main, never generate a vault secret)
 * are off (BERTH_CI=false): a test that means them passes --ci or sets
 * BERTH_CI.
 */
export async function berth(args: string[], opts: RunOptions): Promise<BerthRun> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    CI: 'true',
    BERTH_CI: 'false',
    NO_COLOR: '1',
    // the spec names the key; an agent of whoever runs the tests stays out of it
    SSH_AUTH_SOCK: undefined,
    BERTH_INVENTORY: undefined,
    ...opts.env,
  };
  const startedAt = Date.now();
  const r = await execa('node', [BERTH_BIN, ...args], {
    cwd: opts.cwd,
    env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: opts.timeoutMs ?? RUN_TIMEOUT_MS,
    forceKillAfterDelay: 5_000,
    stripFinalNewline: false,
  });
  const endedAt = Date.now();
  const cmd = `berth ${args.join(' ')}`;
  if (process.env.BERTH_E2E_TIMINGS === '1') process.stderr.write(`[berth] ${cmd}: exit ${r.exitCode} in ${endedAt - startedAt} ms\n`);
  if (r.timedOut) throw new Error(`${cmd} timed out after ${opts.timeoutMs ?? RUN_TIMEOUT_MS} ms\n${describeOutput(String(r.stdout), String(r.stderr))}`);
  if (r.exitCode === undefined) throw new Error(`${cmd} did not run: ${r.message}`);
  return { cmd, code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), startedAt, endedAt, ms: endedAt - startedAt };
}

function describeOutput(stdout: string, stderr: string): string {
  const tail = (s: string) => (s.length > 6000 ? `…${s.slice(-6000)}` : s);
  return `--- stdout\n${tail(stdout)}--- stderr\n${tail(stderr)}---`;
}

/** What an assertion on a run prints when it fails: the command and its output. */
export function show(r: BerthRun): string {
  return `${r.cmd} (exit ${r.code}, ${r.ms} ms)\n${describeOutput(r.stdout, r.stderr)}`;
}

/** stdout parsed as JSON (a --json run), with the run's output on failure. */
export function json<T = BerthJson>(r: BerthRun): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (e) {
    throw new Error(`stdout of ${r.cmd} is not JSON: ${(e as Error).message}\n${show(r)}`);
  }
}

/**
 * One spec's command line for a test file: `plan` and `apply` carry the
 * arguments that name the spec (`-C`, `-i`, `-p`), and every run is handed to
 * `record` (the files search all output for secrets at the end).
 */
export function specCli(o: {
  cwd: () => string;
  /** Arguments after the subcommand that every plan and apply takes. */
  specArgs: () => string[];
  env?: () => Record<string, string | undefined>;
  record: (r: BerthRun) => void;
}): { cli: (...args: string[]) => Promise<BerthRun>; plan: (...args: string[]) => Promise<BerthRun>; apply: (...args: string[]) => Promise<BerthRun> } {
  const cli = async (...args: string[]): Promise<BerthRun> => {
    const r = await berth(args, { cwd: o.cwd(), env: o.env?.() });
    o.record(r);
    return r;
  };
  return {
    cli,
    plan: (...a) => cli('plan', ...o.specArgs(), ...a),
    apply: (...a) => cli('apply', ...o.specArgs(), ...a),
  };
}

/** Wall times of a test file's steps, printed when it ends. */
export function stopwatch(): { timings: string[]; timed: <T>(what: string, f: () => Promise<T>) => Promise<T> } {
  const timings: string[] = [];
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await f();
    } finally {
      timings.push(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  return { timings, timed };
}

// The shape of `--json` output and saved plans, as far as the tests read it.
export interface JsonChange {
  id: string;
  host: string;
  play: string;
  role?: string;
  task: string;
  module: string;
  resource: string;
  action: 'create' | 'update' | 'delete' | 'run';
  attrs: { name: string; before?: unknown; after?: unknown }[];
  diff?: string;
  sensitive?: boolean;
  notify?: string[];
  notifiedBy?: string[];
  tags: string[];
  status?: 'done' | 'failed' | 'skipped';
}

/** The changes of a plan or apply that must cover exactly one host. */
export function changesOfOnly(r: BerthRun | BerthJson, host: string): JsonChange[] {
  const j = 'format' in r ? r : json(r);
  expect(j.hosts.map((h) => h.host)).toEqual([host]);
  return j.hosts[0]!.changes;
}

export interface JsonHost {
  host: string;
  error?: string;
  changes: JsonChange[];
  fingerprints: Record<string, string>;
  notes: string[];
  stats?: { connections: number; roundTrips: number };
}

export interface BerthJson {
  format: string;
  kind: 'plan' | 'apply';
  hosts: JsonHost[];
  summary: { create: number; update: number; delete: number; run: number; changedHosts: number; failedHosts: number; hosts: number };
}

// ---------------------------------------------------------------- spec trees

/** One inventory host: its name, where it listens, and its host_vars. */
export interface InventoryHost {
  name: string;
  address: string;
  port: number;
  /** Written to host_vars/<name>.yml. */
  vars?: Record<string, unknown>;
}

/** A harness host as an inventory host of the `web` group (its app binds to its own address). */
export function webHost(ref: number | string): InventoryHost {
  const h: HostInfo = e2eHost(ref);
  return { name: h.name, address: h.address, port: h.port, vars: { app: { bind: h.address } } };
}

export interface SpecOptions {
  hosts: InventoryHost[];
  /** group_vars/web.yml (default: the greeting the tests expect). */
  webVars?: Record<string, unknown>;
  /** Path of the known_hosts file the inventory names (default: a copy of the harness's). */
  knownHosts?: string;
  /** Make the spec a git repository with one commit (as a real spec is). */
  git?: boolean;
}

export const DEFAULT_GREETING = 'hello from group_vars';

const specDirs: string[] = [];

/** Removes every spec directory made so far (call from afterAll). */
export function removeSpecDirs(): void {
  if (process.env.BERTH_E2E_KEEP_SPECS === '1') return;
  for (const d of specDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A copy of the fixture spec with a generated inventory, and the CLI run in it. */
export class SpecDir {
  readonly root: string;
  readonly hosts: InventoryHost[];
  readonly knownHosts: string;
  /** Environment added to every run (secrets). */
  env: Record<string, string | undefined> = {};

  private constructor(root: string, hosts: InventoryHost[], knownHosts: string) {
    this.root = root;
    this.hosts = hosts;
    this.knownHosts = knownHosts;
  }

  static async create(opts: SpecOptions): Promise<SpecDir> {
    const root = mkdtempSync(join(tmpdir(), 'berth-e2e-spec-'));
    specDirs.push(root);
    cpSync(FIXTURE_SPEC, root, { recursive: true });
    const kh = opts.knownHosts ?? join(root, 'known_hosts');
    if (!opts.knownHosts) writeFileSync(kh, readFileSync(knownHostsFile()));
    const spec = new SpecDir(root, opts.hosts, kh);
    spec.writeInventory(opts.webVars ?? { app: { greeting: DEFAULT_GREETING } });
    if (opts.git) await spec.gitInit();
    return spec;
  }

  path(rel: string): string {
    return join(this.root, rel);
  }

  read(rel: string): string {
    return readFileSync(this.path(rel), 'utf8');
  }

  write(rel: string, text: string, mode?: number): void {
    const p = this.path(rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    if (mode !== undefined) chmodSync(p, mode);
  }

  /** Rewrites group_vars/web.yml. */
  setWebVars(vars: Record<string, unknown>): void {
    this.write(`${INVENTORY}/group_vars/web.yml`, stringify(vars));
  }

  private writeInventory(webVars: Record<string, unknown>): void {
    const hosts: Record<string, Record<string, unknown>> = {};
    for (const h of this.hosts) hosts[h.name] = { berth_host: h.address, ...(h.port === 22 ? {} : { berth_port: h.port }) };
    this.write(`${INVENTORY}/hosts.yml`, stringify({ all: { children: { web: { hosts } } } }));
    this.write(
      `${INVENTORY}/group_vars/all.yml`,
      stringify({ berth_user: 'root', berth_key_file: keyFile(), berth_known_hosts: this.knownHosts, berth_connect_timeout: 10 }),
    );
    this.setWebVars(webVars);
    for (const h of this.hosts) if (h.vars) this.write(`${INVENTORY}/host_vars/${h.name}.yml`, stringify(h.vars));
  }

  private async gitInit(): Promise<void> {
    const git = (...args: string[]) =>
      execa('git', ['-c', 'user.name=berth e2e', '-c', 'user.email=e2e@berth.invalid', '-c', 'init.defaultBranch=main', ...args], {
        cwd: this.root,
        stdin: 'ignore',
        timeout: 30_000,
      });
    await git('init', '-q');
    await git('add', '-A');
    await git('commit', '-q', '-m', 'e2e spec');
  }

  async head(): Promise<string> {
    return (await execa('git', ['rev-parse', 'HEAD'], { cwd: this.root, stdin: 'ignore' })).stdout.trim();
  }

  /** `berth <cmd> -i inventories/e2e <args>` in the spec directory. */
  run(cmd: string, ...args: string[]): Promise<BerthRun> {
    return berth([cmd, '-i', INVENTORY, ...args], { cwd: this.root, env: this.env });
  }

  /** `berth <args>` as given (e.g. `apply plan.json`), in the spec directory. */
  raw(...args: string[]): Promise<BerthRun> {
    return berth(args, { cwd: this.root, env: this.env });
  }

  plan(...args: string[]): Promise<BerthRun> {
    return this.run('plan', ...args);
  }

  apply(...args: string[]): Promise<BerthRun> {
    return this.run('apply', ...args);
  }
}

// ---------------------------------------------------------------- hosts

/** Runs a shell script on a host through nsenter (no SSH, so sshd's log is not touched); throws on a non-zero exit. */
export async function onHost(ref: number | string, script: string): Promise<string> {
  const r = await testHosts().exec(ref, ['sh', '-c', script]);
  if (r.code !== 0) throw new Error(`on ${testHosts().name(ref)}: \`${script}\` exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Runs a shell script on a host over SSH as root; throws on a non-zero exit. */
export async function overSsh(ref: number | string, script: string): Promise<string> {
  const r = await testHosts().ssh(ref, script);
  if (r.code !== 0) throw new Error(`ssh ${testHosts().name(ref)}: \`${script}\` exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** How many lines sshd has logged on the host, and how many logins it accepted. */
export async function sshdLog(ref: number | string): Promise<{ lines: number; accepted: number }> {
  const out = await onHost(ref, 'journalctl -u ssh --no-pager -q -o cat > /tmp/.sshd-log; wc -l < /tmp/.sshd-log; grep -c "^Accepted publickey for " /tmp/.sshd-log || true; rm -f /tmp/.sshd-log');
  const [lines, accepted] = out.trim().split('\n').map(Number);
  return { lines: lines ?? NaN, accepted: accepted ?? NaN };
}

/**
 * sshd's log once it has settled: journald stores a line a moment after sshd
 * writes it, so poll until two reads 400 ms apart agree and `done` holds (or
 * the time is up).
 */
export async function settledSshdLog(
  ref: number | string,
  done: (l: { lines: number; accepted: number }) => boolean = () => true,
  timeoutMs = 8_000,
): Promise<{ lines: number; accepted: number }> {
  const deadline = Date.now() + timeoutMs;
  let prev = await sshdLog(ref);
  for (;;) {
    await sleep(400);
    const cur = await sshdLog(ref);
    const same = cur.lines === prev.lines && cur.accepted === prev.accepted;
    if ((same && done(cur)) || Date.now() > deadline) return cur;
    prev = cur;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}
