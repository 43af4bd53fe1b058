// Property-based fuzzing of the spec loader (fast-check, fixed seed): a valid
// spec (test/bad-inputs/base) with one file mutated, loaded and built for
// every host exactly as `berth plan` does before it contacts any host. Every
// run must either load, or fail with a BerthError whose message is one line:
// no other exception, no stack trace, no unhandled rejection.
//
// Two kinds of mutation: text (tokens that mean something to YAML or
// Handlebars inserted, bytes deleted, lines doubled or re-indented), and
// values (a node of the parsed file replaced by an arbitrary value, then
// written back as YAML), which reach past the parser into schemas, variables,
// templates and modules.
//
//   BERTH_FUZZ_RUNS=n   runs (default 10000)   BERTH_FUZZ_SEED=n   another seed

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadSpec } from '../../src/spec/load.js';
import { buildProgram, hostsInScope } from '../../src/plan/program.js';
import { BerthError } from '../../src/util/errors.js';
import { loadCases, materialize } from '../bad-inputs/corpus.js';
import { checkSection, ratio, type Row } from '../reliability/table.js';

const RUNS = Number(process.env.BERTH_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.BERTH_FUZZ_SEED ?? 20_260_801);
const TOKEN_ENV = 'BAD_INPUTS_TOKEN';

const YAML_FILES = [
  'inventories/bad/hosts.yml',
  'inventories/bad/group_vars/all.yml',
  'inventories/bad/group_vars/app.yml',
  'inventories/bad/host_vars/h1.yml',
  'playbooks/site.yml',
  'roles/app/defaults/main.yml',
  'roles/app/tasks/main.yml',
  'roles/app/handlers/main.yml',
];
const TEMPLATE = 'roles/app/templates/app.conf.hbs';

// things that mean something to YAML, Handlebars, berth or a shell
const TOKENS = [
  ':', ': ', '-', '- ', '{', '}', '[', ']', ',', '"', "'", '&a ', '*a', '!!str ', '!vault ', '|', '>', '#', '\t', '\n', '\n  ', '---\n', '? ', '%YAML 1.1\n', '@', '`',
  '<<: ', '~', 'null', 'true', '0o644', '0x1F', '1e999', '.inf', '\u0000', '\u00e9', '\u202e', '\ufeff', '\r\n',
  '{{', '}}', '{{ app.name }}', '{{#if app}}', '{{/if}}', '{{#each groups}}', '{{/each}}', '{{> p}}', '{{ shq }}', '{{ nope.x }}', '{{{', '{{!', '\\',
  '$(id)', '; rm -rf /', '../', '/etc/passwd', 'secret_env: X', 'secret_file: /nonexistent', 'berth_port: 0', 'mode: "0999"',
];

const special = fc.constantFrom(
  '{{ app.name }}', '{{ nope }}', '{{#if}}', '$(touch /tmp/fuzz)', '`id`', "it's", '"q"', 'a\nb', '', ' ', '/', '/etc/../x', '0644', 'app', 'h1', 'all', '!h1',
  { secret_env: TOKEN_ENV }, { secret_env: 'BERTH_FUZZ_UNSET' }, { secret_file: 'secrets/db.txt' }, { secret_file: 'secrets' }, [], {}, null,
);
const value: fc.Arbitrary<unknown> = fc.oneof({ weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) }, { weight: 2, arbitrary: special }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) });

type Edit = { kind: 'insert' | 'delete' | 'dupline' | 'indent'; at: number; token: string; len: number };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom('insert', 'insert', 'delete', 'dupline', 'indent'),
  at: fc.nat(),
  token: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...TOKENS) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) }),
  len: fc.integer({ min: 1, max: 12 }),
});

type Mutation = { kind: 'text'; file: string; edits: Edit[] } | { kind: 'value'; file: string; node: number; to: unknown; key: boolean };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('text' as const), file: fc.constantFrom(...YAML_FILES, TEMPLATE), edits: fc.array(edit, { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('value' as const), file: fc.constantFrom(...YAML_FILES), node: fc.nat(), to: value, key: fc.boolean() }),
);

function applyEdits(text: string, edits: Edit[]): string {
  let t = text;
  for (const e of edits) {
    const at = t.length ? e.at % (t.length + 1) : 0;
    if (e.kind === 'insert') t = t.slice(0, at) + e.token + t.slice(at);
    else if (e.kind === 'delete') t = t.slice(0, at) + t.slice(at + e.len);
    else {
      const lines = t.split('\n');
      const i = e.at % lines.length;
      if (e.kind === 'dupline') lines.splice(i, 0, lines[i]!);
      else lines[i] = ' '.repeat(e.len % 5) + lines[i]!;
      t = lines.join('\n');
    }
  }
  return t;
}

/** Every node of a parsed YAML value, as [parent, key] pairs, in a fixed order. */
function slots(v: unknown, out: [Record<string | number, unknown>, string | number][] = []): typeof out {
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push([v as Record<string | number, unknown>, Array.isArray(v) ? Number(k) : k]);
      slots(x, out);
    }
  }
  return out;
}

