// The verification pull of `berth onboard`: for every mirrored upstream, pull
// a small image with each runtime the node was configured for, and tell from
// the runtime's own debug output which host served it. A pull that succeeded
// only because the runtime fell back to the upstream is a failure: the point
// is the cache. Pure: the scripts to run and the parsing of their output.

import { shq } from '../util/shell.js';
import { BerthError } from '../util/errors.js';
import { fullRef, type ImageRef, type Mirror } from './mirrors.js';
import type { RuntimeSelection, RuntimesFact } from '../facts/runtimes.js';
import type { SourcePos } from '../types.js';

export type VerifyRuntime = 'containerd' | 'containers-image' | 'docker';

export interface Check {
  upstream: string;
  project: string;
  /** The image as a workload names it: docker.io/library/busybox:1.36. */
  image: string;
  runtime: VerifyRuntime;
  tool: 'ctr' | 'skopeo' | 'crictl' | 'docker';
  /** Where the image must come from: the mirror's reference (containers-image), or the cache's host (containerd). */
  expect: string;
  script: string;
}

export interface CheckResult {
  upstream: string;
  project?: string;
  image?: string;
  runtime?: VerifyRuntime;
  tool?: Check['tool'];
  status: 'ok' | 'failed' | 'unchecked';
  /** ok: what served the image (the cache's URL or reference). */
  via?: string;
  /** failed: the runtime's own error; unchecked: why not. */
  error?: string;
  hint?: string;
  ms?: number;
}

export interface VerifyInput {
  harbor: string;
  mirrors: Mirror[];
  images: ImageRef[];
  selected: RuntimeSelection;
  runtimes: RuntimesFact;
  /** containerd's hosts directory. */
  certsDir: string;
  /** Where the images were named (for the error about an image no project mirrors). */
  imagesPos?: SourcePos;
}

const TIMEOUT_S = 90;
const NAMESPACE = 'berth-verify';

export function buildChecks(v: VerifyInput): { checks: Check[]; unchecked: CheckResult[] } {
  const mirrored = new Map(v.mirrors.map((m) => [m.upstream, m]));
  for (const img of v.images) {
    if (!mirrored.has(img.upstream)) {
      throw new BerthError(`verify image ${fullRef(img)} is on ${img.upstream}, which no proxy project mirrors, so its pull would prove nothing`, {
        pos: v.imagesPos,
        keyPath: 'nodes.verify_image',
        hint: `mirrored upstreams: ${[...mirrored.keys()].join(', ') || '(none)'}`,
      });
    }
  }
  const checks: Check[] = [];
  const unchecked: CheckResult[] = [];
  const has = (c: string) => !!v.runtimes.commands[c];
  for (const m of v.mirrors) {
    const imgs = v.images.filter((i) => i.upstream === m.upstream);
    if (!imgs.length) {
      unchecked.push({ upstream: m.upstream, project: m.project, status: 'unchecked', error: `no verify image on ${m.upstream}`, hint: `add one to nodes.verify_image, e.g. ${m.upstream}/<repository>:<tag>` });
      continue;
    }
    for (const img of imgs) {
      const image = fullRef(img);
      const base = { upstream: m.upstream, project: m.project, image };
      if (v.selected.containerd) {
        if (has('ctr')) checks.push({ ...base, runtime: 'containerd', tool: 'ctr', expect: v.harbor, script: ctrScript(image, v.certsDir) });
        else unchecked.push({ ...base, runtime: 'containerd', status: 'unchecked', error: 'ctr is not installed' });
      }
      if (v.selected.containers) {
        const mirrorRef = `${v.harbor}/${m.project}/${img.path}${img.reference}`;
        if (has('skopeo')) checks.push({ ...base, runtime: 'containers-image', tool: 'skopeo', expect: mirrorRef, script: skopeoScript(image) });
        else if (has('crictl') && v.runtimes.crio) checks.push({ ...base, runtime: 'containers-image', tool: 'crictl', expect: mirrorRef, script: crictlScript(image) });
        else unchecked.push({ ...base, runtime: 'containers-image', status: 'unchecked', error: 'neither skopeo nor crictl is installed' });
      }
      if (v.selected.docker) {
        // dockerd cannot mirror a proxy project: the pull names the project, as workloads on this node must
        const direct = `${v.harbor}/${m.project}/${img.path}${img.reference}`;
        if (has('docker')) checks.push({ ...base, runtime: 'docker', tool: 'docker', expect: direct, script: dockerScript(direct) });
        else unchecked.push({ ...base, runtime: 'docker', status: 'unchecked', error: 'the docker CLI is not installed' });
      }
    }
  }
  return { checks, unchecked };
}

function ctrScript(ref: string, certsDir: string): string {
  const r = shq(ref);
  return [
    `out=$(timeout ${TIMEOUT_S} ctr --debug -n ${NAMESPACE} images pull --hosts-dir ${shq(certsDir)} ${r} 2>&1); c=$?`,
    `printf '%s\\n' "$out"`,
    `ctr -n ${NAMESPACE} images rm --sync ${r} >/dev/null 2>&1 || true`,
    'exit $c',
  ].join('\n');
}

