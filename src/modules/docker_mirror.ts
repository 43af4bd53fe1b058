// Docker nodes. dockerd's registry-mirrors mirror Docker Hub only, and a
// mirror URL cannot carry a path (moby/moby#34319), so a Harbor proxy project
// is not a transparent dockerd mirror (goharbor/harbor#18807). berth says so at
// plan time for every proxy project a Docker-only node would miss, pointing at
// the project in the inventory. What works: `nodes.docker.hub_mirror`, an
// endpoint that serves the Docker Hub project at its root (a path-rewriting
// proxy in front of Harbor), written to daemon.json's registry-mirrors (a
// reload applies it); and explicit pulls of <harbor>/<project>/<image>, which
// node_trust's /etc/docker/certs.d/<harbor>/ca.crt makes trusted.

import { isDeepStrictEqual } from 'node:util';
import { fileFacts, planFile } from './file.js';
import { posix } from 'node:path';
import { applyTagged, dirFacts, nodeFacts, planDir, selection, tag } from './node_common.js';
import { CERTS_DIRS } from './registry_ca.js';
import { DOCKER_HUB, checkHarborHost, mirrorsFrom, type Mirror } from '../node/mirrors.js';
import { fileKey, type FileFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import type { RuntimeSetting } from '../facts/runtimes.js';
import type { Module, ModuleContext, PlannedChange } from '../types.js';

export interface DockerMirrorArgs {
  runtime?: RuntimeSetting;
  harbor: string;
  projects: unknown;
  /** An endpoint serving the Docker Hub proxy project at its root (no path). */
  hub_mirror?: string;
  /** What to do with upstreams dockerd cannot mirror: stop the plan (error) or say so (warn). */
  unmirrored?: 'error' | 'warn';
  daemon_json?: string;
  /** The CA (PEM, in the spec) the hub mirror's certificate chains to: dockerd reads certs.d per request. */
  ca?: string;
}

const DAEMON_JSON = '/etc/docker/daemon.json';

/** /etc/docker/certs.d/<host[:port]>/ca.crt of the hub mirror, when there is one. */
function hubCaPath(a: DockerMirrorArgs): string | undefined {
  if (!a.hub_mirror || !a.ca) return undefined;
  return `${CERTS_DIRS.docker}/${new URL(a.hub_mirror).host}/ca.crt`;
}

// ---------------------------------------------------------------- a minimal daemon.json edit

/** Offsets of the top-level members of a JSON object text: [key, valueStart, valueEnd]. */
function topLevelMembers(text: string): { members: [string, number, number][]; close: number; indent: string } {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const str = () => {
    const s = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(s, i)) as string;
  };
  const value = (): void => {
    const c = text[i];
    if (c === '"') {
      str();
      return;
    }
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          return;
        }
        if (c === '{') {
          str();
          ws();
          i++; // ':'
          ws();
        }
        value();
        ws();
        if (text[i] === ',') i++;
      }
    }
    while (i < text.length && !/[\s,}\]]/.test(text[i]!)) i++;
  };
  ws();
  i++; // '{'
  const members: [string, number, number][] = [];
  let indent = '  ';
  for (;;) {
    ws();
    if (text[i] === '}') break;
    if (members.length === 0) indent = text.slice(text.lastIndexOf('\n', i) + 1, i);
    const k = str();
    ws();
    i++;
    ws();
    const vs = i;
    value();
    members.push([k, vs, i]);
    ws();
    if (text[i] === ',') i++;
  }
  return { members, close: i, indent };
}

/** daemon.json with `registry-mirrors` set to `mirrors`, everything else as it was (pure). */
export function daemonJsonEdit(text: string | undefined, mirrors: string[], where: string): { text: string; changed: boolean } {
  const literal = JSON.stringify(mirrors);
  if (text === undefined || text.trim() === '') return { text: `{\n  "registry-mirrors": ${literal}\n}\n`, changed: true };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BerthError(`${where} is not valid JSON (${(e as Error).message})`, { hint: 'dockerd would not start with it either: fix it first' });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new BerthError(`${where} is not a JSON object`);
  if (isDeepStrictEqual((doc as Record<string, unknown>)['registry-mirrors'], mirrors)) return { text, changed: false };
  const { members, close, indent } = topLevelMembers(text);
  const hit = members.filter(([k]) => k === 'registry-mirrors').pop();
  let next: string;
  if (hit) next = text.slice(0, hit[1]) + literal + text.slice(hit[2]);
  else if (members.length) {
    const last = members[members.length - 1]!;
    next = `${text.slice(0, last[2])},\n${indent}"registry-mirrors": ${literal}${text.slice(last[2])}`;
  } else next = `${text.slice(0, close)}\n  "registry-mirrors": ${literal}\n${text.slice(close)}`;
  const want = { ...(doc as Record<string, unknown>), 'registry-mirrors': mirrors };
  if (!isDeepStrictEqual(JSON.parse(next), want)) throw new BerthError(`berth could not edit ${where} safely`, { hint: `set "registry-mirrors": ${literal} by hand` });
  return { text: next, changed: true };
}

