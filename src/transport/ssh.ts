// SSH transport: one connection per host for the whole run (node-ssh for the
// connection, ssh2 channels for commands), host keys checked against an
// OpenSSH known_hosts file before anything is sent.

import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { NodeSSH, type Config as NodeSshConfig } from 'node-ssh';
import type { Client, ClientChannel } from 'ssh2';
import type { ExecOptions, ExecResult, Transport, TransportStats } from '../types.js';
import { BerthError } from '../util/errors.js';
import { LineFeed, Semaphore, signalExitCode, toBuffer, wrapScript, type TransportSession } from './common.js';
import { appendHostKey, hostKeyName, keyTypeOfBlob, knownKeyTypes, lookupHostKey } from './knownhosts.js';

export interface SshOptions {
  /** Inventory name (used in messages; also accepted as a known_hosts name). */
  host: string;
  /** Address to connect to (name or IP). */
  address: string;
  port: number;
  user: string;
  keyFile?: string;
  /** ssh-agent socket; default $SSH_AUTH_SOCK. */
  agent?: string;
  knownHostsFile: string;
  /** strict: unknown host keys are refused; accept-new: they are recorded. A changed key is always refused. */
  hostKeyPolicy: 'strict' | 'accept-new';
  /** Default for ExecOptions.become. */
  become: boolean;
  connectTimeoutMs: number;
}

/** OpenSSH's default MaxSessions is 10 per connection; stay below it. */
const MAX_CHANNELS = 8;
const KEEPALIVE_MS = 15_000;
const KEEPALIVE_MAX = 3;
/** Tries to open a channel the server refuses (no free session slot) before giving up. */
const OPEN_RETRIES = 40;

// curve25519 first: the fastest key exchange both sides support.
const KEX = [
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'ecdh-sha2-nistp384',
  'ecdh-sha2-nistp521',
  'diffie-hellman-group-exchange-sha256',
  'diffie-hellman-group14-sha256',
  'diffie-hellman-group16-sha512',
  'diffie-hellman-group18-sha512',
] as const;

const HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
] as const;

/** Host-key algorithms with the ones known_hosts already holds for the host first (as OpenSSH does). */
function hostKeyOrder(known: string[]): string[] {
  const first: string[] = [];
  for (const t of known) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [t];
    for (const a of algos) if ((HOST_KEY_ALGOS as readonly string[]).includes(a) && !first.includes(a)) first.push(a);
  }
  return [...first, ...HOST_KEY_ALGOS.filter((a) => !first.includes(a))];
}

function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

type Pending = (err: BerthError) => void;

export class SshTransport implements Transport {
  readonly host: string;
  readonly stats: TransportStats = { connections: 0, roundTrips: 0 };
  /** Milliseconds the last successful connect took (TCP + handshake + auth). */
  connectMs: number | undefined;

  readonly #o: SshOptions;
  #ssh: NodeSSH | undefined;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #lostReason: string | undefined;
  #closed = false;
  readonly #slots = new Semaphore(MAX_CHANNELS);
  readonly #pending = new Set<Pending>();

  constructor(opts: SshOptions) {
    this.#o = { ...opts };
    this.host = opts.host;
  }

