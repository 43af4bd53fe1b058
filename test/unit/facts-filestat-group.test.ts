// File facts of many paths gathered by one command (the fileStat group) must
// equal, path by path, what each path's own query reports: same type, mode,
// owner, size, hash, content and link target, for every kind of path.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchScript, gatherFacts } from '../../src/facts/batch.js';
import { MAX_DIFF_BYTES, fileKey, fileStat, fileStatsCommand, parseFileStats, type FileFact } from '../../src/facts/queries.js';
import { LocalTransport } from '../../src/transport/local.js';
import type { FactQuery } from '../../src/types.js';

let dir: string;
let paths: string[];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-filestat-'));
  const p = (name: string) => join(dir, name);
  writeFileSync(p('small.txt'), 'hello\n');
  writeFileSync(p('empty'), '');
  writeFileSync(p('no-newline'), 'abc');
  writeFileSync(p('binary.bin'), Buffer.from([0, 1, 2, 255, 10, 0, 13, 10]));
  writeFileSync(p('exact-max'), Buffer.alloc(MAX_DIFF_BYTES, 0x61));
  writeFileSync(p('over-max'), Buffer.alloc(MAX_DIFF_BYTES + 1, 0x62));
  writeFileSync(p('lookalike'), `==> ${p('small.txt')} <==\nnot a header\n`);
  writeFileSync(p("it's \"quoted\" $HOME `x`"), 'q\n');
  writeFileSync(p('back\\slash'), 'b\n');
  writeFileSync(p('new\nline'), 'n\n');
  writeFileSync(p('héllo ✓'), 'u\n');
  writeFileSync(p('mode-4750'), '#!/bin/sh\n');
  chmodSync(p('mode-4750'), 0o4750);
  mkdirSync(p('a dir'));
  chmodSync(p('a dir'), 0o1777);
  symlinkSync(p('small.txt'), p('link-to-file'));
  symlinkSync(p('a dir'), p('link-to-dir'));
  symlinkSync(p('nowhere'), p('dangling'));
  execFileSync('mkfifo', [p('fifo')]);
  paths = [
    'small.txt', 'empty', 'no-newline', 'binary.bin', 'exact-max', 'over-max', 'lookalike',
    "it's \"quoted\" $HOME `x`", 'back\\slash', 'new\nline', 'héllo ✓', 'mode-4750',
    'a dir', 'link-to-file', 'link-to-dir', 'dangling', 'fifo', 'absent', 'absent-dir/inside', 'small.txt/not-a-dir',
  ].map(p);
  paths.push('/', '/etc');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function oneByOne(t: LocalTransport): Promise<Map<string, unknown>> {
  // without the group: each path's own command and parser
  const singles: FactQuery[] = paths.map((p) => {
    const { group: _g, ...q } = fileStat(p);
    return q;
  });
  return gatherFacts(t, singles);
}

describe('fileStat group', () => {
  it('gives exactly the facts of the one-query-per-path command, for every kind of path', async () => {
    const t = new LocalTransport('h1');
    const want = await oneByOne(t);
    const got = await gatherFacts(t, paths.map(fileStat));
    expect(t.stats.roundTrips).toBe(2);
    for (const p of paths) expect({ p, fact: got.get(fileKey(p)) }).toEqual({ p, fact: want.get(fileKey(p)) });
    // and the facts are what they should be, not just equal
    const f = (name: string) => got.get(fileKey(join(dir, name))) as Extract<FileFact, { exists: true }>;
    expect(f('small.txt')).toMatchObject({ type: 'file', size: 6, content: Buffer.from('hello\n').toString('base64') });
    expect(f('empty')).toMatchObject({ type: 'file', size: 0, content: '' });
    expect(f('exact-max').content).toHaveLength(Math.ceil(MAX_DIFF_BYTES / 3) * 4);
    expect(f('over-max').content).toBeUndefined();
    expect(f('over-max').sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(f('mode-4750').mode).toBe('4750');
    expect(f('a dir')).toMatchObject({ type: 'directory', mode: '1777' });
    expect(f('dangling')).toMatchObject({ type: 'link', target: join(dir, 'nowhere') });
    expect(f('fifo').type).toBe('other');
    expect(got.get(fileKey(join(dir, 'absent')))).toEqual({ exists: false });
  });

  it('runs one frame for all absolute paths and keeps a relative path a query of its own', () => {
    const qs = [fileStat('/etc/hosts'), fileStat('/etc/passwd'), fileStat('relative/x')];
    expect(qs.map((q) => q.group?.id)).toEqual(['fileStat', 'fileStat', undefined]);
    const script = batchScript([{ key: 'g', command: fileStatsCommand(['/etc/hosts', '/etc/passwd']), parse: () => 0 }], 'N');
    // a fixed number of processes: no per-path stat, sha256sum or base64
    expect(script.match(/\bstat\b/g)).toHaveLength(1);
    expect(script.match(/sha256sum/g)).toHaveLength(1);
  });

  it('refuses output whose contents do not match the sizes stat reported (a file changed in between)', async () => {
    const t = new LocalTransport('h1');
    const a = join(dir, 'small.txt');
    const b = join(dir, 'no-newline');
    const r = await t.exec(fileStatsCommand([a, b]));
    expect(parseFileStats(r.stdout, r.code, [a, b]).map((x) => x.exists)).toEqual([true, true]);
    // the same stream, with the first file's stat size off by one
    const tampered = r.stdout.replace(`${a}\0regular file|`, `${a}\0regular file|`).replace(/\|6\0/, '|5\0');
    expect(tampered).not.toBe(r.stdout);
    expect(() => parseFileStats(tampered, 0, [a, b])).toThrow(/changed while its facts were read/);
    expect(() => parseFileStats(r.stdout.slice(0, 3), 0, [a, b])).toThrow(/cut short|flags/);
  });

  it('reports an unreadable file as the single query does (hash and content unknown)', async () => {
    if (process.getuid?.() !== 0) return expect(true).toBe(true);
    // as an unprivileged user: the file exists but cannot be read
    const p = join(dir, 'secret');
    writeFileSync(p, 'top secret\n', { mode: 0o600 });
    chmodSync(dir, 0o755);
    const asNobody = (cmd: string) => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', cmd]).toString('utf8');
    const group = parseFileStats(asNobody(fileStatsCommand([p, join(dir, 'small.txt')])), 0, [p, join(dir, 'small.txt')]);
    const single = fileStat(p);
    let code = 0;
    let out = '';
    try {
      out = asNobody(single.command);
    } catch (e) {
      code = (e as { status: number }).status;
    }
    expect(group[0]).toEqual(single.parse(out, code));
    expect(group[0]).toMatchObject({ exists: true, type: 'file', sha256: '' });
    expect((group[0] as { content?: string }).content).toBeUndefined();
    expect((group[1] as { content?: string }).content).toBe(Buffer.from('hello\n').toString('base64'));
  });
});
