import { shq } from '../util/shell.js';
import { BerthError } from '../util/errors.js';
import type { FactQuery, Module, PlannedChange } from '../types.js';

export interface PreflightArgs {
  min_cpus?: number;
  min_memory_mb?: number;
  /** Free space wanted at `path` (or its nearest existing parent). */
  min_disk_gb?: number;
  path?: string;
  /** Commands that must be on the PATH. */
  commands?: string[];
  /** Read-only command lines that must exit 0 (e.g. `/usr/bin/docker compose version`). */
  checks?: string[];
  /** What to say for each missing command or failed check (e.g. how to install it). */
  hint?: string;
  on_failure?: 'warn' | 'fail';
}

export interface SystemFact {
  cpus: number;
  memoryMb: number;
  /** Free space in GiB at the checked path. */
  diskFreeGb: number;
  diskPath: string;
  commands: Record<string, boolean>;
  /** Each check's command line → whether it exited 0. */
  checks?: Record<string, boolean>;
}

const key = (a: PreflightArgs) => `system:${a.path ?? '/'}:${(a.commands ?? []).join(',')}${a.checks?.length ? `:${a.checks.join('\u0000')}` : ''}`;

function systemFact(a: PreflightArgs): FactQuery<SystemFact> {
  const cmds = a.commands ?? [];
  const checks = a.checks ?? [];
  return {
    key: key(a),
    command: [
      'nproc',
      "awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo",
      `p=${shq(a.path ?? '/')}; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; echo "$p"`,
      `df -Pk "$p" | awk 'NR == 2 { print $4 }'`,
      ...cmds.map((c) => `if command -v ${shq(c)} >/dev/null 2>&1; then echo yes; else echo no; fi`),
      ...checks.map((c) => `if ( ${c}\n) </dev/null >/dev/null 2>&1; then echo yes; else echo no; fi`),
    ].join('\n'),
    parse(out) {
      const l = out.split('\n');
      return {
        cpus: Number(l[0]),
        memoryMb: Number(l[1]),
        diskPath: l[2] ?? '/',
        diskFreeGb: Math.floor(Number(l[3]) / (1024 * 1024)),
        commands: Object.fromEntries(cmds.map((c, i) => [c, l[4 + i]?.trim() === 'yes'])),
        ...(checks.length ? { checks: Object.fromEntries(checks.map((c, i) => [c, l[4 + cmds.length + i]?.trim() === 'yes'])) } : {}),
      };
    },
  };
}

/**
 * Checks a host against minimums before anything changes (Harbor: 2 CPU,
 * 4 GB, 40 GB; docker and compose present). Below them: a plan-time error,
 * or a warning shown with the plan. It never changes anything itself.
 */
export const preflightModule: Module<PreflightArgs> = {
  name: 'preflight',
  schema: 'preflight',
  secretArgs: [],
  facts: (a) => [systemFact(a)],
  plan(a, state, ctx): PlannedChange[] {
    const f = state.get<SystemFact>(key(a));
    if (!f) return [];
    const problems: string[] = [];
    if (a.min_cpus !== undefined && f.cpus < a.min_cpus) problems.push(`${f.cpus} CPU(s), ${a.min_cpus} wanted`);
    if (a.min_memory_mb !== undefined && f.memoryMb < a.min_memory_mb) problems.push(`${f.memoryMb} MB memory, ${a.min_memory_mb} wanted`);
    if (a.min_disk_gb !== undefined && f.diskFreeGb < a.min_disk_gb) problems.push(`${f.diskFreeGb} GB free at ${f.diskPath}, ${a.min_disk_gb} wanted`);
    const missing = Object.entries(f.commands).filter(([, ok]) => !ok).map(([c]) => c);
    if (missing.length) problems.push(`missing command(s): ${missing.join(', ')}${a.hint ? ` (${a.hint})` : ''}`);
    const failed = (a.checks ?? []).filter((c) => f.checks?.[c] !== true);
    if (failed.length) problems.push(`failed check(s): ${failed.map((c) => `\`${c}\``).join(', ')}${a.hint ? ` (${a.hint})` : ''}`);
    if (!problems.length) return [];
    const msg = `preflight on ${ctx.host}: ${problems.join('; ')}`;
    if ((a.on_failure ?? 'fail') === 'fail') throw new BerthError(msg, { pos: ctx.pos, hint: 'fix the host, or set on_failure: warn to go on anyway' });
    ctx.warn?.(msg);
    return [];
  },
  async apply() {
    // plans no changes
  },
};
