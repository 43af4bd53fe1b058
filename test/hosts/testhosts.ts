// Typed wrapper over testhosts.sh: real Debian 12 hosts (systemd-nspawn, sshd on
// 127.0.0.N only) for the e2e tests and the demo. Every call is bounded in time.
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface HostInfo {
  name: string;
  address: string;
  port: number;
  user: string;
  keyFile: string;
}

export interface TestHostsOptions {
  /** Machine names are `${prefix}${i}`; sets with distinct prefixes run side by side. */
  prefix?: string;
  /** Host i listens on 127.0.0.(addrOffset + i). */
  addrOffset?: number;
  stateDir?: string;
  /** Shared image cache; the script's default when omitted. */
  cacheDir?: string;
  /** Seconds the script waits for each host's sshd. */
  bootTimeoutSec?: number;
}

export interface CmdResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** A host by 1-based index or by machine name. */
export type HostRef = number | string;

export const SCRIPT = fileURLToPath(new URL('./testhosts.sh', import.meta.url));
const DEFAULT_CACHE = '/var/cache/berth-testhosts';

// A first build downloads ~600 MB and runs mmdebstrap (~100 s here).
const BUILD_TIMEOUT_MS = 20 * 60_000;
const HOST_OP_TIMEOUT_MS = 5 * 60_000;
const CMD_TIMEOUT_MS = 2 * 60_000;

export class TestHosts {
  readonly prefix: string;
  readonly addrOffset: number;
  readonly stateDir: string;
  readonly cacheDir: string;
  private readonly bootTimeoutSec: number;

  constructor(opts: TestHostsOptions = {}) {
    this.prefix = opts.prefix ?? 'testhost';
    this.addrOffset = opts.addrOffset ?? 10;
    this.stateDir = resolve(opts.stateDir ?? '/tmp/berth-testhosts');
    this.cacheDir = resolve(opts.cacheDir ?? DEFAULT_CACHE);
    this.bootTimeoutSec = opts.bootTimeoutSec ?? 90;
    if (!/^[a-z][a-z0-9-]*[a-z-]$/.test(this.prefix)) {
      // a trailing digit would make `${prefix}${i}` ambiguous
      throw new Error(`TestHosts: bad prefix ${JSON.stringify(this.prefix)}`);
    }
    if (!Number.isInteger(this.addrOffset) || this.addrOffset < 1 || this.addrOffset > 250) {
      throw new Error(`TestHosts: bad addrOffset ${this.addrOffset}`);
    }
  }

  get knownHostsFile(): string {
    return join(this.stateDir, 'known_hosts');
  }

  get keyFile(): string {
    return join(this.cacheDir, 'id_ed25519');
  }

  get sshConfigFile(): string {
    return join(this.stateDir, 'ssh_config');
  }

  index(ref: HostRef): number {
    if (typeof ref === 'number') return checkIndex(ref);
    const m = ref.startsWith(this.prefix) ? /^\d+$/.exec(ref.slice(this.prefix.length)) : null;
    if (!m) throw new Error(`TestHosts: ${ref} is not one of the ${this.prefix}N hosts`);
    return checkIndex(Number(m[0]));
  }

  name(ref: HostRef): string {
    return `${this.prefix}${this.index(ref)}`;
  }

  address(ref: HostRef): string {
    return `127.0.0.${this.addrOffset + this.index(ref)}`;
  }

  /** The host's writable overlay layer: what it changed, seen from outside. */
  upperDir(ref: HostRef): string {
    return join(this.stateDir, 'hosts', this.name(ref), 'upper');
  }

  async build(): Promise<void> {
    await this.script(['build'], BUILD_TIMEOUT_MS);
  }

  /** Starts hosts 1..n (already running ones are kept as they are). */
  async up(n: number): Promise<HostInfo[]> {
    if (!Number.isInteger(n) || n < 1 || this.addrOffset + n > 254) {
      throw new Error(`TestHosts.up: bad host count ${n}`);
    }
    await this.script(['up', String(n)], BUILD_TIMEOUT_MS + HOST_OP_TIMEOUT_MS);
    return this.hosts();
  }

