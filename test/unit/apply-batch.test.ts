// Batched apply over the local transport: consecutive batchable changes go in
// one round trip, each with its own input and outcome, and stop at the first
// failure with the same error a change gets when it runs alone.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameReader, HostApplier, applyChange, batchApplyScript, recordChange } from '../../src/apply/batch.js';
import { LocalTransport } from '../../src/transport/local.js';
import { atomicWriteScript } from '../../src/modules/common.js';
import type { Change, ModuleContext } from '../../src/types.js';
import { BerthError } from '../../src/util/errors.js';
import { shq } from '../../src/util/shell.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-batch-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ctx = (host: string): ModuleContext => ({
  host,
  root: dir,
  pos: { file: 'test' },
  runAs: 'root',
  renderTemplateFile: () => '',
  readSourceFile: () => Buffer.alloc(0),
  sourceFilePath: () => '',
});

let n = 0;
function command(host: string, script: string): Change {
  return {
    id: `${host}#${++n}`,
    host,
    play: 'p',
    task: 't',
    module: 'command',
    resource: `command ${script.slice(0, 30)}`,
    action: 'run',
    attrs: [],
    tags: [],
    payload: { become: false, data: { script }, ctx: ctx(host) },
  };
}

function file(host: string, path: string, content: string | Buffer): Change {
  return {
    id: `${host}#${++n}`,
    host,
    play: 'p',
    task: 't',
    module: 'file',
    resource: `file ${path}`,
    action: 'create',
    attrs: [],
    tags: [],
    payload: { become: false, data: { path, own: { mode: '0640' }, content }, ctx: ctx(host) },
  };
}

/** What the engine does: apply each change in turn, stop at the first failure. */
async function applyAll(t: LocalTransport, changes: Change[], batched: boolean): Promise<{ status: string[]; errors: string[] }> {
  const a = new HostApplier(changes, () => t);
  const status: string[] = [];
  const errors: string[] = [];
  for (const c of changes) {
    try {
      await (batched ? a.apply(c) : applyChange(c, t));
      status.push('done');
    } catch (e) {
      status.push('failed');
      errors.push(e instanceof BerthError ? e.format() : String(e));
      break;
    }
  }
  while (status.length < changes.length) status.push('skipped');
  return { status, errors };
}

