// The Harbor cache VM end to end (issue 3): the roles harbor_host, direnv and
// harbor applied by the real CLI to a real host. Harbor and Docker cannot run
// here, so the host gets the docker double and the installer is the fake one
// (test/e2e/harbor-doubles.ts); everything else is real: the user, files,
// systemd unit, direnv, the health wait over curl on the host.
//
// The tests share one host and run in order; each starts from a converged
// host and, if an earlier test left it otherwise, builds one afresh.

import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO, buildBerth, changesOfOnly, json, show, specCli, stopwatch, type BerthJson, type BerthRun, type JsonChange } from './berth.js';
import {
  FIXTURES,
  composeCommand,
  dockerCalls,
  installDockerDouble,
  setAcmeIssue,
  setUnhealthy,
  summarizeCalls,
  traefikEvents,
  writeFakeHarborInstaller,
} from './harbor-doubles.js';
import { e2eHost, keyFile, knownHostsFile, resetHosts, testHosts } from './hosts.js';
import { listListeners, owningHost } from './listeners.js';
import { DIRENV_ALLOW, cacheVmSnapshot, comparableSnapshot, type Entry, type Snapshot } from './snapshot.js';

const INVENTORY = 'inventories/e2e';
const INV_HOST = 'harbor-cache-e2e';
const HOSTNAME = 'harbor-cache.e2e.example.com';
const INSTALL = '/opt/harbor';
const ENV_FILES = ['core', 'registryctl', 'db', 'jobservice'].map((c) => `${INSTALL}/common/config/${c}/env`);
const STATE_RECORD = '/var/lib/berth/state.json';
const TRAEFIK_CERTS = `${INSTALL}/traefik/certs`;
const ACME_JSON = `${TRAEFIK_CERTS}/acme.json`;
/** Where berth keeps the backup of acme.json on the controller (in the spec directory). */
const acmeBackupPath = () => join(specDir, '.berth/acme', HOSTNAME, 'acme.json');
const BASE_ENV: Record<string, string> = {
  TZ: 'America/Argentina/Buenos_Aires',
  RESTART: 'unless-stopped',
  VERSION: 'v2.11',
  LOG: 'INFO',
};

// One value for every shell- and env-file-quoting trap at once.
const EVIL = [
  `it's "quoted" $(touch /tmp/pwned) and \`touch /tmp/pwned\``,
  `$HOME \${PATH} %s \\n back\\slash ; touch /tmp/pwned # not a comment`,
  `  second line, leading spaces kept  `,
].join('\n');

// Fresh secrets per run, distinctive enough that finding one is never an accident.
const tag = randomBytes(6).toString('hex');
const SECRETS = {
  HARBOR_ADMIN_PASSWORD: `Adm1n-${tag}-pw`,
  HARBOR_DB_PASSWORD: `db-${tag}-pw`,
  AWS_ACCESS_KEY_ID: `AKIA${tag.toUpperCase()}E2E`,
  AWS_SECRET_ACCESS_KEY: `wJalrXUtnFEMI/K7MDENG/${tag}/bPxRfiCYEXAMPLEKEY`,
};

const th = testHosts();
const HOST = 1;
let hostName: string;
let addr: string;
let specDir: string;
let sha256: string;

/** Everything berth printed or stored, to look for secrets in at the end. */
const berthOutputs: { what: string; text: string }[] = [];

/** What the test changes in group_vars/all/zz-run.yml. */
interface RunVars {
  port: number;
  env: Record<string, string>;
  healthTimeout?: number;
}
const BASE_VARS: RunVars = { port: 8080, env: {} };
let vars: RunVars = structuredClone(BASE_VARS);

/** True while the host is converged with `vars` (else the next test starts afresh). */
let converged = false;
/** The files after the first apply on a bare host (for the rebuild test). */
let firstSnapshot: Snapshot | undefined;
/** sha256 of the acme.json that Traefik obtained and berth backed up (set by the ACME backup test). */
let acmeBackedUp: string | undefined;

const { timings, timed } = stopwatch();

// ---------------------------------------------------------------- the spec and the CLI

function healthUrl(port: number): string {
  return `http://${addr}:${port}/api/v2.0/health`;
}

/** A group_vars edit, as an operator would make it (JSON is YAML, and quotes exactly). */
function writeVars(v: RunVars): void {
  vars = structuredClone(v);
  const harbor: Record<string, unknown> = { installer: { sha256 }, http_port: v.port, health_url: healthUrl(v.port) };
  if (v.healthTimeout !== undefined) harbor.health_timeout = v.healthTimeout;
  const doc = { harbor, env: v.env };
  writeFileSync(join(specDir, INVENTORY, 'group_vars/all/zz-run.yml'), `# written by cache-vm.test.ts\n${JSON.stringify(doc, null, 2)}\n`);
}

