// The CI recipes shipped in examples/ci: valid YAML with the jobs and
// triggers they promise, shell that parses (bash -n), and every berth command
// line in them one that the real CLI accepts (subcommand and flags).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import type { Command } from 'commander';
import { buildCli } from '../../src/cli/main.js';
import { REPO } from './helpers.js';

const CI_DIR = join(REPO, 'examples', 'ci');

/** Parses a YAML file strictly (duplicate keys are errors); fails the test with the first error. */
function load(rel: string): Record<string, any> {
  const text = readFileSync(join(CI_DIR, rel), 'utf8');
  const doc = parseDocument(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  expect(doc.errors.map((e) => e.message), rel).toEqual([]);
  expect(doc.warnings.map((e) => e.message), rel).toEqual([]);
  return doc.toJS() as Record<string, any>;
}

/** `bash -n`: the script parses (GitHub's ${{ }} expressions stand in as a word). */
function expectShellParses(script: string, what: string): void {
  const sh = script.replace(/\$\{\{[^}]*\}\}/g, 'EXPR');
  try {
    execFileSync('bash', ['-n', '-c', sh], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`${what}: bash -n failed: ${String((e as { stderr?: Buffer }).stderr ?? e)}\n${sh}`);
  }
}

/** Every `npx berth …` command line in a script, as words (up to a pipe, redirection or separator). */
function berthCommands(script: string): string[][] {
  const out: string[][] = [];
  for (const m of script.matchAll(/(?:^|[\s;&|(])npx berth ((?:[^\n|;&>\\]|\\\n)+)/g)) {
    const words = m[1]!
      .replace(/\\\n/g, ' ')
      .split(/\s+/)
      .filter(Boolean)
      .filter((w) => !/^\d?>/.test(w));
    out.push(words);
  }
  return out;
}

const cli = buildCli(
  () => undefined,
  () => undefined,
);

function subcommand(name: string): Command | undefined {
  return cli.commands.find((c) => c.name() === name);
}

/** Fails unless the real CLI has this subcommand and every --flag of the line. */
function expectValidBerthLine(words: string[], what: string): void {
  const [sub, ...rest] = words;
  const cmd = subcommand(sub!);
  expect(cmd, `${what}: berth ${words.join(' ')}: no subcommand "${sub}"`).toBeDefined();
  const longs = new Set(cmd!.options.flatMap((o) => [o.long, o.negate ? o.long : undefined]).filter(Boolean) as string[]);
  for (const w of rest) {
    if (!w.startsWith('--')) continue;
    const flag = w.split('=')[0]!;
    expect(longs.has(flag), `${what}: berth ${words.join(' ')}: "${flag}" is not an option of berth ${sub} (it has ${[...longs].join(', ')})`).toBe(true);
  }
  // --format takes one of the formats berth renders
  const f = rest.indexOf('--format');
  if (f >= 0) expect(['text', 'json', 'markdown'], what).toContain(rest[f + 1]);
}

// ---------------------------------------------------------------- GitHub Actions

interface Workflow {
  name: string;
  on: Record<string, any>;
  jobs: Record<string, { 'runs-on': string; steps: { uses?: string; run?: string; env?: Record<string, string>; if?: string; name?: string }[]; [k: string]: any }>;
  [k: string]: any;
}

function workflow(file: string): Workflow {
  const w = load(`github/${file}`) as Workflow;
  expect(typeof w.name).toBe('string');
  expect(Object.keys(w.jobs).length, file).toBeGreaterThan(0);
  for (const [id, job] of Object.entries(w.jobs)) {
    expect(job['runs-on'], `${file} ${id}`).toBeTruthy();
    expect(Array.isArray(job.steps) && job.steps.length > 0, `${file} ${id} steps`).toBe(true);
    for (const [i, s] of job.steps.entries()) {
      expect(Boolean(s.uses) !== Boolean(s.run), `${file} ${id} step ${i}: exactly one of uses and run`).toBe(true);
      if (s.run) expectShellParses(s.run, `${file} ${id} step ${i}`);
    }
  }
  return w;
}

const runs = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps.map((s) => s.run ?? '')).join('\n');
const secretsUsed = (w: Workflow) => [...JSON.stringify(w).matchAll(/secrets\.([A-Z_]+)/g)].map((m) => m[1]).sort();

