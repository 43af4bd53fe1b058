// The verification pull of `berth onboard`, read from what ctr and skopeo
// really printed on a test host (test/fixtures/nodes): which host served the
// image, and the runtime's own error when the cache was not trusted.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildChecks, logFields, parseCheck, type Check } from '../../src/node/verify.js';
import { parseImageRef, type Mirror } from '../../src/node/mirrors.js';
import { parseRuntimes } from '../../src/facts/runtimes.js';
import { renderReport, runOnboard } from '../../src/cli/onboard.js';
import { BerthError } from '../../src/util/errors.js';
import { REPO, berthError } from './helpers.js';

const FIXTURES = join(REPO, 'test', 'fixtures', 'nodes');

/** A fixture's output and the exit code its last line recorded. */
function run(name: string): { out: string; code: number } {
  const text = readFileSync(join(FIXTURES, `${name}.out`), 'utf8');
  const m = /\nexit=(\d+)\n?$/.exec(text);
  if (!m) throw new Error(`${name}.out has no exit= line`);
  return { out: text.slice(0, m.index + 1), code: Number(m[1]) };
}

const MIRRORS: Mirror[] = [
  { upstream: 'docker.io', project: 'proxy.docker.io', server: 'https://registry-1.docker.io' },
  { upstream: 'quay.io', project: 'proxy.quay.io', server: 'https://quay.io' },
];
const RUNTIMES = parseRuntimes(readFileSync(join(FIXTURES, 'runtimes-debian.out'), 'utf8'));
const IMAGES = [parseImageRef('library/tiny:1.0')!];

function checks() {
  return buildChecks({ harbor: 'harbor.test', mirrors: MIRRORS, images: IMAGES, selected: { containerd: true, containers: true, docker: false }, runtimes: RUNTIMES, certsDir: '/etc/containerd/certs.d' });
}
const ctrCheck = (): Check => checks().checks.find((c) => c.tool === 'ctr')!;
const skopeoCheck = (): Check => checks().checks.find((c) => c.tool === 'skopeo')!;

describe('buildChecks', () => {
  it('one pull per runtime for each upstream with an image; upstreams without one are listed', () => {
    const { checks: cs, unchecked } = checks();
    expect(cs.map((c) => `${c.upstream} ${c.runtime} ${c.tool} ${c.image} ← ${c.expect}`)).toEqual([
      'docker.io containerd ctr docker.io/library/tiny:1.0 ← harbor.test',
      'docker.io containers-image skopeo docker.io/library/tiny:1.0 ← harbor.test/proxy.docker.io/library/tiny:1.0',
    ]);
    expect(unchecked).toEqual([{ upstream: 'quay.io', project: 'proxy.quay.io', status: 'unchecked', error: 'no verify image on quay.io', hint: 'add one to nodes.verify_image, e.g. quay.io/<repository>:<tag>' }]);
    expect(cs[0]!.script).toContain("ctr --debug -n berth-verify images pull --hosts-dir /etc/containerd/certs.d docker.io/library/tiny:1.0");
    expect(cs[1]!.script).toContain("skopeo --debug copy docker://docker.io/library/tiny:1.0");
  });

  it('Docker nodes pull the project path explicitly (dockerd cannot mirror it)', () => {
    const { checks: cs } = buildChecks({ harbor: 'harbor.test', mirrors: MIRRORS, images: IMAGES, selected: { containerd: false, containers: false, docker: true }, runtimes: RUNTIMES, certsDir: '/x' });
    expect(cs.map((c) => [c.tool, c.expect])).toEqual([['docker', 'harbor.test/proxy.docker.io/library/tiny:1.0']]);
  });

  it('an image on an upstream no project mirrors would prove nothing: refused', () => {
    const e = berthError(() => buildChecks({ harbor: 'h', mirrors: MIRRORS, images: [parseImageRef('ghcr.io/x/y:1')!], selected: { containerd: true, containers: false, docker: false }, runtimes: RUNTIMES, certsDir: '/x' }));
    expect(e.format()).toBe('nodes.verify_image: verify image ghcr.io/x/y:1 is on ghcr.io, which no proxy project mirrors, so its pull would prove nothing (mirrored upstreams: docker.io, quay.io)');
  });
});

