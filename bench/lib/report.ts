// bench/RESULTS.md from a run's data (which the bench also saves as
// RESULTS.json, so the report can be written again: --report RESULTS.json).
// Pure: data in, markdown out.

import { costTable, fmtSeconds, median, targets, targetTable, timeTable, type Cell, type Sample, type Scenario, type Tool } from './stats.js';

export interface ResultsData {
  started: string;
  options: { sizes: number[]; runs: number; coldRuns: number; scale: number; strategy: string; countColdUpTo: number };
  machine: string[];
  /** The machine's cores (hosts and tools share them). */
  cores?: number;
  loads: { what: string; load: string; foreignCpuShare: number }[];
  selftest: string[];
  cells: Cell[];
  /** N parallel `ssh root@host true`, by host count. */
  floor: [number, Sample[]][];
  /** Host CPU of one update-ca-certificates, ms. */
  caCostMs?: number;
}

const hostCpuPerHost = (c: Cell | undefined) => (c && c.samples.every((s) => s.hostCpuMs !== undefined) ? median(c.samples.map((s) => s.hostCpuMs! / c.hosts)) : NaN);
const wall = (c: Cell | undefined) => (c ? median(c.samples.map((s) => s.wallMs)) : NaN);

/** What limits each tool, from the data: the floor, the hosts' CPU, the heaviest step of the work. */
export function limits(d: ResultsData): string[] {
  const cell = (s: Scenario, n: number, t: Tool) => d.cells.find((c) => c.scenario === s && c.hosts === n && c.tool === t);
  const out: string[] = [];
  for (const [n, samples] of d.floor) {
    const f = median(samples.map((x) => x.wallMs));
    const p = wall(cell('noop-plan', n, 'berth'));
    const login = median(samples.map((x) => (x.hostCpuMs ?? NaN) / n));
    out.push(
      `The floor on ${n} host(s): ${fmtSeconds(f)} for ${n} parallel \`ssh root@host true\` (OpenSSH, curve25519${Number.isFinite(login) ? `; ${login.toFixed(0)} ms of host CPU per login: sshd, PAM, the systemd session` : ''}); berth's no-op plan: ${fmtSeconds(p)}${Number.isFinite(p) && f > 0 ? `, ${(p / f).toFixed(1)}× that` : ''}.`,
    );
  }
  const largest = Math.max(0, ...d.options.sizes);
  const bp = hostCpuPerHost(cell('noop-plan', largest, 'berth'));
  const ap = hostCpuPerHost(cell('noop-plan', largest, 'ansible'));
  if (Number.isFinite(bp) && Number.isFinite(ap)) {
    out.push(
      `Host CPU per host of a no-op plan (${largest} hosts): berth ${bp.toFixed(0)} ms (one login, one fact script), Ansible's --check ${ap.toFixed(0)} ms (a Python interpreter per task and loop item) — ${(ap / bp).toFixed(0)}×. The hosts run on the controller's cores, so on this machine that CPU is wall time for both tools.`,
    );
  }
  const cores = d.cores ?? Number(/(\d+) cores/.exec(d.machine.join(' '))?.[1] ?? NaN);
  for (const s of ['noop-plan', 'cold-apply'] as Scenario[]) {
    const b = cell(s, largest, 'berth');
    const a = cell(s, largest, 'ansible');
    const need = (c: Cell | undefined) => (c ? median(c.samples.map((x) => x.cpuMs + (x.hostCpuMs ?? NaN))) : NaN);
    const nb = need(b);
    const na = need(a);
    if (Number.isFinite(nb) && Number.isFinite(na) && cores > 0) {
      out.push(
        `CPU a ${s === 'noop-plan' ? 'no-op plan' : 'cold apply'} of ${largest} hosts needs (controller and hosts together): berth ${fmtSeconds(nb)}, Ansible ${fmtSeconds(na)}. On ${cores} idle cores neither can take less than that divided by ${cores}: berth ≥ ${fmtSeconds(nb / cores)}, Ansible ≥ ${fmtSeconds(na / cores)}, whatever else runs on the machine.`,
      );
    }
  }
  const bc = hostCpuPerHost(cell('cold-apply', largest, 'berth'));
  const ac = hostCpuPerHost(cell('cold-apply', largest, 'ansible'));
  if (d.caCostMs !== undefined && Number.isFinite(bc)) {
    out.push(
      `Cold apply: update-ca-certificates, the handler both tools run on every node, costs ${d.caCostMs.toFixed(0)} ms of host CPU by itself; berth's whole cold apply used ${bc.toFixed(0)} ms per host${Number.isFinite(ac) ? `, Ansible's ${ac.toFixed(0)} ms` : ''}. That shared work bounds how much faster any tool can be on a cold host: with it, berth cannot beat Ansible by more than about ${Number.isFinite(ac) ? (ac / d.caCostMs).toFixed(1) : 'n/a'}× in host CPU here.`,
    );
  }
  return out;
}