function writeInventory(): void {
  const inv = {
    all: {
      children: {
        cache: {
          hosts: {
            [INV_HOST]: { berth_host: addr, berth_user: 'root', berth_key_file: keyFile(), berth_known_hosts: knownHostsFile(), berth_connect_timeout: 10 },
          },
        },
      },
    },
  };
  writeFileSync(join(specDir, INVENTORY, 'hosts.yml'), `${JSON.stringify(inv, null, 2)}\n`);
}

const { cli, plan, apply } = specCli({
  cwd: () => specDir,
  specArgs: () => ['-C', specDir, '-i', INVENTORY],
  env: () => ({ ...SECRETS }),
  record: (r) => berthOutputs.push({ what: r.cmd, text: r.stdout + r.stderr }),
});

const changesOf = (r: BerthRun | BerthJson): JsonChange[] => changesOfOnly(r, INV_HOST);

// ---------------------------------------------------------------- the host

async function sh(cmd: string, input?: string): Promise<string> {
  const r = await th.ssh(HOST, cmd, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`on ${hostName}: \`${cmd}\` exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function statOf(path: string): Promise<string> {
  return (await sh(`stat -c '%U:%G %u:%g %a %F' -- ${path}`)).trim();
}

async function prepareRuns(): Promise<number> {
  const out = await sh(`cat ${INSTALL}/prepare.runs 2>/dev/null || true`);
  return out.split('\n').filter(Boolean).length;
}

async function health(port: number): Promise<{ status: string; components: { name: string; status: string; error?: string }[] }> {
  const res = await fetch(healthUrl(port), { signal: AbortSignal.timeout(5_000) });
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; components: { name: string; status: string }[] };
}

/** Sockets on `port` that processes of this host listen on (seen from the controller: one network namespace). */
async function hostListeners(port: number): Promise<string[]> {
  const all = await listListeners();
  return all
    .filter((l) => l.local.endsWith(`:${port}`) && l.pids.some((pid) => owningHost(pid, th.prefix) === hostName))
    .map((l) => l.local);
}

async function stateRecord(): Promise<string> {
  const text = await sh(`cat ${STATE_RECORD}`);
  berthOutputs.push({ what: `${STATE_RECORD} (${timings.length})`, text });
  return text;
}

/** Files whose content is generated afresh on purpose: compared by owner and mode only. */
const GENERATED = new Set([...ENV_FILES, '/data/secret/keys/secretkey', `${INSTALL}/prepare.runs`]);

const snapshot = () => cacheVmSnapshot(th, HOST);
const comparable = (s: Snapshot, drop?: (path: string) => boolean) => comparableSnapshot(s, GENERATED, drop);

// ---------------------------------------------------------------- setting up

/** Resets the host to the bare image and puts the docker double on it. */
async function bareHost(): Promise<void> {
  converged = false;
  await timed('reset host + install docker double', async () => {
    await resetHosts(hostName);
    await installDockerDouble(th, HOST);
  });
}

/** A converged host with the base spec: from a bare host if the last test left it otherwise. */
async function convergedHost(): Promise<void> {
  if (converged) return;
  await bareHost();
  writeVars(BASE_VARS);
  const r = await timed('fresh apply (setup)', () => apply());
  expect(r.code, show(r)).toBe(0);
  converged = true;
}

/**
 * A converged host with the base spec whose Traefik obtained an ACME
 * certificate after the start (as real Traefik does, in its own time); the
 * next plan backs acme.json up, exactly that, and the one after is empty.
 */
async function issueAndBackUp(): Promise<void> {
  await convergedHost();
  writeVars(BASE_VARS);
  const settle = await apply();
  expect(settle.code, show(settle)).toBe(0);
  await setAcmeIssue(th, HOST, true);
  await sh('systemctl restart harbor.service');
  await setAcmeIssue(th, HOST, false);
  expect((await traefikEvents(th, HOST)).at(-1)).toMatchObject({ event: 'obtain', domain: HOSTNAME });
  expect(await statOf(ACME_JSON)).toBe('root:root 0:0 600 regular file');
  const hostSha = (await sh(`sha256sum ${ACME_JSON}`)).split(' ')[0]!;

  const p = await timed('plan (Traefik obtained a certificate)', () => plan('--json', '--detailed-exitcode'));
  expect(p.code, show(p)).toBe(2);
  const changes = changesOf(p);
  expect(changes.map((c) => `${c.action} ${c.resource}`)).toEqual([`create backup ${ACME_JSON}`]);
  expect(changes[0]).toMatchObject({ sensitive: true, attrs: [{ name: 'to', after: `.berth/acme/${HOSTNAME}/acme.json on the controller` }, { name: 'content', after: '(sensitive)' }] });
  expect(existsSync(acmeBackupPath())).toBe(false);

  const a = await apply('--json');
  expect(a.code, show(a)).toBe(0);
  // apply did exactly what the plan said, and nothing on the host
  expect(changesOf(a).map((c) => [c.resource, c.status])).toEqual([[`backup ${ACME_JSON}`, 'done']]);
  const backup = readFileSync(acmeBackupPath());
  expect(createHash('sha256').update(backup).digest('hex')).toBe(hostSha);
  expect(statSync(acmeBackupPath()).mode & 0o777).toBe(0o600);
  expect(statSync(join(specDir, '.berth')).mode & 0o777).toBe(0o700);
  // what berth printed never held the certificates' keys
  const state = JSON.parse(backup.toString('utf8')) as { acme: { Account: { PrivateKey: string }; Certificates: { key: string }[] } };
  acmeSecrets.push(state.acme.Account.PrivateKey, state.acme.Certificates[0]!.key);
  expect((await plan('--detailed-exitcode')).code).toBe(0);
  acmeBackedUp = hostSha;
  converged = true;
}

/** Secret parts of the ACME state (account key, certificate keys), looked for in berth's output at the end. */
const acmeSecrets: string[] = [];

beforeAll(async () => {
  hostName = e2eHost(HOST).name;
  addr = th.address(HOST);
  await buildBerth();
  specDir = mkdtempSync(join(tmpdir(), 'berth-e2e-cache-'));
  cpSync(join(FIXTURES, 'spec'), specDir, { recursive: true });
  sha256 = writeFakeHarborInstaller(join(specDir, 'files'));
  writeInventory();
  writeVars(BASE_VARS);
});

afterAll(async () => {
  if (timings.length) console.log(`[cache-vm] timings:\n  ${timings.join('\n  ')}`);
  if (process.env.BERTH_E2E_KEEP_SPECS !== '1' && specDir) rmSync(specDir, { recursive: true, force: true });
  // the Harbor stand-in listens on this host's address: leave the host bare for the next file
  if (hostName) await resetHosts(hostName);
});

// ---------------------------------------------------------------- the tests

describe('cache VM (harbor_host, direnv, harbor) on a real host', () => {
  it('applies on a bare host: user 10000, files, unit, prepare and compose up once, healthy; then nothing to do', async () => {
    await bareHost();
    writeVars(BASE_VARS);
    const first = await timed('first apply on a bare host', () => apply());
    expect(first.code, show(first)).toBe(0);
    // the masked secrets were in the diff: the output is worth searching later
    expect(first.stdout).toContain('(sensitive)');
    expect(first.stdout).toContain(`wait for ${healthUrl(8080)}`);

    // the account Harbor's prepare hard-codes
    expect((await sh('id harbor')).trim()).toMatch(/^uid=10000\(harbor\) gid=10000\(harbor\) groups=10000\(harbor\)$/);
    expect(await statOf(INSTALL)).toBe('harbor:harbor 10000:10000 750 directory');
    expect(await statOf('/data')).toBe('harbor:harbor 10000:10000 750 directory');

    // the certs role (acme): Traefik's directories; nothing to restore on a first deployment, and Traefik has no certificate yet
    expect(await statOf(`${INSTALL}/traefik`)).toBe('root:root 0:0 750 directory');
    expect(await statOf(TRAEFIK_CERTS)).toBe('root:root 0:0 700 directory');
    expect(first.stdout).toContain(`warning: ${INV_HOST}: nothing to restore to ${ACME_JSON}: the controller has no copy in .berth/acme/${HOSTNAME}/acme.json`);
    expect((await th.ssh(HOST, `test -e ${ACME_JSON}`)).code, 'acme.json before Traefik obtained a certificate').not.toBe(0);
    expect((await traefikEvents(th, HOST)).map((e) => e.event)).toEqual(['pending']);

    // harbor.yml: behind the TLS proxy, no https block, external_url https
    expect(await statOf(`${INSTALL}/harbor.yml`)).toBe('root:root 0:0 600 regular file');
    const harborYml = parseYaml(await sh(`cat ${INSTALL}/harbor.yml`)) as Record<string, unknown>;
    expect(harborYml.hostname).toBe(HOSTNAME);
    expect(harborYml.http).toEqual({ port: 8080 });
    expect(harborYml.external_url).toBe(`https://${HOSTNAME}`);
    expect(harborYml).not.toHaveProperty('https');
    expect(harborYml.harbor_admin_password).toBe(SECRETS.HARBOR_ADMIN_PASSWORD);
    expect((harborYml.database as Record<string, unknown>).password).toBe(SECRETS.HARBOR_DB_PASSWORD);
    expect(harborYml.data_volume).toBe('/data');

    // the environment, twice: .envrc for operators (direnv), harbor.env for the unit
    expect(await statOf(`${INSTALL}/.envrc`)).toBe('harbor:harbor 10000:10000 600 regular file');
    expect(await statOf(`${INSTALL}/harbor.env`)).toMatch(/^root:root 0:0 600 regular file$/);
    const unit = await sh('systemctl show harbor.service -p EnvironmentFiles -p WorkingDirectory -p UnitFileState -p ActiveState');
    expect(unit).toContain(`EnvironmentFiles=${INSTALL}/harbor.env`);
    expect(unit).toContain(`WorkingDirectory=${INSTALL}`);
    expect((await sh('systemctl is-enabled harbor.service')).trim()).toBe('enabled');
    expect((await sh('systemctl is-active harbor.service')).trim()).toBe('active');

    // prepare ran once, and its output belongs to the harbor user
    expect(await prepareRuns()).toBe(1);
    for (const f of ENV_FILES) expect(await statOf(f), f).toBe('harbor:harbor 10000:10000 600 regular file');

    // docker: images loaded once, compose up once, from the unit (its env file reached compose)
    const calls = await dockerCalls(th, HOST);
    expect(summarizeCalls(calls), JSON.stringify(calls.map((c) => c.argv))).toMatchObject({ load: 1, up: 1, downVolumes: 0 });
    const load = calls.find((c) => c.argv[1] === 'load')!;
    expect(load.argv).toEqual(['docker', 'load', '-i', `${INSTALL}/harbor.v2.12.4.tar.gz`]);
    const up = calls.find((c) => composeCommand(c)?.sub === 'up')!;
    expect(up.cwd).toBe(INSTALL);
    expect(composeCommand(up)!.files).toEqual(['docker-compose.yml', 'docker-compose.override.yml']);
    expect(up.env).toEqual(expect.arrayContaining([...Object.keys(BASE_ENV), 'PROVIDER', 'RESOLVER', 'EMAIL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']));
    expect(calls.indexOf(load)).toBeLessThan(calls.indexOf(up));
    // compose interpolated the override without a blank variable
    expect(await sh('journalctl -u harbor.service --no-pager -q -o cat')).not.toMatch(/variable is not set/);

    // healthy, on this host's own address only
    expect(await health(8080)).toMatchObject({ status: 'healthy' });
    expect(await hostListeners(8080)).toEqual([`${addr}:8080`]);

    firstSnapshot = await snapshot();
    await stateRecord();
    converged = true;

    // converged: an empty plan, and an apply that touches nothing
    const again = await timed('plan on the converged host', () => plan('--detailed-exitcode'));
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain(`${INV_HOST}: no changes`);
    // what docker was asked to do; the preflight's read-only `compose version` runs with every plan
    const acting = async () => (await dockerCalls(th, HOST)).filter((c) => composeCommand(c)?.sub !== 'version');
    const logBefore = await acting();
    expect(logBefore.length).toBeGreaterThan(0);
    const second = await timed('second apply (no changes)', () => apply());
    expect(second.code, show(second)).toBe(0);
    expect(second.stdout).toContain(`${INV_HOST}: no changes`);
    expect(await prepareRuns()).toBe(1);
    expect(await acting()).toEqual(logBefore);
    expect((await dockerCalls(th, HOST)).filter((c) => composeCommand(c)?.sub === 'version').length, 'the compose check ran').toBeGreaterThan(0);
    expect(await statOf(`${INSTALL}/harbor.yml`)).toBe('root:root 0:0 600 regular file');
  });

  it('writes compose files that validate against the compose-spec schema', async () => {
    await convergedHost();
    const override = parseYaml(await sh(`cat ${INSTALL}/docker-compose.override.yml`)) as Record<string, unknown>;
    const prepared = parseYaml(await sh(`cat ${INSTALL}/docker-compose.yml`)) as Record<string, unknown>;
    // the merged project as compose sees it under the unit's environment
    const merged = JSON.parse(
      await sh(
        `systemd-run --quiet --wait --pipe -p EnvironmentFile=${INSTALL}/harbor.env -p WorkingDirectory=${INSTALL} ` +
          '/usr/bin/docker compose -f docker-compose.yml -f docker-compose.override.yml config',
      ),
    ) as { services: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> };

    // what the override must add, whatever the schema says
    expect(Object.keys(merged.services).sort()).toEqual(['core', 'jobservice', 'log', 'portal', 'postgresql', 'proxy', 'redis', 'registry', 'registryctl', 'traefik']);
    expect(merged.services.traefik!.image).toBe('traefik:v2.11');
    expect(merged.services.proxy!.labels).toEqual(expect.arrayContaining(['traefik.enable=true', `traefik.http.routers.harbor.rule=Host(\`${HOSTNAME}\`)`]));
    expect(merged.services.proxy!.ports).toEqual(['8080:8080']);
    // the certificates' volume is a directory of the host, which berth reads and writes as files
    expect(merged.volumes!.traefik_certs).toEqual({ driver: 'local', driver_opts: { type: 'none', o: 'bind', device: TRAEFIK_CERTS } });
    expect(merged.services.traefik!.volumes).toEqual(expect.arrayContaining(['traefik_certs:/certs']));
    expect(merged.services.traefik!.command).toEqual(
      expect.arrayContaining(['--certificatesresolvers.acme.acme.email=ops@example.com', '--certificatesresolvers.acme.acme.dnschallenge.provider=route53']),
    );

    const schemaPath = composeSpecPath();
    if (!schemaPath) {
      const bar = '!'.repeat(78);
      console.warn(
        `\n${bar}\n!!  compose-spec.json NOT FOUND (set BERTH_CONTRACTS_DIR, or put it in ../shared/contracts):\n` +
          `!!  the compose files berth writes were NOT validated against the compose-spec schema.\n${bar}\n`,
      );
      return;
    }
    const validate = compileComposeSpec(schemaPath);
    const errors = (doc: unknown) => (validate(doc) ? [] : describeErrors(validate.errors));
    expect(errors(override), 'docker-compose.override.yml (berth)').toEqual([]);
    expect(errors(prepared), "docker-compose.yml (the fake prepare's)").toEqual([]);
    expect(errors(merged), 'the merged project').toEqual([]);
    // and the validator does reject a broken file (this assertion can fail)
    const broken = structuredClone(override) as { services: Record<string, Record<string, unknown>> };
    broken.services.traefik!.ports = '80:80';
    broken.services.traefik!.restart_policy = 'always';
    expect(errors(broken).length).toBeGreaterThan(0);
  });

  it('changing http_port plans exactly the harbor.yml diff and its handlers; apply reruns prepare and compose up', async () => {
    await convergedHost();
    const prepBefore = await prepareRuns();
    const callsBefore = summarizeCalls(await dockerCalls(th, HOST));
    const coreEnvBefore = await sh(`cat ${ENV_FILES[0]}`);

    writeVars({ ...vars, port: 8081 });
    converged = false;
    const p = await timed('plan (http_port 8080 → 8081)', () => plan('--detailed-exitcode', '--out', join(specDir, 'port.plan.json')));
    expect(p.code, show(p)).toBe(2);
    const saved = readFileSync(join(specDir, 'port.plan.json'), 'utf8');
    berthOutputs.push({ what: 'saved plan port.plan.json', text: saved });
    const changes = changesOf(JSON.parse(saved) as BerthJson);
    const tasks = changes.filter((c) => !c.notifiedBy);
    const handlers = changes.filter((c) => c.notifiedBy);
    expect(tasks.map((c) => `${c.action} ${c.resource}`)).toEqual([`update file ${INSTALL}/harbor.yml`]);
    const diffLines = (tasks[0]!.diff ?? '').split('\n').filter((l) => /^[-+](?![-+]{2} )/.test(l));
    // one line out, one in. berth hides every removed line of a file that holds secrets
    // (src/plan/diff.ts hideRemovedLines), so the old port may show only as a placeholder.
    expect(diffLines).toHaveLength(2);
    expect(['-  port: 8080', '-(old line not shown: this file holds secrets)']).toContain(diffLines[0]);
    expect(diffLines[1]).toBe('+  port: 8081');
    expect(tasks[0]!.diff!.match(/^@@ /gm)).toHaveLength(1);
    expect(handlers.map((c) => c.task)).toEqual(['prepare harbor', 'restart harbor', 'wait for harbor healthy']);
    expect(handlers[2]!.resource).toBe(`wait for ${healthUrl(8081)}`);
    for (const h of handlers) expect(h.notifiedBy).toEqual([tasks[0]!.id]);

    // apply exactly that plan
    const a = await timed('apply the saved plan (port change)', () => cli('apply', join(specDir, 'port.plan.json')));
    expect(a.code, show(a)).toBe(0);
    expect(await prepareRuns()).toBe(prepBefore + 1);
    const callsAfter = summarizeCalls(await dockerCalls(th, HOST));
    expect(callsAfter.up).toBe(callsBefore.up + 1);
    expect(callsAfter.load).toBe(callsBefore.load);
    expect(callsAfter.downVolumes).toBe(0);
    // prepare regenerated its internal secrets; berth gave the files back to harbor
    expect(await sh(`cat ${ENV_FILES[0]}`)).not.toBe(coreEnvBefore);
    for (const f of ENV_FILES) expect(await statOf(f), f).toBe('harbor:harbor 10000:10000 600 regular file');
    expect((parseYaml(await sh(`cat ${INSTALL}/docker-compose.yml`)) as { services: { proxy: { ports: string[] } } }).services.proxy.ports).toEqual(['8081:8080']);
    expect(await health(8081)).toMatchObject({ status: 'healthy' });
    expect(await hostListeners(8081)).toEqual([`${addr}:8081`]);
    expect(await hostListeners(8080)).toEqual([]);

    const again = await plan('--detailed-exitcode');
    expect(again.code, show(again)).toBe(0);
    converged = true;
    await stateRecord();
  });

  it('keeps env values with $(...), backticks, quotes and newlines literal in .envrc and the unit env file', async () => {
    await convergedHost();
    await sh('rm -f /tmp/pwned');
    const env = { ...vars.env, EVIL };
    writeVars({ ...vars, env });
    converged = false;

    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    const changes = changesOf(p);
    expect(changes.filter((c) => !c.notifiedBy).map((c) => `${c.action} ${c.resource}`)).toEqual([
      `update file ${INSTALL}/.envrc`,
      `update file ${INSTALL}/harbor.env`,
    ]);
    expect(changes.filter((c) => c.notifiedBy).map((c) => c.task)).toEqual(['direnv allow', 'restart harbor', 'wait for harbor healthy']);

    const a = await timed('apply (env value with shell syntax)', () => apply('--json'));
    expect(a.code, show(a)).toBe(0);
    expect((await th.ssh(HOST, 'test -e /tmp/pwned')).code, '/tmp/pwned exists: a value was run').not.toBe(0);

    const expected: Record<string, string> = {
      ...BASE_ENV,
      EVIL,
      PROVIDER: 'route53',
      RESOLVER: '8.8.8.8:53',
      EMAIL: 'ops@example.com',
      AWS_REGION: 'us-east-1',
      AWS_HOSTED_ZONE_ID: 'Z0123456789E2ETEST',
      AWS_ACCESS_KEY_ID: SECRETS.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRETS.AWS_SECRET_ACCESS_KEY,
    };
    const dumpEnv = `python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'`;

    // .envrc sourced by a POSIX sh, as the harbor user
    const sourced = await sh(`cd / && runuser -u harbor -- sh -c '. ${INSTALL}/.envrc && printenv EVIL'`);
    expect(sourced).toBe(`${EVIL}\n`);
    expect(JSON.parse(await sh(`cd / && runuser -u harbor -- sh -c '. ${INSTALL}/.envrc && exec ${dumpEnv.replace(/'/g, `'\\''`)}'`))).toMatchObject(expected);

    // through direnv itself, which also proves `direnv allow` ran for this content
    const viaDirenv = await sh(`cd ${INSTALL} && runuser -u harbor -- env HOME=${INSTALL} direnv exec ${INSTALL} printenv EVIL`);
    expect(viaDirenv).toBe(`${EVIL}\n`);

    // harbor.env as systemd reads it for harbor.service
    const viaSystemd = await sh(`systemd-run --quiet --wait --pipe -p EnvironmentFile=${INSTALL}/harbor.env printenv EVIL`);
    expect(viaSystemd).toBe(`${EVIL}\n`);
    expect(JSON.parse(await sh(`systemd-run --quiet --wait --pipe -p EnvironmentFile=${INSTALL}/harbor.env ${dumpEnv}`))).toMatchObject(expected);

    // and compose was started again with it
    const ups = (await dockerCalls(th, HOST)).filter((c) => composeCommand(c)?.sub === 'up');
    expect(ups.at(-1)!.env).toContain('EVIL');
    expect((await th.ssh(HOST, 'test -e /tmp/pwned')).code, '/tmp/pwned exists: a value was run').not.toBe(0);
    converged = true;
    await stateRecord();
  });

  it('fails the health wait with an error that names the unhealthy component', async () => {
    await convergedHost();
    await setUnhealthy(th, HOST, ['jobservice']);
    // any change that restarts Harbor; a short wait
    writeVars({ ...vars, env: { ...vars.env, MARK: 'unhealthy-run' }, healthTimeout: 5 });
    converged = false;
    const t0 = Date.now();
    const a = await timed('apply with jobservice unhealthy (5 s health timeout)', () => apply());
    const secs = (Date.now() - t0) / 1000;
    expect(a.code, show(a)).toBe(1);
    const out = a.stdout + a.stderr;
    const failed = out.split('\n').filter((l) => /FAILED/.test(l)).join('\n');
    expect(failed, show(a)).toContain(healthUrl(vars.port));
    expect(failed, show(a)).toMatch(/not healthy after 5s/);
    expect(failed, show(a)).toMatch(/jobservice \(unhealthy/);
    expect(failed, show(a)).not.toMatch(/\bcore \(|registry \(/);
    expect(secs).toBeGreaterThanOrEqual(5);
    expect(secs).toBeLessThan(60);

    // Harbor comes up slowly this time (core unhealthy for the first 2 health checks): the wait rides it out
    await setUnhealthy(th, HOST, ['core 2req']);
    const reqBefore = Number((await sh('grep -c "GET /api/v2.0/health" /var/log/harbor-double-http.log || true')).trim());
    const { MARK: _m, ...env } = vars.env;
    writeVars({ ...vars, env, healthTimeout: 60 });
    const b = await timed('apply while Harbor starts slowly', () => apply());
    expect(b.code, show(b)).toBe(0);
    const reqAfter = Number((await sh('grep -c "GET /api/v2.0/health" /var/log/harbor-double-http.log || true')).trim());
    expect(reqAfter - reqBefore, 'health polls: two while core was starting, then the healthy one').toBeGreaterThanOrEqual(3);
    expect(await health(vars.port)).toMatchObject({ status: 'healthy' });
    await setUnhealthy(th, HOST, []);
    converged = true;
  });

  it('backs up acme.json to the controller once Traefik obtained a certificate; then the plan is empty', async () => {
    await issueAndBackUp();
    // Traefik renews: the changed file is backed up again, as an update
    await sh(`python3 -c 'import json; p="${ACME_JSON}"; d=json.load(open(p)); d["acme"]["Certificates"][0]["certificate"] += "cmVuZXdlZA=="; json.dump(d, open(p, "w"))'`);
    const p = await plan('--json', '--detailed-exitcode');
    expect(p.code, show(p)).toBe(2);
    expect(changesOf(p).map((c) => `${c.action} ${c.resource}`)).toEqual([`update backup ${ACME_JSON}`]);
    const a = await apply('--json');
    expect(a.code, show(a)).toBe(0);
    expect(createHash('sha256').update(readFileSync(acmeBackupPath())).digest('hex')).toBe((await sh(`sha256sum ${ACME_JSON}`)).split(' ')[0]);
    acmeBackedUp = createHash('sha256').update(readFileSync(acmeBackupPath())).digest('hex');
    expect((await plan('--detailed-exitcode')).code).toBe(0);
  });

  it('refuses at plan time a host whose docker has no working compose, naming the check and the remedy', async () => {
    await convergedHost();
    // the double's `docker compose version` fails, as on a host with the engine but without the compose plugin
    await sh('echo version > /etc/harbor-double/fail');
    try {
      const p = await plan();
      expect(p.code, show(p)).toBe(1);
      expect(p.stdout, show(p)).toMatch(new RegExp(`^${INV_HOST}: FAILED: \\S*roles/harbor_host/tasks/main\\.yml:15:3: preflight`, 'm'));
      expect(p.stdout, show(p)).toContain(
        `roles/harbor_host/tasks/main.yml:15:3: preflight on ${INV_HOST}: failed check(s): \`/usr/bin/docker compose version\` (install Docker Engine with the compose plugin, or set harbor.docker.install: true)`,
      );
    } finally {
      await sh('rm -f /etc/harbor-double/fail');
    }
    expect((await plan('--detailed-exitcode')).code).toBe(0);
  });

  it('rebuilds a bare host in one apply: the same files byte for byte (but prepare\'s fresh secrets), the ACME state restored, healthy', async () => {
    if (!acmeBackedUp) await issueAndBackUp();
    // the host as it was, converged with the base spec
    writeVars(BASE_VARS);
    const settle = await apply();
    expect(settle.code, show(settle)).toBe(0);
    expect((await plan('--detailed-exitcode')).code).toBe(0);
    const before = await snapshot();
    expect(before[ACME_JSON]).toMatchObject({ type: 'file', mode: '0o600', uid: 0, sha256: acmeBackedUp });
    const coreEnvBefore = before[ENV_FILES[0]!];

    await bareHost();
    // a Traefik that finds no acme.json would ask the CA for a new certificate
    await setAcmeIssue(th, HOST, true);
    writeVars(BASE_VARS);
    const a = await timed('disaster rebuild: one apply on a bare host', () => apply('--json'));
    expect(a.code, show(a)).toBe(0);
    const changes = changesOf(a);
    // acme.json went back before Harbor (and Traefik) started
    const restored = changes.findIndex((c) => c.resource === `file ${ACME_JSON}`);
    const started = changes.findIndex((c) => c.task === 'restart harbor');
    expect(restored, 'acme.json restored').toBeGreaterThanOrEqual(0);
    expect(changes[restored]).toMatchObject({ module: 'restore', action: 'create', sensitive: true, status: 'done' });
    expect(restored).toBeLessThan(started);

    const now = await snapshot();
    // not a comparison of two empty trees
    expect(Object.keys(now).length).toBeGreaterThan(30);
    for (const p of [`${INSTALL}/harbor.yml`, `${INSTALL}/.envrc`, `${INSTALL}/docker-compose.yml`, '/etc/systemd/system/harbor.service', ACME_JSON, ...ENV_FILES]) {
      expect(now[p], p).toMatchObject({ type: 'file' });
    }
    // the same as the host it replaces, acme.json included (but direnv's records of .envrc contents of the past)
    const allowRecords = (x: Snapshot) => Object.keys(x).filter((p) => p.startsWith(DIRENV_ALLOW) && x[p] && (x[p] as Exclude<Entry, null>).type === 'file');
    expect(comparable(now, (p) => p.startsWith(DIRENV_ALLOW))).toEqual(comparable(before, (p) => p.startsWith(DIRENV_ALLOW)));
    expect(allowRecords(now)).toHaveLength(1);
    expect(allowRecords(before)).toContain(allowRecords(now)[0]);
    // and the same as the first apply on a bare host, which had no certificate from the CA yet
    if (firstSnapshot) expect(comparable(now, (p) => p === ACME_JSON)).toEqual(comparable(firstSnapshot));
    // the generated secrets are new (prepare ran on the new host), and nothing else is
    expect((now[ENV_FILES[0]!] as Exclude<Entry, null>).sha256).not.toBe((coreEnvBefore as Exclude<Entry, null>).sha256);
    expect(await prepareRuns()).toBe(1);
    expect(summarizeCalls(await dockerCalls(th, HOST))).toMatchObject({ load: 1, up: 1 });
    // Traefik found its certificate: nothing was asked of the CA
    const events = await traefikEvents(th, HOST);
    expect(events.map((e) => `${e.event} ${e.domain}`)).toEqual([`reuse ${HOSTNAME}`]);
    expect(await health(8080)).toMatchObject({ status: 'healthy' });
    const again = await plan('--detailed-exitcode');
    expect(again.code, show(again)).toBe(0);
    converged = true;
    await stateRecord();
  });

  it('runs on the next apply the handlers that a failed apply left pending (direnv allow, restart)', async () => {
    await convergedHost();
    // the next apply will load the images again, and docker load fails once
    await sh(`rm -f ${INSTALL}/.berth-images-${sha256} && echo load > /etc/harbor-double/fail`);
    writeVars({ ...vars, env: { ...vars.env, PENDING: 'handlers-of-a-failed-run' } });
    converged = false;
    const failed = await apply();
    expect(failed.code, show(failed)).toBe(1);
    expect(failed.stdout, show(failed)).toMatch(/docker load .*\[failed\]/);
    // .envrc and harbor.env were written before the failure
    expect(await sh(`grep PENDING ${INSTALL}/harbor.env`)).toContain('handlers-of-a-failed-run');

    await sh('rm -f /etc/harbor-double/fail');
    const upsBefore = summarizeCalls(await dockerCalls(th, HOST)).up;
    const retry = await timed('apply after a failed apply', () => apply());
    expect(retry.code, show(retry)).toBe(0);
    // direnv accepts the new .envrc, and Harbor runs with the new harbor.env
    const r = await th.ssh(HOST, `cd ${INSTALL} && runuser -u harbor -- env HOME=${INSTALL} direnv exec ${INSTALL} printenv PENDING`);
    expect.soft(r.stderr, 'direnv allow never ran for the .envrc of the failed apply').not.toContain('is blocked');
    expect.soft(r.stdout, 'direnv did not load the .envrc of the failed apply').toBe('handlers-of-a-failed-run\n');
    const calls = await dockerCalls(th, HOST);
    expect.soft(summarizeCalls(calls).up, 'harbor.service was not restarted for the harbor.env of the failed apply').toBe(upsBefore + 1);
    expect.soft(calls.filter((c) => composeCommand(c)?.sub === 'up').at(-1)!.env, 'compose runs without the new harbor.env').toContain('PENDING');
    // the host's files match the spec either way: the next test can go on from here
    converged = true;
  });

  it('never shows the AWS secret (or any other secret) in berth output or the state record', async () => {
    // any applied host will do: it needs the state record and the env files
    if ((await th.ssh(HOST, `test -f ${STATE_RECORD} && test -f ${INSTALL}/harbor.env`)).code !== 0) await convergedHost();
    await stateRecord();
    // the secret is really in use on the host, so its absence from the output means something
    expect(await sh(`cat ${INSTALL}/harbor.env`)).toContain(SECRETS.AWS_SECRET_ACCESS_KEY);
    expect(await sh(`cat ${INSTALL}/.envrc`)).toContain(SECRETS.AWS_SECRET_ACCESS_KEY);
    expect(berthOutputs.length).toBeGreaterThan(5);
    expect(berthOutputs.filter((o) => o.what.startsWith(STATE_RECORD)).length).toBeGreaterThan(0);
    for (const [name, value] of Object.entries(SECRETS)) {
      const leaks = berthOutputs.filter((o) => o.text.includes(value)).map((o) => o.what);
      expect(leaks, `${name} appears in`).toEqual([]);
    }
    for (const value of acmeSecrets) {
      expect(berthOutputs.filter((o) => o.text.includes(value)).map((o) => o.what), 'a key from acme.json appears in').toEqual([]);
    }
    // also no base64 or hex spelling of the AWS secret
    const b64 = Buffer.from(SECRETS.AWS_SECRET_ACCESS_KEY).toString('base64');
    const hex = Buffer.from(SECRETS.AWS_SECRET_ACCESS_KEY).toString('hex');
    expect(berthOutputs.filter((o) => o.text.includes(b64) || o.text.includes(hex)).map((o) => o.what)).toEqual([]);
    // its sha256 would identify it too
    const digest = createHash('sha256').update(SECRETS.AWS_SECRET_ACCESS_KEY).digest('hex');
    expect(berthOutputs.filter((o) => o.text.includes(digest)).map((o) => o.what)).toEqual([]);
  });
});

// ---------------------------------------------------------------- compose-spec

/** contracts/compose-spec.json in BERTH_CONTRACTS_DIR when it is set, else in ../shared/contracts beside the repository. */
function composeSpecPath(): string | undefined {
  const dir = process.env.BERTH_CONTRACTS_DIR || resolve(REPO, '..', 'shared', 'contracts');
  const p = join(dir, 'compose-spec.json');
  return existsSync(p) ? p : undefined;
}

function compileComposeSpec(path: string) {
  const schema = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  // draft-07; its `$schema` URL has no trailing '#', and it uses annotations ajv does not know
  delete schema.$schema;
  const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false });
  return ajv.compile(schema);
}

function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
}

