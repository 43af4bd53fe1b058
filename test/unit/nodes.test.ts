// Cluster nodes (issue 5) without hosts: the runtimes fact's parser on what a
// real test host printed, the choice of runtimes, the mirrors derived from the
// spec's projects, and the node roles planned over hand-made facts for the
// example spec: containerd, containers-image and Docker-only nodes.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseToml } from 'smol-toml';
import { loadSpec } from '../../src/spec/load.js';
import { buildProgram, type HostProgram } from '../../src/plan/program.js';
import { planHost } from '../../src/plan/planner.js';
import { RUNTIMES_KEY, parseRuntimes, readContainerdConfig, selectRuntimes, versionIn, type RuntimesFact } from '../../src/facts/runtimes.js';
import { mirrorsFrom, parseImageRef, fullRef, hostsToml, registriesDropIn } from '../../src/node/mirrors.js';
import { daemonJsonEdit } from '../../src/modules/docker_mirror.js';
import type { Change, Facts } from '../../src/types.js';
import { REPO, baseDirs, berthError, buildTree, dirFact, factsFor, fileFact, groupFact, minimalTree, unitFact, userFact, writeTree } from './helpers.js';

const FIXTURES = join(REPO, 'test', 'fixtures', 'nodes');
const DEBIAN_OUT = readFileSync(join(FIXTURES, 'runtimes-debian.out'), 'utf8');
const outline = (cs: Change[]) => cs.map((c) => `${c.action} ${c.resource}`);

// ---------------------------------------------------------------- the runtimes fact

describe('the node:runtimes fact', () => {
  it('reads what a Debian 12 test host printed: containerd 1.6 (config version 2), skopeo, Docker', () => {
    const f = parseRuntimes(DEBIAN_OUT);
    expect(f.os).toEqual({ id: 'debian', like: [], version: '12', family: 'debian' });
    expect(f.containerd).toEqual({ version: '1.6.20~ds1', major: 1, active: true, config: { exists: true, version: 2, criDisabled: false } });
    expect(f.docker).toEqual({ version: '20.10.24+dfsg1', active: false });
    expect(f.crio).toBeUndefined();
    expect(f.containersImage).toEqual({ tools: ['skopeo'], registriesConf: true });
    expect(Object.keys(f.commands).sort()).toEqual(['containerd', 'ctr', 'docker', 'dockerd', 'skopeo']);
  });

  it('reads versions, OS families, kubelet endpoints and CRI-O', () => {
    expect(versionIn('containerd containerd.io v1.7.13 7c3aca7a610df76212171d200ca3811ff6096eb8')).toBe('1.7.13');
    expect(versionIn('containerd github.com/containerd/containerd/v2 v2.0.2 c507a0257ea6462fbd6f5ba4f5c74facb04021f4')).toBe('2.0.2');
    const f = parseRuntimes(['os|rocky|rhel centos fedora|9.3', 'cmd|crio|/usr/bin/crio', 'cmd|crictl|/usr/bin/crictl', 'version|crio|crio version 1.28.1', 'active|crio|active', 'kubelet|unix:///var/run/crio/crio.sock', ''].join('\n'));
    expect(f.os.family).toBe('rhel');
    expect(f.crio).toEqual({ version: '1.28.1', active: true });
    expect(f.containersImage).toEqual({ tools: ['crio'], registriesConf: false });
    expect(f.kubeletEndpoint).toBe('unix:///var/run/crio/crio.sock');
    expect(parseRuntimes('os|ubuntu|debian|22.04\n').os.family).toBe('debian');
  });

  it("reads containerd's config: version, a disabled CRI plugin (Docker's package), config_path, invalid TOML", () => {
    expect(readContainerdConfig(undefined)).toEqual({ exists: false, criDisabled: false });
    expect(readContainerdConfig('disabled_plugins = ["cri"]\n')).toEqual({ exists: true, version: undefined, criDisabled: true });
    expect(readContainerdConfig('version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "/etc/containerd/certs.d"\n')).toEqual({
      exists: true,
      version: 3,
      criDisabled: false,
      configPath: '/etc/containerd/certs.d',
    });
    expect(readContainerdConfig('version = = 2').error).toMatch(/^not valid TOML/);
  });
});

