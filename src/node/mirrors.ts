// The node mirrors, derived from the one list there is: the spec's Harbor
// projects. A project with `proxy: <registry endpoint>` and `mirrors:
// <upstream>` is the cache of that upstream, so every node pulls <upstream>
// images through https://<harbor>/v2/<project>. Pure functions: the file
// contents the node modules write, and image references for the verification.

import { BerthError } from '../util/errors.js';
import { quoteString } from '../template/helpers.js';
import type { ModuleContext, SourcePos } from '../types.js';

export interface Mirror {
  /** The registry host images are named by: docker.io, quay.io, registry.k8s.io, localhost:5000. */
  upstream: string;
  /** The Harbor proxy-cache project that caches it. */
  project: string;
  /** Where the upstream really is (containerd's `server`): docker.io → https://registry-1.docker.io. */
  server: string;
}

export interface ProjectSpec {
  proxy?: unknown;
  mirrors?: unknown;
  [k: string]: unknown;
}

const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/;
const PROJECT = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

/** Docker Hub's names: the registry host that serves them is not the one in image names. */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export function serverFor(upstream: string): string {
  return upstream === DOCKER_HUB ? 'https://registry-1.docker.io' : `https://${upstream}`;
}

/**
 * The mirrors of a `projects` map, sorted by upstream. Errors point at the
 * project's entry in the inventory (through `ctx.locateArg` when given).
 */
export function mirrorsFrom(projects: unknown, ctx?: Pick<ModuleContext, 'pos'> & { locateArg?: ModuleContext['locateArg'] }, argName = 'projects'): Mirror[] {
  if (projects === undefined || projects === null) return [];
  const where = (path: (string | number)[]): SourcePos | undefined => ctx?.locateArg?.([argName, ...path]) ?? ctx?.pos;
  if (typeof projects !== 'object' || Array.isArray(projects)) {
    throw new BerthError('projects must be a mapping of project name → settings', { pos: where([]), keyPath: 'projects' });
  }
  const byUpstream = new Map<string, Mirror>();
  for (const [project, raw] of Object.entries(projects as Record<string, ProjectSpec | null>)) {
    const p = raw ?? {};
    if (p.mirrors === undefined || p.mirrors === null) continue;
    const keyPath = `projects.${project}.mirrors`;
    if (typeof p.mirrors !== 'string' || !HOST.test(p.mirrors)) {
      throw new BerthError(`must be the registry host the project caches, e.g. docker.io or quay.io, got ${JSON.stringify(p.mirrors)}`, { pos: where([project, 'mirrors']), keyPath });
    }
    if (p.proxy === undefined || p.proxy === null || p.proxy === '') {
      throw new BerthError(`project ${project} mirrors ${p.mirrors} but is not a proxy cache`, {
        pos: where([project, 'mirrors']),
        keyPath,
        hint: 'add proxy: <registry endpoint> to the project, or drop mirrors',
      });
    }
    if (!PROJECT.test(project)) {
      throw new BerthError(`${JSON.stringify(project)} is not a Harbor project name`, { pos: where([project]), keyPath: `projects.${project}`, hint: 'lower-case letters, digits and . _ - between them' });
    }
    const upstream = DOCKER_HUB_ALIASES.has(p.mirrors) ? DOCKER_HUB : p.mirrors;
    const seen = byUpstream.get(upstream);
    if (seen) {
      throw new BerthError(`${upstream} is mirrored by both ${seen.project} and ${project}`, {
        pos: where([project, 'mirrors']),
        keyPath,
        hint: 'each upstream gets one hosts.toml and one drop-in entry: keep one project per upstream',
      });
    }
    byUpstream.set(upstream, { upstream, project, server: serverFor(upstream) });
  }
  return [...byUpstream.values()].sort((a, b) => a.upstream.localeCompare(b.upstream));
}

export function checkHarborHost(harbor: string, pos: SourcePos | undefined): void {
  if (!HOST.test(harbor)) {
    throw new BerthError(`must be the cache's host name (as in its certificate), got ${JSON.stringify(harbor)}`, { pos, keyPath: 'harbor.hostname' });
  }
}

export const MANAGED_MARK = '# Managed by berth';

/** containerd's certs.d/<upstream>/hosts.toml for one mirror. */
export function hostsToml(m: Mirror, harbor: string, ca: string): string {
  return [
    `${MANAGED_MARK}: ${m.upstream} is pulled through the Harbor proxy project ${m.project}.`,
    `# containerd re-reads this file on every pull; config.toml's config_path points here.`,
    `server = ${quoteString(m.server)}`,
    '',
    `[host.${quoteString(`https://${harbor}/v2/${m.project}`)}]`,
    '  capabilities = ["pull", "resolve"]',
    '  # the project is part of the path: without this containerd would add /v2 again',
    '  override_path = true',
    `  ca = ${quoteString(ca)}`,
    '',
  ].join('\n');
}

/** The containers-image drop-in (registries.conf.d, v2 format) for all mirrors. */
export function registriesDropIn(mirrors: Mirror[], harbor: string): string {
  const out = [`${MANAGED_MARK}: every upstream below is pulled through its Harbor proxy project on ${harbor}.`, '# CRI-O, podman, skopeo and buildah read it; CRI-O after a reload.'];
  for (const m of mirrors) {
    out.push('', '[[registry]]', `prefix = ${quoteString(m.upstream)}`, `location = ${quoteString(m.upstream)}`, '', '[[registry.mirror]]', `location = ${quoteString(`${harbor}/${m.project}`)}`);
  }
  out.push('');
  return out.join('\n');
}

// ---------------------------------------------------------------- image references

export interface ImageRef {
  /** Normalised upstream: docker.io for Docker Hub names. */
  upstream: string;
  /** Repository path inside the upstream (docker.io: library/ added to one-part names). */
  path: string;
  /** ":tag" or "@sha256:…". */
  reference: string;
}

/**
 * Parses an image reference the way Docker normalises it: no registry host
 * in the first component → docker.io; one-part Docker Hub names get library/.
 */
export function parseImageRef(ref: string): ImageRef | undefined {
  const m = /^(?:([^/]+)\/)?([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(:[\w][\w.-]{0,127}|@sha256:[a-f0-9]{64})?$/.exec(ref);
  if (!m) return undefined;
  let [, first, rest, reference] = m;
  let upstream = DOCKER_HUB;
  if (first !== undefined) {
    if (first.includes('.') || first.includes(':') || first === 'localhost') upstream = first;
    else rest = `${first}/${rest}`;
  }
  if (DOCKER_HUB_ALIASES.has(upstream)) upstream = DOCKER_HUB;
  if (!HOST.test(upstream)) return undefined;
  let path = rest!;
  if (upstream === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  return { upstream, path, reference: reference ?? ':latest' };
}

export const fullRef = (r: ImageRef) => `${r.upstream}/${r.path}${r.reference}`;
