// Cluster nodes end to end (issue 5): the roles node_trust and node_mirror
// applied by the real CLI to real hosts, verified by real pulls. The "Harbor"
// is Debian's docker-registry on the last host's own address (TLS from a CA
// this test makes), holding tiny images built offline under project paths. On
// every node the cache's name resolves to that registry and the upstream names
// (docker.io, quay.io, ghcr.io, …) to 127.0.0.119, where nothing listens: a
// pull that succeeds came through the mirror.
//
// Six hosts (the suite's default): 1-2 runtime auto (containerd +
// containers-image), 3 containerd with a config.toml of its own, 4-5 crio
// (containers-image, tested with skopeo as CRI-O reads the same files), and 6
// the registry. Later, hosts 4 and 5 are reset to become a Docker-only node and
// a node given the wrong CA. The tests run in order and share the hosts.

import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBerth, json, show, specCli, stopwatch, type BerthJson, type BerthRun, type JsonChange } from './berth.js';
import { e2eHost, e2eHosts, keyFile, knownHostsFile, resetHosts, testHosts } from './hosts.js';
import { listListeners } from './listeners.js';
import { accessLog, copyDir, makeCa, ociLayout, push, serverCert, startRegistry, type Pki, type RegistryOptions } from './registry-double.js';
import type { OnboardReport } from '../../src/cli/onboard.js';

const th = testHosts();
const HARBOR = 'harbor.nodes-e2e.test';
const HUB_MIRROR = 'hub-mirror.nodes-e2e.test';
const DEAD = '127.0.0.119';
const UPSTREAMS = ['docker.io', 'registry-1.docker.io', 'index.docker.io', 'quay.io', 'ghcr.io', 'gcr.io', 'k8s.gcr.io'];
const INVENTORY = 'inventories/e2e';
const MAIN = [1, 2, 3, 4, 5];
const DOCKER = 4;
const UNTRUSTED = 5;
const REGISTRY = 6;
const ALL = [...MAIN, REGISTRY];
const CERTS = '/etc/containerd/certs.d';
const DROP_IN = '/etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf';

let pki: Pki;
let wrongCa: Pki;
let reg: RegistryOptions;
let hub: RegistryOptions;
let specDir: string;
const name = (i: number) => e2eHost(i).name;

/** A config.toml with settings of its own and comments, as an operator leaves it (node 3). */
const OWN_CONFIG = `# containerd, tuned by hand: keep every byte of this
version = 2
root = "/var/lib/containerd"
oom_score = -999   # trailing comment

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
`;

// ---------------------------------------------------------------- the spec

const GROUP_VARS = (extraProjects = '') => `berth_user: root
berth_key_file: ${keyFile()}
berth_known_hosts: ${knownHostsFile()}
berth_connect_timeout: 10
harbor:
  hostname: ${HARBOR}
tls:
  ca_cert: files/ca.crt
projects:
  proxy.docker.io: { public: true, quota: -1, proxy: docker_hub, mirrors: docker.io }
  proxy.quay.io: { public: true, quota: -1, proxy: quay, mirrors: quay.io }
  number-crunch: { public: false }
${extraProjects}nodes:
  runtime: auto
  verify_image: [library/tiny:1.0, quay.io/berth/tiny:1.0${extraProjects ? ', ghcr.io/berth/tiny:1.0' : ''}]
`;
/** Line and column of `mirrors: docker.io`'s value in GROUP_VARS. */
const DOCKER_IO_MIRRORS = { line: 10, col: GROUP_VARS().split('\n')[9]!.indexOf('docker.io }') + 1 };

function writeSpec(extraProjects = ''): void {
  writeFileSync(join(specDir, INVENTORY, 'group_vars/all.yml'), GROUP_VARS(extraProjects));
}

