// The bench's pure parts: statistics, parsing what GNU time and ansible-playbook
// print, and the tables of bench/RESULTS.md. No I/O here, so the unit tests
// can check them with fixed inputs (test/unit/bench-stats.test.ts).

export type Tool = 'berth' | 'ansible';
export type Scenario = 'cold-apply' | 'noop-apply' | 'noop-plan';

export const SCENARIO_TITLE: Record<Scenario, string> = {
  'cold-apply': 'cold apply (bare hosts)',
  'noop-apply': 'no-op apply',
  'noop-plan': 'no-op plan / --check --diff',
};

/** One timed run of one tool. */
export interface Sample {
  wallMs: number;
  /** Controller CPU (user + system) of the tool's process tree, ms. */
  cpuMs: number;
  /** Peak RSS (GNU time: the largest single process of the tree), KiB. */
  maxRssKb: number;
  /** CPU the hosts spent during the run (their cgroups), ms, summed over the hosts. */
  hostCpuMs?: number;
  /** CPU the rest of the machine used meanwhile (other processes), ms over all cores. */
  foreignMs?: number;
}

/** SSH costs of one untimed counting run, per host. */
export interface Counts {
  /** Logins sshd accepted ("Accepted publickey" lines), per host. */
  connections: number[];
  /** Commands sent (berth: its transport's round trips; Ansible: ssh/sftp invocations), per host. */
  roundTrips: number[];
}

