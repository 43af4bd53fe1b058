#!/usr/bin/env node
// The Harbor API stand-in of `npm run demo`: test/harbor-fake (Harbor v2.12's
// REST API, checked against its swagger when ../shared/contracts has it),
// compiled by the demo into .berth/harbor-fake. Real Harbor cannot run in the
// sandbox (no Docker engine), so the cache VM's Harbor answers /health and
// this answers the API. Listens on the address and port given, prints one
// line when it does, and stops on SIGTERM or when stdin closes.
//
//   node scripts/sandbox/harbor-fake.mjs <127.x.y.z> <port>   (admin password: $HARBOR_ADMIN_PASSWORD)

import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { startHarborFake } = await import(join(repo, '.berth', 'harbor-fake', 'index.js'));
const [host, port] = [process.argv[2] ?? '127.0.0.44', Number(process.argv[3] ?? 8480)];
const fake = await startHarborFake({ host, port, adminPassword: process.env.HARBOR_ADMIN_PASSWORD });
process.stdout.write(`harbor fake listening on ${fake.url} (contract ${fake.contractChecked ? 'checked' : 'NOT checked'})\n`);
const stop = async () => {
  const v = fake.violations;
  if (v.length) process.stderr.write(`harbor fake: ${v.length} contract violation(s):\n${v.map((x) => `  ${x.kind} ${x.method} ${x.path}: ${x.message}`).join('\n')}\n`);
  await fake.close();
  process.exit(v.length ? 3 : 0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
