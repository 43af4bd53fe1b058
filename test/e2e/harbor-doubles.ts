// Test doubles for the Harbor cache VM (issue 3). Real Harbor and Docker
// cannot run on the e2e hosts (shared network namespace, no images), so:
//
// - writeFakeHarborInstaller() builds, at run time, an offline installer
//   tarball with the layout of Harbor's (harbor/prepare, harbor.yml.tmpl,
//   install.sh, LICENSE, harbor.<version>.tar.gz); its `prepare` is the POSIX
//   sh stand-in in test/fixtures/harbor/installer/prepare.
// - installDockerDouble() puts the recording docker CLI of
//   test/fixtures/harbor/docker-double/ on a host, as /usr/bin/docker and
//   /usr/bin/docker-compose; `compose up -d` starts a Harbor health stand-in
//   bound only to that host's own 127.0.0.N.
//
// No vitest import here: scripts (the demo) can use these as well.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CmdResult, HostRef, TestHosts } from '../hosts/testhosts.js';

export const HARBOR_VERSION = 'v2.12.4';
export const INSTALLER_NAME = `harbor-offline-installer-${HARBOR_VERSION}.tgz`;

export const FIXTURES = fileURLToPath(new URL('../fixtures/harbor/', import.meta.url));
const INSTALLER_SRC = join(FIXTURES, 'installer');
const DOUBLE_SRC = join(FIXTURES, 'docker-double');

/** Where the double keeps its record and state on the host. */
export const DOCKER_LOG = '/var/log/docker-double.log';
export const UNHEALTHY_FILE = '/etc/harbor-double/unhealthy';
export const BIND_FILE = '/etc/harbor-double/bind';
export const SERVER_UNIT = 'harbor-double-http';
/** The Traefik stand-in's record (one JSON line per event) and its knob for obtaining ACME certificates. */
export const TRAEFIK_LOG = '/var/log/traefik-double.log';
export const ACME_ISSUE_FILE = '/etc/harbor-double/acme-issue';

/** The images Harbor's offline installer ships (RepoTags of the stand-in archive). */
export const HARBOR_IMAGES = [
  'prepare',
  'harbor-log',
  'registry-photon',
  'harbor-registryctl',
  'harbor-db',
  'harbor-core',
  'harbor-portal',
  'harbor-jobservice',
  'redis-photon',
  'nginx-photon',
  'trivy-adapter-photon',
  'harbor-exporter',
].map((n) => `goharbor/${n}:${HARBOR_VERSION}`);

