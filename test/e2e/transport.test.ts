// SshTransport against real sshd hosts: host keys, binary stdin, sudo,
// one connection per host, sessions holding a flock, clear failures.

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherFacts } from '../../src/facts/batch.js';
import { checkHostKey } from '../../src/transport/knownhosts.js';
import { openTransport } from '../../src/transport/index.js';
import { SshTransport, type SshOptions } from '../../src/transport/ssh.js';
import { BerthError, isBerthError } from '../../src/util/errors.js';
import { shq } from '../../src/util/shell.js';
import { e2eHost, keyFile, knownHostsFile, resetHosts } from './hosts.js';

let dir: string;
const open: SshTransport[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-e2e-transport-'));
});
afterAll(async () => {
  await Promise.all(open.map((t) => t.close()));
  rmSync(dir, { recursive: true, force: true });
});

function ssh(ref: number, over: Partial<SshOptions> = {}): SshTransport {
  const h = e2eHost(ref);
  const t = new SshTransport({
    host: h.name,
    address: h.address,
    port: h.port,
    user: h.user,
    keyFile: keyFile(),
    agent: '', // only the test key, whatever the environment's agent holds
    knownHostsFile: knownHostsFile(),
    hostKeyPolicy: 'strict',
    become: false,
    connectTimeoutMs: 10_000,
    ...over,
  });
  open.push(t);
  return t;
}

async function failure(p: Promise<unknown>): Promise<BerthError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(isBerthError(e), `expected a BerthError, got ${String(e)}`).toBe(true);
  return e as BerthError;
}

const ms = (n: number): string => `${n.toFixed(1)} ms`;

describe('SshTransport', () => {
  it('uses one connection for many execs, sequential and parallel (and reports timings)', async () => {
    const t = ssh(1);
    const t0 = performance.now();
    await t.connect();
    const connectMs = performance.now() - t0;
    const first = await t.exec('hostname');
    expect(first).toEqual({ stdout: `${e2eHost(1).name}\n`, stderr: '', code: 0 });

    const n = 30;
    const s0 = performance.now();
    for (let i = 0; i < n; i++) expect((await t.exec(`echo ${i}`)).stdout).toBe(`${i}\n`);
    const rtt = (performance.now() - s0) / n;

    // more in flight than OpenSSH's MaxSessions (10): channels are queued, not refused
    const p0 = performance.now();
    const par = await Promise.all(Array.from({ length: 40 }, (_, i) => t.exec(`echo p${i}; exit ${i % 3}`)));
    const parMs = performance.now() - p0;
    par.forEach((r, i) => expect(r).toEqual({ stdout: `p${i}\n`, stderr: '', code: i % 3 }));

    expect(t.stats).toEqual({ connections: 1, roundTrips: 1 + n + 40 });
    console.log(
      `[transport] connect (TCP+kex+auth) ${ms(connectMs)}; exec round trip ${ms(rtt)} sequential; 40 parallel execs in ${ms(parMs)}`,
    );
  });

  it('keeps stdout, stderr and exit codes apart and exact; never throws for a non-zero exit', async () => {
    const t = ssh(1);
    expect(await t.exec(`printf 'a\\n\\n'; printf 'e' >&2; exit 42`)).toEqual({ stdout: 'a\n\n', stderr: 'e', code: 42 });
    expect((await t.exec('kill -TERM $$')).code).toBe(143);
    const script = `x='it'"'"'s'\nprintf '%s|%s\\n' "$x" '$(not run) \`nor this\`'`;
    expect((await t.exec(script)).stdout).toBe("it's|$(not run) `nor this`\n");
  });

  it('round-trips binary stdin byte-exact', async () => {
    const t = ssh(1);
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const data = Buffer.concat([all, randomBytes(4 * 1024 * 1024), all]);
    const r = await t.exec('base64 -w0', { stdin: data });
    expect(r.code).toBe(0);
    expect(Buffer.from(r.stdout, 'base64').equals(data)).toBe(true);
    const sum = await t.exec('sha256sum | cut -d" " -f1', { stdin: data });
    expect(sum.stdout.trim()).toBe(createHash('sha256').update(data).digest('hex'));
    // a file written from stdin is exact too
    await t.exec('cat > /tmp/berth-bin', { stdin: data });
    const back = await t.exec('base64 -w0 < /tmp/berth-bin; rm -f /tmp/berth-bin');
    expect(Buffer.from(back.stdout, 'base64').equals(data)).toBe(true);
    // stdin is closed when none is given: `cat` does not hang
    expect((await t.exec('cat; echo done', { timeoutMs: 10_000 })).stdout).toBe('done\n');
  });

  it('times a command out with a BerthError and keeps the connection usable', async () => {
    const t = ssh(1);
    const e = await failure(t.exec('sleep 20', { timeoutMs: 500 }));
    expect(e.message).toMatch(new RegExp(`command timed out after 0.5 s on host ${e2eHost(1).name}`));
    expect((await t.exec('echo alive')).stdout).toBe('alive\n');
    expect(t.stats.connections).toBe(1);
  });

  it('gathers facts in one round trip over SSH', async () => {
    const t = ssh(2);
    const facts = await gatherFacts(t, [
      { key: 'hostname', command: 'hostname', parse: (o) => o.trim() },
      { key: 'os', command: '. /etc/os-release; printf %s "$VERSION_CODENAME"', parse: (o) => o },
      { key: 'missing', command: 'cat /nonexistent', parse: (o, code) => (code === 0 ? o : null) },
    ]);
    expect(facts.get('hostname')).toBe(e2eHost(2).name);
    expect(facts.get('os')).toBe('bookworm');
    expect(facts.get('missing')).toBeNull();
    expect(t.stats).toEqual({ connections: 1, roundTrips: 1 });
  });
});

