// Security on real hosts (issue 8), beyond what engine.test.ts ("secrets")
// and cache-vm.test.ts already check:
// - secrets never on a command line on the host (ps shows those to every
//   user) nor in the state record a killed apply left behind;
// - files that hold a secret and name no mode are 0600, owned as the spec says;
// - host keys are checked by default, against ~/.ssh/known_hosts;
// - spec values full of shell syntax land literally in files, paths, argv,
//   env, chdir and a user's home, and run nothing.
// The results become the "security" section of docs/RELIABILITY.md.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BERTH_BIN, INVENTORY, SpecDir, berth, buildBerth, onHost, removeSpecDirs, show, waitFor, webHost, type BerthRun } from './berth.js';
import { e2eHost, keyFile, resetHosts, testHosts } from './hosts.js';
import { checkSection, ratio, type Row } from '../reliability/table.js';

const th = testHosts();
const HOST = 1;
const tmp: string[] = [];
const rows = new Map<string, { tried: number; outcome: string; kept: string }>();
const add = (what: string, tried: number, outcome: string, kept: string) => rows.set(what, { tried, outcome, kept });

beforeAll(async () => {
  await buildBerth();
});
afterAll(async () => {
  removeSpecDirs();
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
  await th.exec(HOST, ['sh', '-c', 'systemctl stop webapp.service 2>/dev/null; true']);
});

/** A secret_env token and a secret_file password, fresh per run. */
function secrets(spec: SpecDir): { token: string; password: string } {
  const token = `tok-${randomBytes(20).toString('hex')}`;
  const password = `pw-${randomBytes(20).toString('base64url')}`;
  spec.write('secrets/db_password.txt', `${password}\n`, 0o600);
  spec.env.BERTH_E2E_SECRET = token;
  spec.setWebVars({
    app: { greeting: 'hello' },
    secrets: { api_token: { secret_env: 'BERTH_E2E_SECRET' }, db_password: { secret_file: 'secrets/db_password.txt' } },
  });
  return { token, password };
}

// ---------------------------------------------------------------- 1. secrets on the host