// ---------------------------------------------------------------- the module

function unmirroredMessage(ms: Mirror[], hub: boolean, ctx: ModuleContext): { text: string; first: Mirror } {
  const parts = ms.map((m) =>
    m.upstream === DOCKER_HUB && !hub
      ? `${m.upstream} (project ${m.project}: a dockerd mirror URL cannot carry the project path)`
      : `${m.upstream} (project ${m.project}: dockerd mirrors only Docker Hub)`,
  );
  return { text: `${ctx.host} runs Docker only, and dockerd cannot pull through Harbor proxy projects: ${parts.join('; ')}`, first: ms[0]! };
}

export const dockerMirrorModule: Module<DockerMirrorArgs> = {
  name: 'docker_mirror',
  schema: 'docker_mirror',
  check(a, ctx) {
    checkHarborHost(a.harbor, ctx.locateArg?.(['harbor']) ?? ctx.pos);
    mirrorsFrom(a.projects, ctx);
  },
  facts: (a) => [
    ...nodeFacts(),
    ...fileFacts(a.daemon_json ?? DAEMON_JSON, {}),
    ...fileFacts('/etc/docker', {}),
    ...(hubCaPath(a) ? [...dirFacts(posix.dirname(hubCaPath(a)!)), ...fileFacts(hubCaPath(a)!, {})] : []),
  ],
  plan(a, state, ctx): PlannedChange[] {
    if (!selection(a.runtime, state, ctx).docker) return [];
    const mirrors = mirrorsFrom(a.projects, ctx);
    const hub = a.hub_mirror?.replace(/\/$/, '');
    const lost = mirrors.filter((m) => m.upstream !== DOCKER_HUB || !hub);
    if (lost.length) {
      const { text, first } = unmirroredMessage(lost, !!hub, ctx);
      if ((a.unmirrored ?? 'error') === 'error') {
        throw new BerthError(text, {
          pos: ctx.locateArg?.(['projects', first.project, 'mirrors']) ?? ctx.pos,
          keyPath: `projects.${first.project}.mirrors`,
          hint: 'run the node on containerd or CRI-O, pull <harbor>/<project>/<image> explicitly, or set nodes.docker.unmirrored: warn (README: "Docker nodes")',
        });
      }
      ctx.warn?.(`${text}; these pulls bypass the cache`);
    }
    if (!hub || !mirrors.some((m) => m.upstream === DOCKER_HUB)) return [];
    const path = a.daemon_json ?? DAEMON_JSON;
    const f = state.get<FileFact>(fileKey(path)) ?? { exists: false };
    if (f.exists && f.content === undefined) throw new BerthError(`${path} on ${ctx.host} is too big for berth to edit`, { pos: ctx.pos });
    const cur = f.exists ? Buffer.from(f.content!, 'base64').toString('utf8') : undefined;
    let edit: { text: string; changed: boolean };
    try {
      edit = daemonJsonEdit(cur, [hub], `${path} on ${ctx.host}`);
    } catch (e) {
      if (e instanceof BerthError) throw new BerthError(e.message, { pos: ctx.pos, hint: e.hint });
      throw e;
    }
    const out: PlannedChange[] = [];
    // dockerd caches the system trust store at start; its certs.d is read on every pull
    const caPath = hubCaPath(a);
    if (caPath && a.ca) {
      out.push(...planDir(posix.dirname(caPath), state, ctx));
      out.push(...tag('file', planFile(caPath, ctx.readSourceFile(a.ca), { mode: '0644' }, state, ctx)));
    }
    if (edit.changed) out.push(...planDir('/etc/docker', state, ctx), ...tag('file', planFile(path, edit.text, {}, state, ctx)));
    return out;
  },
  apply: applyTagged,
};