// ---------------------------------------------------------------- which runtimes

function fact(parts: { containerd?: boolean; criDisabled?: boolean; crio?: boolean; skopeo?: boolean; docker?: boolean; kubelet?: string }): RuntimesFact {
  const f: RuntimesFact = { os: { id: 'debian', like: [], version: '12', family: 'debian' }, commands: {} };
  if (parts.containerd) {
    f.commands.containerd = '/usr/bin/containerd';
    f.commands.ctr = '/usr/bin/ctr';
    f.containerd = { version: '1.6.20', major: 1, active: true, config: { exists: true, version: 2, criDisabled: !!parts.criDisabled } };
  }
  if (parts.crio) f.crio = { version: '1.28.1', active: true };
  if (parts.docker) {
    f.commands.docker = '/usr/bin/docker';
    f.docker = { version: '24.0.7', active: true };
  }
  if (parts.skopeo) f.commands.skopeo = '/usr/bin/skopeo';
  if (parts.crio || parts.skopeo) f.containersImage = { tools: [...(parts.crio ? ['crio'] : []), ...(parts.skopeo ? ['skopeo'] : [])], registriesConf: true };
  if (parts.kubelet) f.kubeletEndpoint = parts.kubelet;
  return f;
}

describe('selectRuntimes', () => {
  it('auto: containerd and containers-image where they are; Docker only where it is the only runtime', () => {
    expect(selectRuntimes('auto', fact({ containerd: true, skopeo: true, docker: true }), 'n')).toEqual({ containerd: true, containers: true, docker: false });
    expect(selectRuntimes('auto', fact({ crio: true }), 'n')).toEqual({ containerd: false, containers: true, docker: false });
    // Docker's containerd has its CRI plugin off: a Docker-only node
    expect(selectRuntimes('auto', fact({ containerd: true, criDisabled: true, docker: true }), 'n')).toEqual({ containerd: false, containers: false, docker: true });
    // kubelet talks to cri-dockerd: Docker, although containerd's CRI is on
    expect(selectRuntimes('auto', fact({ containerd: true, docker: true, kubelet: 'unix:///run/cri-dockerd.sock' }), 'n')).toEqual({ containerd: false, containers: false, docker: true });
  });

  it('a named runtime must be there', () => {
    expect(selectRuntimes('crio', fact({ containerd: true, skopeo: true }), 'n')).toEqual({ containerd: false, containers: true, docker: false });
    expect(() => selectRuntimes('containerd', fact({ crio: true }), 'n1')).toThrow('nodes.runtime is containerd, but containerd is not installed on n1');
    expect(() => selectRuntimes('containerd', fact({ containerd: true, criDisabled: true }), 'n1')).toThrow(/disables its CRI plugin/);
    expect(() => selectRuntimes('docker', fact({ containerd: true }), 'n1')).toThrow('nodes.runtime is docker, but Docker is not installed on n1');
    expect(() => selectRuntimes('auto', fact({}), 'n1')).toThrow(/^no container runtime found on n1/);
  });
});

// ---------------------------------------------------------------- mirrors from projects