  /** Stops the given hosts, wipes their writable layer and boots them again. */
  async reset(...refs: HostRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.script(['reset', ...refs.map((r) => String(this.index(r)))], HOST_OP_TIMEOUT_MS);
  }

  async resetAll(): Promise<void> {
    await this.script(['reset', 'all'], HOST_OP_TIMEOUT_MS);
  }

  async down(opts: { purge?: boolean } = {}): Promise<void> {
    await this.script(opts.purge ? ['down', '--purge'] : ['down'], HOST_OP_TIMEOUT_MS);
  }

  /** The running hosts, as the script's inventory lists them. */
  async hosts(): Promise<HostInfo[]> {
    const raw = await readFile(join(this.stateDir, 'inventory.json'), 'utf8');
    const parsed = JSON.parse(raw) as { hosts: HostInfo[] };
    return parsed.hosts;
  }

  /** OpenSSH client options: key only, strict host-key checking against our known_hosts. */
  sshOptions(): string[] {
    return [
      '-F', '/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-i', this.keyFile,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${this.knownHostsFile}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=10',
      '-o', 'LogLevel=ERROR',
      // the default sntrup761 KEX costs ~0.1 s of client CPU per connection
      '-o', 'KexAlgorithms=curve25519-sha256',
    ];
  }

  /** Runs a shell command on the host over SSH as root. Never throws on a non-zero exit. */
  async ssh(ref: HostRef, cmd: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<CmdResult> {
    const args = [...this.sshOptions(), '-p', '22', `root@${this.address(ref)}`, '--', cmd];
    return run('ssh', args, opts.timeoutMs ?? CMD_TIMEOUT_MS, opts.input);
  }

  /** Runs argv inside the host's namespaces via nsenter (works when sshd does not). */
  async exec(ref: HostRef, argv: string[], opts: { timeoutMs?: number } = {}): Promise<CmdResult> {
    if (argv.length === 0) throw new Error('TestHosts.exec: empty argv');
    return run('bash', [SCRIPT, 'exec', String(this.index(ref)), ...argv], opts.timeoutMs ?? CMD_TIMEOUT_MS, undefined, this.env());
  }

  private env(): Record<string, string> {
    return {
      TESTHOSTS_PREFIX: this.prefix,
      TESTHOSTS_ADDR_OFFSET: String(this.addrOffset),
      TESTHOSTS_STATE: this.stateDir,
      TESTHOSTS_CACHE: this.cacheDir,
      TESTHOSTS_BOOT_TIMEOUT: String(this.bootTimeoutSec),
    };
  }

  private async script(args: string[], timeoutMs: number): Promise<CmdResult> {
    // via bash: works even where a checkout lost the script's executable bit
    const r = await run('bash', [SCRIPT, ...args], timeoutMs, undefined, this.env());
    if (r.code !== 0) {
      throw new Error(`testhosts.sh ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr.trim()}\n${r.stdout.trim()}`);
    }
    return r;
  }
}

function checkIndex(i: number): number {
  if (!Number.isInteger(i) || i < 1) throw new Error(`TestHosts: bad host index ${i}`);
  return i;
}

async function run(
  file: string,
  args: string[],
  timeoutMs: number,
  input?: string,
  env?: Record<string, string>,
): Promise<CmdResult> {
  const r = await execa(file, args, {
    reject: false,
    timeout: timeoutMs,
    forceKillAfterDelay: 5_000,
    stripFinalNewline: false,
    env: env ?? {},
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  if (r.timedOut) {
    throw new Error(`${file} ${args.join(' ')} timed out after ${timeoutMs} ms`);
  }
  // execa reports a spawn failure (e.g. ssh missing) without an exit code
  if (r.exitCode === undefined) {
    throw new Error(`${file} ${args.join(' ')} did not run: ${r.message}`);
  }
  return { stdout: String(r.stdout), stderr: String(r.stderr), code: r.exitCode };
}
