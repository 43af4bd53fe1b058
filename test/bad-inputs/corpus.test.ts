// Runs every case of the bad-input corpus (cases/*.yml, see README.md)
// through the CLI's main() (batch.mjs: the built CLI, many cases per Node
// process) and one case of each class through bin/berth.js as well: exit 1,
// exactly one line on stderr (file:line where one applies), no stack trace,
// nothing on stdout, no secret shown, and no connection to the host the
// inventory names (a listener on 127.0.0.130 per case counts them). A
// control run of the unbroken base spec shows the listeners do see berth
// when the spec is fine.

import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createServer, type Server } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BERTH_BIN, buildBerth } from '../e2e/berth.js';
import { CLASSES, loadCases, materialize, type Case, type CaseClass, type Where } from './corpus.js';
import { checkSection, ratio, type Row } from '../reliability/table.js';

/** The address the corpus's inventories name (the counting listeners bind there, each on its own port). */
const LISTEN_ADDR = '127.0.0.130';
const TOKEN = 'corpus-token-4f7c2a9e1b';
const FILE_SECRET = 's3cret-from-file';

const cases = loadCases();

interface Counter extends Where {
  server: Server;
  connections: number;
}

async function listener(): Promise<Counter> {
  const server = createServer();
  const c = { server, addr: LISTEN_ADDR, port: 0, connections: 0 };
  server.on('connection', (s) => {
    c.connections++;
    s.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LISTEN_ADDR, () => resolve());
  });
  c.port = (server.address() as { port: number }).port;
  return c;
}

interface Outcome {
  code: number | undefined;
  stdout: string;
  stderr: string;
  connections: number;
  crash?: string;
}

interface Prepared {
  c: Case;
  listener: Counter;
  root: string;
  args: string[];
  env: Record<string, string>;
}

function prepareCase(c: Case, l: Counter): Prepared {
  const root = materialize(c, l);
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, CI: 'true', NO_COLOR: '1', BAD_INPUTS_TOKEN: TOKEN };
  for (const [k, v] of Object.entries(c.env)) {
    if (v === null) delete env[k];
    else env[k] = v;
  }
  return { c, listener: l, root, env, args: c.raw ? c.args : [...c.args, '-i', 'inventories/bad'] };
}

/** The case through bin/berth.js, a process of its own, as a user runs it. */
async function viaCli(p: Prepared): Promise<Outcome> {
  const before = p.listener.connections;
  const r = await execa('node', [BERTH_BIN, ...p.args], { cwd: p.root, env: p.env, extendEnv: false, reject: false, stdin: 'ignore', timeout: 60_000, stripFinalNewline: false });
  await new Promise((res) => setTimeout(res, 50));
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), connections: p.listener.connections - before };
}

