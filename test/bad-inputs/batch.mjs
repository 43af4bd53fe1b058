// Runs many corpus cases in one process: for each, the CLI's main() from the
// build (dist/), exactly what bin/berth.js runs, with the case's working
// directory, arguments and environment, and everything it writes to stdout
// and stderr captured (Node's own warnings included). Starting Node once per
// case costs ~0.4 s of CPU; this costs a few milliseconds. corpus.test.ts
// also runs one case of each class through bin/berth.js itself and checks
// the two agree.
//
// stdin: JSON [{ id, cwd, args, env }]; stdout: JSON [{ id, code, stdout, stderr, crash? }]

import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { main } = await import(join(REPO, 'dist', 'cli', 'main.js'));

const input = JSON.parse(await new Promise((resolve) => {
  let s = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => (s += d));
  process.stdin.on('end', () => resolve(s));
}));

const realOut = process.stdout.write.bind(process.stdout);
const realErr = process.stderr.write.bind(process.stderr);
const baseEnv = { ...process.env };
const results = [];
let current;
process.on('unhandledRejection', (e) => {
  if (current) current.crash = `unhandled rejection: ${e?.stack ?? String(e)}`;
});
process.on('uncaughtException', (e) => {
  if (current) current.crash = `uncaught exception: ${e?.stack ?? String(e)}`;
});

for (const c of input) {
  current = { id: c.id, code: undefined, stdout: '', stderr: '' };
  process.chdir(c.cwd);
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, c.env);
  process.stdout.write = (chunk) => ((current.stdout += String(chunk)), true);
  process.stderr.write = (chunk) => ((current.stderr += String(chunk)), true);
  try {
    current.code = await main(c.args);
  } catch (e) {
    current.crash = `main() threw: ${e?.stack ?? String(e)}`;
  }
  // warnings are printed on a later tick
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 5));
  process.stdout.write = realOut;
  process.stderr.write = realErr;
  results.push(current);
  current = undefined;
}
for (const k of Object.keys(process.env)) delete process.env[k];
Object.assign(process.env, baseEnv);
realOut(JSON.stringify(results));