export interface Cell {
  scenario: Scenario;
  hosts: number;
  tool: Tool;
  samples: Sample[];
  counts?: Counts;
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function minMax(xs: readonly number[]): [number, number] {
  if (!xs.length) return [NaN, NaN];
  return [Math.min(...xs), Math.max(...xs)];
}

/** How many times slower `other` is than `base` (their medians); NaN when either is missing. */
export function ratio(other: readonly number[], base: readonly number[]): number {
  const b = median(base);
  const o = median(other);
  return b > 0 && Number.isFinite(o) ? o / b : NaN;
}

/** "0.84 s", "12.3 s", "1:05 min". */
export function fmtSeconds(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s - m * 60)).padStart(2, '0')} min`;
}

/** Median with the range of the samples: "0.84 s (0.80–0.91)". */
export function fmtWall(samples: readonly number[]): string {
  if (!samples.length) return 'n/a';
  const [lo, hi] = minMax(samples);
  const strip = (s: string) => s.replace(/ (s|min)$/, '');
  return `${fmtSeconds(median(samples))} (${strip(fmtSeconds(lo))}–${strip(fmtSeconds(hi))})`;
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return 'n/a';
  return r >= 10 ? `${r.toFixed(0)}×` : `${r.toFixed(1)}×`;
}

export function fmtMb(kb: number): string {
  return Number.isFinite(kb) ? `${(kb / 1024).toFixed(0)} MB` : 'n/a';
}

/** "1" when every host has the same count, else "1–3". */
export function fmtPerHost(xs: readonly number[] | undefined): string {
  if (!xs?.length) return 'n/a';
  const [lo, hi] = minMax(xs);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

// ---------------------------------------------------------------- parsing

/** GNU time -v's report: peak RSS and CPU. */
export function parseGnuTime(text: string): { maxRssKb: number; userS: number; sysS: number } {
  const num = (label: string): number => {
    const m = new RegExp(`^\\s*${label.replace(/[()]/g, '\\$&')}:\\s*([0-9.]+)\\s*$`, 'm').exec(text);
    if (!m) throw new Error(`GNU time output has no "${label}" line`);
    return Number(m[1]);
  };
  return { maxRssKb: num('Maximum resident set size (kbytes)'), userS: num('User time (seconds)'), sysS: num('System time (seconds)') };
}

export interface RecapLine {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

/** ansible-playbook's PLAY RECAP, by host. */
export function parseRecap(out: string): Map<string, RecapLine> {
  const at = out.lastIndexOf('PLAY RECAP');
  const recap = new Map<string, RecapLine>();
  if (at < 0) return recap;
  for (const line of out.slice(at).split('\n').slice(1)) {
    const m = /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/.exec(line.trim());
    if (m) recap.set(m[1]!, { ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]) });
  }
  return recap;
}

/**
 * Why an Ansible run does not count (undefined when it does): every host in
 * the recap, none failed or unreachable, and for a no-op run none changed.
 */
export function checkRecap(out: string, hosts: readonly string[], noop: boolean): string | undefined {
  const recap = parseRecap(out);
  for (const h of hosts) {
    const r = recap.get(h);
    if (!r) return `${h} is missing from the PLAY RECAP`;
    if (r.failed || r.unreachable) return `${h}: failed=${r.failed} unreachable=${r.unreachable}`;
    if (noop && r.changed) return `${h}: changed=${r.changed} on a converged host`;
  }
  return undefined;
}

/** The ssh/sftp invocations an Ansible run made, by address (from the wrapper's log: one line of argv per call). */
export function countInvocations(log: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of log.split('\n')) {
    const m = /\b(127\.\d+\.\d+\.\d+)\b/.exec(line);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + 1);
  }
  return out;
}

/** sshd's "Accepted publickey for" lines. */
export function countAccepted(journal: string): number {
  return journal.split('\n').filter((l) => /^Accepted publickey for /.test(l.replace(/^.*?sshd\[\d+\]: /, ''))).length;
}

// ---------------------------------------------------------------- tables

const cellOf = (cells: readonly Cell[], s: Scenario, n: number, t: Tool) => cells.find((c) => c.scenario === s && c.hosts === n && c.tool === t);
const walls = (c?: Cell) => c?.samples.map((x) => x.wallMs) ?? [];

/** The main table: wall time per scenario and host count, both tools, and the ratio. */
export function timeTable(cells: readonly Cell[]): string {
  const rows = [
    '| scenario | hosts | berth: median (min–max) | Ansible: median (min–max) | Ansible / berth | runs |',
    '| --- | ---: | --- | --- | ---: | ---: |',
  ];
  for (const s of Object.keys(SCENARIO_TITLE) as Scenario[]) {
    const sizes = [...new Set(cells.filter((c) => c.scenario === s).map((c) => c.hosts))].sort((a, b) => a - b);
    for (const n of sizes) {
      const b = cellOf(cells, s, n, 'berth');
      const a = cellOf(cells, s, n, 'ansible');
      const runs = [b, a].filter(Boolean).map((c) => c!.samples.length);
      rows.push(`| ${SCENARIO_TITLE[s]} | ${n} | ${fmtWall(walls(b))} | ${a ? fmtWall(walls(a)) : 'not run'} | ${a && b ? fmtRatio(ratio(walls(a), walls(b))) : 'n/a'} | ${runs.join(' + ')} |`);
    }
  }
  return rows.join('\n');
}

/** Per run: SSH connections and round trips per host, controller CPU and peak RSS, host CPU. */
export function costTable(cells: readonly Cell[]): string {
  const rows = [
    '| scenario | hosts | tool | SSH connections / host | round trips / host | controller CPU | peak RSS | host CPU / host |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const order = Object.keys(SCENARIO_TITLE) as Scenario[];
  const sorted = [...cells].sort((x, y) => order.indexOf(x.scenario) - order.indexOf(y.scenario) || x.hosts - y.hosts || (x.tool === 'berth' ? -1 : 1));
  for (const c of sorted) {
    const cpu = median(c.samples.map((x) => x.cpuMs));
    const rss = median(c.samples.map((x) => x.maxRssKb));
    const host = c.samples.every((x) => x.hostCpuMs !== undefined) ? median(c.samples.map((x) => x.hostCpuMs! / c.hosts)) : NaN;
    rows.push(
      `| ${SCENARIO_TITLE[c.scenario]} | ${c.hosts} | ${c.tool === 'berth' ? 'berth' : 'Ansible'} | ${fmtPerHost(c.counts?.connections)} | ${fmtPerHost(c.counts?.roundTrips)} | ${fmtSeconds(cpu)} | ${fmtMb(rss)} | ${Number.isFinite(host) ? `${host.toFixed(0)} ms` : 'n/a'} |`,
    );
  }
  return rows.join('\n');
}

export interface Target {
  what: string;
  /** The measured value, already formatted. */
  measured: string;
  met: boolean | undefined;
}

/** The issue's targets, judged from the cells (undefined: not measured in this run). */
export function targets(cells: readonly Cell[]): Target[] {
  const w = (s: Scenario, n: number, t: Tool) => walls(cellOf(cells, s, n, t));
  const out: Target[] = [];
  const r20 = ratio(w('noop-plan', 20, 'ansible'), w('noop-plan', 20, 'berth'));
  out.push({ what: 'no-op plan, 20 hosts: ≥ 10× faster than Ansible --check --diff', measured: fmtRatio(r20), met: Number.isFinite(r20) ? r20 >= 10 : undefined });
  const p20 = median(w('noop-plan', 20, 'berth'));
  out.push({ what: 'no-op plan, 20 hosts: ≤ 1.5 s wall', measured: fmtSeconds(p20), met: Number.isFinite(p20) ? p20 <= 1500 : undefined });
  const c20 = ratio(w('cold-apply', 20, 'ansible'), w('cold-apply', 20, 'berth'));
  out.push({ what: 'cold apply, 20 hosts: ≥ 5× faster than Ansible', measured: fmtRatio(c20), met: Number.isFinite(c20) ? c20 >= 5 : undefined });
  const rts = cells.filter((c) => c.scenario === 'noop-plan' && c.tool === 'berth' && c.counts).flatMap((c) => c.counts!.roundTrips);
  out.push({ what: 'no-op plan: ≤ 2 SSH round trips per host', measured: rts.length ? `${Math.max(...rts)} (most on any host)` : 'n/a', met: rts.length ? Math.max(...rts) <= 2 : undefined });
  const rss = cells.filter((c) => c.hosts === 20 && c.tool === 'berth').flatMap((c) => c.samples.map((x) => x.maxRssKb));
  out.push({ what: 'controller peak RSS ≤ 150 MB at 20 hosts', measured: rss.length ? `${fmtMb(Math.max(...rss))} (highest berth run)` : 'n/a', met: rss.length ? Math.max(...rss) <= 150 * 1024 : undefined });
  const scale = cells.filter((c) => c.scenario === 'noop-plan' && c.tool === 'berth' && c.hosts >= 50);
  const p50 = scale.length ? median(walls(scale[0])) : NaN;
  out.push({ what: `no-op plan, ${scale[0]?.hosts ?? 50} hosts: ≤ 3 s`, measured: fmtSeconds(p50), met: Number.isFinite(p50) ? p50 <= 3000 : undefined });
  return out;
}

export function targetTable(ts: readonly Target[]): string {
  const rows = ['| target | measured | met |', '| --- | --- | --- |'];
  for (const t of ts) rows.push(`| ${t.what} | ${t.measured} | ${t.met === undefined ? 'not measured' : t.met ? 'yes' : '**no**'} |`);
  return rows.join('\n');
}