/** Many cases through main() in one process each (batch.mjs); `processes` of them at once. */
async function viaBatch(all: Prepared[], processes: number): Promise<Map<string, Outcome>> {
  const chunks: Prepared[][] = Array.from({ length: processes }, () => []);
  all.forEach((p, i) => chunks[i % processes]!.push(p));
  const out = new Map<string, Outcome>();
  await Promise.all(
    chunks.filter((ch) => ch.length).map(async (ch) => {
      const input = JSON.stringify(ch.map((p) => ({ id: p.c.id, cwd: p.root, args: p.args, env: p.env })));
      const r = await execa('node', [BATCH], { input, reject: false, timeout: 300_000, extendEnv: false, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      if (r.exitCode !== 0) throw new Error(`batch.mjs exited ${r.exitCode}: ${String(r.stderr)}`);
      for (const x of JSON.parse(String(r.stdout)) as (Outcome & { id: string })[]) out.set(x.id, x);
    }),
  );
  await new Promise((res) => setTimeout(res, 50));
  for (const p of all) {
    const o = out.get(p.c.id);
    if (o) o.connections = p.listener.connections;
  }
  return out;
}

const BATCH = fileURLToPath(new URL('./batch.mjs', import.meta.url));
const prepared: Prepared[] = [];
let outcomes = new Map<string, Outcome>();
/** One case of each class, also run through bin/berth.js. */
const sampled = new Map<string, Outcome>();
const results = new Map<string, { cls: CaseClass; ok: boolean; located: Case['located'] }>();

beforeAll(async () => {
  await buildBerth();
  for (const c of cases) prepared.push(prepareCase(c, await listener()));
  const t0 = Date.now();
  outcomes = await viaBatch(prepared, Math.max(1, Math.min(2, availableParallelism())));
  const t1 = Date.now();
  const firsts = Object.keys(CLASSES).map((k) => prepared.find((p) => p.c.class === k)!);
  await Promise.all([0, 1].map(async (k) => {
    for (const p of firsts.filter((_, i) => i % 2 === k)) sampled.set(p.c.id, await viaCli(p));
  }));
  if (process.env.BERTH_E2E_TIMINGS === '1') {
    process.stderr.write(`[bad-inputs] ${prepared.length} cases in-process: ${t1 - t0} ms; ${firsts.length} through bin/berth.js: ${Date.now() - t1} ms\n`);
  }
}, 600_000);

afterAll(() => {
  for (const p of prepared) {
    p.listener.server.close();
    rmSync(p.root, { recursive: true, force: true });
  }
});

/** The one-line contract, for an outcome of case `c`. */
function checkOutcome(c: Case, r: Outcome): void {
  const show = `case ${c.id}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}---${r.crash ? `\n--- crash\n${r.crash}` : ''}`;
  expect(r.crash, show).toBeUndefined();
  expect(r.code, show).toBe(1);
  expect(r.stdout, show).toBe('');
  const lines = r.stderr.split('\n');
  expect(lines.length, `one line on stderr\n${show}`).toBe(2);
  expect(lines[1]).toBe('');
  const line = lines[0]!;
  expect(line, show).not.toMatch(/internal error|^\s+at |\bat .*\.(js|ts):\d+/);
  if (c.stderr !== undefined) expect(line).toBe(c.stderr);
  else expect(line).toMatch(c.match!);
  if (c.located === 'line') expect(line, 'names file:line').toMatch(/^error: [^\s:]+:\d+(:\d+)?: /);
  if (c.located === 'file') expect(line, 'names the file').toMatch(/^error: [^\s:]+: /);
  expect(line).not.toContain(TOKEN);
  expect(line).not.toContain(FILE_SECRET);
  expect(r.connections, 'no host may be contacted').toBe(0);
}

describe('the bad-input corpus', () => {
  it('has at least 80 cases, in every class', () => {
    expect(cases.length).toBeGreaterThanOrEqual(80);
    const seen = new Set(cases.map((c) => c.class));
    expect(Object.keys(CLASSES).filter((k) => !seen.has(k as CaseClass))).toEqual([]);
  });

  it('control: the base spec itself validates, and berth plan does contact its host', async () => {
    const base: Case = { id: 'control', file: '', class: 'cli', about: '', files: {}, generate: [], args: ['plan'], raw: false, env: {}, located: 'none', stderr: '' };
    const l = await listener();
    const v = prepareCase({ ...base, args: ['validate'] }, l);
    const p = prepareCase(base, l);
    try {
      const valid = await viaCli(v);
      expect(valid.code, valid.stderr).toBe(0);
      expect(valid.stdout).toMatch(/^ok: 2 host\(s\), 2 play\(s\), 5 task\(s\) checked\n$/);
      const planned = await viaCli(p);
      expect(planned.connections, 'the listener must see the plan of a valid spec').toBeGreaterThan(0);
      expect(planned.code).toBe(1);
      expect(planned.stdout).toContain('FAILED: cannot connect to host h1');
      // and in-process, the same
      const batch = await viaBatch([{ ...p, c: { ...base, id: 'control-batch' } }], 1);
      expect(batch.get('control-batch')!.connections).toBeGreaterThan(planned.connections);
    } finally {
      l.server.close();
      rmSync(v.root, { recursive: true, force: true });
      rmSync(p.root, { recursive: true, force: true });
    }
  });

  it('bin/berth.js prints what the in-process run printed, for one case of each class', () => {
    expect(sampled.size).toBe(Object.keys(CLASSES).length);
    for (const [id, cli] of sampled) {
      const c = cases.find((x) => x.id === id)!;
      checkOutcome(c, cli);
      const inproc = outcomes.get(id)!;
      expect({ code: cli.code, stdout: cli.stdout, stderr: cli.stderr }, id).toEqual({ code: inproc.code, stdout: inproc.stdout, stderr: inproc.stderr });
    }
  });

  it.each(cases.map((c) => [`${c.id}: ${c.about}`, c] as const))('%s', (_name, c) => {
    const r = outcomes.get(c.id);
    expect(r, `no result for ${c.id}`).toBeDefined();
    checkOutcome(c, r!);
    results.set(c.id, { cls: c.class, ok: true, located: c.located });
  });

  it('docs/RELIABILITY.md lists what the corpus ran', () => {
    const missing = cases.filter((c) => !results.has(c.id)).map((c) => c.id);
    expect(missing, 'cases without a result (they failed above)').toEqual([]);
    const rows: Row[] = [];
    for (const [cls, title] of Object.entries(CLASSES)) {
      const mine = cases.filter((c) => c.class === cls);
      const ok = mine.filter((c) => results.get(c.id)?.ok).length;
      const n = (l: Case['located']) => mine.filter((c) => c.located === l).length;
      const where = [n('line') && `${n('line')} at file:line`, n('file') && `${n('file')} naming the file`, n('none') && `${n('none')} naming the flag`].filter(Boolean).join(', ');
      rows.push({ what: `bad input: ${title}`, tried: mine.length, outcome: `exit 1, one line (${where}), no stack trace: ${ratio(ok, mine.length)}`, kept: 'no host contacted (0 connections)' });
    }
    const msg = checkSection('bad-inputs', rows, 'npx vitest run test/bad-inputs/corpus.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});