describe('batched apply', () => {
  it('sends a run of changes in one round trip, each with its own input, isolated from the others', async () => {
    const t = new LocalTransport('h1');
    const bin = Buffer.from([0, 1, 2, 255, 10, 13, 0]);
    const log = join(dir, 'order.log');
    const changes = [
      file('h1', join(dir, 'a.txt'), 'hello\n'),
      command('h1', `cd /; echo one >> ${shq(log)}; X=leak`),
      file('h1', join(dir, 'b.bin'), bin),
      // stdin is empty (not the rest of the script), variables and cwd do not leak
      command('h1', `{ cat; echo "two ${'$'}{X:-clean} $(pwd)"; } >> ${shq(log)}`),
      command('h1', `printf 'berth-fake S 9\\nno newline'`),
      // more script than the shell reads ahead: a command that read its stdin would eat it
      file('h1', join(dir, 'later.txt'), 'x'.repeat(300_000)),
      command('h1', `exit 0`),
    ];
    const r = await applyAll(t, changes, true);
    expect(r).toEqual({ status: ['done', 'done', 'done', 'done', 'done', 'done', 'done'], errors: [] });
    expect(readFileSync(join(dir, 'later.txt'), 'utf8')).toBe('x'.repeat(300_000));
    expect(t.stats.roundTrips).toBe(1);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('hello\n');
    expect(readFileSync(join(dir, 'b.bin')).equals(bin)).toBe(true);
    expect(statSync(join(dir, 'b.bin')).mode & 0o777).toBe(0o640);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('one');
    expect(lines[1]).toMatch(/^two clean /);
    expect(lines[1]).not.toBe('two clean /');
  });

  it('stops at the first failing change, with the error it gets on its own, and runs nothing after it', async () => {
    const after = join(dir, 'after-failure');
    const mk = () => [
      command('h2', 'echo fine'),
      command('h2', 'echo to-stdout; echo first >&2; echo second >&2; echo third >&2; echo fourth >&2; exit 3'),
      command('h2', `touch ${shq(after)}`),
    ];
    const alone = await applyAll(new LocalTransport('h2'), mk(), false);
    rmSync(after, { force: true });
    const t = new LocalTransport('h2');
    const batched = await applyAll(t, mk(), true);
    expect(batched).toEqual(alone);
    expect(batched.status).toEqual(['done', 'failed', 'skipped']);
    expect(batched.errors[0]).toContain('failed (exit 3): second | third | fourth');
    expect(existsSync(after)).toBe(false);
    expect(t.stats.roundTrips).toBe(1);

    // no stderr: the last lines of stdout, as on its own
    const quiet = await applyAll(new LocalTransport('h2'), [command('h2', 'true'), command('h2', 'echo only-out; false')], true);
    expect(quiet.errors[0]).toContain('failed (exit 1): only-out');
  });

  it('a change whose apply fails before sending anything fails in its own turn, after the ones before it ran', async () => {
    const t = new LocalTransport('h4');
    const marker = join(dir, 'before-broken');
    // a file change without content or ownership to set runs no command; a broken payload throws in apply
    const broken: Change = { ...command('h4', 'x'), module: 'service', payload: { become: false, data: null, ctx: ctx('h4') } };
    const r = await applyAll(t, [command('h4', `touch ${shq(marker)}`), command('h4', 'true'), broken, command('h4', 'true')], true);
    expect(r.status).toEqual(['done', 'done', 'failed', 'skipped']);
    expect(existsSync(marker)).toBe(true);
    expect(r.errors[0]).toMatch(/null/);
  });

  it('sends a change with streamed or large input, or of a module that is not batchable, on its own', async () => {
    expect(await recordChange(file('h3', join(dir, 'big'), Buffer.alloc(2 * 1024 * 1024)), 'h3')).toBeUndefined();
    const waitFor: Change = { ...command('h3', 'x'), module: 'wait_for' };
    expect(await recordChange(waitFor, 'h3')).toBeUndefined();
    const rec = await recordChange(file('h3', join(dir, 'c'), 'x'), 'h3');
    // the file's own atomic write (checking what arrived before the rename), with its content as input
    const sha = createHash('sha256').update('x').digest('hex');
    expect(rec?.steps).toEqual([{ script: atomicWriteScript(join(dir, 'c'), { mode: '0640' }, { sha256: sha }), stdin: Buffer.from('x') }]);

    const t = new LocalTransport('h3');
    const r = await applyAll(t, [command('h3', 'true'), file('h3', join(dir, 'big'), Buffer.alloc(2 * 1024 * 1024, 7)), command('h3', 'true'), command('h3', 'true')], true);
    expect(r.status).toEqual(['done', 'done', 'done', 'done']);
    // the first alone (a run of one), the big file alone, then the last two together
    expect(t.stats.roundTrips).toBe(3);
    expect(statSync(join(dir, 'big')).size).toBe(2 * 1024 * 1024);
  });

  it("keeps each step's set -e, and a change's later steps do not run after a failed one", async () => {
    const t = new LocalTransport('h5');
    const m = (x: string) => join(dir, `step-${x}`);
    const script = batchApplyScript(
      [
        [{ script: `set -e; false; touch ${shq(m('after-false'))}` }, { script: `touch ${shq(m('second-step'))}` }],
        [{ script: `touch ${shq(m('next-change'))}` }],
      ],
      'N',
    );
    const s = await t.session('exec sh -s', { stdin: script });
    const lines: string[] = [];
    s.onLine((l) => lines.push(l));
    s.end();
    await s.done;
    expect(lines).toContain('N E 0 1');
    expect(lines.some((l) => l.startsWith('N S 1'))).toBe(false);
    for (const x of ['after-false', 'second-step', 'next-change']) expect({ x, exists: existsSync(m(x)) }).toEqual({ x, exists: false });
  });

  it('reads frames only for its own nonce and in order', () => {
    const done: [number, number, string, string][] = [];
    const r = new FrameReader('N', (i, o) => done.push([i, o.code, o.stdout, o.stderr]));
    for (const l of ['noise', 'N S 0', 'out', 'M E 0 1', '', 'N E 0 0', 'N S 1', 'x', 'N E 1 2', 'err1', 'err2', '', 'N Z 1']) r.line(l);
    expect(done).toEqual([
      [0, 0, 'out\nM E 0 1', ''],
      [1, 2, 'x', 'err1\nerr2'],
    ]);
    expect(batchApplyScript([[{ script: 'echo a' }], []], 'N')).toContain(`( eval ${shq('echo a')} ) </dev/null`);
  });
});