describe('host keys', () => {
  it('refuses an unknown host key with the remedy, even before sending anything', async () => {
    const empty = join(dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const h = e2eHost(1);
    const t = ssh(1, { knownHostsFile: empty });
    const e = await failure(t.exec('touch /tmp/should-not-run'));
    expect(e.message).toContain(`unknown host key for ${h.name} (${h.address})`);
    expect(e.message).toContain(empty);
    expect(e.hint).toContain('--accept-new-host-keys');
    expect(e.hint).toContain(`ssh-keyscan -p 22 -t ssh-ed25519 ${h.address} >> ${empty}`);
    expect(e.format()).toMatch(/refusing \(run with --accept-new-host-keys/);
    expect(readFileSync(empty, 'utf8')).toBe('');
    expect(t.stats.roundTrips).toBe(1);
    // a second attempt fails the same way without a new connection
    await failure(t.exec('true'));
    expect(t.stats.connections).toBe(1);
  });

  it('refuses a changed host key loudly, with strict and with accept-new', async () => {
    const other = join(dir, 'otherkey');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const pub = readFileSync(`${other}.pub`, 'utf8').trim().split(' ');
    const h = e2eHost(1);
    const kh = join(dir, 'changed_known_hosts');
    const content = `${h.address} ${pub[0]} ${pub[1]}\n`;
    writeFileSync(kh, content);
    for (const policy of ['strict', 'accept-new'] as const) {
      const t = ssh(1, { knownHostsFile: kh, hostKeyPolicy: policy });
      const e = await failure(t.exec('true'));
      expect(e.message).toBe(`host key for ${h.name} (${h.address}) changed: possible man-in-the-middle; refusing`);
      expect(e.hint).toContain(`${kh}:1`);
      expect(e.hint).toContain(`ssh-keygen -R '${h.address}' -f ${kh}`);
    }
    expect(readFileSync(kh, 'utf8')).toBe(content);
  });

  it('refuses a revoked host key', async () => {
    const h = e2eHost(1);
    const harness = readFileSync(knownHostsFile(), 'utf8').split('\n');
    const ed = harness.find((l) => l.split(' ')[1] === 'ssh-ed25519')!;
    const edKey = ed.split(' ').slice(1, 3).join(' ');
    const kh = join(dir, 'revoked_known_hosts');
    writeFileSync(kh, `${ed}\n@revoked * ${edKey}\n`);
    const e = await failure(ssh(1, { knownHostsFile: kh }).exec('true'));
    expect(e.message).toContain(`host key for ${h.name} (${h.address}) is revoked (${kh}:2, ssh-ed25519 SHA256:`);
  });

  it('accept-new records an unknown key (0600 file, new directory) and then checks it strictly', async () => {
    const h = e2eHost(2);
    const kh = join(dir, 'fresh', 'dir', 'known_hosts');
    const t = ssh(2, { knownHostsFile: kh, hostKeyPolicy: 'accept-new' });
    expect((await t.exec('hostname')).stdout).toBe(`${h.name}\n`);
    expect(statSync(kh).mode & 0o777).toBe(0o600);
    const lines = readFileSync(kh, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const [name, type, key] = lines[0]!.split(' ');
    expect(name).toBe(h.address);
    // the very key the harness recorded for this host
    expect(checkHostKey(knownHostsFile(), h.address, 22, type!, key!)).toBe('ok');
    // OpenSSH reads the file we wrote
    expect(execFileSync('ssh-keygen', ['-F', h.address, '-f', kh], { encoding: 'utf8' })).toContain(key);
    const strict = ssh(2, { knownHostsFile: kh, hostKeyPolicy: 'strict' });
    expect((await strict.exec('true')).code).toBe(0);
    expect(readFileSync(kh, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('openTransport builds an SSH transport from a ConnectionSpec', async () => {
    const h = e2eHost(2);
    const t = openTransport({
      host: h.name,
      kind: 'ssh',
      address: h.address,
      port: h.port,
      user: h.user,
      keyFile: keyFile(),
      knownHostsFile: knownHostsFile(),
      hostKeyPolicy: 'strict',
      become: true,
    });
    try {
      expect(t).toBeInstanceOf(SshTransport);
      expect((await t.exec('id -un')).stdout).toBe('root\n'); // root needs no sudo
    } finally {
      await t.close();
    }
  });
});

describe('connection failures', () => {
  it('fails fast and clearly where nothing listens', async () => {
    const t = new SshTransport({
      host: 'ghost',
      address: '127.0.0.254',
      port: 22,
      user: 'root',
      keyFile: keyFile(),
      agent: '',
      knownHostsFile: knownHostsFile(),
      hostKeyPolicy: 'strict',
      become: false,
      connectTimeoutMs: 10_000,
    });
    const t0 = performance.now();
    const e = await failure(t.exec('true'));
    const took = performance.now() - t0;
    expect(e.message).toBe('cannot connect to host ghost (127.0.0.254): connection refused');
    expect(e.hint).toMatch(/sshd running and listening on 127\.0\.0\.254 port 22/);
    expect(e.host).toBe('ghost');
    expect(took).toBeLessThan(2000);
    expect(t.stats.connections).toBe(0);
    await t.close();
  });

  it('times out a port that accepts but never speaks SSH', async () => {
    const sockets: import('node:net').Socket[] = [];
    const server: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const t = new SshTransport({
        host: 'mute',
        address: '127.0.0.1',
        port,
        user: 'root',
        keyFile: keyFile(),
        agent: '',
        knownHostsFile: knownHostsFile(),
        hostKeyPolicy: 'strict',
        become: false,
        connectTimeoutMs: 700,
      });
      const t0 = performance.now();
      const e = await failure(t.exec('true'));
      expect(e.message).toBe(`cannot connect to host mute (127.0.0.1:${port}): SSH handshake timed out after 0.7 s`);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(t.stats.connections).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('names the user and key when authentication fails', async () => {
    const wrong = join(dir, 'wrongkey');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    const h = e2eHost(1);
    const e = await failure(ssh(1, { keyFile: wrong }).exec('true'));
    expect(e.message).toBe(`cannot connect to host ${h.name} (${h.address}): authentication failed for user root`);
    expect(e.hint).toContain(wrong);
    const locked = join(dir, 'lockedkey');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-f', locked]);
    const enc = await failure(ssh(1, { keyFile: locked }).exec('true'));
    expect(enc.message).toBe(`cannot connect to host ${h.name} (${h.address}): the key file ${locked} is encrypted`);
    expect(enc.hint).toContain(`ssh-add ${locked}`);
    const missing = await failure(ssh(1, { keyFile: join(dir, 'nokey') }).exec('true'));
    expect(missing.message).toMatch(/cannot read SSH key file .*nokey for host .*ENOENT/);
  });

  it('a lost connection fails the running command and later ones with a BerthError', async () => {
    const t = ssh(1);
    await t.exec('true');
    // the command kills the sshd process serving this connection
    const e = await failure(t.exec('kill -KILL $PPID; sleep 10'));
    expect(e.message).toMatch(new RegExp(`^lost connection to host ${e2eHost(1).name} \\(.*\\) while running a command`));
    const later = await failure(t.exec('true'));
    expect(later.message).toMatch(/^lost connection to host/);
    expect(t.stats.connections).toBe(1);
  });
});

describe('become and sessions', () => {
  const user = 'berthdeploy';
  const noSudo = 'berthplain';

  afterAll(async () => {
    await resetHosts(e2eHost(3).name);
  });

  it('become runs as root through sudo -n for a non-root user', async () => {
    const root = ssh(3);
    const pub = readFileSync(`${keyFile()}.pub`, 'utf8');
    const setup = await root.exec(
      [
        `for u in ${user} ${noSudo}; do`,
        '  useradd -m -s /bin/bash "$u" || exit 1',
        '  install -d -m 700 -o "$u" -g "$u" /home/"$u"/.ssh',
        `  printf '%s\\n' ${shq(pub.trim())} > /home/"$u"/.ssh/authorized_keys`,
        '  chown "$u": /home/"$u"/.ssh/authorized_keys && chmod 600 /home/"$u"/.ssh/authorized_keys',
        'done',
        `echo '${user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/${user}`,
        `chmod 440 /etc/sudoers.d/${user}`,
        `visudo -cf /etc/sudoers.d/${user}`,
      ].join('\n'),
    );
    expect(setup.code, setup.stderr).toBe(0);

    const t = ssh(3, { user, become: true });
    expect((await t.exec('id -un; echo "$HOME"')).stdout).toBe('root\n/root\n');
    expect((await t.exec('id -un', { become: false })).stdout).toBe(`${user}\n`);
    // binary stdin passes through sudo unchanged
    const data = randomBytes(256 * 1024);
    const r = await t.exec('cat > /root/blob && sha256sum /root/blob | cut -d" " -f1', { stdin: data });
    expect(r.stdout.trim()).toBe(createHash('sha256').update(data).digest('hex'));
    // facts gathered through sudo: one round trip, as root
    const before = t.stats.roundTrips;
    const facts = await gatherFacts(t, [
      { key: 'uid', command: 'id -u', parse: (o) => Number(o) },
      { key: 'shadow', command: 'test -r /etc/shadow && echo readable', parse: (o) => o.trim() },
    ]);
    expect(facts.get('uid')).toBe(0);
    expect(facts.get('shadow')).toBe('readable');
    expect(t.stats.roundTrips).toBe(before + 1);
    expect(t.stats.connections).toBe(1);

    // without sudo rights: a clear non-zero exit, not a hang and not a throw
    const p = ssh(3, { user: noSudo, become: true });
    const denied = await p.exec('id -un', { timeoutMs: 15_000 });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/sudo: a password is required/);
  });

  it('session() holds a flock until end(), and delivers its lines', async () => {
    const lockScript = 'exec 9>/run/berth.lock; flock -n 9 || { echo busy; exit 1; }; echo locked; cat >/dev/null; echo released';
    const a = ssh(3);
    const b = ssh(3);
    const s = await a.session(lockScript);
    const lines: string[] = [];
    await new Promise<void>((resolve) =>
      s.onLine((l) => {
        lines.push(l);
        if (l === 'locked') resolve();
      }),
    );
    expect((await b.exec('flock -n /run/berth.lock true')).code).toBe(1);
    const s2 = await b.session(lockScript);
    const busy: string[] = [];
    s2.onLine((l) => busy.push(l));
    expect(await s2.done).toBe(1);
    expect(busy).toEqual(['busy']);

    s.end();
    expect(await s.done).toBe(0);
    expect(lines).toEqual(['locked', 'released']);
    expect((await b.exec('flock -n /run/berth.lock true')).code).toBe(0);

    // a session through sudo works the same
    const c = ssh(3, { user, become: true });
    const s3 = await c.session(lockScript);
    await new Promise<void>((resolve) => s3.onLine((l) => l === 'locked' && resolve()));
    expect((await b.exec('flock -n /run/berth.lock true')).code).toBe(1);
    s3.end();
    expect(await s3.done).toBe(0);
    expect(a.stats).toEqual({ connections: 1, roundTrips: 1 });
  });

  it('closing the connection releases a held lock', async () => {
    const a = ssh(3);
    const s = await a.session('exec 9>/run/berth.lock; flock -n 9 || exit 1; echo locked; cat >/dev/null');
    await new Promise<void>((resolve) => s.onLine((l) => l === 'locked' && resolve()));
    await a.close();
    const b = ssh(3);
    let code = 1;
    for (let i = 0; i < 50 && code !== 0; i++) {
      code = (await b.exec('flock -n /run/berth.lock true')).code;
      if (code !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(code).toBe(0);
  });
});
