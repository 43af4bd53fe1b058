// All of a host's fact queries as one script, one round trip. The script goes
// to `sh` on standard input (no argv size limit); every query runs in its own
// subshell with stdin from /dev/null, and its output comes back framed by
// markers that carry a random per-call nonce, so no output can fake a frame:
//
//   <nonce> B <i>\n<stdout of query i>\n<nonce> E <i> <exit code>\n<its stderr>\n<nonce> Z <i>\n
//
// The newline written before the E marker is part of the marker, so output
// without a trailing newline comes back exactly as printed.
//
// Queries that carry a `group` (file stats) are merged: one frame runs one
// command for all of them, so a host with forty managed files spawns a handful
// of processes for them instead of a few hundred.

import { randomBytes } from 'node:crypto';
import type { FactQuery, Facts, Transport } from '../types.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';

export interface GatherOptions {
  /** Run the queries as root (default: the transport's become setting). */
  become?: boolean;
  timeoutMs?: number;
}

/** What one query printed, as cut out of the combined stream. */
export interface QueryOutput {
  stdout: string;
  stderr: string;
  code: number;
}

/** The shell script that runs `queries` in order, framed with `nonce`. */
export function batchScript(queries: readonly FactQuery[], nonce: string): string {
  const lines: string[] = [];
  queries.forEach((q, i) => {
    lines.push(`printf '%s\\n' '${nonce} B ${i}'`);
    // stdout straight to the stream (fd 3), stderr captured per query
    lines.push(`{ __berth_e=$(eval ${shq(q.command)} </dev/null 2>&1 1>&3 3>&-); __berth_c=$?; } 3>&1`);
    lines.push(`printf '\\n%s %s\\n%s\\n%s\\n' '${nonce} E ${i}' "$__berth_c" "$__berth_e" '${nonce} Z ${i}'`);
  });
  return lines.join('\n') + '\n';
}

/** Cuts query `i`'s frame out of the stream; undefined when it is missing or cut short. */
export function readFrame(stream: string, nonce: string, i: number): QueryOutput | undefined {
  const begin = `${nonce} B ${i}\n`;
  const b = stream.indexOf(begin);
  if (b < 0) return undefined;
  const start = b + begin.length;
  const endMark = `\n${nonce} E ${i} `;
  const e = stream.indexOf(endMark, start);
  if (e < 0) return undefined;
  const codeStart = e + endMark.length;
  const nl = stream.indexOf('\n', codeStart);
  if (nl < 0) return undefined;
  const code = Number(stream.slice(codeStart, nl));
  if (!Number.isInteger(code)) return undefined;
  const zMark = `\n${nonce} Z ${i}\n`;
  const z = stream.indexOf(zMark, nl);
  if (z < 0) return undefined;
  return { stdout: stream.slice(start, e), stderr: stream.slice(nl + 1, z), code };
}

function firstLine(s: string, max = 200): string {
  const line = s.trim().split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/**
 * Runs every query in one exec and parses each output with its own parser.
 * Queries are de-duplicated by key (the first one wins). A query whose
 * output is missing or whose parser throws fails the gathering with a
 * BerthError naming the host and the fact key.
 */
export async function gatherFacts(transport: Transport, queries: readonly FactQuery[], opts: GatherOptions = {}): Promise<Facts> {
  const unique = new Map<string, FactQuery>();
  for (const q of queries) if (!unique.has(q.key)) unique.set(q.key, q);
  const facts: Facts = new Map();
  if (unique.size === 0) return facts;

  const units = mergeGroups([...unique.values()]);
  const nonce = `berth-${randomBytes(16).toString('hex')}`;
  const script = batchScript(
    units.map((u) => u.query),
    nonce,
  );
  const res = await transport.exec('exec sh -s', { stdin: script, become: opts.become, timeoutMs: opts.timeoutMs });

  units.forEach((u, i) => {
    const name = u.keys.length > 1 ? `${u.keys[0]} (and ${u.keys.length - 1} more)` : u.keys[0];
    const out = readFrame(res.stdout, nonce, i);
    if (!out) {
      const why = firstLine(res.stderr);
      throw new BerthError(`fact ${name} on host ${transport.host}: no output from its query (the fact script exited with code ${res.code}${why ? `: ${why}` : ''})`, {
        host: transport.host,
      });
    }
    let values: unknown[];
    try {
      values = u.parse(out.stdout, out.code);
      if (values.length !== u.keys.length) throw new Error(`expected ${u.keys.length} values, got ${values.length}`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const why = firstLine(out.stderr);
      throw new BerthError(`fact ${name} on host ${transport.host}: cannot read its output: ${msg} (exit code ${out.code}${why ? `, stderr: ${why}` : ''})`, {
        host: transport.host,
        cause: e,
      });
    }
    u.keys.forEach((k, j) => facts.set(k, values[j]));
  });
  return facts;
}

/** One frame of the script: a query, or a group of queries answered by one command. */
interface Unit {
  query: FactQuery;
  keys: string[];
  parse(stdout: string, code: number): unknown[];
}

/** Queries in order, those of a group (two or more) merged into one unit where the group first appears. */
function mergeGroups(list: FactQuery[]): Unit[] {
  const size = new Map<string, number>();
  for (const q of list) if (q.group) size.set(q.group.id, (size.get(q.group.id) ?? 0) + 1);
  const units: Unit[] = [];
  const open = new Map<string, { unit: Unit; args: string[] }>();
  for (const q of list) {
    const g = q.group;
    if (!g || (size.get(g.id) ?? 0) < 2) {
      units.push({ query: q, keys: [q.key], parse: (o, c) => [q.parse(o, c)] });
      continue;
    }
    let m = open.get(g.id);
    if (!m) {
      const args: string[] = [];
      const unit: Unit = { query: q, keys: [], parse: (o, c) => g.parse(o, c, args) };
      m = { unit, args };
      open.set(g.id, m);
      units.push(unit);
    }
    m.args.push(g.arg);
    m.unit.keys.push(q.key);
  }
  for (const { unit, args } of open.values()) {
    const g = unit.query.group!;
    unit.query = { key: unit.keys[0]!, command: g.command(args), parse: () => undefined };
  }
  return units;
}