function makeSpec(): void {
  specDir = mkdtempSync(join(tmpdir(), 'berth-e2e-nodes-'));
  for (const d of [`${INVENTORY}/group_vars`, `${INVENTORY}/host_vars`, 'playbooks', 'files']) mkdirSync(join(specDir, d), { recursive: true });
  copyFileSync(pki.caCert, join(specDir, 'files/ca.crt'));
  copyFileSync(wrongCa.caCert, join(specDir, 'files/wrong-ca.crt'));
  writeInventory({ nodes: MAIN });
  writeSpec();
  hostVars(3, 'nodes: { runtime: containerd }\n');
  hostVars(4, 'nodes: { runtime: crio }\n');
  hostVars(5, 'nodes: { runtime: crio }\n');
  writeFileSync(join(specDir, 'playbooks/site.yml'), '- name: Cluster nodes\n  hosts: all\n  roles: [node_trust, node_mirror]\n');
}

function hostVars(i: number, text: string): void {
  writeFileSync(join(specDir, INVENTORY, 'host_vars', `${name(i)}.yml`), text);
}

function writeInventory(groups: Record<string, number[]>): void {
  const lines = ['all:', '  children:'];
  for (const [g, members] of Object.entries(groups)) {
    lines.push(`    ${g}:`, '      hosts:', ...members.map((i) => `        ${name(i)}: { berth_host: ${e2eHost(i).address} }`));
  }
  writeFileSync(join(specDir, INVENTORY, 'hosts.yml'), `${lines.join('\n')}\n`);
}

const outputs: string[] = [];
const { cli, plan, apply } = specCli({
  cwd: () => specDir,
  specArgs: () => ['-i', INVENTORY],
  record: (r) => outputs.push(r.stdout + r.stderr),
});
const onboard = (...a: string[]) => cli('onboard', '-i', INVENTORY, ...a);

const byHost = (j: BerthJson) => new Map(j.hosts.map((h) => [h.host, h]));
const outline = (cs: JsonChange[]) => cs.map((c) => `${c.action} ${c.resource}`);

