import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { BerthError, isBerthError } from '../util/errors.js';
import { redact } from '../secrets/secret.js';
import { prepare, runApply, runPlan, type RunOptions, type RunResult } from '../engine.js';
import { renderJson, renderText, summarize } from '../plan/render.js';
import { renderMarkdown } from '../plan/markdown.js';
import { runStatus } from './status.js';
import { ciMode, registerVault } from './vault.js';
import { runOnboard } from './onboard.js';
import { BERTH_VERSION } from '../version.js';

interface CommonFlags {
  dir: string;
  inventory?: string;
  playbook?: string;
  limit?: string;
  tags?: string;
  skipTags?: string;
  extraVars: string[];
  forks?: string;
  acceptNewHostKeys?: boolean;
  json?: boolean;
  format?: Format;
  ci?: boolean;
  color?: boolean;
  debug?: boolean;
}

type Format = 'text' | 'json' | 'markdown';
const FORMATS: Format[] = ['text', 'json', 'markdown'];

const collect = (v: string, prev: string[]) => [...prev, v];
const csv = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

function common(cmd: Command, withInventory = true): Command {
  cmd.option('-C, --dir <path>', 'the spec repository (default: current directory)', '.');
  if (withInventory) cmd.option('-i, --inventory <dir>', 'inventory directory, e.g. inventories/prod (default: $BERTH_INVENTORY)');
  return cmd
    .option('-p, --playbook <file>', 'playbook file', 'playbooks/site.yml')
    .option('-l, --limit <pattern>', 'only these hosts or groups (e.g. "nodes:!k8s-node-03")')
    .option('-t, --tags <tags>', 'only tasks with these tags (comma-separated)')
    .option('--skip-tags <tags>', 'skip tasks with these tags (comma-separated)')
    .option('-e, --extra-vars <key=value|@file>', 'extra variables, highest precedence (repeatable)', collect, [] as string[])
    .option('-f, --forks <n>', 'hosts worked on at once', '25')
    .option('--accept-new-host-keys', 'trust and record the key of a host not yet in known_hosts (a changed key is still refused)')
    .option('--json', 'machine-readable output on stdout (the same as --format json)')
    .option('--ci', 'CI mode (also on with CI=true unless BERTH_CI=false): never generate a vault secret; apply refuses a dirty tree or a commit not on the CI branch')
    .option('--no-color', 'no colours in output');
}

/** --format, with --json as its alias for json. */
function formatOf(f: CommonFlags): Format {
  if (f.format !== undefined && !FORMATS.includes(f.format)) throw new BerthError(`--format ${f.format}: expected one of ${FORMATS.join(', ')}`);
  if (f.json && f.format && f.format !== 'json') throw new BerthError(`--json and --format ${f.format} ask for different outputs`, { hint: 'pass one of them' });
  return f.json ? 'json' : (f.format ?? 'text');
}

function render(r: RunResult, format: Format, f: CommonFlags): string {
  if (format === 'json') return renderJson(r);
  if (format === 'markdown') return renderMarkdown(r);
  return renderText(r, { color: useColor(f) });
}