describe('mirrors from the projects', () => {
  it('proxy projects with mirrors: become mirrors, sorted by upstream; the rest are ignored', () => {
    const m = mirrorsFrom({
      'proxy.quay.io': { public: true, proxy: 'quay.io', mirrors: 'quay.io' },
      'number-crunch': { public: false },
      hub: { proxy: 'docker_hub', mirrors: 'index.docker.io' },
      local: { proxy: 'r', mirrors: 'registry.local:5000' },
    });
    expect(m).toEqual([
      { upstream: 'docker.io', project: 'hub', server: 'https://registry-1.docker.io' },
      { upstream: 'quay.io', project: 'proxy.quay.io', server: 'https://quay.io' },
      { upstream: 'registry.local:5000', project: 'local', server: 'https://registry.local:5000' },
    ]);
    expect(mirrorsFrom(null)).toEqual([]);
  });

  it('hosts.toml: server, the project path with override_path, pull+resolve, the CA', () => {
    const text = hostsToml({ upstream: 'docker.io', project: 'proxy.docker.io', server: 'https://registry-1.docker.io' }, 'harbor.example.com', '/etc/containerd/certs.d/harbor.example.com/ca.crt');
    expect(parseToml(text)).toEqual({
      server: 'https://registry-1.docker.io',
      host: { 'https://harbor.example.com/v2/proxy.docker.io': { capabilities: ['pull', 'resolve'], override_path: true, ca: '/etc/containerd/certs.d/harbor.example.com/ca.crt' } },
    });
    expect(text.split('\n')[0]).toMatch(/^# Managed by berth/);
  });

  it('the registries.conf.d drop-in: a [[registry]] per upstream with its mirror', () => {
    const text = registriesDropIn(mirrorsFrom({ a: { proxy: 'x', mirrors: 'docker.io' }, b: { proxy: 'y', mirrors: 'quay.io' } }), 'harbor.example.com');
    expect(parseToml(text)).toEqual({
      registry: [
        { prefix: 'docker.io', location: 'docker.io', mirror: [{ location: 'harbor.example.com/a' }] },
        { prefix: 'quay.io', location: 'quay.io', mirror: [{ location: 'harbor.example.com/b' }] },
      ],
    });
  });

  it('image references are normalised the way Docker does', () => {
    expect(fullRef(parseImageRef('busybox')!)).toBe('docker.io/library/busybox:latest');
    expect(fullRef(parseImageRef('library/busybox:1.36')!)).toBe('docker.io/library/busybox:1.36');
    expect(fullRef(parseImageRef('bitnami/redis:7')!)).toBe('docker.io/bitnami/redis:7');
    expect(parseImageRef('quay.io/prometheus/busybox:latest')).toEqual({ upstream: 'quay.io', path: 'prometheus/busybox', reference: ':latest' });
    expect(parseImageRef('registry.k8s.io/pause:3.9')).toEqual({ upstream: 'registry.k8s.io', path: 'pause', reference: ':3.9' });
    expect(parseImageRef('localhost:5000/x@sha256:' + 'a'.repeat(64))?.upstream).toBe('localhost:5000');
    expect(parseImageRef('Not An Image')).toBeUndefined();
  });
});

// ---------------------------------------------------------------- the example spec on nodes

const SECRETS = ['HARBOR_ADMIN_PASSWORD', 'HARBOR_DB_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'OIDC_CLIENT_SECRET'];
const EXAMPLE = join(REPO, 'inventories/example/group_vars/all.yml');
const exampleLine = (needle: string) => readFileSync(EXAMPLE, 'utf8').split('\n').findIndex((l) => l.includes(needle)) + 1;
/** line:col of `mirrors: <value>`'s value on the line that names `project`. */
const exampleMirrors = (project: string) => {
  const line = readFileSync(EXAMPLE, 'utf8').split('\n')[exampleLine(`${project}:`) - 1]!;
  return `${exampleLine(`${project}:`)}:${line.indexOf('mirrors: ') + 'mirrors: '.length + 1}`;
};
const CA = readFileSync(join(REPO, 'inventories/example/files/harbor-ca.crt'));
const DEBIAN_CONFIG = Buffer.from(DEBIAN_OUT.split('\n').find((l) => l.startsWith('containerd-config|'))!.slice(18), 'base64').toString('utf8');

function exampleNode(extraVars: string[] = []): HostProgram {
  return buildProgram(loadSpec({ root: REPO, inventory: 'inventories/example', extraVars }), 'k8s-node-01', {});
}

/** A Debian node as the test image is: /etc/containerd, /etc/containers/…, /etc/docker, the trust directory. */
function nodeFacts(runtimes: RuntimesFact, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...baseDirs('/etc', '/etc/containerd', '/etc/containers', '/etc/containers/registries.conf.d', '/etc/docker', '/usr/local/share/ca-certificates'),
    'user:root': userFact('root', 0),
    'group:root': groupFact('root', 0),
    'file:/etc/containerd/config.toml': fileFact(DEBIAN_CONFIG),
    'unit:containerd.service': unitFact('active', 'enabled'),
    [RUNTIMES_KEY]: runtimes,
    ...more,
  };
}

/** The facts a host would report once `changes` were applied (files written, directories made). */
function applied(program: HostProgram, before: Record<string, unknown>, changes: Change[]): Facts {
  const facts = factsFor(program, before);
  for (const c of changes) {
    type FilePayload = { path: string; content?: unknown; remove?: boolean };
    const data = (c.payload as { data: FilePayload & { inner?: FilePayload } }).data;
    const p: FilePayload = data.inner ?? data;
    if (c.resource.startsWith('directory ')) {
      facts.set(`file:${c.resource.slice(10)}`, dirFact());
      const parents = c.attrs.find((a) => a.name === 'parents')?.after as string | undefined;
      for (const d of parents?.split(' ') ?? []) facts.set(`file:${d}`, dirFact());
    }
    else if (c.resource.startsWith('file ') && p.remove) facts.set(`file:${p.path}`, { exists: false });
    else if (c.resource.startsWith('file ')) facts.set(`file:${p.path}`, fileFact(Buffer.from(p.content as Buffer | string), 'root', 'root', '0644'));
  }
  return facts;
}

describe('the example spec on cluster nodes', () => {
  beforeAll(() => SECRETS.forEach((k, i) => (process.env[k] ??= `example-secret-${i}-value`)));

  it('a containerd + skopeo node: CA copies, a hosts.toml per proxy project, config_path, the drop-in, then the handlers', () => {
    const prog = exampleNode();
    const changes = planHost(prog, factsFor(prog, nodeFacts(parseRuntimes(DEBIAN_OUT)))).changes;
    expect(outline(changes)).toEqual([
      'create directory /etc/containerd/certs.d/harbor-cache.example.com',
      'create file /etc/containerd/certs.d/harbor-cache.example.com/ca.crt',
      'create directory /etc/containers/certs.d/harbor-cache.example.com',
      'create file /etc/containers/certs.d/harbor-cache.example.com/ca.crt',
      'create directory /etc/docker/certs.d/harbor-cache.example.com',
      'create file /etc/docker/certs.d/harbor-cache.example.com/ca.crt',
      'create file /usr/local/share/ca-certificates/berth-harbor-ca.crt',
      'create directory /etc/containerd/certs.d/docker.io',
      'create file /etc/containerd/certs.d/docker.io/hosts.toml',
      'create directory /etc/containerd/certs.d/gcr.io',
      'create file /etc/containerd/certs.d/gcr.io/hosts.toml',
      'create directory /etc/containerd/certs.d/k8s.gcr.io',
      'create file /etc/containerd/certs.d/k8s.gcr.io/hosts.toml',
      'create directory /etc/containerd/certs.d/quay.io',
      'create file /etc/containerd/certs.d/quay.io/hosts.toml',
      'update file /etc/containerd/config.toml',
      'create file /etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf',
      'run command update-ca-certificates',
      'run service containerd.service',
    ]);
    expect(changes[0]!.attrs).toContainEqual({ name: 'parents', after: '/etc/containerd/certs.d' });
    const config = changes.find((c) => c.resource === 'file /etc/containerd/config.toml')!;
    // the diff is exactly the added table
    expect(config.diff!.split('\n').filter((l) => /^[+-](?![+-])/.test(l))).toEqual(['+', '+    [plugins."io.containerd.grpc.v1.cri".registry]', '+      config_path = "/etc/containerd/certs.d"']);
    expect(changes.at(-1)!.notifiedBy).toEqual([config.id]);
    // a crio reload is not planned: its guard (CRI-O running) fails here
    expect(changes.some((c) => c.task === 'reload crio')).toBe(false);
    const hosts = changes.find((c) => c.resource === 'file /etc/containerd/certs.d/gcr.io/hosts.toml')!;
    expect(hosts.diff).toContain('+[host."https://harbor-cache.example.com/v2/proxy.gcr.io"]');
    expect(hosts.diff).toContain('+  ca = "/etc/containerd/certs.d/harbor-cache.example.com/ca.crt"');
  });

  it('after the apply, a second plan is empty: nothing written, nothing restarted', () => {
    const prog = exampleNode();
    const before = nodeFacts(parseRuntimes(DEBIAN_OUT));
    const first = planHost(prog, factsFor(prog, before)).changes;
    const again = planHost(prog, applied(prog, before, first)).changes;
    expect(outline(again)).toEqual([]);
  });

  it('a new proxy project: its hosts.toml and the drop-in entry, nothing else', () => {
    const before = nodeFacts(parseRuntimes(DEBIAN_OUT));
    const base = exampleNode();
    const facts = applied(base, before, planHost(base, factsFor(base, before)).changes);
    const prog = exampleNode(['projects={proxy.ghcr.io: {public: true, quota: -1, proxy: ghcr, mirrors: ghcr.io}}']);
    for (const q of prog.queries) if (!facts.has(q.key)) facts.set(q.key, factsFor(prog).get(q.key));
    const changes = planHost(prog, facts).changes;
    expect(outline(changes)).toEqual([
      'create directory /etc/containerd/certs.d/ghcr.io',
      'create file /etc/containerd/certs.d/ghcr.io/hosts.toml',
      'update file /etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf',
    ]);
    // ghcr.io sorts after gcr.io: the diff aligns the new entry there
    expect(changes[2]!.diff!.split('\n').filter((l) => /^[+-](?![+-])/.test(l))).toEqual([
      '+prefix = "ghcr.io"',
      '+location = "ghcr.io"',
      '+',
      '+[[registry.mirror]]',
      '+location = "harbor-cache.example.com/proxy.ghcr.io"',
      '+',
      '+[[registry]]',
    ]);
  });

  it('a project that stops mirroring: the hosts.toml berth wrote for it goes', () => {
    const before = nodeFacts(parseRuntimes(DEBIAN_OUT));
    const base = exampleNode();
    const facts = applied(base, before, planHost(base, factsFor(base, before)).changes);
    facts.set('berth-managed:/etc/containerd/certs.d/*/hosts.toml', ['docker.io', 'gcr.io', 'k8s.gcr.io', 'quay.io'].map((u) => `/etc/containerd/certs.d/${u}/hosts.toml`));
    const prog = exampleNode(['projects={proxy.gcr.io: {mirrors: null}}']);
    const changes = planHost(prog, facts).changes;
    expect(outline(changes)).toEqual(['delete file /etc/containerd/certs.d/gcr.io/hosts.toml', 'update file /etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf']);
  });

  it('a config.toml with legacy mirrors: refused at plan time, nothing planned on the host', () => {
    const prog = exampleNode();
    const legacy = `${DEBIAN_CONFIG}    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n      endpoint = ["https://old-mirror.example.com"]\n`;
    const e = berthError(() => planHost(prog, factsFor(prog, nodeFacts(parseRuntimes(DEBIAN_OUT), { 'file:/etc/containerd/config.toml': fileFact(legacy) }))));
    expect(e.format()).toMatch(/^roles\/node_mirror\/tasks\/main\.yml:\d+:3: \/etc\/containerd\/config\.toml on k8s-node-01:10 sets legacy registry mirrors .*containerd 1\.7 and later refuse them together with config_path/);
  });

  it('a Docker-only node with a non-Docker-Hub upstream: a plan-time error at the project in the inventory', () => {
    const prog = exampleNode();
    const docker = fact({ containerd: true, criDisabled: true, docker: true });
    const e = berthError(() => planHost(prog, factsFor(prog, nodeFacts(docker))));
    // the first project dockerd cannot serve is proxy.docker.io (no project path in a mirror URL)
    expect(e.format()).toBe(
      `inventories/example/group_vars/all.yml:${exampleMirrors('proxy.docker.io')}: projects.proxy.docker.io.mirrors: k8s-node-01 runs Docker only, and dockerd cannot pull through Harbor proxy projects: docker.io (project proxy.docker.io: a dockerd mirror URL cannot carry the project path); gcr.io (project proxy.gcr.io: dockerd mirrors only Docker Hub); k8s.gcr.io (project proxy.k8s.gcr.io: dockerd mirrors only Docker Hub); quay.io (project proxy.quay.io: dockerd mirrors only Docker Hub) (run the node on containerd or CRI-O, pull <harbor>/<project>/<image> explicitly, or set nodes.docker.unmirrored: warn (README: "Docker nodes"))`,
    );
    // with a Docker Hub endpoint that needs no project path, the first upstream left is gcr.io
    const hub = exampleNode(['nodes={docker: {hub_mirror: "https://hub-mirror.example.com"}}']);
    expect(berthError(() => planHost(hub, factsFor(hub, nodeFacts(docker)))).format()).toMatch(
      new RegExp(`^inventories/example/group_vars/all\\.yml:${exampleMirrors('proxy.gcr.io')}: projects\\.proxy\\.gcr\\.io\\.mirrors: k8s-node-01 runs Docker only, .*: gcr\\.io \\(project proxy\\.gcr\\.io: dockerd mirrors only Docker Hub\\); k8s\\.gcr\\.io`),
    );
  });

  it('a Docker-only node told to warn: registry-mirrors for Docker Hub, the CA for explicit pulls, a warning for the rest', () => {
    const prog = exampleNode(['nodes={docker: {hub_mirror: "https://hub-mirror.example.com", unmirrored: warn}}']);
    const docker = fact({ containerd: true, criDisabled: true, docker: true });
    const plan = planHost(prog, factsFor(prog, nodeFacts(docker, { 'file:/etc/docker/daemon.json': fileFact('{\n    "log-driver": "journald"\n}\n') })));
    expect(outline(plan.changes)).toEqual([
      'create directory /etc/containerd/certs.d/harbor-cache.example.com',
      'create file /etc/containerd/certs.d/harbor-cache.example.com/ca.crt',
      'create directory /etc/docker/certs.d/harbor-cache.example.com',
      'create file /etc/docker/certs.d/harbor-cache.example.com/ca.crt',
      'create file /usr/local/share/ca-certificates/berth-harbor-ca.crt',
      // dockerd read the system trust store when it started; certs.d it reads on every pull
      'create directory /etc/docker/certs.d/hub-mirror.example.com',
      'create file /etc/docker/certs.d/hub-mirror.example.com/ca.crt',
      'update file /etc/docker/daemon.json',
      'run command update-ca-certificates',
    ]);
    expect(plan.changes[7]!.diff).toContain('+    "registry-mirrors": ["https://hub-mirror.example.com"]');
    expect(plan.warnings).toEqual([expect.stringMatching(/^k8s-node-01 runs Docker only, .*gcr\.io .*; these pulls bypass the cache$/)]);
  });

  it('explicit runtime: crio on a node with containerd configures only containers-image', () => {
    const prog = exampleNode(['nodes={runtime: crio}']);
    const changes = planHost(prog, factsFor(prog, nodeFacts(parseRuntimes(DEBIAN_OUT)))).changes;
    expect(changes.filter((c) => c.role === 'node_mirror').map((c) => c.resource)).toEqual(['file /etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf']);
  });

  it('a node on another OS family: node_trust says so', () => {
    const prog = exampleNode();
    const rhel = { ...fact({ crio: true }), os: { id: 'rocky', like: ['rhel'], version: '9', family: 'rhel' as const } };
    expect(berthError(() => planHost(prog, factsFor(prog, nodeFacts(rhel)))).message).toBe(
      'k8s-node-01 runs rocky (rhel family); node_trust supports Debian and Ubuntu nodes (update-ca-certificates)',
    );
  });

  it('node_mirror without node_trust: the missing CA is a plan-time error', () => {
    const { programs } = buildTree(
      minimalTree({
        'inventories/t/group_vars/all.yml': 'harbor: { hostname: h.example.com }\ntls: { ca_cert: ca.crt }\nprojects:\n  proxy.docker.io: { proxy: hub, mirrors: docker.io }\n',
        'ca.crt': CA,
        'playbooks/site.yml': '- name: nodes\n  hosts: app\n  roles: [node_mirror]\n',
      }),
    );
    const e = berthError(() => planHost(programs[0]!, factsFor(programs[0]!, nodeFacts(parseRuntimes(DEBIAN_OUT)))));
    expect(e.message).toBe("the cache's CA /etc/containerd/certs.d/h.example.com/ca.crt is not on h1 and no earlier task writes it");
  });
});

describe('spec errors in the projects, before any host is contacted', () => {
  const tree = (projects: string) =>
    minimalTree({
      'inventories/t/group_vars/all.yml': `harbor: { hostname: h.example.com }\ntls: { ca_cert: ca.crt }\nprojects:\n${projects}`,
      'ca.crt': CA,
      'playbooks/site.yml': '- name: nodes\n  hosts: app\n  roles: [node_trust, node_mirror]\n',
    });

  it('two projects mirroring one upstream: the second is named at its line', () => {
    const e = berthError(() => buildTree(tree('  a: { proxy: hub, mirrors: docker.io }\n  b: { proxy: hub2, mirrors: docker.io }\n')));
    expect(e.format()).toBe(
      'inventories/t/group_vars/all.yml:5:30: projects.b.mirrors: docker.io is mirrored by both a and b (each upstream gets one hosts.toml and one drop-in entry: keep one project per upstream)',
    );
  });

  it('mirrors on a project that is not a proxy cache', () => {
    expect(berthError(() => buildTree(tree('  plain: { public: true, mirrors: quay.io }\n'))).format()).toBe(
      'inventories/t/group_vars/all.yml:4:35: projects.plain.mirrors: project plain mirrors quay.io but is not a proxy cache (add proxy: <registry endpoint> to the project, or drop mirrors)',
    );
  });

  it('mirrors that is not a registry host (the role schema)', () => {
    expect(berthError(() => buildTree(tree('  p: { proxy: hub, mirrors: "https://quay.io" }\n'))).format()).toMatch(/^inventories\/t\/group_vars\/all\.yml:4:29: projects\.p\.mirrors: .*the registry host the proxy project caches/);
  });

  it('a CA file that is no certificate', () => {
    const { spec } = { spec: writeTree({ ...tree(''), 'ca.crt': 'not a cert\n' }) };
    expect(() => loadSpec({ root: spec, inventory: 'inventories/t' })).not.toThrow();
    expect(berthError(() => buildProgram(loadSpec({ root: spec, inventory: 'inventories/t' }), 'h1', {})).format()).toBe(
      'inventories/t/group_vars/all.yml:2:17: ca.crt holds no PEM certificate (-----BEGIN CERTIFICATE-----) (tls.ca_cert names the CA certificate, in PEM)',
    );
  });
});

describe('daemonJsonEdit', () => {
  it('adds registry-mirrors and keeps the rest as written', () => {
    const text = '{\n    "log-driver": "journald",\n    "bridge": "none"\n}\n';
    expect(daemonJsonEdit(text, ['https://m.example.com'], 'd').text).toBe('{\n    "log-driver": "journald",\n    "bridge": "none",\n    "registry-mirrors": ["https://m.example.com"]\n}\n');
    const replaced = daemonJsonEdit('{"registry-mirrors": ["https://old"], "x": {"y": [1, "}"]}}', ['https://m.example.com'], 'd');
    expect(replaced.text).toBe('{"registry-mirrors": ["https://m.example.com"], "x": {"y": [1, "}"]}}');
    expect(daemonJsonEdit(undefined, ['https://m'], 'd').text).toBe('{\n  "registry-mirrors": ["https://m"]\n}\n');
    expect(daemonJsonEdit('{"registry-mirrors":["https://m"]}', ['https://m'], 'd').changed).toBe(false);
    expect(berthError(() => daemonJsonEdit('{,', ['https://m'], '/etc/docker/daemon.json on n')).message).toMatch(/^\/etc\/docker\/daemon\.json on n is not valid JSON/);
  });
});