async function sh(i: number, cmd: string, input?: string): Promise<string> {
  const r = await th.ssh(i, cmd, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`on ${name(i)}: \`${cmd}\` exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** containerd's start time (monotonic µs): changes exactly when it restarts. */
const startedAt = async (i: number) => (await sh(i, 'systemctl show -p ActiveEnterTimestampMonotonic --value containerd')).trim();

const { timings, timed } = stopwatch();

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  if (e2eHosts().length < REGISTRY) throw new Error(`nodes.test.ts needs ${REGISTRY} e2e hosts (BERTH_E2E_HOSTS), there are ${e2eHosts().length}`);
  await buildBerth();
  await resetHosts(...ALL.map(name));
  // nothing may answer where the upstream names point
  expect((await listListeners()).filter((l) => l.local.startsWith(`${DEAD}:`))).toEqual([]);

  pki = await makeCa('berth e2e cache CA');
  wrongCa = await makeCa('some other CA');
  const regAddr = e2eHost(REGISTRY).address;
  const cert = await serverCert(pki, 'harbor', [HARBOR, HUB_MIRROR]);
  reg = { unit: 'berth-e2e-harbor', addr: `${regAddr}:443`, hostname: HARBOR, caCert: pki.caCert, ...cert };
  // a stand-in for a path-rewriting proxy in front of Harbor: Docker Hub's names at its root, for dockerd
  hub = { unit: 'berth-e2e-hub-mirror', addr: `${regAddr}:5443`, hostname: HUB_MIRROR, caCert: pki.caCert, ...cert };

  await sh(REGISTRY, `echo ${shWords([`${regAddr} ${HARBOR} ${HUB_MIRROR}`])} >> /etc/hosts`);
  await startRegistry(th, REGISTRY, reg);
  await startRegistry(th, REGISTRY, hub);
  const layout = ociLayout(['docker', 'quay', 'ghcr']);
  await copyDir(th, REGISTRY, layout, '/root/oci');
  rmSync(layout, { recursive: true, force: true });
  await push(th, REGISTRY, reg, '/root/oci', 'docker', 'proxy.docker.io/library/tiny:1.0');
  await push(th, REGISTRY, reg, '/root/oci', 'quay', 'proxy.quay.io/berth/tiny:1.0');
  await push(th, REGISTRY, reg, '/root/oci', 'ghcr', 'proxy.ghcr.io/berth/tiny:1.0');
  await push(th, REGISTRY, hub, '/root/oci', 'docker', 'library/tiny:1.0');

  for (const i of MAIN) await mapNames(i);
  await sh(3, 'cat > /etc/containerd/config.toml && systemctl restart containerd', OWN_CONFIG);
  makeSpec();
}, 300_000);

/** The cache's names to the registry, the upstream names to where nothing listens. */
async function mapNames(i: number): Promise<void> {
  const regAddr = e2eHost(REGISTRY).address;
  await sh(i, `printf '%s\\n' ${shWords([`${regAddr} ${HARBOR} ${HUB_MIRROR}`, `${DEAD} ${UPSTREAMS.join(' ')}`])} >> /etc/hosts`);
}

function shWords(ws: string[]): string {
  return ws.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
}

afterAll(async () => {
  if (timings.length) process.stderr.write(`[nodes] ${timings.join('; ')}\n`);
  if (specDir && process.env.BERTH_E2E_KEEP_SPECS !== '1') rmSync(specDir, { recursive: true, force: true });
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
  if (wrongCa) rmSync(wrongCa.dir, { recursive: true, force: true });
  // the hosts this file changed go back to the image
  await resetHosts(...ALL.map(name));
}, 300_000);

// ---------------------------------------------------------------- the tests

describe('cluster nodes through the cache (containerd, containers-image, Docker)', () => {
  let configBefore: string;
  const started = new Map<number, string>();

  it('the test network: upstream names lead nowhere, the cache name to the registry', async () => {
    for (const i of MAIN) {
      expect((await sh(i, 'getent hosts registry-1.docker.io quay.io')).trim().split('\n').map((l) => l.split(/\s+/)[0])).toEqual([DEAD, DEAD]);
      expect((await sh(i, `getent hosts ${HARBOR}`)).split(/\s+/)[0]).toBe(e2eHost(REGISTRY).address);
    }
    // without berth, a pull of a docker.io name fails: nothing answers for the upstream
    const r = await th.ssh(1, 'ctr -n berth-e2e images pull docker.io/library/tiny:1.0');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${DEAD}:443: connect: connection refused`);
  });

  it('one apply onboards 5 nodes: containerd and containers-image flavours, exactly as planned', async () => {
    configBefore = await sh(3, 'cat /etc/containerd/config.toml');
    for (const i of MAIN) started.set(i, await startedAt(i));
    const p = await timed('plan 5 nodes', () => plan('-l', 'nodes', '--json'));
    expect(p.code, show(p)).toBe(0);
    const a = await timed('apply 5 nodes', () => apply('-l', 'nodes', '--json'));
    expect(a.code, show(a)).toBe(0);
    const planned = byHost(json(p));
    const done = byHost(json(a));
    expect([...done.keys()]).toEqual(MAIN.map(name));
    for (const i of MAIN) {
      const h = done.get(name(i))!;
      expect(h.error).toBeUndefined();
      // the plan is exact: what apply did is what plan showed
      const strip = (cs: JsonChange[]) => cs.map(({ resource, action, attrs, diff }) => ({ resource, action, attrs, diff }));
      expect(strip(h.changes)).toEqual(strip(planned.get(name(i))!.changes));
      expect(h.changes.every((c) => c.status === 'done')).toBe(true);
    }
    const res = (i: number) => outline(done.get(name(i))!.changes);
    const containerd = [`create file ${CERTS}/docker.io/hosts.toml`, `create file ${CERTS}/quay.io/hosts.toml`, 'update file /etc/containerd/config.toml', 'run service containerd.service'];
    for (const i of [1, 2]) expect(res(i)).toEqual(expect.arrayContaining([...containerd, `create file ${DROP_IN}`]));
    expect(res(3)).toEqual(expect.arrayContaining(containerd));
    expect(res(3)).not.toContain(`create file ${DROP_IN}`);
    for (const i of [4, 5]) {
      expect(res(i)).toContain(`create file ${DROP_IN}`);
      expect(res(i).filter((r) => r.includes('/etc/containerd/config.toml') || r.includes('hosts.toml') || r.includes('containerd.service'))).toEqual([]);
    }
    // the files as containerd and containers-image read them
    expect(await sh(1, `cat ${CERTS}/docker.io/hosts.toml`)).toContain(`[host."https://${HARBOR}/v2/proxy.docker.io"]`);
    expect(await sh(4, `cat ${DROP_IN}`)).toContain(`location = "${HARBOR}/proxy.quay.io"`);
    expect(await sh(1, `containerd config dump | grep -F 'config_path'`)).toContain(`config_path = "${CERTS}"`);
    for (const i of MAIN) expect((await sh(i, `stat -c '%U:%G %a' /usr/local/share/ca-certificates/berth-harbor-ca.crt`)).trim()).toBe('root:root 644');
    // containerd restarted where config.toml changed, and only there
    for (const i of [1, 2, 3]) expect(await startedAt(i)).not.toBe(started.get(i));
    for (const i of [4, 5]) expect(await startedAt(i)).toBe(started.get(i));
  });

  it('a second apply changes nothing and restarts nothing', async () => {
    for (const i of MAIN) started.set(i, await startedAt(i));
    const p = await plan('-l', 'nodes', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(0);
    expect(p.stdout).toContain('No changes. The hosts match the spec.');
    const a = await timed('second apply', () => apply('-l', 'nodes', '--json'));
    expect(a.code, show(a)).toBe(0);
    for (const h of json(a).hosts) expect(h.changes, h.host).toEqual([]);
    for (const i of MAIN) expect(await startedAt(i), name(i)).toBe(started.get(i));
  });

  it("node 3's own config.toml keeps every other byte; only the registry table is added", async () => {
    const after = await sh(3, 'cat /etc/containerd/config.toml');
    const inserted = `\n  [plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "${CERTS}"\n`;
    // right after the cri plugin's block, before the next plugin
    const at = configBefore.indexOf('\n[plugins."io.containerd.internal.v1.opt"]');
    expect(after).toBe(configBefore.slice(0, at) + inserted + configBefore.slice(at));
    // and containerd runs with both its own settings and ours
    const dump = await sh(3, 'containerd config dump');
    expect(dump).toContain('oom_score = -999');
    expect(dump).toContain('sandbox_image = "registry.k8s.io/pause:3.9"');
    expect(dump).toContain(`config_path = "${CERTS}"`);
  });

  it('the verification pull succeeds through the mirror on every node, and the registry saw the project paths', async () => {
    const want: Record<number, string[]> = { 1: ['containerd', 'containers-image'], 2: ['containerd', 'containers-image'], 3: ['containerd'], 4: ['containers-image'], 5: ['containers-image'] };
    for (const i of MAIN) {
      const before = (await accessLog(th, REGISTRY, reg.unit)).length;
      const r = await timed(`onboard ${name(i)}`, () => onboard(name(i), '--json'));
      expect(r.code, show(r)).toBe(0);
      const rep = json<OnboardReport>(r);
      expect(rep.ok).toBe(true);
      expect(rep.apply).toBeDefined();
      const ok = rep.checks.filter((c) => c.status === 'ok');
      expect(ok.map((c) => `${c.upstream} ${c.runtime}`).sort()).toEqual(['docker.io', 'quay.io'].flatMap((u) => want[i]!.map((rt) => `${u} ${rt}`)).sort());
      for (const c of ok) {
        if (c.runtime === 'containerd') expect(c.via).toBe(`https://${HARBOR}/v2/${c.upstream === 'docker.io' ? 'proxy.docker.io/library' : 'proxy.quay.io/berth'}/tiny/manifests/1.0`);
        else expect(c.via).toBe(`${HARBOR}/${c.upstream === 'docker.io' ? 'proxy.docker.io/library' : 'proxy.quay.io/berth'}/tiny:1.0`);
      }
      // this node's pulls reached the registry under the project paths, by the node's own runtimes
      const log = (await accessLog(th, REGISTRY, reg.unit)).slice(before);
      // containerd asks HEAD …/manifests/1.0?ns=docker.io (the upstream it stands in for), skopeo GET …/manifests/1.0
      const served = (path: string) => new RegExp(`"(HEAD|GET) /v2/${path.replace(/\./g, '\\.')}/manifests/1\\.0(\\?ns=[^ ]*)? HTTP/1\\.1" 200 `);
      const agents = (path: string) => log.filter((l) => served(path).test(l)).map((l) => (/"([^"]*)"$/.exec(l)?.[1] ?? '').split('/')[0]);
      for (const path of ['proxy.docker.io/library/tiny', 'proxy.quay.io/berth/tiny']) {
        expect(new Set(agents(path)), `${name(i)} ${path}`).toEqual(new Set(want[i]!.map((rt) => (rt === 'containerd' ? 'containerd' : 'skopeo'))));
      }
    }
  });

  it('the text report names each upstream and what served it', async () => {
    const r = await onboard(name(2), '--verify-only');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(`${name(2)}: verification pulls through ${HARBOR} (containerd 1.6.20`);
    expect(r.stdout).toMatch(new RegExp(`✔ docker\\.io docker\\.io/library/tiny:1\\.0 containerd \\(ctr\\): from https://${HARBOR.replace(/\./g, '\\.')}/v2/proxy\\.docker\\.io/library/tiny/manifests/1\\.0`));
    expect(r.stdout).toMatch(/✔ quay\.io {3}quay\.io\/berth\/tiny:1\.0 containers-image \(skopeo\): from /);
    expect(r.stdout).toContain(`${name(2)} pulls through the cache (4 pull(s) verified).`);
  });

  it('adding a proxy project plans its hosts.toml and drop-in entry on every node, and nothing else', async () => {
    writeSpec('  proxy.ghcr.io: { public: true, quota: -1, proxy: ghcr, mirrors: ghcr.io }\n');
    const p = await plan('-l', 'nodes', '--json');
    expect(p.code, show(p)).toBe(0);
    const hosts = byHost(json(p));
    const hostsToml = [`create directory ${CERTS}/ghcr.io`, `create file ${CERTS}/ghcr.io/hosts.toml`];
    const dropIn = [`update file ${DROP_IN}`];
    const want: Record<number, string[]> = { 1: [...hostsToml, ...dropIn], 2: [...hostsToml, ...dropIn], 3: hostsToml, 4: dropIn, 5: dropIn };
    for (const i of MAIN) expect(outline(hosts.get(name(i))!.changes), name(i)).toEqual(want[i]);
    expect(hosts.get(name(4))!.changes[0]!.diff).toContain(`+location = "${HARBOR}/proxy.ghcr.io"`);
    for (const i of [1, 3]) started.set(i, await startedAt(i));
    const a = await apply('-l', 'nodes');
    expect(a.code, show(a)).toBe(0);
    // hosts.toml needs no restart
    for (const i of [1, 3]) expect(await startedAt(i)).toBe(started.get(i));
    const v = await onboard(name(1), '--verify-only', '--json');
    expect(v.code, show(v)).toBe(0);
    expect(json<OnboardReport>(v).checks.filter((c) => c.upstream === 'ghcr.io').map((c) => `${c.status} ${c.runtime}`)).toEqual(['ok containerd', 'ok containers-image']);
  });

  describe('hosts 4 and 5 reset: a Docker-only node, and a node given the wrong CA', () => {
    beforeAll(async () => {
      await resetHosts(name(DOCKER), name(UNTRUSTED));
      for (const i of [DOCKER, UNTRUSTED]) await mapNames(i);
      // a Docker node: Docker's containerd runs without its CRI plugin, no containers-image tools;
      // dockerd runs (without IP forwarding: the hosts share this machine's network)
      await sh(
        DOCKER,
        [
          `printf 'disabled_plugins = ["cri"]\\n' > /etc/containerd/config.toml`,
          'systemctl restart containerd',
          'rm -f /usr/bin/skopeo && rm -rf /etc/containers',
          `printf '{\\n  "bridge": "none",\\n  "iptables": false,\\n  "ip6tables": false,\\n  "ip-forward": false\\n}\\n' > /etc/docker/daemon.json`,
          'systemctl start docker',
        ].join(' && '),
      );
      writeInventory({ nodes: [1, 2, 3], docker_nodes: [DOCKER], untrusted: [UNTRUSTED] });
      hostVars(DOCKER, '# a Docker-only node\n');
      hostVars(UNTRUSTED, "# this node was given a CA that did not sign the cache's certificate\ntls: { ca_cert: files/wrong-ca.crt }\n");
    }, 300_000);

    it('a node without the CA fails with x509, and the verification says so', async () => {
      // node 5 was given a CA that did not sign the cache's certificate: the apply works, the pulls do not
      const r = await onboard(name(UNTRUSTED), '--json');
      expect(r.code, show(r)).toBe(1);
      const rep = json<OnboardReport>(r);
      expect(rep.ok).toBe(false);
      const failed = rep.checks.filter((c) => c.status === 'failed');
      expect(failed.map((c) => `${c.upstream} ${c.runtime}`).sort()).toEqual(['docker.io', 'ghcr.io', 'quay.io'].flatMap((u) => [`${u} containerd`, `${u} containers-image`]));
      for (const c of failed) {
        expect(c.error).toMatch(/x509: certificate signed by unknown authority/);
        expect(c.hint).toMatch(/does not trust the cache's certificate/);
      }
      const text = await onboard(name(UNTRUSTED), '--verify-only');
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/✖ docker\.io docker\.io\/library\/tiny:1\.0 containerd \(ctr\): FAILED: .*x509: certificate signed by unknown authority/);
      expect(text.stdout).toContain(`${name(UNTRUSTED)}: 6 verification pull(s) failed.`);

      // node 1 loses its CA copies and the system trust: --verify-only reports it, onboard repairs it
      await sh(1, `rm -f ${CERTS}/${HARBOR}/ca.crt /etc/containers/certs.d/${HARBOR}/ca.crt /etc/docker/certs.d/${HARBOR}/ca.crt /usr/local/share/ca-certificates/berth-harbor-ca.crt && update-ca-certificates --fresh >/dev/null`);
      const lost = await onboard(name(1), '--verify-only', '--json');
      expect(lost.code, show(lost)).toBe(1);
      const byRt = new Map(json<OnboardReport>(lost).checks.filter((c) => c.upstream === 'docker.io').map((c) => [c.runtime, c]));
      expect(byRt.get('containers-image')!.error).toMatch(/x509: certificate signed by unknown authority/);
      expect(byRt.get('containerd')!.error).toMatch(new RegExp(`unable to read CA cert "${CERTS}/${HARBOR}/ca.crt"`));
      const fixed = await onboard(name(1), '--json');
      expect(fixed.code, show(fixed)).toBe(0);
      const applied = json<OnboardReport & { apply: BerthJson }>(fixed).apply.hosts[0]!.changes;
      expect(outline(applied)).toEqual(expect.arrayContaining([`create file ${CERTS}/${HARBOR}/ca.crt`, 'create file /usr/local/share/ca-certificates/berth-harbor-ca.crt', 'run command update-ca-certificates']));
    });

    it('a Docker-only node with a non-Docker-Hub upstream: a clear plan-time error at the project, nothing changed', async () => {
      const p = await plan('-l', 'docker_nodes');
      expect(p.code, show(p)).toBe(1);
      const err = `${INVENTORY}/group_vars/all.yml:${DOCKER_IO_MIRRORS.line}:${DOCKER_IO_MIRRORS.col}: projects.proxy.docker.io.mirrors: ${name(DOCKER)} runs Docker only, and dockerd cannot pull through Harbor proxy projects: docker.io (project proxy.docker.io: a dockerd mirror URL cannot carry the project path); ghcr.io (project proxy.ghcr.io: dockerd mirrors only Docker Hub); quay.io (project proxy.quay.io: dockerd mirrors only Docker Hub)`;
      expect(p.stdout).toContain(`${name(DOCKER)}: FAILED: ${err} (run the node on containerd or CRI-O`);
      const a = await apply('-l', 'docker_nodes');
      expect(a.code, show(a)).toBe(1);
      expect(a.stdout).toContain(err);
      expect((await th.ssh(DOCKER, `test -e /etc/docker/certs.d/${HARBOR} || test -e /usr/local/share/ca-certificates/berth-harbor-ca.crt`)).code).toBe(1);
    });

    it('a Docker node with a Docker Hub endpoint without project path: registry-mirrors, a reload, explicit project pulls verified', async () => {
      writeFileSync(join(specDir, INVENTORY, 'host_vars', `${name(DOCKER)}.yml`), `nodes:\n  docker: { hub_mirror: "https://${HUB_MIRROR}:5443", unmirrored: warn }\n`);
      const daemonBefore = await sh(DOCKER, 'cat /etc/docker/daemon.json');
      const pid = (await sh(DOCKER, 'systemctl show -p MainPID --value docker')).trim();
      const r = await onboard(name(DOCKER));
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toMatch(/warning: .* runs Docker only, .*ghcr\.io .*quay\.io .*these pulls bypass the cache/);
      expect(r.stdout).toContain('! command systemctl reload docker.service');
      // the other keys as they were, one added
      expect(await sh(DOCKER, 'cat /etc/docker/daemon.json')).toBe(daemonBefore.replace('"ip-forward": false\n', `"ip-forward": false,\n  "registry-mirrors": ["https://${HUB_MIRROR}:5443"]\n`));
      // reloaded, not restarted, and dockerd took the mirror
      expect((await sh(DOCKER, 'systemctl show -p MainPID --value docker')).trim()).toBe(pid);
      expect(await sh(DOCKER, "docker info --format '{{json .RegistryConfig.Mirrors}}'")).toContain(`https://${HUB_MIRROR}:5443/`);
      expect(r.stdout).toMatch(/✔ docker\.io docker\.io\/library\/tiny:1\.0 docker \(docker\): from harbor\.nodes-e2e\.test\/proxy\.docker\.io\/library\/tiny:1\.0/);
      // a Docker Hub name now comes from the mirror (docker.io itself leads nowhere)
      const pulled = await th.ssh(DOCKER, 'docker pull tiny:1.0');
      expect(pulled.code, pulled.stderr).toBe(0);
      expect((await accessLog(th, REGISTRY, hub.unit)).some((l) => l.includes('/v2/library/tiny/manifests/1.0 HTTP/1.1" 200') && l.includes('docker/'))).toBe(true);
    });

  });
  it('no secret-free run printed a stack trace', () => {
    for (const o of outputs) expect(o).not.toMatch(/\n\s+at \S+ \(/);
  });
});