describe('secrets on the host', () => {
  it('are on no command line while a command that holds one runs, nor in the record of a killed apply; files without a mode are 0600', async () => {
    const host = th.name(HOST);
    await resetHosts(host);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    const { token, password } = secrets(spec);
    spec.write(
      'roles/holds/tasks/main.yml',
      [
        '- name: a command that holds the token for a while',
        '  command:',
        `    cmd: "t={{ shq secrets.api_token }}; sleep 8; printf '%s' \\"$t\\" | sha256sum | cut -d' ' -f1 > /root/token.sum"`,
        '    creates: /root/token.sum',
        '- name: a secret file with no mode, owned by root',
        '  template: { src: holds.env.hbs, dest: /root/nomode.env }',
        '- name: a secret file with no mode, owned by webapp',
        '  template: { src: holds.env.hbs, dest: /etc/webapp/owned.env, owner: webapp, group: webapp }',
        '',
      ].join('\n'),
    );
    spec.write('roles/holds/templates/holds.env.hbs', 'TOKEN={{ secrets.api_token }}\nPASSWORD={{ secrets.db_password }}\n');
    spec.write('playbooks/holds.yml', '- name: holds\n  hosts: web\n  roles: [webapp, app_secrets, holds]\n');
    const runs: { what: string; text: string }[] = [];
    const keep = (r: BerthRun) => (runs.push({ what: r.cmd, text: r.stdout + r.stderr }), r);

    // a first apply killed right after it journaled: the record it leaves holds no secret
    const killed = await execa('node', [BERTH_BIN, 'apply', '-i', INVENTORY, '-p', 'playbooks/holds.yml'], {
      cwd: spec.root,
      env: { ...process.env, CI: 'true', BERTH_CI: 'false', SSH_AUTH_SOCK: undefined, ...spec.env, BERTH_TEST_KILL_AT: 'journaled' },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 120_000,
    });
    expect(killed.signal).toBe('SIGKILL');
    runs.push({ what: 'apply killed at journaled', text: String(killed.stdout) + String(killed.stderr) });
    const journal = await onHost(host, 'cat /var/lib/berth/state.json');
    expect(JSON.parse(journal)).toMatchObject({ last: { status: 'incomplete' } });
    runs.push({ what: 'state record of the killed apply', text: journal });

    // the apply, and the process table of the host while the command holds the token
    const apply = spec.apply('-p', 'playbooks/holds.yml', '--lock-timeout', '30');
    await waitFor('the command holding the token', async () => ((await th.exec(host, ['pgrep', '-x', 'sleep'])).code === 0 ? true : undefined), 60_000, 50);
    const ps = await onHost(host, 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; tr "\\0" "\\n" < $p/environ 2>/dev/null; done');
    runs.push({ what: 'every command line and environment on the host, mid-command', text: ps });
    expect(ps, 'the process table was read').toMatch(/sleep 8/);
    expect(ps.includes(token), 'the token is on a command line or in an environment on the host').toBe(false);
    const done = keep(await apply);
    expect(done.code, show(done)).toBe(0);
    // the command did get the real value
    expect((await onHost(host, 'cat /root/token.sum')).trim()).toBe(createHash('sha256').update(token).digest('hex'));

    // files with a secret and no mode: 0600, owned as the spec says (root by default)
    expect((await onHost(host, "stat -c '%a %U:%G' /root/nomode.env /etc/webapp/owned.env /etc/webapp/secret.env")).trim().split('\n')).toEqual([
      '600 root:root',
      '600 webapp:webapp',
      '600 webapp:webapp',
    ]);
    expect(await onHost(host, 'cat /root/nomode.env')).toBe(`TOKEN=${token}\nPASSWORD=${password}\n`);

    // outputs of every kind of run, a saved plan, --debug
    keep(await spec.plan('-p', 'playbooks/holds.yml', '--out', 'p.json'));
    runs.push({ what: 'saved plan', text: spec.read('p.json') });
    keep(await spec.plan('-p', 'playbooks/holds.yml', '--json', '--debug'));
    keep(await spec.apply('-p', 'playbooks/holds.yml', '-e', 'secrets_fail=true', '--debug'));
    keep(await spec.run('status', '-p', 'playbooks/holds.yml', '--json'));
    runs.push({ what: 'state record', text: await onHost(host, 'cat /var/lib/berth/state.json') });
    runs.push({ what: 'the host journal', text: await onHost(host, 'journalctl --no-pager -q -o cat') });

    const leaks = runs.filter((r) => r.text.includes(token) || r.text.includes(password)).map((r) => r.what);
    expect(leaks, 'a secret appears in').toEqual([]);
    // files on the host that hold a secret: exactly those meant to
    const grep = await execa('grep', ['-rlF', '--devices=skip', '-e', token, '-e', password, th.upperDir(host)], { reject: false });
    expect(grep.stdout.split('\n').filter(Boolean).map((f) => f.slice(th.upperDir(host).length)).sort()).toEqual(['/etc/webapp/owned.env', '/etc/webapp/secret.env', '/root/nomode.env']);
    add(
      'secrets searched for in berth output (plan, --json, --debug, apply, a failing apply, status), a saved plan, the state record (also a killed apply\'s), the host journal, the process table mid-command, every file on the host',
      runs.length + 1,
      `absent from all but the files meant to hold them: ${ratio(runs.length + 1, runs.length + 1)}`,
      'the command still got the real value',
    );
    add('files holding a secret, with no mode in the spec', 2, 'written 0600, owned as the spec says (root when it says nothing): 2/2', 'content exact');
  });
});

// ---------------------------------------------------------------- 2. host keys by default

describe('host-key checking', () => {
  it('is on by default: no berth_known_hosts and no policy means ~/.ssh/known_hosts, strictly', async () => {
    const home = mkdtempSync(join(tmpdir(), 'berth-e2e-home-'));
    tmp.push(home);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    spec.write(`${INVENTORY}/group_vars/all.yml`, stringify({ berth_user: 'root', berth_key_file: keyFile(), berth_connect_timeout: 10 }));
    const h = e2eHost(HOST);
    const r = await berth(['plan', '-i', INVENTORY], { cwd: spec.root, env: { HOME: home } });
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toContain(`unknown host key for ${h.name} (${h.address})`);
    expect(r.stdout).toContain(`not in ${join(home, '.ssh', 'known_hosts')}; refusing`);
    expect(existsSync(join(home, '.ssh', 'known_hosts')), 'nothing was recorded').toBe(false);
    // with the host's key in that file, the same spec connects
    mkdirSync(join(home, '.ssh'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'known_hosts'), readFileSync(th.knownHostsFile));
    const ok = await berth(['plan', '-i', INVENTORY], { cwd: spec.root, env: { HOME: home } });
    expect(ok.stdout, show(ok)).not.toContain('FAILED');
    add('a host whose key is not known, with no known_hosts setting or policy in the spec', 1, 'refused before anything was sent, naming ~/.ssh/known_hosts: 1/1', 'nothing recorded in known_hosts');
  });
});

// ---------------------------------------------------------------- 3. shell syntax in spec values

// every quoting trap at once; the name has no '/' and no newline (it is a path segment):
// run, it would make /root/pwned-name and /root/pwned-bt
const NAME = `it's "q" $(cd;touch pwned-name) \`cd;touch pwned-bt\`; x & y | z > w`;
const EVIL = [
  `it's "quoted" $(touch /tmp/pwned-1) and \`touch /tmp/pwned-2\`; touch /tmp/pwned-3`,
  `second line $HOME \${PATH} %s \\n back\\slash # not a comment`,
  `  third, with leading spaces  `,
].join('\n');
const HOME_DIR = `/srv/inject/h; $(touch /tmp/pwned-home) \`id\``;

describe('spec values with ;, $(...), backticks, quotes and newlines', () => {
  it('land literally in file names and content, templates, argv, env, chdir and a user\'s home; nothing runs; the next plan is empty', async () => {
    const host = th.name(HOST);
    await resetHosts(host);
    const spec = await SpecDir.create({ hosts: [webHost(HOST)] });
    spec.setWebVars({ evil: EVIL, evil_name: NAME, evil_home: HOME_DIR });
    spec.write(
      'roles/inject/tasks/main.yml',
      [
        '- name: base',
        '  directory: { path: /srv/inject }',
        '- name: a directory named with shell syntax',
        '  directory: { path: "/srv/inject/{{ evil_name }}" }',
        '- name: a file named with it, holding it',
        '  file: { path: "/srv/inject/{{ evil_name }}/{{ evil_name }}.txt", content: "{{ evil }}" }',
        '- name: a template rendering it',
        '  template: { src: evil.hbs, dest: /srv/inject/evil.conf }',
        '- name: argv with it',
        '  command:',
        `    argv: [/bin/sh, -c, 'for a in "$@"; do printf "%s\\0" "$a"; done > /srv/inject/argv', sh, "{{ evil }}", "{{ evil_name }}", "$(touch /tmp/pwned-argv)"]`,
        '    creates: /srv/inject/argv',
        '- name: env and chdir with it',
        '  command:',
        `    cmd: 'printf "%s" "$EVIL" > /srv/inject/env; pwd > /srv/inject/pwd'`,
        '    env: { EVIL: "{{ evil }}" }',
        '    chdir: "/srv/inject/{{ evil_name }}"',
        '    creates: /srv/inject/env',
        '- name: a user whose home is full of it',
        '  user: { name: injtest, home: "{{ evil_home }}", create_home: false, shell: /bin/sh }',
        '',
      ].join('\n'),
    );
    spec.write('roles/inject/templates/evil.hbs', 'value={{ evil }}\nname={{ evil_name }}\n');
    spec.write('playbooks/inject.yml', '- name: inject\n  hosts: web\n  roles: [inject]\n');

    const a = await spec.apply('-p', 'playbooks/inject.yml');
    expect(a.code, show(a)).toBe(0);
    const pwned = "ls /tmp/pwned* /root/pwned* 2>/dev/null || true";
    expect((await onHost(host, pwned)).trim(), 'a value was run as a command').toBe('');
    const up = (p: string) => readFileSync(join(th.upperDir(host), p), 'utf8');
    expect(up(`/srv/inject/${NAME}/${NAME}.txt`)).toBe(EVIL);
    expect(up('/srv/inject/evil.conf')).toBe(`value=${EVIL}\nname=${NAME}\n`);
    expect(up('/srv/inject/argv').split('\0').slice(0, -1)).toEqual([EVIL, NAME, '$(touch /tmp/pwned-argv)']);
    expect(up('/srv/inject/env')).toBe(EVIL);
    expect(up('/srv/inject/pwd')).toBe(`/srv/inject/${NAME}\n`);
    expect((await onHost(host, 'getent passwd injtest | cut -d: -f6')).trim()).toBe(HOME_DIR);

    // facts about those paths are read back exactly: nothing left to do
    const again = await spec.plan('-p', 'playbooks/inject.yml', '--detailed-exitcode');
    expect(again.code, show(again)).toBe(0);
    expect((await onHost(host, pwned)).trim()).toBe('');
    add(
      'spec values with ;, $(...), backticks, quotes and newlines: in a file name and its content, a directory, a template, command argv, env and chdir, a user\'s home',
      7,
      'landed literally, nothing ran, and the next plan was empty: 7/7',
      'no pwned-* marker on the host',
    );
  });
});

// ---------------------------------------------------------------- the table

describe('docs/RELIABILITY.md', () => {
  it('lists the security checks this file made', () => {
    expect([...rows.keys()], 'a test above did not record (it failed)').toHaveLength(4);
    const out: Row[] = [...rows].map(([what, r]) => ({ what, ...r }));
    const msg = checkSection('security', out, 'CI=true npx vitest run test/e2e/security.test.ts');
    expect(msg, msg).toBeUndefined();
  });
});