  get #where(): string {
    const addr = this.#o.port === 22 ? this.#o.address : `${this.#o.address}:${this.#o.port}`;
    return this.#o.host === this.#o.address ? addr : `${this.#o.host} (${addr})`;
  }

  /** Opens the connection now (otherwise the first exec does). Idempotent. */
  async connect(): Promise<void> {
    await this.#getClient();
  }

  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.stats.roundTrips++;
    const client = await this.#getClient();
    const release = await this.#slots.acquire();
    try {
      return await this.#run(client, script, opts);
    } finally {
      release();
    }
  }

  async session(script: string, opts: ExecOptions = {}): Promise<TransportSession> {
    this.stats.roundTrips++;
    const client = await this.#getClient();
    const release = await this.#slots.acquire();
    try {
      let session: TransportSession | undefined;
      await this.#open(client, script, opts.become, 'starting a session', (ch) => {
        session = this.#wrapSession(ch, opts, release);
      });
      if (!session) throw new BerthError(`cannot start a session on host ${this.#where}`, { host: this.host });
      return session;
    } catch (e) {
      release();
      throw e;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#connecting) {
      try {
        await this.#connecting;
      } catch {
        // never connected: nothing to close
      }
    }
    const client = this.#client;
    const ssh = this.#ssh;
    this.#client = undefined;
    this.#ssh = undefined;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ssh?.dispose();
        resolve();
      }, 2000);
      timer.unref();
      client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      client.end();
    });
  }

  // ------------------------------------------------------------ connection

  #getClient(): Promise<Client> {
    if (this.#closed) return Promise.reject(new BerthError(`the connection to ${this.#where} is already closed`, { host: this.host }));
    if (this.#lostReason !== undefined) return Promise.reject(this.#lost('sending a command'));
    this.#connecting ??= this.#connect();
    return this.#connecting;
  }

  #lost(doing: string): BerthError {
    return new BerthError(`lost connection to host ${this.#where} while ${doing}${this.#lostReason ? `: ${this.#lostReason}` : ''}`, {
      host: this.host,
    });
  }

  #markLost(reason: string): void {
    if (this.#closed || this.#lostReason !== undefined) return;
    this.#lostReason = reason;
    for (const p of [...this.#pending]) p(this.#lost('running a command'));
  }

  async #connect(): Promise<Client> {
    const o = this.#o;
    const t0 = performance.now();
    const deadline = t0 + o.connectTimeoutMs;

    let privateKey: string | undefined;
    if (o.keyFile) {
      try {
        privateKey = readFileSync(o.keyFile, 'utf8');
      } catch (e) {
        throw new BerthError(`cannot read SSH key file ${o.keyFile} for host ${o.host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
          host: o.host,
          hint: 'check berth_key_file, or leave it unset and use ssh-agent',
        });
      }
    }
    const agent = o.agent ?? process.env['SSH_AUTH_SOCK'];
    if (!privateKey && !agent) {
      throw new BerthError(`no SSH credentials for host ${this.#where}`, {
        host: o.host,
        hint: 'set berth_key_file or start ssh-agent (SSH_AUTH_SOCK)',
      });
    }

    const sock = await this.#tcpConnect(deadline);

    const names = o.host === o.address ? [o.address] : [o.address, o.host];
    let refusal: BerthError | undefined;
    let toRecord: { type: string; key: string } | undefined;
    const hostVerifier = (blob: Buffer, verify: (ok: boolean) => void): void => {
      const type = keyTypeOfBlob(blob);
      const key = blob.toString('base64');
      const fp = fingerprint(blob);
      const file = o.knownHostsFile;
      let found;
      try {
        found = lookupHostKey(file, names, o.port, type, key);
      } catch (e) {
        refusal = e instanceof BerthError ? e : new BerthError(String(e));
        verify(false);
        return;
      }
      const name = hostKeyName(o.address, o.port);
      switch (found.status) {
        case 'ok':
          verify(true);
          return;
        case 'revoked':
          refusal = new BerthError(`host key for ${this.#where} is revoked (${file}:${found.line}, ${type} ${fp}); refusing`, {
            host: o.host,
          });
          break;
        case 'mismatch':
          refusal = new BerthError(`host key for ${this.#where} changed: possible man-in-the-middle; refusing`, {
            host: o.host,
            hint: `it now presents ${type} ${fp}, ${file}:${found.line} holds another; if the change is expected, remove the old key with: ssh-keygen -R '${name}' -f ${file}`,
          });
          break;
        case 'unknown':
          if (o.hostKeyPolicy === 'accept-new') {
            toRecord = { type, key };
            verify(true);
            return;
          }
          refusal = new BerthError(`unknown host key for ${this.#where} (${type} ${fp}): not in ${file}; refusing`, {
            host: o.host,
            hint: `run with --accept-new-host-keys to record it, or add it yourself: ssh-keyscan -p ${o.port} -t ${type} ${o.address} >> ${file} (check the fingerprint out of band first)`,
          });
          break;
      }
      verify(false);
    };

    let known: string[] = [];
    try {
      known = knownKeyTypes(o.knownHostsFile, names, o.port);
    } catch {
      // unreadable file: the verifier reports it
    }

    const ssh = new NodeSSH();
    const config: NodeSshConfig = {
      sock,
      username: o.user,
      readyTimeout: Math.max(1, Math.round(deadline - performance.now())),
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_MAX,
      hostVerifier: hostVerifier as NodeSshConfig['hostVerifier'],
      algorithms: {
        kex: [...KEX],
        serverHostKey: hostKeyOrder(known) as NonNullable<NodeSshConfig['algorithms']>['serverHostKey'],
      },
    };
    if (privateKey !== undefined) config.privateKey = privateKey;
    if (agent) config.agent = agent;

    try {
      await ssh.connect(config);
    } catch (e) {
      sock.destroy();
      ssh.dispose();
      throw refusal ?? this.#connectError(e);
    }
    const client = ssh.connection;
    if (!client) {
      sock.destroy();
      throw new BerthError(`cannot connect to host ${this.#where}: connection closed right after login`, { host: o.host });
    }
    client.on('error', (e: Error) => this.#markLost(e.message));
    client.on('close', () => this.#markLost('connection closed'));
    // recorded only now that the server proved it holds the key and we are logged in
    if (toRecord) {
      try {
        appendHostKey(o.knownHostsFile, o.address, o.port, toRecord.type, toRecord.key);
      } catch (e) {
        ssh.dispose();
        throw e;
      }
    }
    this.#ssh = ssh;
    this.#client = client;
    this.connectMs = performance.now() - t0;
    return client;
  }

  #tcpConnect(deadline: number): Promise<Socket> {
    const o = this.#o;
    return new Promise<Socket>((resolve, reject) => {
      const sock = netConnect({ host: o.address, port: o.port });
      const ms = Math.max(1, Math.round(deadline - performance.now()));
      const timer = setTimeout(() => {
        sock.destroy();
        reject(
          new BerthError(`cannot connect to host ${this.#where}: no answer within ${(ms / 1000).toFixed(1)} s`, {
            host: o.host,
            hint: 'check the address and port, that the host is up, and that no firewall drops port ' + o.port,
          }),
        );
      }, ms);
      const onError = (e: Error): void => {
        clearTimeout(timer);
        sock.destroy();
        reject(this.#connectError(e));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.off('error', onError);
        sock.setNoDelay(true);
        this.stats.connections++;
        resolve(sock);
      });
    });
  }

  #connectError(e: unknown): BerthError {
    if (e instanceof BerthError) return e;
    const o = this.#o;
    const err = e as Error & { code?: string; level?: string };
    const msg = err?.message ?? String(e);
    const at = `cannot connect to host ${this.#where}`;
    const opts = (hint: string) => ({ host: o.host, hint, cause: e });
    switch (err?.code) {
      case 'ECONNREFUSED':
        return new BerthError(`${at}: connection refused`, opts(`is sshd running and listening on ${o.address} port ${o.port}?`));
      case 'ETIMEDOUT':
        return new BerthError(`${at}: connection timed out`, opts('check the address, that the host is up, and firewalls'));
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        return new BerthError(`${at}: no route to host`, opts('check the address and the network'));
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new BerthError(`${at}: cannot resolve ${o.address}`, opts('check the host name or use an IP address'));
      case 'ECONNRESET':
        return new BerthError(`${at}: connection reset during the SSH handshake`, opts('check that the port speaks SSH and that the server accepts us (MaxStartups, tcp wrappers)'));
    }
    if (err?.level === 'client-authentication') {
      return new BerthError(
        `${at}: authentication failed for user ${o.user}`,
        opts(`check berth_user and that the public key of ${o.keyFile ?? 'the ssh-agent'} is in ~${o.user}/.ssh/authorized_keys`),
      );
    }
    if (err?.level === 'client-timeout') {
      return new BerthError(`${at}: SSH handshake timed out after ${(o.connectTimeoutMs / 1000).toFixed(1)} s`, opts('the port answers but no SSH server replied in time'));
    }
    if (/passphrase/i.test(msg)) {
      return new BerthError(`${at}: the key file ${o.keyFile} is encrypted`, opts(`load it into ssh-agent (ssh-add ${o.keyFile}) and leave the key file unset`));
    }
    if (/Cannot parse privateKey|privateKey value/i.test(msg)) {
      return new BerthError(`${at}: cannot parse the key file ${o.keyFile}`, opts('use an OpenSSH or PEM private key'));
    }
    if (/No response from server|before handshake/i.test(msg)) {
      return new BerthError(`${at}: the server closed the connection during the SSH handshake`, opts('check that the port speaks SSH'));
    }
    if (/no matching/i.test(msg)) {
      return new BerthError(`${at}: ${msg}`, opts('the server offers no algorithm berth supports'));
    }
    return new BerthError(`${at}: ${msg}`, opts('check the address, port, user and key'));
  }

  // ------------------------------------------------------------ channels

  /**
   * Opens a channel that runs `script`. `attach` runs synchronously inside
   * ssh2's callback: the channel's 'exit' event is not buffered like its
   * data, so listeners added after an `await` could miss it.
   *
   * sshd frees a session slot (MaxSessions, default 10) a little after it
   * closed the channel, so a burst of short commands can briefly find none
   * free: a refused channel open is retried with a short backoff (bounded).
   */
  #open(client: Client, script: string, become: boolean | undefined, doing: string, attach: (ch: ClientChannel) => void): Promise<void> {
    const sudo = (become ?? this.#o.become) && this.#o.user !== 'root';
    const cmd = wrapScript(script, sudo);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let attempt = 0;
      const fail = (e: BerthError): void => {
        if (settled) return;
        settled = true;
        this.#pending.delete(onLost);
        reject(e);
      };
      const onLost: Pending = () => fail(this.#lost(doing));
      this.#pending.add(onLost);
      const tryOpen = (): void => {
        if (settled) return;
        if (this.#lostReason !== undefined) {
          fail(this.#lost(doing));
          return;
        }
        try {
          client.exec(cmd, (err, ch) => {
            if (settled) {
              ch?.close();
              return;
            }
            if (err) {
              if (this.#lostReason !== undefined) {
                fail(this.#lost(doing));
              } else if (err.message.startsWith('(SSH) Channel open failure') && attempt < OPEN_RETRIES) {
                attempt++;
                setTimeout(tryOpen, Math.min(250, 5 * 2 ** attempt));
              } else {
                fail(
                  new BerthError(`cannot start a command on host ${this.#where}: ${err.message}`, {
                    host: this.host,
                    cause: err,
                    hint: err.message.startsWith('(SSH) Channel open failure')
                      ? `the server refused new channels for ${OPEN_RETRIES} tries; is its MaxSessions below ${MAX_CHANNELS}?`
                      : undefined,
                  }),
                );
              }
              return;
            }
            settled = true;
            this.#pending.delete(onLost);
            attach(ch);
            resolve();
          });
        } catch (e) {
          this.#markLost((e as Error).message);
          fail(this.#lost(doing));
        }
      };
      tryOpen();
    });
  }

  async #run(client: Client, script: string, opts: ExecOptions): Promise<ExecResult> {
    let result: Promise<ExecResult> | undefined;
    await this.#open(client, script, opts.become, 'running a command', (ch) => {
      result = this.#collect(ch, opts);
      result.catch(() => {
        // awaited just below; this only keeps an early rejection from counting as unhandled
      });
    });
    if (!result) throw new BerthError(`cannot start a command on host ${this.#where}`, { host: this.host });
    return result;
  }

  /** Gathers a command's output and exit status; listeners are attached synchronously. */
  #collect(ch: ClientChannel, opts: ExecOptions): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let code: number | undefined;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        this.#pending.delete(onLost);
        fn();
      };
      const onLost: Pending = (e) => finish(() => reject(e));
      this.#pending.add(onLost);

      ch.on('data', (b: Buffer) => out.push(b));
      ch.stderr.on('data', (b: Buffer) => err.push(b));
      ch.on('exit', (c: number | null, signal?: string) => {
        code = typeof c === 'number' ? c : signalExitCode(signal);
      });
      ch.on('error', () => {
        // stdin written after the command exited: the exit status still tells what happened
      });
      ch.on('close', () => {
        if (code === undefined) {
          finish(() =>
            reject(
              this.#lostReason !== undefined
                ? this.#lost('running a command')
                : new BerthError(`lost connection to host ${this.#where} while running a command: the command ended without an exit status`, {
                    host: this.host,
                  }),
            ),
          );
          return;
        }
        const c = code;
        finish(() => resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code: c }));
      });
      if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) {
        const ms = opts.timeoutMs;
        timer = setTimeout(() => {
          try {
            ch.signal('KILL');
          } catch {
            // old servers ignore signal requests; closing the channel still ends our wait
          }
          ch.close();
          finish(() =>
            reject(new BerthError(`command timed out after ${(ms / 1000).toFixed(1)} s on host ${this.#where}`, { host: this.host })),
          );
        }, ms);
      }
      if (opts.stdin instanceof Readable) {
        opts.stdin.on('error', (e: Error) => {
          ch.close();
          finish(() => reject(new BerthError(`cannot read the data to send to host ${this.#where}: ${e.message}`, { host: this.host })));
        });
        opts.stdin.pipe(ch);
      } else if (opts.stdin !== undefined) ch.end(toBuffer(opts.stdin));
      else ch.end();
    });
  }

  #wrapSession(ch: ClientChannel, opts: ExecOptions, release: () => void): TransportSession {
    const feed = new LineFeed();
    const err: Buffer[] = [];
    let errLen = 0;
    let code: number | undefined;
    let settle!: { resolve: (c: number) => void; reject: (e: BerthError) => void };
    let settled = false;
    const done = new Promise<number>((resolve, reject) => {
      settle = { resolve, reject };
    });
    done.catch(() => {
      // the owner sees the rejection through `done`; nobody awaiting it must not crash the run
    });
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      this.#pending.delete(onLost);
      release();
      feed.flush();
      fn();
    };
    const onLost: Pending = () => finish(() => settle.reject(this.#lost('holding a session')));
    this.#pending.add(onLost);

    ch.on('data', (b: Buffer) => feed.push(b));
    ch.stderr.on('data', (b: Buffer) => {
      if (errLen < 64 * 1024) {
        err.push(b);
        errLen += b.length;
      }
    });
    ch.on('exit', (c: number | null, signal?: string) => {
      code = typeof c === 'number' ? c : signalExitCode(signal);
    });
    ch.on('error', () => {
      // see #run
    });
    ch.on('close', () => {
      if (code === undefined) finish(() => settle.reject(this.#lost('holding a session')));
      else {
        const c = code;
        finish(() => settle.resolve(c));
      }
    });
    if (opts.stdin !== undefined && !(opts.stdin instanceof Readable)) ch.write(toBuffer(opts.stdin));
    let ended = false;
    return {
      onLine: (cb) => feed.subscribe(cb),
      done,
      end: () => {
        if (ended || settled) return;
        ended = true;
        ch.end();
      },
      get stderr() {
        return Buffer.concat(err).toString('utf8');
      },
    };
  }
}