function applyValue(text: string, m: Extract<Mutation, { kind: 'value' }>): string {
  const doc = parse(text, { merge: true }) as unknown;
  const all = slots(doc);
  if (!all.length) return stringify(m.to);
  const [parent, key] = all[m.node % all.length]!;
  if (m.key && !Array.isArray(parent) && typeof m.to === 'string') {
    // rename the key instead of changing the value
    const v = parent[key];
    delete parent[key];
    parent[m.to] = v;
  } else {
    parent[key] = m.to;
  }
  return stringify(doc);
}

let root: string;
const originals = new Map<string, string>();
const tally = { text: 0, value: 0, loaded: 0, refused: 0 };
let crashes: string[] = [];
let unhandled = 0;
const onUnhandled = () => void unhandled++;

beforeAll(() => {
  process.env[TOKEN_ENV] = 'fuzz-token-value-9c1d';
  const base = loadCases()[0]!;
  root = materialize({ ...base, files: {}, generate: [] }, { addr: '127.0.0.130', port: 9 });
  for (const f of [...YAML_FILES, TEMPLATE]) originals.set(f, readFileSync(join(root, f), 'utf8'));
  process.on('unhandledRejection', onUnhandled);
});

afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  delete process.env[TOKEN_ENV];
});

/** Loads the spec in `root` as berth plan does before any host: every host's program. */
function loadAll(): void {
  const spec = loadSpec({ root, inventory: 'inventories/bad' });
  for (const h of hostsInScope(spec, {})) buildProgram(spec, h, {});
}

describe('the loader under fuzzing', () => {
  it('the unmutated base spec loads (so a refusal below is the mutation\'s doing)', () => {
    expect(() => loadAll()).not.toThrow();
  });

  it(`${RUNS} mutated specs: each loads or fails with one BerthError on one line`, () => {
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    crashes = [];
    const run = () => fc.assert(
      fc.property(mutation, (m) => {
        const file = join(root, m.file);
        const original = originals.get(m.file)!;
        let text: string;
        try {
          text = m.kind === 'text' ? applyEdits(original, m.edits) : applyValue(original, m);
        } catch {
          return true; // the mutation itself is not YAML the test can write back: nothing to try
        }
        tally[m.kind]++;
        writeFileSync(file, text);
        try {
          loadAll();
          tally.loaded++;
        } catch (e) {
          if (!(e instanceof BerthError)) {
            crashes.push(`${m.file}: ${(e as Error)?.stack ?? String(e)}`);
            return false;
          }
          const line = e.format();
          if (/\n/.test(line) || /internal error|\bat .*\.(js|ts):\d+/.test(line) || line.trim() === '') {
            crashes.push(`${m.file}: not one clean line: ${JSON.stringify(line)}`);
            return false;
          }
          tally.refused++;
        } finally {
          writeFileSync(file, original);
        }
        return true;
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    try {
      run();
    } catch (e) {
      throw new Error(`${crashes.join('\n')}\n${(e as Error).message}`);
    }
    const cpu = process.cpuUsage(cpu0);
    if (process.env.BERTH_E2E_TIMINGS === '1') {
      process.stderr.write(`[fuzz] ${RUNS} runs in ${Date.now() - t0} ms (${Math.round((cpu.user + cpu.system) / 1000)} ms CPU): ${JSON.stringify(tally)}\n`);
    }
    expect(crashes).toEqual([]);
    expect(unhandled).toBe(0);
    // both kinds were tried, and both outcomes happened: the fuzzer reaches past the parser
    expect(tally.text).toBeGreaterThan(RUNS / 4);
    expect(tally.value).toBeGreaterThan(RUNS / 4);
    expect(tally.loaded).toBeGreaterThan(RUNS / 20);
    expect(tally.refused).toBeGreaterThan(RUNS / 20);
  }, 300_000);

  // only the default run (10000 runs, the fixed seed) is the table's
  it.skipIf(RUNS !== 10_000 || process.env.BERTH_FUZZ_SEED !== undefined)('docs/RELIABILITY.md lists the fuzzing', () => {
    const ok = tally.loaded + tally.refused;
    const rows: Row[] = [
      {
        what: 'loader fuzz: YAML/template text mutations (fast-check, fixed seed)',
        tried: tally.text,
        outcome: `loaded, or one BerthError on one line: ${ratio(ok === tally.text + tally.value ? tally.text : 0, tally.text)}`,
        kept: 'no crash, no stack trace, no unhandled rejection',
      },
      {
        what: 'loader fuzz: a value or key replaced by an arbitrary one',
        tried: tally.value,
        outcome: `loaded, or one BerthError on one line: ${ratio(ok === tally.text + tally.value ? tally.value : 0, tally.value)}`,
        kept: 'no crash, no stack trace, no unhandled rejection',
      },
    ];
    const msg = checkSection('fuzz', rows, 'npx vitest run test/unit/fuzz-loader.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});
