// Fact batching over the local transport: one exec for all queries, framed
// outputs that survive whatever the queries print.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchScript, gatherFacts, readFrame } from '../../src/facts/batch.js';
import { LocalTransport } from '../../src/transport/local.js';
import type { FactQuery } from '../../src/types.js';
import { BerthError, isBerthError } from '../../src/util/errors.js';
import { shq } from '../../src/util/shell.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-facts-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A query whose parser returns exactly what it got. */
const raw = (key: string, command: string): FactQuery<{ out: string; code: number }> => ({
  key,
  command,
  parse: (out, code) => ({ out, code }),
});

describe('gatherFacts', () => {
  it('sends N queries in exactly one round trip and parses each', async () => {
    const t = new LocalTransport('h1');
    const queries: FactQuery[] = [];
    for (let i = 0; i < 50; i++) queries.push({ key: `n:${i}`, command: `echo ${i}`, parse: (out) => Number(out.trim()) * 2 });
    const facts = await gatherFacts(t, queries);
    expect(t.stats.roundTrips).toBe(1);
    expect(facts.size).toBe(50);
    for (let i = 0; i < 50; i++) expect(facts.get(`n:${i}`)).toBe(i * 2);
  });

  it('runs a key asked for twice only once (the first query wins)', async () => {
    const t = new LocalTransport('h1');
    const log = join(dir, 'dedup.log');
    const q = (tag: string): FactQuery => ({ key: 'same', command: `echo ${tag} >> ${shq(log)}; echo ${tag}`, parse: (o) => o.trim() });
    const facts = await gatherFacts(t, [q('one'), q('two'), raw('other', 'true')]);
    expect(facts.get('same')).toBe('one');
    expect(readFileSync(log, 'utf8')).toBe('one\n');
    expect(t.stats.roundTrips).toBe(1);
  });

  it('returns outputs exactly: no trailing newline, extra newlines, empty, NUL, CR, unicode', async () => {
    const t = new LocalTransport('h1');
    const cases: [string, string, string][] = [
      ['nonl', `printf abc`, 'abc'],
      ['nl', `printf 'abc\\n'`, 'abc\n'],
      ['twonl', `printf 'a\\n\\n'`, 'a\n\n'],
      ['onlynl', `printf '\\n'`, '\n'],
      ['empty', `true`, ''],
      ['nul', `printf 'a\\000b'`, 'a\u0000b'],
      ['crlf', `printf 'x\\r\\ny\\r'`, 'x\r\ny\r'],
      ['unicode', `printf 'h\\303\\251 \\342\\234\\223'`, 'hé ✓'],
      ['lookalike', `printf 'berth- B 0\\n\\nberth- E 0 0\\n'`, 'berth- B 0\n\nberth- E 0 0\n'],
    ];
    const facts = await gatherFacts(
      t,
      cases.map(([k, c]) => raw(k, c)),
    );
    for (const [k, , want] of cases) expect({ k, out: (facts.get(k) as { out: string }).out }).toEqual({ k, out: want });
  });

  it('carries large base64 content intact', async () => {
    const t = new LocalTransport('h1');
    const f = join(dir, 'big.bin');
    await t.exec(`head -c 2000000 /dev/urandom > ${shq(f)}`);
    const facts = await gatherFacts(t, [
      { key: 'content', command: `base64 -w0 < ${shq(f)}`, parse: (o) => Buffer.from(o, 'base64') },
      raw('after', 'echo still-here'),
    ]);
    expect((facts.get('content') as Buffer).equals(readFileSync(f))).toBe(true);
    expect((facts.get('after') as { out: string }).out).toBe('still-here\n');
  });

  it('isolates queries: exit codes, exit, syntax errors, cd, set -e, stdin readers', async () => {
    const t = new LocalTransport('h1');
    const facts = await gatherFacts(t, [
      raw('code', 'echo x; false'),
      raw('exit', 'echo before; exit 5; echo never'),
      raw('syntax', 'if then fi ('),
      raw('cd', 'cd /; set -e; false'),
      raw('stdin', 'cat; echo read-nothing'),
      raw('where', 'pwd'),
      raw('last', 'echo last'),
    ]);
    const get = (k: string) => facts.get(k) as { out: string; code: number };
    expect(get('code')).toEqual({ out: 'x\n', code: 1 });
    expect(get('exit')).toEqual({ out: 'before\n', code: 5 });
    expect(get('syntax').code).toBe(2);
    expect(get('cd').code).toBe(1);
    expect(get('stdin')).toEqual({ out: 'read-nothing\n', code: 0 });
    expect(get('where').out).not.toBe('/\n');
    expect(get('last')).toEqual({ out: 'last\n', code: 0 });
  });

  it('keeps each query stderr to itself and out of stdout', async () => {
    const t = new LocalTransport('h7');
    const err = await gatherFacts(t, [
      raw('noisy', 'echo noise-from-noisy >&2; echo ok'),
      {
        key: 'file:/etc/broken',
        command: 'echo own-complaint >&2; echo not-json',
        parse: (o) => JSON.parse(o) as unknown,
      },
    ]).catch((e: unknown) => e);
    expect(isBerthError(err)).toBe(true);
    const msg = (err as BerthError).message;
    expect(msg).toContain('fact file:/etc/broken on host h7');
    expect(msg).toContain('own-complaint');
    expect(msg).not.toContain('noise-from-noisy');
    expect((err as BerthError).host).toBe('h7');

    const ok = await gatherFacts(t, [raw('noisy', 'echo noise >&2; echo ok')]);
    expect((ok.get('noisy') as { out: string }).out).toBe('ok\n');
  });

  it('a failing parser names the host and the key', async () => {
    const t = new LocalTransport('web3');
    const p = gatherFacts(t, [
      raw('fine', 'echo 1'),
      {
        key: 'users',
        command: 'echo garbage',
        parse: () => {
          throw new Error('expected passwd lines');
        },
      },
    ]);
    await expect(p).rejects.toBeInstanceOf(BerthError);
    await expect(p).rejects.toThrow(/fact users on host web3: cannot read its output: expected passwd lines/);
    const e = (await p.catch((x: unknown) => x)) as BerthError;
    expect(e.format()).toMatch(/^fact users on host web3: /); // the host is named once
  });

  it('a query that kills the script is reported as missing output, by key', async () => {
    const t = new LocalTransport('h9');
    const p = gatherFacts(t, [raw('first', 'echo 1'), raw('killer', 'kill -KILL $$'), raw('third', 'echo 3')]);
    await expect(p).rejects.toThrow(/fact killer on host h9: no output from its query/);
  });

  it('needs no round trip for no queries', async () => {
    const t = new LocalTransport('h1');
    expect((await gatherFacts(t, [])).size).toBe(0);
    expect(t.stats.roundTrips).toBe(0);
  });

  it('handles a script far larger than one argv string (128 KiB)', async () => {
    const t = new LocalTransport('h1');
    const long = 'x'.repeat(300 * 1024);
    const facts = await gatherFacts(t, [{ key: 'len', command: `printf %s ${shq(long)} | wc -c`, parse: (o) => Number(o.trim()) }]);
    expect(facts.get('len')).toBe(long.length);
    expect(t.stats.roundTrips).toBe(1);
  });
});

describe('framing', () => {
  it('reads frames back from the script it wrote, and rejects cut-short ones', () => {
    const script = batchScript([raw('a', 'echo a')], 'NONCE');
    expect(script).toContain(`eval ${shq('echo a')}`);
    const stream = 'NONCE B 0\nout\nNONCE E 0 3\nerr text\nNONCE Z 0\n';
    expect(readFrame(stream, 'NONCE', 0)).toEqual({ stdout: 'out', stderr: 'err text', code: 3 });
    expect(readFrame(stream, 'NONCE', 1)).toBeUndefined();
    expect(readFrame('NONCE B 0\nout\nNONCE E 0 3\nerr', 'NONCE', 0)).toBeUndefined();
    expect(readFrame('NONCE B 0\nout', 'NONCE', 0)).toBeUndefined();
  });
});
