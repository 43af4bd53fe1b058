#!/usr/bin/env node
// npm run demo: boots three sandbox hosts (systemd-nspawn containers with sshd
// on 127.0.0.41-43) and a stand-in for Harbor's API (the tests' Harbor fake, on
// 127.0.0.44), then plan → apply (exactly that plan) → plan again of the
// example spec, drift made in Harbor → plan → apply, berth status, onboards a
// node with a verification pull through a stand-in cache, and stops the hosts.
// The cluster's values repository, where the dex static client goes, is a
// bare git repository the demo makes in /tmp/berth-demo.
// BERTH_DEMO_KEEP=1 leaves them running (stop them with: npm run demo:down).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { writeOciLayout } from './sandbox/tiny-image.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const harness = join(repo, 'test', 'hosts', 'testhosts.sh');
const env = {
  ...process.env,
  TESTHOSTS_PREFIX: 'berthdemo',
  TESTHOSTS_ADDR_OFFSET: '40',
  TESTHOSTS_STATE: '/tmp/berth-demo',
  // the demo applies the example from a working copy: not CI mode's clean commit on main
  BERTH_CI: 'false',
};
const inventory = 'inventories/example';
const planFile = '/tmp/berth-demo/plan.json';
const sandbox = join(repo, 'scripts', 'sandbox');
const cacheAddr = '127.0.0.41';
const harborName = 'harbor-cache.example.com';
// where the upstream names (docker.io, quay.io, …) point on the nodes: nothing listens there,
// so a pull that works came through the cache
const deadAddr = '127.0.0.49';
const upstreams = ['docker.io', 'registry-1.docker.io', 'index.docker.io', 'quay.io', 'gcr.io', 'k8s.gcr.io'];
// the sandbox has no Harbor and no key for the example's CA: the demo makes a CA of its own,
// and the spec's tls.ca_cert must be a file inside the spec (.berth/ is ignored by git)
const pkiDir = '/tmp/berth-demo/pki';
const demoCa = '.berth/demo-ca.crt';
// The example's secrets come from the environment; the demo makes up its own.
for (const k of ['HARBOR_ADMIN_PASSWORD', 'HARBOR_DB_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'OIDC_CLIENT_SECRET']) {
  env[k] ??= `demo-${k.toLowerCase()}-${randomBytes(6).toString('hex')}`;
}

function step(title) {
  process.stdout.write(`\n\x1b[1m=== ${title}\x1b[0m\n`);
}

function run(cmd, args, { allow = [0], input } = {}) {
  process.stdout.write(`$ ${[cmd, ...args].join(' ')}${input ? ' < …' : ''}\n`);
  const r = spawnSync(cmd, args, { cwd: repo, env, stdio: [input ? 'pipe' : 'inherit', 'inherit', 'inherit'], input });
  const code = r.status ?? 1;
  if (!allow.includes(code)) throw new Error(`${cmd} ${args.join(' ')} exited ${code}`);
  return code;
}

const berth = (...args) => ['bin/berth.js', ...args];

// The cluster's Helm values repository (the example's oidc.dex_values.repo):
// a bare repository with a realistic dex values file (the tests' fixture:
// comments, anchors, other clients, connectors); berth's cache of it beside it.
const valuesRepo = '/tmp/berth-demo/cluster-values.git';
const valuesPath = 'helmfile/values/dex.yaml';
env.BERTH_CACHE_DIR = '/tmp/berth-demo/berth-cache';
function makeValuesRepo() {
  const git = (cwd, ...args) => run('git', ['-C', cwd, '-c', 'user.name=platform team', '-c', 'user.email=platform@example.com', '-c', 'init.defaultBranch=main', ...args]);
  rmSync(valuesRepo, { recursive: true, force: true });
  rmSync(env.BERTH_CACHE_DIR, { recursive: true, force: true });
  mkdirSync(valuesRepo, { recursive: true });
  git(valuesRepo, 'init', '-q', '--bare');
  const clone = mkdtempSync(join(tmpdir(), 'berth-demo-values-'));
  git(clone, 'init', '-q');
  mkdirSync(join(clone, 'helmfile/values'), { recursive: true });
  writeFileSync(join(clone, valuesPath), readFileSync(join(repo, 'test/fixtures/dex/values.yaml')));
  git(clone, 'add', '-A');
  git(clone, 'commit', '-q', '-m', 'dex values');
  git(clone, 'push', '-q', valuesRepo, 'HEAD:main');
  rmSync(clone, { recursive: true, force: true });
}

// Harbor's API: the fake of the tests (test/harbor-fake), compiled to plain JS
// and run beside the sandbox on an address none of its hosts uses.
const apiAddr = '127.0.0.44';
const apiPort = 8480;
const contracts = join(repo, '..', 'shared', 'contracts');
if (!env.BERTH_CONTRACTS_DIR && existsSync(contracts)) env.BERTH_CONTRACTS_DIR = contracts;
let fake;
async function startHarborApi() {
  run('npx', ['tsc', '--outDir', '.berth/harbor-fake', '--rootDir', 'test/harbor-fake', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', 'test/harbor-fake/index.ts']);
  fake = spawn('node', [join(sandbox, 'harbor-fake.mjs'), apiAddr, String(apiPort)], { cwd: repo, env, stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    fake.once('exit', (code) => reject(new Error(`the Harbor fake exited (${code})`)));
    fake.stdout.once('data', (d) => {
      process.stdout.write(String(d));
      resolve();
    });
  });
}

/** Runs a command quietly (setup the demo is not about); its output only if it fails. */
function quiet(what, cmd, args, input) {
  const r = spawnSync(cmd, args, { cwd: repo, env, input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${what}: ${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}${r.stderr}`);
  return String(r.stdout);
}

const onHost = (i, what, script, input) => quiet(what, 'bash', [harness, 'ssh', String(i), script], input);

/** The CA, the registry on the cache VM, its images, and the names on the nodes. */
function standInCache() {
  rmSync(pkiDir, { recursive: true, force: true });
  mkdirSync(pkiDir, { recursive: true });
  const ssl = (...args) => quiet('openssl', 'openssl', args.map((a) => a.replaceAll('@', pkiDir)));
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', '@/ca.key', '-out', '@/ca.crt', '-days', '7', '-subj', '/CN=berth demo CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', '@/server.key', '-out', '@/server.csr', '-subj', `/CN=${harborName}`);
  quiet('ext', 'sh', ['-c', `printf 'subjectAltName=DNS:${harborName}\nextendedKeyUsage=serverAuth\n' > ${pkiDir}/server.ext`]);
  ssl('x509', '-req', '-in', '@/server.csr', '-CA', '@/ca.crt', '-CAkey', '@/ca.key', '-CAcreateserial', '-out', '@/server.crt', '-days', '7', '-extfile', '@/server.ext');
  mkdirSync(join(repo, '.berth'), { recursive: true });
  copyFileSync(join(pkiDir, 'ca.crt'), join(repo, demoCa));
  const unit = 'berth-demo-harbor';
  for (const f of ['server.crt', 'server.key', 'ca.crt']) onHost(1, `copy ${f}`, `mkdir -p /etc/${unit} && umask 077 && cat > /etc/${unit}/${f}`, readFileSync(join(pkiDir, f)));
  onHost(1, 'names', `echo '${cacheAddr} ${harborName}' >> /etc/hosts`);
  onHost(1, 'registry', `sh -s ${unit} ${cacheAddr}:443 ${harborName}`, readFileSync(join(sandbox, 'start-registry.sh')));
  const layout = writeOciLayout(join(pkiDir, 'oci'), ['docker', 'quay']);
  const tar = spawnSync('tar', ['-C', layout, '-cf', '-', '.']).stdout;
  onHost(1, 'copy the images', 'mkdir -p /root/oci && tar -x -C /root/oci', tar);
  for (const [ref, repo] of [['docker', 'proxy.docker.io/library/tiny:1.0'], ['quay', 'proxy.quay.io/berth/tiny:1.0']]) {
    onHost(1, `push ${repo}`, `mkdir -p /tmp/${unit}-certs && cp /etc/${unit}/ca.crt /tmp/${unit}-certs/ && skopeo copy -q --dest-cert-dir /tmp/${unit}-certs oci:/root/oci:${ref} docker://${harborName}/${repo}`);
    process.stdout.write(`pushed ${harborName}/${repo}\n`);
  }
  for (const i of [2, 3]) onHost(i, 'names', `printf '%s\\n' '${cacheAddr} ${harborName}' '${deadAddr} ${upstreams.join(' ')}' >> /etc/hosts`);
  process.stdout.write(`on the nodes: ${harborName} → ${cacheAddr}; ${upstreams.join(', ')} → ${deadAddr} (nothing listens there)\n`);
}

if (process.getuid?.() !== 0) {
  console.error('npm run demo needs root: the sandbox hosts are systemd-nspawn containers.');
  process.exit(1);
}
if (process.argv[2] === 'down') {
  run('bash', [harness, 'down']);
  process.exit(0);
}

let failed = false;
try {
  step('boot 3 sandbox hosts (first run builds a Debian 12 image, ~2 min)');
  run('bash', [harness, 'up', '3']);
  step('stand-ins for what cannot run here: Harbor\'s installer and the Docker engine');
  // the sandbox has no Docker engine and no network: the example ships a small
  // installer whose prepare writes what Harbor's writes (made by
  // scripts/sandbox/make-harbor-installer.sh), and the cache host gets a docker
  // client that records its calls and answers Harbor's health endpoint
  const double = readFileSync(join(sandbox, 'docker-double.sh'));
  run('bash', [harness, 'ssh', '1', `cat > /usr/bin/docker && chmod 0755 /usr/bin/docker && ln -sf docker /usr/bin/docker-compose && echo DOUBLE_ADDR=${cacheAddr} > /etc/docker-double.conf`], { input: double });
  const health = [
    '-e',
    `harbor={health_url: "http://${cacheAddr}:8080/api/v2.0/health", health_timeout: 60}`,
    '-e',
    `harbor_api={url: "http://${apiAddr}:${apiPort}"}`,
    '-e',
    `tls={ca_cert: ${demoCa}}`,
  ];
  step(`Harbor's API: the fake of the tests on ${apiAddr}:${apiPort} (registries, projects, OIDC go there)`);
  await startHarborApi();
  step('a stand-in for Harbor\'s /v2 on the cache VM: docker-registry with TLS from a throwaway CA, holding tiny images under project paths');
  standInCache();
  step(`the cluster's values repository: a bare git repository in ${valuesRepo} (dex's static clients are in ${valuesPath})`);
  makeValuesRepo();
  step('validate the spec (no host contacted)');
  run('node', berth('validate', '-i', inventory, ...health));
  step('plan, saved for review (exit 2: changes pending)');
  run('node', berth('plan', '-i', inventory, ...health, '--out', planFile, '--detailed-exitcode'), { allow: [0, 2] });
  step('apply exactly the saved plan');
  run('node', berth('apply', planFile));
  step('plan again: Traefik got its ACME certificate after Harbor started, so berth backs acme.json up to the controller (exit 2; exit 0 when the backup of an earlier demo run was restored instead)');
  // a second demo run finds the backup of the first and restores it instead: then nothing is left to do (exit 0)
  if (run('node', berth('plan', '-i', inventory, ...health, '--detailed-exitcode'), { allow: [0, 2] }) === 2) {
    step('apply: the backup (a rebuilt VM gets it back, so the CA is not asked again)');
    run('node', berth('apply', '-i', inventory, ...health));
  }
  step('plan again: nothing left to do (exit 0)');
  run('node', berth('plan', '-i', inventory, ...health, '--detailed-exitcode'));
  step('on the controller: what berth keeps outside git (.berth/ is 0700, its files 0600; contents never shown)');
  run('find', ['.berth', '-type', 'f', '-printf', '%m %p\n']);
  step('the values repository got one commit: Harbor\'s static client, nothing else changed (its secret hidden here)');
  run('git', ['--git-dir', valuesRepo, 'log', '--format=%h %an: %s%n%b', 'main']);
  run('sh', ['-c', `git --git-dir ${valuesRepo} diff main~1 main | sed -E 's/^([+ -] *secret: ).*/\\1(hidden by the demo)/'`]);
  step('on the cache VM: Harbor\'s files, its service, and what compose was asked to do');
  run('bash', [harness, 'ssh', '1', 'ls -la /opt/harbor /opt/harbor/traefik/certs; systemctl is-enabled harbor; systemctl is-active harbor; cat /var/log/docker-double.log']);
  step('drift: someone makes proxy.docker.io private and changes the OIDC admin group in Harbor');
  // the admin password goes to curl on stdin (-K -), not on the command line the demo prints
  const auth = { input: `user = "admin:${env.HARBOR_ADMIN_PASSWORD}"\n` };
  const api = `http://${apiAddr}:${apiPort}/api/v2.0`;
  run('curl', ['-sS', '-K', '-', '-X', 'PUT', '-H', 'content-type: application/json', '-H', 'X-Is-Resource-Name: true', '-d', '{"metadata":{"public":"false"}}', `${api}/projects/proxy.docker.io`], auth);
  run('curl', ['-sS', '-K', '-', '-X', 'PUT', '-H', 'content-type: application/json', '-d', '{"oidc_admin_group":"someone_else"}', `${api}/configurations`], auth);
  step('plan shows exactly that drift (exit 2), apply restores it, plan is empty again');
  run('node', berth('plan', '-i', inventory, ...health, '--detailed-exitcode'), { allow: [2] });
  run('node', berth('apply', '-i', inventory, ...health));
  run('node', berth('plan', '-i', inventory, ...health, '--detailed-exitcode'));
  step('on a node: containerd and containers-image pull each upstream through its Harbor proxy project');
  run('bash', [harness, 'ssh', '2', 'cat /etc/containerd/certs.d/docker.io/hosts.toml; echo; grep -B1 config_path /etc/containerd/config.toml; echo; head -n 9 /etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf']);
  step('status: the applied commit on every host');
  run('node', berth('status', '-i', inventory, ...health));
  step('onboard a node: its plays (nothing left to do), then pulls through the cache with its runtimes (containerd, skopeo)');
  run('node', berth('onboard', '-i', inventory, ...health, 'k8s-node-02', '--image', 'docker.io/library/tiny:1.0', '--image', 'quay.io/berth/tiny:1.0'));
} catch (e) {
  failed = true;
  console.error(`demo failed: ${e.message}`);
} finally {
  if (fake && fake.exitCode === null) {
    // it reports the exchanges that broke Harbor's swagger, if any, and exits 3 then
    const code = await new Promise((resolve) => {
      const t = setTimeout(() => resolve('timeout'), 10_000);
      fake.once('exit', (c) => (clearTimeout(t), resolve(c)));
      fake.stdin.end();
    });
    if (code !== 0) {
      failed = true;
      console.error(`demo failed: the Harbor fake ended with ${code}`);
    }
  }
  rmSync(join(repo, demoCa), { force: true });
  if (process.env.BERTH_DEMO_KEEP === '1') {
    step('hosts left running (BERTH_DEMO_KEEP=1); stop them with: npm run demo:down');
  } else {
    step('stop the sandbox hosts');
    run('bash', [harness, 'down', '--purge'], { allow: [0, 1] });
  }
}
process.exit(failed ? 1 : 0);
