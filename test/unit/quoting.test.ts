// Quoting for the shell, checked against a real POSIX sh (dash on Debian):
// every string berth puts on a command line through shq() must reach the
// command as exactly that string. Property-based (fast-check, fixed seed);
// all cases go through one sh process. Also: a command holding a secret is
// sent on stdin, never on a command line, and the default host-key policy.
// The results become the "quoting" section of docs/RELIABILITY.md.

import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { shq } from '../../src/util/shell.js';
import { reveal } from '../../src/secrets/secret.js';
import { connectionFor } from '../../src/plan/program.js';
import { buildTree, minimalTree, programOf } from './helpers.js';
import { planHost } from '../../src/plan/planner.js';
import { factsFor } from './helpers.js';
import { checkSection, ratio, type Row } from '../reliability/table.js';

const RUNS = 3000;
const rows: Row[] = [];

// characters that matter to sh, and some that do not
const SHELL = [..."';\"`$()\\|&<>*?[]{}~#!=%^ \t\n\r-"];
const piece = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SHELL, '$(id)', '`id`', "'\\''", '${HOME}', '\\n', '--', '-e', 'é', '\u202e') },
  { weight: 2, arbitrary: fc.string({ maxLength: 4 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
);
// NUL cannot be in an argument at all
const arg = fc.array(piece, { maxLength: 8 }).map((p) => p.join('').replace(/\0/g, ''));

describe('shq', () => {
  it(`${RUNS} strings with shell syntax reach a real sh command as themselves`, () => {
    const samples = fc.sample(arg, { numRuns: RUNS, seed: 7 });
    // one printf per string, its output NUL-terminated
    const script = samples.map((s) => `printf '%s\\0' ${shq(s)}`).join('\n');
    const out = execFileSync('sh', ['-c', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const got = out.split('\0').slice(0, -1);
    expect(got.length).toBe(samples.length);
    const wrong = samples.filter((s, i) => got[i] !== s);
    expect(wrong).toEqual([]);
    rows.push({ what: 'shell quoting (shq) of arbitrary strings with shell syntax, through a real sh (fast-check, fixed seed)', tried: RUNS, outcome: `reached the command unchanged: ${ratio(RUNS - wrong.length, RUNS)}`, kept: 'nothing expanded or run' });
  });
});

describe('a command that holds a secret', () => {
  it('is sent on stdin, and its command line on the host names no secret', () => {
    process.env.BERTH_UNIT_QUOTING_TOKEN = 'quoting-token-51c0ffee';
    try {
      const p = programOf(
        `
      - name: uses the token
        command:
          cmd: "curl -H \\"x: $T\\" https://x.test; echo {{ shq token }}"
          env: { T: "{{ token }}" }
          chdir: /tmp
    `,
        { vars: 'token: { secret_env: BERTH_UNIT_QUOTING_TOKEN }' },
      );
      const [c] = planHost(p, factsFor(p)).changes;
      const payload = (c!.payload as { data: { script: string; input?: unknown } }).data;
      expect(payload.script).toBe('eval "$(cat)"');
      expect(payload.script).not.toContain('quoting-token');
      expect(reveal(payload.input as never)).toBe("cd /tmp || exit 1\nexport T=quoting-token-51c0ffee\ncurl -H \"x: $T\" https://x.test; echo quoting-token-51c0ffee");
      expect(JSON.stringify(c!.attrs)).not.toContain('quoting-token');
      // without a secret, the script is the command line as before
      const q = programOf(`
      - name: plain
        command: { cmd: "echo hi" }
    `);
      expect((planHost(q, factsFor(q)).changes[0]!.payload as { data: { script: string; input?: unknown } }).data).toEqual({ script: 'echo hi' });
      rows.push({ what: 'a command holding a secret', tried: 1, outcome: 'sent on stdin; its command line on the host holds no secret: 1/1', kept: 'the host runs the real value' });
    } finally {
      delete process.env.BERTH_UNIT_QUOTING_TOKEN;
    }
  });
});

describe('the default host-key policy', () => {
  it('is strict, against ~/.ssh/known_hosts, when the spec says nothing', () => {
    const { spec } = buildTree(minimalTree());
    const c = connectionFor(spec, spec.inventory.hosts.get('h1')!, {});
    expect(c.hostKeyPolicy).toBe('strict');
    expect(c.knownHostsFile).toBe(`${process.env.HOME}/.ssh/known_hosts`);
    expect(connectionFor(spec, spec.inventory.hosts.get('h1')!, { acceptNewHostKeys: true }).hostKeyPolicy).toBe('accept-new');
    rows.push({ what: 'the host-key policy of a host the spec says nothing about', tried: 1, outcome: 'strict, against ~/.ssh/known_hosts: 1/1', kept: '-' });
  });
});

describe('docs/RELIABILITY.md', () => {
  it('lists the quoting checks', () => {
    expect(rows, 'a test above did not record (it failed)').toHaveLength(3);
    const msg = checkSection('quoting', rows, 'npx vitest run test/unit/quoting.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});
