#!/usr/bin/env node
// npm run demo: boots three sandbox hosts (systemd-nspawn containers with sshd
// on 127.0.0.41-43), then plan → apply (exactly that plan) → plan again of the
// example spec, then berth status, and stops the hosts. BERTH_DEMO_KEEP=1
// leaves them running (stop them with: npm run demo:down).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const harness = join(repo, 'test', 'hosts', 'testhosts.sh');
const env = {
  ...process.env,
  TESTHOSTS_PREFIX: 'berthdemo',
  TESTHOSTS_ADDR_OFFSET: '40',
  TESTHOSTS_STATE: '/tmp/berth-demo',
};
const inventory = 'inventories/example';
const planFile = '/tmp/berth-demo/plan.json';
const sandbox = join(repo, 'scripts', 'sandbox');
const cacheAddr = '127.0.0.41';
// The example's secrets come from the environment; the demo makes up its own.
for (const k of ['HARBOR_ADMIN_PASSWORD', 'HARBOR_DB_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
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
  const health = ['-e', `harbor={health_url: "http://${cacheAddr}:8080/api/v2.0/health", health_timeout: 60}`];
  step('validate the spec (no host contacted)');
  run('node', berth('validate', '-i', inventory, ...health));
  step('plan, saved for review (exit 2: changes pending)');
  run('node', berth('plan', '-i', inventory, ...health, '--out', planFile, '--detailed-exitcode'), { allow: [0, 2] });
  step('apply exactly the saved plan');
  run('node', berth('apply', planFile));
  step('plan again: nothing left to do (exit 0)');
  run('node', berth('plan', '-i', inventory, ...health, '--detailed-exitcode'));
  step('on the cache VM: Harbor\'s files, its service, and what compose was asked to do');
  run('bash', [harness, 'ssh', '1', 'ls -la /opt/harbor; systemctl is-enabled harbor; systemctl is-active harbor; cat /var/log/docker-double.log']);
  step('on a node: containerd and containers-image pull each upstream through its Harbor proxy project');
  run('bash', [harness, 'ssh', '2', 'cat /etc/containerd/certs.d/docker.io/hosts.toml; echo; grep -B1 config_path /etc/containerd/config.toml; echo; head -n 9 /etc/containers/registries.conf.d/zz-berth-harbor-mirrors.conf']);
  step('status: the applied commit on every host');
  run('node', berth('status', '-i', inventory, ...health));
} catch (e) {
  failed = true;
  console.error(`demo failed: ${e.message}`);
} finally {
  if (process.env.BERTH_DEMO_KEEP === '1') {
    step('hosts left running (BERTH_DEMO_KEEP=1); stop them with: npm run demo:down');
  } else {
    step('stop the sandbox hosts');
    run('bash', [harness, 'down', '--purge'], { allow: [0, 1] });
  }
}
process.exit(failed ? 1 : 0);
