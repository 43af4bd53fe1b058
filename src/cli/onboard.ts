// berth onboard <node>: the plays that target the node, applied to it alone,
// then a pull of a small image through the cache for every mirrored upstream,
// with each runtime the node was configured for. Exit 1 when the apply or a
// pull fails; the report says, per upstream, what served the image or the
// runtime's own error.

import { prepare, publicResult, runApply, type RunOptions } from '../engine.js';
import { gatherFacts } from '../facts/batch.js';
import { RUNTIMES_KEY, RuntimeSelectionError, describeRuntimes, runtimesFact, selectRuntimes, type RuntimeSetting, type RuntimesFact } from '../facts/runtimes.js';
import { CERTS_DIRS } from '../modules/registry_ca.js';
import { mirrorsFrom, parseImageRef, type ImageRef } from '../node/mirrors.js';
import { buildChecks, parseCheck, type CheckResult } from '../node/verify.js';
import { renderJson, renderText, summarize } from '../plan/render.js';
import { loadSpec, varsFor } from '../spec/load.js';
import { openTransport } from '../transport/index.js';
import { redact } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';
import type { BoundTask, HostProgram } from '../plan/program.js';
import type { Spec } from '../spec/model.js';
import type { SourcePos } from '../types.js';

export interface OnboardOptions {
  verifyOnly?: boolean;
  /** Image references that replace nodes.verify_image. */
  images?: string[];
  json?: boolean;
  color?: boolean;
  lockTimeoutSec?: number;
  renderer?: 'default' | 'simple' | 'silent';
}

const MIRROR_MODULES = ['containerd_hosts', 'containers_mirrors', 'docker_mirror'];

export interface OnboardReport {
  format: 'berth-onboard/1';
  host: string;
  harbor: string;
  runtimes: string;
  apply?: unknown;
  checks: CheckResult[];
  ok: boolean;
}

export async function runOnboard(base: RunOptions, node: string, o: OnboardOptions, out: (s: string) => void): Promise<number> {
  if (base.limit) throw new BerthError('onboard takes its node as the argument; --limit does not apply');
  const opts: RunOptions = { ...base, limit: node };
  const inv = loadSpec(opts).inventory;
  if (!inv.hosts.has(node)) {
    if (inv.groups.has(node)) throw new BerthError(`${node} is a group, not a host`, { hint: 'berth onboard takes one node; berth apply -l <group> applies a group' });
    const hosts = [...inv.hosts.keys()];
    throw new BerthError(`no host named ${JSON.stringify(node)} in ${base.inventory}`, { hint: `add it to the nodes group first; hosts: ${hosts.slice(0, 12).join(', ')}${hosts.length > 12 ? ', …' : ''}` });
  }
  const prep = await prepare(opts);
  const program = prep.programs[0]!;
  const mirrorTasks = program.segments.flatMap((s) => s.tasks).filter((t) => MIRROR_MODULES.includes(t.module.name));
  if (!mirrorTasks.length) {
    throw new BerthError(`no play in ${prep.options.playbook} gives ${node} the node_mirror role`, { hint: 'put the node in the group of the nodes play (e.g. nodes)' });
  }

  let applyJson: unknown;
  if (!o.verifyOnly) {
    const r = await runApply({ ...opts, lockTimeoutSec: o.lockTimeoutSec, renderer: o.json ? 'silent' : o.renderer ?? 'simple' });
    if (o.json) applyJson = JSON.parse(renderJson(publicResult(r)));
    else out('\n' + renderText(r, { color: o.color === true }));
    if (summarize(r).failedHosts) {
      if (o.json) out(redact(JSON.stringify({ format: 'berth-onboard/1', host: node, apply: applyJson, checks: [], ok: false }, null, 2)) + '\n');
      else out(`${node}: not verified: the apply failed\n`);
      return 1;
    }
  }

  const report = await verifyNode(prep.spec, program, mirrorTasks, o.images);
  if (applyJson !== undefined) report.apply = applyJson;
  out(o.json ? redact(JSON.stringify(report, null, 2)) + '\n' : renderReport(report, o.color === true));
  return report.ok ? 0 : 1;
}