/** A reproducible tar.gz of `dir`'s contents (same bytes for the same files). */
function tarGz(dir: string, out: string, entries: string[]): void {
  execFileSync(
    'sh',
    [
      '-c',
      'set -e; out=$1; dir=$2; shift 2; ' +
        'tar --sort=name --mtime=@1735689600 --owner=0 --group=0 --numeric-owner --format=gnu -C "$dir" -cf - "$@" | gzip -n -9 > "$out"',
      'sh',
      out,
      dir,
      ...entries,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * Writes `harbor-offline-installer-v2.12.4.tgz` into `dir` and returns its
 * sha256. The bytes are the same on every call (fixed mtimes and owners,
 * gzip without a timestamp), so the sha256 only changes with the fixtures.
 */
export function writeFakeHarborInstaller(dir: string): string {
  const stage = mkdtempSync(join(tmpdir(), 'berth-fake-harbor-'));
  try {
    const top = join(stage, 'harbor');
    mkdirSync(top);
    for (const [name, mode] of [
      ['prepare', 0o755],
      ['install.sh', 0o755],
      ['harbor.yml.tmpl', 0o644],
      ['LICENSE', 0o644],
    ] as const) {
      copyFileSync(join(INSTALLER_SRC, name), join(top, name));
      chmodSync(join(top, name), mode);
    }
    // the images archive: `docker save` layout, with empty stand-in layers
    const images = join(stage, 'images');
    mkdirSync(images);
    const manifest = HARBOR_IMAGES.map((tag) => {
      const id = createHash('sha256').update(tag).digest('hex');
      writeFileSync(join(images, `${id}.json`), `${JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { 'berth.test-double': tag } } })}\n`);
      return { Config: `${id}.json`, RepoTags: [tag], Layers: [] };
    });
    writeFileSync(join(images, 'manifest.json'), `${JSON.stringify(manifest)}\n`);
    const repos: Record<string, Record<string, string>> = {};
    for (const m of manifest) {
      const [repo, tag] = m.RepoTags[0]!.split(':') as [string, string];
      repos[repo] = { [tag]: m.Config.replace(/\.json$/, '') };
    }
    writeFileSync(join(images, 'repositories'), `${JSON.stringify(repos)}\n`);
    tarGz(images, join(top, `harbor.${HARBOR_VERSION}.tar.gz`), readdirSync(images).sort());

    mkdirSync(dir, { recursive: true });
    const out = join(dir, INSTALLER_NAME);
    tarGz(stage, out, ['harbor']);
    return sha256(out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** The files the double consists of, with where they go on the host. */
function doubleFiles(): { path: string; mode: string; content: Buffer }[] {
  return [
    { path: '/usr/bin/docker', mode: '0755', content: readFileSync(join(DOUBLE_SRC, 'docker')) },
    { path: '/usr/local/lib/harbor-double/health_server.py', mode: '0644', content: readFileSync(join(DOUBLE_SRC, 'health_server.py')) },
  ];
}

async function must(p: Promise<CmdResult>, what: string): Promise<CmdResult> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  return r;
}

/**
 * Installs the docker double on a host (over Debian's docker and
 * docker-compose, in the host's own overlay layer). The Harbor stand-in it
 * starts binds to the host's own address, th.address(ref), and nowhere else.
 */
export async function installDockerDouble(th: TestHosts, ref: HostRef): Promise<void> {
  const addr = th.address(ref);
  if (!/^127\.\d+\.\d+\.\d+$/.test(addr) || addr === '127.0.0.1') throw new Error(`installDockerDouble: ${addr} is not a host's own loopback address`);
  const lines = ['set -eu', 'install -d -m 0755 /usr/local/lib/harbor-double /etc/harbor-double /var/lib/docker-double'];
  for (const f of doubleFiles()) {
    lines.push(`base64 -d > ${f.path}.new << 'B64'`, f.content.toString('base64'), 'B64', `chmod ${f.mode} ${f.path}.new`, `mv -f ${f.path}.new ${f.path}`);
  }
  lines.push(
    'rm -f /usr/bin/docker-compose',
    'ln -s docker /usr/bin/docker-compose',
    `printf '%s\\n' ${addr} > ${BIND_FILE}`,
    `rm -f ${UNHEALTHY_FILE} /var/lib/docker-double/*.json`,
    `: > ${DOCKER_LOG}`,
    `chmod 0644 ${DOCKER_LOG}`,
    `rm -f ${ACME_ISSUE_FILE}`,
    `: > ${TRAEFIK_LOG}`,
    // the record starts empty: these checks are not logged
    'docker version > /dev/null && docker-compose version > /dev/null',
    `: > ${DOCKER_LOG}`,
  );
  await must(th.ssh(ref, 'sh -s', { input: `${lines.join('\n')}\n` }), `installing the docker double on ${th.name(ref)}`);
}

/** One call of the double, as it logged it. */
export interface DockerCall {
  t: string;
  argv: string[];
  cwd: string;
  /** Names of the environment variables the call saw (no values). */
  env: string[];
}

export async function dockerCalls(th: TestHosts, ref: HostRef): Promise<DockerCall[]> {
  const r = await must(th.ssh(ref, `cat ${DOCKER_LOG}`), 'reading the docker double log');
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DockerCall);
}

const COMPOSE_GLOBALS_WITH_VALUE = new Set(['-f', '--file', '-p', '--project-name', '--project-directory', '--env-file', '--profile', '--ansi', '--progress']);

/** For a compose call (docker compose … or docker-compose …): its subcommand and the arguments after it. */
export function composeCommand(c: DockerCall): { sub: string; args: string[]; files: string[] } | undefined {
  let rest: string[];
  if (c.argv[0] === 'docker-compose') rest = c.argv.slice(1);
  else if (c.argv[0] === 'docker' && c.argv[1] === 'compose') rest = c.argv.slice(2);
  else return undefined;
  const files: string[] = [];
  let i = 0;
  while (i < rest.length && rest[i]!.startsWith('-')) {
    const a = rest[i]!;
    if (COMPOSE_GLOBALS_WITH_VALUE.has(a)) {
      if (a === '-f' || a === '--file') files.push(rest[i + 1] ?? '');
      i += 2;
    } else {
      if (a.startsWith('--file=')) files.push(a.slice(7));
      i += 1;
    }
  }
  return { sub: rest[i] ?? '', args: rest.slice(i + 1), files };
}

/** Summary counts a test asserts on. */
export function summarizeCalls(calls: DockerCall[]): { load: number; up: number; down: number; downVolumes: number; config: number } {
  const s = { load: 0, up: 0, down: 0, downVolumes: 0, config: 0 };
  for (const c of calls) {
    if (c.argv[0] === 'docker' && c.argv[1] === 'load') s.load++;
    const cc = composeCommand(c);
    if (!cc) continue;
    if (cc.sub === 'up' && (cc.args.includes('-d') || cc.args.includes('--detach'))) s.up++;
    if (cc.sub === 'down') {
      s.down++;
      if (cc.args.includes('-v') || cc.args.includes('--volumes')) s.downVolumes++;
    }
    if (cc.sub === 'config') s.config++;
  }
  return s;
}

/** What the Traefik stand-in did on each `compose up` (see the docker double's header). */
export interface TraefikEvent {
  t: string;
  event: 'obtain' | 'reuse' | 'pending' | 'refused' | 'serve' | 'error';
  domain?: string;
  path?: string;
  /** obtain/reuse: sha256 of the certificate's bytes in acme.json; serve: of the certificate file. */
  certificate?: string;
  sha256?: string;
  key_mode?: string;
  detail?: string;
}

export async function traefikEvents(th: TestHosts, ref: HostRef): Promise<TraefikEvent[]> {
  const r = await must(th.ssh(ref, `cat ${TRAEFIK_LOG} 2>/dev/null || true`), 'reading the Traefik stand-in log');
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TraefikEvent);
}

/** From now on, the Traefik stand-in obtains an ACME certificate on `up` when acme.json has none (real Traefik does it on its own). */
export async function setAcmeIssue(th: TestHosts, ref: HostRef, on: boolean): Promise<void> {
  await must(th.ssh(ref, on ? `touch ${ACME_ISSUE_FILE}` : `rm -f ${ACME_ISSUE_FILE}`), 'setting the ACME knob');
}

/**
 * Makes the Harbor stand-in report components unhealthy: a component name,
 * or `name seconds` (unhealthy during the first seconds after it started).
 * An empty list makes every component healthy again.
 */
export async function setUnhealthy(th: TestHosts, ref: HostRef, lines: string[]): Promise<void> {
  const cmd = lines.length ? `cat > ${UNHEALTHY_FILE}` : `rm -f ${UNHEALTHY_FILE}`;
  await must(th.ssh(ref, cmd, lines.length ? { input: `${lines.join('\n')}\n` } : {}), 'setting the unhealthy components');
}