function skopeoScript(ref: string): string {
  return [
    'd=$(mktemp -d) || exit 1',
    `out=$(timeout ${TIMEOUT_S} skopeo --debug copy ${shq(`docker://${ref}`)} "oci:$d/image:verify" 2>&1); c=$?`,
    'rm -rf -- "$d"',
    `printf '%s\\n' "$out"`,
    'exit $c',
  ].join('\n');
}

function crictlScript(ref: string): string {
  return [`out=$(timeout ${TIMEOUT_S} crictl pull ${shq(ref)} 2>&1); c=$?`, `printf '%s\\n' "$out"`, `crictl rmi ${shq(ref)} >/dev/null 2>&1 || true`, 'exit $c'].join('\n');
}

function dockerScript(ref: string): string {
  return [`out=$(timeout ${TIMEOUT_S} docker pull ${shq(ref)} 2>&1); c=$?`, `printf '%s\\n' "$out"`, `docker rmi ${shq(ref)} >/dev/null 2>&1 || true`, 'exit $c'].join('\n');
}

// ---------------------------------------------------------------- reading the output

/** The fields of one logrus text line: time="…" level=debug msg="do request" host=… */
export function logFields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of line.matchAll(/([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|[^\s"]+)/g)) {
    const v = m[2]!;
    out[m[1]!] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
  }
  return out;
}

const X509_HINT = "the node does not trust the cache's certificate: is tls.ca_cert the CA that signed it, and did node_trust run on this node?";

function hintFor(error: string | undefined): string | undefined {
  if (!error) return undefined;
  if (/x509:|certificate signed by unknown authority|tls: failed to verify/.test(error)) return X509_HINT;
  if (/unable to read CA cert/.test(error)) return "the CA file hosts.toml names is missing: node_trust writes it (berth onboard applies it)";
  if (/no such host|server misbehaving/.test(error)) return 'the node cannot resolve the cache\'s host name';
  if (/connection refused|i\/o timeout|no route to host/.test(error)) return 'the cache does not answer on 443 from this node';
  if (/unexpected media type text\/html/.test(error)) return 'the mirror answered with a web page: override_path or the project path is wrong';
  return undefined;
}

function lastLine(out: string): string {
  return out.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
}

export function parseCheck(c: Check, out: string, code: number, ms: number): CheckResult {
  const base = { upstream: c.upstream, project: c.project, image: c.image, runtime: c.runtime, tool: c.tool, ms };
  const fail = (error: string): CheckResult => ({ ...base, status: 'failed', error, hint: hintFor(error) });
  if (code === 124) return fail(`no answer within ${TIMEOUT_S} s`);
  switch (c.tool) {
    case 'ctr': {
      const lines = out.split('\n').map(logFields);
      const resolved = lines.find((l) => l.msg === 'resolved');
      const mirrorErr = lines.find((l) => l.msg === 'trying next host' && l.host === c.expect)?.error;
      if (code === 0 && resolved?.host === c.expect) {
        const manifest = lines.find((l) => l.msg === 'fetch response received' && l.host === c.expect && /\/manifests\//.test(l.url ?? ''));
        return { ...base, status: 'ok', via: manifest?.url?.replace(/\?.*$/, '') ?? `https://${c.expect}` };
      }
      if (code === 0) return fail(`pulled from ${resolved?.host ?? 'another host'}, not through the cache${mirrorErr ? ` (the cache: ${mirrorErr})` : ''}`);
      const final = out.split('\n').find((l) => l.startsWith('ctr: '))?.slice(5);
      return fail(mirrorErr ?? final ?? (lastLine(out) || `exit code ${code}`));
    }
    case 'skopeo': {
      const lines = out.split('\n').map(logFields);
      const tried = lines.filter((l) => l.msg?.startsWith('Trying to access ')).map((l) => l.msg!.slice('Trying to access '.length).replace(/^"|"$/g, ''));
      const failed = lines.filter((l) => l.msg?.startsWith('Accessing ')).map((l) => /^Accessing "([^"]*)" failed: ([\s\S]*)$/.exec(l.msg!)).filter((m): m is RegExpExecArray => !!m);
      const mirrorErr = failed.find((m) => m[1] === c.expect)?.[2];
      if (code === 0 && tried[tried.length - 1] === c.expect) return { ...base, status: 'ok', via: c.expect };
      if (code === 0) return fail(`pulled from ${tried[tried.length - 1] ?? 'another source'}, not through the cache${mirrorErr ? ` (the cache: ${mirrorErr})` : ''}`);
      const fatal = lines.filter((l) => l.level === 'fatal' || l.level === 'error').pop()?.msg;
      return fail(mirrorErr ?? fatal ?? (lastLine(out) || `exit code ${code}`));
    }
    default:
      if (code === 0) return { ...base, status: 'ok', via: c.tool === 'docker' ? c.expect : 'CRI-O (crictl does not show which host served it)' };
      return fail(lastLine(out) || `exit code ${code}`);
  }
}
