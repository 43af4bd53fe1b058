#!/usr/bin/env node
// npm run demo: boots three sandbox hosts (systemd-nspawn containers with sshd
// on 127.0.0.41-43), then plan → apply (exactly that plan) → plan again of the
// example spec, then berth status, and stops the hosts. BERTH_DEMO_KEEP=1
// leaves them running (stop them with: npm run demo:down).

import { spawnSync } from 'node:child_process';
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

function step(title) {
  process.stdout.write(`\n\x1b[1m=== ${title}\x1b[0m\n`);
}

function run(cmd, args, { allow = [0] } = {}) {
  process.stdout.write(`$ ${[cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd, args, { cwd: repo, env, stdio: 'inherit' });
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
  step('validate the spec (no host contacted)');
  run('node', berth('validate', '-i', inventory));
  step('plan, saved for review (exit 2: changes pending)');
  run('node', berth('plan', '-i', inventory, '--out', planFile, '--detailed-exitcode'), { allow: [0, 2] });
  step('apply exactly the saved plan');
  run('node', berth('apply', planFile));
  step('plan again: nothing left to do (exit 0)');
  run('node', berth('plan', '-i', inventory, '--detailed-exitcode'));
  step('status: the applied commit on every host');
  run('node', berth('status', '-i', inventory));
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