function runOptions(f: CommonFlags): RunOptions {
  const inventory = f.inventory ?? process.env.BERTH_INVENTORY;
  if (!inventory) throw new BerthError('no inventory given', { hint: 'pass -i inventories/<env> or set BERTH_INVENTORY' });
  const root = resolve(f.dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new BerthError(`spec directory not found: ${f.dir}`, { hint: '-C names the spec repository' });
  const forks = Number(f.forks ?? 25);
  if (!Number.isInteger(forks) || forks < 1 || forks > 1000) throw new BerthError(`--forks ${f.forks}: expected a whole number from 1 to 1000`);
  return {
    root,
    inventory,
    playbook: f.playbook,
    limit: f.limit,
    tags: csv(f.tags),
    skipTags: csv(f.skipTags),
    extraVars: f.extraVars,
    forks,
    acceptNewHostKeys: f.acceptNewHostKeys,
    ci: ciMode(f.ci),
  };
}

function useColor(f: CommonFlags): boolean {
  return f.color !== false && !process.env.NO_COLOR && process.stdout.isTTY === true;
}

/** Writes a file atomically with mode 0600 (plans name hosts and paths). */
function writePrivate(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

function readSavedPlan(path: string): RunResult {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BerthError(`cannot read plan file ${path} (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (code ?? String(e))})`, { hint: 'make one with: berth plan --out plan.json' });
  }
  let v: RunResult & { format?: string };
  try {
    v = JSON.parse(raw) as RunResult & { format?: string };
  } catch (e) {
    throw new BerthError(`${path} is not a berth plan (invalid JSON: ${(e as Error).message})`);
  }
  if (v.format !== 'berth-plan/1' || v.kind !== 'plan' || !Array.isArray(v.hosts)) {
    throw new BerthError(`${path} is not a berth plan file`, { hint: 'make one with: berth plan --out plan.json' });
  }
  return v;
}

/** The command tree; actions write through `out` and report their exit code through `setExit`. */
export function buildCli(out: (s: string) => void, setExit: (code: number) => void): Command {
  const program = new Command('berth')
    .description('Plan and apply a Harbor pull-through cache, its API settings and the nodes that pull through it, from a spec in git.')
    .version(BERTH_VERSION, '-V, --version')
    .option('--debug', 'show stack traces for errors')
    .exitOverride()
    // commander's own errors (unknown option or command) on one line, like berth's
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(`${s.trim().split(/\s*\n\s*/).join(' ')}\n`) });

  common(
    program
      .command('plan')
      .description('show exactly what apply would change (no change is made)')
      .option('-o, --out <file>', 'save the plan, to apply exactly it later with: berth apply <file>')
      .option('--detailed-exitcode', 'exit 0 when nothing would change, 2 when something would, 1 on error')
      .option('--format <format>', 'output: text, json or markdown (a merge-request comment)'),
  ).action(async (f: CommonFlags & { out?: string; detailedExitcode?: boolean }) => {
    const format = formatOf(f);
    const r = await runPlan(runOptions(f));
    out(render(r, format, f));
    if (f.out) {
      writePrivate(f.out, renderJson(r));
      if (format === 'text') out(`Saved the plan to ${f.out}. Apply exactly it with: berth apply ${f.out}\n`);
    }
    const s = summarize(r);
    if (s.failedHosts) setExit(1);
    else if (f.detailedExitcode && s.create + s.update + s.delete + s.run > 0) setExit(2);
  });

  common(
    program
      .command('apply')
      .description('apply a fresh plan, or exactly a saved plan (refused if a host drifted since)')
      .argument('[planfile]', 'a plan saved with berth plan --out')
      .option('--lock-timeout <seconds>', 'wait this long for another apply to release a host', '0')
      .option('--ci-branch <branch>', 'CI mode: the branch an applied commit must be on (default: $BERTH_CI_BRANCH, else main)')
      .option('--format <format>', 'output: text, json or markdown'),
  ).action(async (planfile: string | undefined, f: CommonFlags & { lockTimeout: string; ciBranch?: string }) => {
    const format = formatOf(f);
    const lockTimeoutSec = Number(f.lockTimeout);
    if (!Number.isFinite(lockTimeoutSec) || lockTimeoutSec < 0) throw new BerthError(`--lock-timeout ${f.lockTimeout}: expected seconds (0 or more)`);
    let opts: RunOptions;
    let saved: RunResult | undefined;
    if (planfile) {
      saved = readSavedPlan(planfile);
      const o = saved.options;
      opts = { ...runOptions({ ...f, inventory: o.inventory, dir: o.root, playbook: o.playbook, extraVars: o.extraVars, limit: o.limit, tags: o.tags?.join(','), skipTags: o.skipTags?.join(',') }) };
    } else {
      opts = runOptions(f);
    }
    const interactive = process.stdout.isTTY && !process.env.CI && format === 'text';
    const ciBranch = f.ciBranch || process.env.BERTH_CI_BRANCH || undefined;
    const r = await runApply({ ...opts, ciBranch, lockTimeoutSec, renderer: format !== 'text' ? 'silent' : interactive ? 'default' : 'simple' }, saved);
    out(format === 'text' ? '\n' + render(r, format, f) : render(r, format, f));
    if (summarize(r).failedHosts) setExit(1);
  });

  program
    .command('validate')
    .description('check the spec (schemas, references, templates) without contacting any host')
    .option('-C, --dir <path>', 'the spec repository', '.')
    .option('-i, --inventory <dir>', 'inventory directory (default: $BERTH_INVENTORY)')
    .option('-p, --playbook <file>', 'playbook file', 'playbooks/site.yml')
    .option('-e, --extra-vars <key=value|@file>', 'extra variables', collect, [] as string[])
    .option('--ci', 'CI mode: a generated vault secret that is missing is an error')
    .action(async (f: CommonFlags) => {
      const prep = await prepare({ ...runOptions(f), persistGenerated: false });
      for (const n of prep.notes) out(redact(n.startsWith('warning: ') ? `${n}\n` : `controller: ${n}\n`));
      const tasks = prep.programs.reduce((n, p) => n + p.segments.reduce((m, s) => m + s.tasks.length, 0), 0);
      out(`ok: ${prep.programs.length} host(s), ${prep.spec.plays.length} play(s), ${tasks} task(s) checked\n`);
    });

  common(program.command('status').description('per host: the last applied spec commit, when, and whether a plan now finds drift')).action(
    async (f: CommonFlags) => {
      setExit(await runStatus(runOptions(f), { json: f.json === true, color: useColor(f) }, out));
    },
  );

  common(
    program
      .command('onboard')
      .description('apply the plays of one node to it, then pull a small image through the cache with each of its runtimes')
      .argument('<node>', 'the node, as named in the inventory')
      .option('--verify-only', 'only the verification pulls (change nothing)')
      .option('--image <ref>', 'pull this image instead of nodes.verify_image (repeatable)', collect, [] as string[])
      .option('--lock-timeout <seconds>', 'wait this long for another apply to release the node', '0'),
  ).action(async (node: string, f: CommonFlags & { verifyOnly?: boolean; image: string[]; lockTimeout: string }) => {
    const lockTimeoutSec = Number(f.lockTimeout);
    if (!Number.isFinite(lockTimeoutSec) || lockTimeoutSec < 0) throw new BerthError(`--lock-timeout ${f.lockTimeout}: expected seconds (0 or more)`);
    const interactive = process.stdout.isTTY && !process.env.CI && !f.json;
    setExit(await runOnboard(runOptions(f), node, {
      verifyOnly: f.verifyOnly,
      images: f.image,
      json: f.json,
      color: useColor(f),
      lockTimeoutSec,
      renderer: interactive ? 'default' : 'simple',
    }, out));
  });

  registerVault(program, out);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  let exit = 0;
  let debug = argv.includes('--debug');
  const program = buildCli(
    (s) => process.stdout.write(s),
    (code) => (exit = code),
  );

  try {
    await program.parseAsync(argv, { from: 'user' });
    debug = debug || program.opts<{ debug?: boolean }>().debug === true;
    return exit;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 1;
    if (isBerthError(e)) {
      process.stderr.write(`error: ${e.format()}\n`);
      if (debug && e.stack) process.stderr.write(redact(e.stack) + '\n');
      return 1;
    }
    const err = e as Error;
    process.stderr.write(redact(`error: internal error: ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for a stack trace)'}`) + '\n');
    if (debug && err?.stack) process.stderr.write(redact(err.stack) + '\n');
    return 1;
  }
}

export { Option };