describe('parseCheck on real output', () => {
  it('ctr through the mirror: ok, with the manifest URL it came from', () => {
    const { out, code } = run('ctr-ok');
    expect(code).toBe(0);
    expect(parseCheck(ctrCheck(), out, code, 120)).toMatchObject({ status: 'ok', via: 'https://harbor.test/v2/proxy.docker.io/library/tiny/manifests/1.0', ms: 120 });
  });

  it("ctr with a CA that did not sign the cache's certificate: the mirror's x509 error and the hint", () => {
    const { out, code } = run('ctr-x509');
    const r = parseCheck(ctrCheck(), out, code, 10);
    expect(r.status).toBe('failed');
    expect(r.error).toBe('failed to do request: Head "https://harbor.test/v2/proxy.docker.io/library/tiny/manifests/1.0?ns=docker.io": x509: certificate signed by unknown authority');
    expect(r.hint).toMatch(/does not trust the cache's certificate/);
  });

  it('skopeo through the mirror: ok', () => {
    const { out, code } = run('skopeo-ok');
    expect(parseCheck(skopeoCheck(), out, code, 5)).toMatchObject({ status: 'ok', via: 'harbor.test/proxy.docker.io/library/tiny:1.0' });
  });

  it('skopeo without the CA: x509 from the mirror, not the upstream\'s connection refused', () => {
    const { out, code } = run('skopeo-x509');
    const r = parseCheck(skopeoCheck(), out, code, 5);
    expect(r.status).toBe('failed');
    expect(r.error).toBe('pinging container registry harbor.test: Get "https://harbor.test/v2/": x509: certificate signed by unknown authority');
    expect(r.hint).toMatch(/tls\.ca_cert/);
  });

  it('a pull that succeeded only by falling back to the upstream is a failure', () => {
    // the same ctr run, as if the upstream had answered: resolved by registry-1.docker.io
    const { out } = run('ctr-x509');
    const fallback = `${out}time="2026-01-01T00:00:00Z" level=debug msg=resolved desc.digest="sha256:aa" host=registry-1.docker.io\n`;
    const r = parseCheck(ctrCheck(), fallback.replace(/^ctr: .*$/m, ''), 0, 1);
    expect(r.status).toBe('failed');
    expect(r.error).toMatch(/^pulled from registry-1\.docker\.io, not through the cache \(the cache: failed to do request: .*x509/);
    const sk = run('skopeo-x509').out.replace(/^.*level=fatal.*$/m, '');
    expect(parseCheck(skopeoCheck(), sk, 0, 1).error).toMatch(/^pulled from docker\.io\/library\/tiny:1\.0, not through the cache/);
  });

  it('a timeout and the logrus field reader', () => {
    expect(parseCheck(ctrCheck(), '', 124, 90_000)).toMatchObject({ status: 'failed', error: 'no answer within 90 s' });
    expect(logFields('time="t" level=info msg="trying next host" error="a \\"b\\" c" host=h.example.com')).toEqual({ time: 't', level: 'info', msg: 'trying next host', error: 'a "b" c', host: 'h.example.com' });
  });
});

describe('the onboard report', () => {
  it('names each upstream, the runtime and what served it or why it failed', () => {
    const text = renderReport(
      {
        format: 'berth-onboard/1',
        host: 'k8s-node-03',
        harbor: 'harbor.test',
        runtimes: 'containerd 1.6.20 (config version 2)',
        ok: false,
        checks: [
          { upstream: 'docker.io', image: 'docker.io/library/tiny:1.0', runtime: 'containerd', tool: 'ctr', status: 'ok', via: 'https://harbor.test/v2/proxy.docker.io/library/tiny/manifests/1.0', ms: 200 },
          { upstream: 'quay.io', image: 'quay.io/x/y:1', runtime: 'containerd', tool: 'ctr', status: 'failed', error: 'x509: certificate signed by unknown authority', hint: 'trust it', ms: 50 },
          { upstream: 'gcr.io', status: 'unchecked', error: 'no verify image on gcr.io' },
        ],
      },
      false,
    );
    expect(text).toBe(
      [
        'k8s-node-03: verification pulls through harbor.test (containerd 1.6.20 (config version 2))',
        '  ✔ docker.io docker.io/library/tiny:1.0 containerd (ctr): from https://harbor.test/v2/proxy.docker.io/library/tiny/manifests/1.0 0.2 s',
        '  ✖ quay.io   quay.io/x/y:1 containerd (ctr): FAILED: x509: certificate signed by unknown authority 0.1 s',
        '      trust it',
        '  - gcr.io   : not checked: no verify image on gcr.io',
        'k8s-node-03: 1 verification pull(s) failed.',
        '',
      ].join('\n'),
    );
  });
});

describe('berth onboard refuses, before contacting any host', () => {
  const SECRETS = ['HARBOR_ADMIN_PASSWORD', 'HARBOR_DB_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'OIDC_CLIENT_SECRET'];
  const opts = { root: REPO, inventory: 'inventories/example' };
  const fails = async (node: string, more: object = {}, o: object = {}) => {
    SECRETS.forEach((k, i) => (process.env[k] ??= `example-secret-${i}-value`));
    const seen: string[] = [];
    const err = await runOnboard({ ...opts, ...more }, node, o, (s) => seen.push(s)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(seen).toEqual([]);
    expect(err).toBeInstanceOf(BerthError);
    return (err as BerthError).format();
  };

  it('an unknown node, a group, a node without node_mirror, --limit, a bad --image', async () => {
    expect(await fails('k8s-node-09')).toBe('no host named "k8s-node-09" in inventories/example (add it to the nodes group first; hosts: harbor-cache-01, k8s-node-01, k8s-node-02)');
    expect(await fails('nodes')).toBe('nodes is a group, not a host (berth onboard takes one node; berth apply -l <group> applies a group)');
    expect(await fails('harbor-cache-01')).toBe('no play in playbooks/site.yml gives harbor-cache-01 the node_mirror role (put the node in the group of the nodes play (e.g. nodes))');
    expect(await fails('k8s-node-01', { limit: 'nodes' })).toBe('onboard takes its node as the argument; --limit does not apply');
    expect(await fails('k8s-node-01', {}, { verifyOnly: true, images: ['Bad Image'] })).toBe('--image #1: "Bad Image" is not an image reference (e.g. library/busybox:1.36 or quay.io/prometheus/busybox:latest)');
    // five spec loads: more than the default 5 s on a busy 2-core machine
  }, 60_000);
});
