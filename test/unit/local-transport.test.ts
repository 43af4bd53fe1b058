// LocalTransport: the same contract as the SSH transport, on this machine.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTransport } from '../../src/transport/local.js';
import { openTransport } from '../../src/transport/index.js';
import { isBerthError } from '../../src/util/errors.js';
import { shq } from '../../src/util/shell.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-local-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LocalTransport.exec', () => {
  it('returns stdout, stderr and the exit code, with output exactly as printed', async () => {
    const t = new LocalTransport('here');
    const r = await t.exec(`printf 'out\\n\\n'; printf err >&2; exit 7`);
    expect(r).toEqual({ stdout: 'out\n\n', stderr: 'err', code: 7 });
    const r2 = await t.exec('printf no-newline');
    expect(r2).toEqual({ stdout: 'no-newline', stderr: '', code: 0 });
    expect(t.stats).toEqual({ connections: 0, roundTrips: 2 });
    await t.close();
  });

  it('runs the script literally: quotes, $(...), backticks and newlines survive', async () => {
    const t = new LocalTransport();
    const script = `x='it'"'"'s'\ny="$(echo a b)"\nprintf '%s|%s|%s\\n' "$x" "$y" '\`not run\`'`;
    const r = await t.exec(script);
    expect(r.stdout).toBe("it's|a b|`not run`\n");
  });

  it('feeds binary stdin byte-exact', async () => {
    const t = new LocalTransport();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const r = await t.exec('f=$(mktemp); cat >"$f"; sha256sum <"$f" | cut -d" " -f1; wc -c <"$f"; rm -f "$f"', { stdin: data });
    const [sum, len] = r.stdout.trim().split('\n');
    expect(sum).toBe(createHash('sha256').update(data).digest('hex'));
    expect(Number(len)).toBe(data.length);
    // and back: base64 out, decoded here
    const r2 = await t.exec('base64 -w0', { stdin: data.subarray(0, 4096) });
    expect(Buffer.from(r2.stdout, 'base64').equals(data.subarray(0, 4096))).toBe(true);
  });

  it('gives string stdin as utf8 and closes stdin when none is given', async () => {
    const t = new LocalTransport();
    expect((await t.exec('cat', { stdin: 'héllo\n' })).stdout).toBe('héllo\n');
    expect((await t.exec('cat; echo end')).stdout).toBe('end\n'); // EOF at once, no hang
  });

  it('reports death by signal as 128+n and never throws for exit codes', async () => {
    const t = new LocalTransport();
    expect((await t.exec('kill -TERM $$')).code).toBe(143);
    expect((await t.exec('exit 255')).code).toBe(255);
  });

  it('throws a BerthError naming the host on timeout, quickly', async () => {
    const t = new LocalTransport('slowhost');
    const t0 = Date.now();
    const err = await t.exec('sleep 10', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(isBerthError(err)).toBe(true);
    expect((err as Error).message).toMatch(/timed out after 0\.3 s on host slowhost/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('become as root runs the script directly (no sudo)', async () => {
    if (process.getuid?.() !== 0) return; // only meaningful as root
    const t = new LocalTransport('here', { become: true });
    const r = await t.exec('id -u; echo "sudo=${SUDO_USER:-none}"');
    expect(r.stdout).toBe('0\nsudo=none\n');
  });

  it('is what openTransport returns for kind local', async () => {
    const t = openTransport({
      host: 'ctl',
      kind: 'local',
      address: 'localhost',
      port: 22,
      user: 'root',
      knownHostsFile: '/nonexistent',
      hostKeyPolicy: 'strict',
      become: false,
    });
    expect(t).toBeInstanceOf(LocalTransport);
    expect(t.host).toBe('ctl');
    expect((await t.exec('echo ok')).stdout).toBe('ok\n');
  });

  it('refuses commands after close', async () => {
    const t = new LocalTransport('gone');
    await t.close();
    await expect(t.exec('true')).rejects.toThrow(/already closed/);
  });
});

describe('LocalTransport.session', () => {
  it('delivers lines (including ones printed before onLine) and ends on stdin EOF', async () => {
    const t = new LocalTransport();
    const s = await t.session(`echo first; printf 'second\\r\\n'; while read -r l; do echo "got:$l"; done; printf tail`);
    const lines: string[] = [];
    await new Promise((r) => setTimeout(r, 100));
    s.onLine((l) => lines.push(l));
    s.end();
    expect(await s.done).toBe(0);
    expect(lines).toEqual(['first', 'second', 'tail']);
  });

  it('passes initial stdin and keeps stdin open', async () => {
    const t = new LocalTransport();
    const s = await t.session('while read -r l; do echo "got:$l"; done; exit 3', { stdin: 'a\nb\n' });
    const lines: string[] = [];
    const two = new Promise<void>((resolve) =>
      s.onLine((l) => {
        lines.push(l);
        if (lines.length === 2) resolve();
      }),
    );
    await two;
    expect(lines).toEqual(['got:a', 'got:b']);
    s.end();
    expect(await s.done).toBe(3);
  });

  it('holds a flock until end()', async () => {
    const t = new LocalTransport();
    const lock = join(dir, 'lock');
    const s = await t.session(`exec 9>${shq(lock)}; flock -n 9 || { echo busy; exit 1; }; echo locked; cat >/dev/null`);
    await new Promise<void>((resolve) => s.onLine((l) => l === 'locked' && resolve()));
    expect((await t.exec(`flock -n ${shq(lock)} true`)).code).toBe(1);
    s.end();
    expect(await s.done).toBe(0);
    expect((await t.exec(`flock -n ${shq(lock)} true`)).code).toBe(0);
    expect(t.stats.roundTrips).toBe(3);
  });

  it('close() ends running sessions', async () => {
    const t = new LocalTransport();
    const s = await t.session('cat >/dev/null; echo bye');
    const lines: string[] = [];
    s.onLine((l) => lines.push(l));
    await t.close();
    expect(await s.done).toBe(0);
    expect(lines).toEqual(['bye']);
  });
});