/** A run on a busy machine says so at the top: its wall times are then upper bounds, its counts and CPU still hold. */
function busyWarning(d: ResultsData): string[] {
  const shares = d.loads.map((l) => l.foreignCpuShare);
  if (!shares.length || Math.max(...shares) < 0.1) return [];
  const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
  return [
    '',
    `> Other processes used ${pct(Math.min(...shares))}–${pct(Math.max(...shares))} of the machine's CPU during the timed runs (see "Load during the run"), so the wall times are noisy and on the slow side, for both tools; the counts are not affected, the CPU figures much less. Run \`npm run bench\` on a quiet machine for the wall times.`,
  ];
}

export function renderResults(d: ResultsData): string {
  const o = d.options;
  return [
    '# berth vs Ansible: benchmark results',
    '',
    `Written by \`npm run bench\` (bench/run.ts) on ${d.started}; host counts ${o.sizes.join(', ')}, ${o.runs} timed run(s) per tool and scenario (cold apply: ${o.coldRuns}), no-op plan scaling row: ${o.scale || 'none'}, Ansible strategy ${o.strategy}. The raw numbers are in RESULTS.json.`,
    'What is compared, how, and why it is fair: [README.md](README.md).',
    ...busyWarning(d),
    '',
    '## Machine',
    '',
    ...d.machine.map((m) => `- ${m}`),
    '- hosts: systemd-nspawn containers on this machine (test/hosts/testhosts.sh), sshd on 127.0.0.N; they share its cores with both tools.',
    '',
    '### Load during the run',
    '',
    "The 1-minute load average after each block, and the share of the machine's CPU that neither the tool nor its hosts used during the block's timed runs (other processes). On a quiet machine the second figure is near 0 %.",
    '',
    '| block | load average | CPU used by others |',
    '| --- | --- | ---: |',
    ...d.loads.map((l) => `| ${l.what} | ${l.load} | ${(l.foreignCpuShare * 100).toFixed(0)} % |`),
    '',
    '## Fairness self-test',
    '',
    ...(d.selftest.length ? d.selftest.map((s) => `- ${s}`) : ['- not run (--skip-selftest)']),
    '',
    '## Wall time',
    '',
    'Median of the timed runs (min–max). The tools alternate, each after an untimed warm-up run; every cold apply starts from hosts reset to bare.',
    '',
    timeTable(d.cells),
    '',
    '## Costs per run',
    '',
    `SSH connections: logins sshd accepted per host in one untimed run (the warm-up of a no-op scenario; for a cold apply an extra run, up to ${o.countColdUpTo} hosts, as the counts per host do not depend on the host count). Ansible starts that run without ControlPersist masters; its timed no-op runs reuse them. Round trips: commands sent per host (berth: its transport's count in \`--json\`; Ansible: its ssh and sftp invocations, counted by a wrapper). Controller CPU and peak RSS: GNU time (\`/usr/bin/time -v\`; its peak RSS is that of the largest single process, for Ansible one of its forks). Host CPU: what the hosts' cgroups used during the run, per host.`,
    '',
    costTable(d.cells),
    '',
    '## Targets (issue 7)',
    '',
    targetTable(targets(d.cells)),
    '',
    '## What limits it',
    '',
    ...limits(d).map((l) => `- ${l}`),
    '',
  ].join('\n');
}