/** The images to pull: --image, else nodes.verify_image (as the node's play sees it). */
function verifyImages(spec: Spec, program: HostProgram, task: BoundTask, cli: string[] | undefined): { images: ImageRef[]; pos?: SourcePos } {
  let raw: unknown = cli?.length ? cli : undefined;
  let pos: SourcePos | undefined;
  if (raw === undefined) {
    const play = spec.plays.find((p) => p.name === task.play)!;
    const ref = play.roles.find((r) => r.role.name === task.role);
    const vars = varsFor(spec, spec.inventory.hosts.get(program.host)!, play, ref);
    raw = (vars.values.nodes as { verify_image?: unknown } | undefined)?.verify_image;
    pos = vars.locate(['nodes', 'verify_image']);
  }
  const list = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : [raw];
  const images = list.map((s, i) => {
    const r = typeof s === 'string' ? parseImageRef(s) : undefined;
    if (!r) throw new BerthError(`${JSON.stringify(s)} is not an image reference`, { pos, keyPath: cli?.length ? `--image #${i + 1}` : 'nodes.verify_image', hint: 'e.g. library/busybox:1.36 or quay.io/prometheus/busybox:latest' });
    return r;
  });
  return { images, pos };
}

async function verifyNode(spec: Spec, program: HostProgram, tasks: BoundTask[], cliImages: string[] | undefined): Promise<OnboardReport> {
  const args = tasks[0]!.args as { harbor: string; projects: unknown; runtime?: RuntimeSetting };
  const certsDir = (tasks.find((t) => t.module.name === 'containerd_hosts')?.args as { certs_dir?: string } | undefined)?.certs_dir ?? CERTS_DIRS.containerd;
  const mirrors = mirrorsFrom(args.projects, tasks[0]!.ctx);
  const { images, pos } = verifyImages(spec, program, tasks[0]!, cliImages);
  const t = openTransport(program.connection);
  try {
    const facts = await gatherFacts(t, [runtimesFact()], { become: program.connection.become });
    const f = facts.get(RUNTIMES_KEY) as RuntimesFact;
    let selected;
    try {
      selected = selectRuntimes(args.runtime ?? 'auto', f, program.host);
    } catch (e) {
      if (e instanceof RuntimeSelectionError) throw new BerthError(e.message, { host: program.host, hint: e.hint });
      throw e;
    }
    const { checks, unchecked } = buildChecks({ harbor: args.harbor, mirrors, images, selected, runtimes: f, certsDir, imagesPos: pos });
    const results: CheckResult[] = [...unchecked];
    for (const c of checks) {
      const t0 = Date.now();
      const r = await t.exec(c.script, { become: program.connection.become, timeoutMs: 150_000 });
      results.push(parseCheck(c, r.stdout + r.stderr, r.code, Date.now() - t0));
    }
    const order = new Map(mirrors.map((m, i) => [m.upstream, i]));
    results.sort((a, b) => order.get(a.upstream)! - order.get(b.upstream)!);
    return {
      format: 'berth-onboard/1',
      host: program.host,
      harbor: args.harbor,
      runtimes: describeRuntimes(f),
      checks: results,
      ok: results.every((r) => r.status !== 'failed') && results.some((r) => r.status === 'ok'),
    };
  } finally {
    await t.close().catch(() => undefined);
  }
}

const MARK = { ok: '✔', failed: '✖', unchecked: '-' } as const;

export function renderReport(r: OnboardReport, color: boolean): string {
  const paint = (s: string, code: number) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const lines = [`${r.host}: verification pulls through ${r.harbor} (${r.runtimes})`];
  const width = Math.max(...r.checks.map((c) => c.upstream.length), 0);
  for (const c of r.checks) {
    const mark = paint(MARK[c.status], c.status === 'ok' ? 32 : c.status === 'failed' ? 31 : 33);
    const who = c.runtime ? ` ${c.runtime} (${c.tool})` : '';
    const what = c.image ? ` ${c.image}` : '';
    const time = c.ms !== undefined ? ` ${(c.ms / 1000).toFixed(1)} s` : '';
    const detail = c.status === 'ok' ? `from ${c.via}` : c.status === 'failed' ? `FAILED: ${c.error}` : `not checked: ${c.error}`;
    lines.push(`  ${mark} ${c.upstream.padEnd(width)}${what}${who}: ${detail}${time}`);
    if (c.hint) lines.push(`      ${c.hint}`);
  }
  const failed = r.checks.filter((c) => c.status === 'failed').length;
  const ok = r.checks.filter((c) => c.status === 'ok').length;
  if (r.ok) lines.push(`${r.host} pulls through the cache (${ok} pull(s) verified).`);
  else if (!failed && !ok) lines.push(paint(`${r.host}: nothing was verified (no verify image on any mirrored upstream)`, 31));
  else lines.push(paint(`${r.host}: ${failed} verification pull(s) failed.`, 31));
  return redact(lines.join('\n')) + '\n';
}