describe('GitHub Actions recipes', () => {
  it('berth-plan.yml: on pull requests to main, a markdown plan with --detailed-exitcode posted as a comment', () => {
    const w = workflow('berth-plan.yml');
    expect(w.on.pull_request.branches).toEqual(['main']);
    expect(w.permissions['pull-requests']).toBe('write');
    const all = runs(w);
    expect(all).toMatch(/npx berth plan --ci --format markdown --detailed-exitcode/);
    expect(all).toMatch(/gh pr comment "\$PR" --body-file "\$RUNNER_TEMP\/plan\.md"/);
    expect(secretsUsed(w)).toEqual(['BERTH_AGE_KEY', 'BERTH_SSH_KEY']);
    const comment = w.jobs.plan!.steps.find((s) => s.run?.includes('gh pr comment'))!;
    expect(comment.if).toMatch(/always\(\)/);
  });

  it('berth-apply.yml: on push to main, one apply at a time (never cancelled), in CI mode', () => {
    const w = workflow('berth-apply.yml');
    expect(w.on.push.branches).toEqual(['main']);
    expect(w.concurrency).toMatchObject({ 'cancel-in-progress': false });
    expect(runs(w)).toMatch(/npx berth apply --ci --ci-branch main/);
    expect(secretsUsed(w)).toEqual(['BERTH_AGE_KEY', 'BERTH_SSH_KEY']);
  });

  it('berth-drift.yml: on a schedule, plan --detailed-exitcode', () => {
    const w = workflow('berth-drift.yml');
    const crons = (w.on.schedule as { cron: string }[]).map((s) => s.cron);
    expect(crons.length).toBe(1);
    expect(crons[0]!.split(' ')).toHaveLength(5);
    expect(runs(w)).toMatch(/npx berth plan --ci --detailed-exitcode/);
  });

  it('every berth command line in them is one the CLI accepts', () => {
    let n = 0;
    for (const f of ['berth-plan.yml', 'berth-apply.yml', 'berth-drift.yml']) {
      for (const words of berthCommands(runs(workflow(f)))) {
        expectValidBerthLine(words, f);
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(4);
  });
});

// ---------------------------------------------------------------- GitLab CI

describe('GitLab CI recipe', () => {
  const ci = load('gitlab/.gitlab-ci.yml');
  const jobs = Object.fromEntries(Object.entries(ci).filter(([, v]) => v && typeof v === 'object' && 'script' in v)) as Record<string, { stage: string; script: string[]; rules: { if: string }[]; [k: string]: any }>;
  const scriptOf = (id: string) => [...(ci.default.before_script as string[]), ...jobs[id]!.script].join('\n');

  it('has the plan, apply and drift jobs in known stages, each with its rule', () => {
    expect(Object.keys(jobs).sort()).toEqual(['berth-apply', 'berth-drift', 'berth-plan']);
    for (const j of Object.values(jobs)) expect(ci.stages).toContain(j.stage);
    expect(jobs['berth-plan']!.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }]);
    expect(jobs['berth-apply']!.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH' }]);
    expect(jobs['berth-drift']!.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "schedule"' }]);
    expect(jobs['berth-apply']!.resource_group).toBeTruthy();
  });

  it('plans in markdown for the merge request, applies in CI mode, checks drift with --detailed-exitcode', () => {
    expect(scriptOf('berth-plan')).toMatch(/npx berth plan --ci --format markdown --detailed-exitcode > berth-plan\.md/);
    expect(scriptOf('berth-plan')).toContain('merge_requests/$CI_MERGE_REQUEST_IID/notes');
    expect(scriptOf('berth-apply')).toMatch(/npx berth apply --ci --ci-branch "\$CI_DEFAULT_BRANCH"/);
    expect(scriptOf('berth-drift')).toMatch(/npx berth plan --ci --detailed-exitcode$/m);
    for (const id of Object.keys(jobs)) expect(scriptOf(id)).toContain('"$BERTH_SSH_KEY"');
  });

  it('its shell parses and its berth command lines are ones the CLI accepts', () => {
    let n = 0;
    for (const id of Object.keys(jobs)) {
      expectShellParses(scriptOf(id), id);
      for (const words of berthCommands(scriptOf(id))) {
        expectValidBerthLine(words, id);
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(4);
  });
});

describe('the recipe checks themselves', () => {
  it('catch a flag the CLI does not have, and a shell syntax error', () => {
    expect(() => expectValidBerthLine(['plan', '--formatt', 'markdown'], 'x')).toThrow(/"--formatt" is not an option of berth plan/);
    expect(() => expectValidBerthLine(['deploy'], 'x')).toThrow(/no subcommand "deploy"/);
    expect(() => expectShellParses('if [ 1 ]; then echo', 'x')).toThrow(/bash -n failed/);
    expect(berthCommands('a && npx berth plan --ci --format markdown > x.md 2> e\n')).toEqual([['plan', '--ci', '--format', 'markdown']]);
  });
});
