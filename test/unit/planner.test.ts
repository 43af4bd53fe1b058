// The planner is pure: these tests build a host program from a small spec and
// hand it facts made by hand (no transport), then look at the changes.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadSpec } from '../../src/spec/load.js';
import { buildProgram, type HostProgram } from '../../src/plan/program.js';
import { carriedNotifier, carriedSince, fingerprint, planHost, SimulatedState } from '../../src/plan/planner.js';
import { renderJson, renderText } from '../../src/plan/render.js';
import { Secret } from '../../src/secrets/secret.js';
import type { RunResult } from '../../src/engine.js';
import type { Change, Facts } from '../../src/types.js';
import {
  REPO,
  baseDirs,
  berthError,
  buildTree,
  dirFact,
  factsFor,
  fileFact,
  groupFact,
  minimalTree,
  programOf,
  unitFact,
  userFact,
} from './helpers.js';

/** "create file /x" for each change: the shape of a plan at a glance. */
const outline = (changes: Change[]) => changes.map((c) => `${c.action} ${c.resource}`);

const attrsOf = (c: Change | undefined) => Object.fromEntries((c?.attrs ?? []).map((a) => [a.name, a.before === undefined ? a.after : [a.before, a.after]]));

function plan(program: HostProgram, present: Record<string, unknown> = {}): Change[] {
  return planHost(program, factsFor(program, present)).changes;
}

/** What apply would get for a change (the module's own payload). */
const payloadOf = <T>(c: Change | undefined) => (c?.payload as { data: T }).data;

// ---------------------------------------------------------------- simulated state

describe('SimulatedState', () => {
  it('reads facts, lets planned changes overlay them, and never writes the facts', () => {
    const facts: Facts = new Map([['file:/etc', dirFact()]]);
    const s = new SimulatedState(facts);
    expect(s.has('file:/etc')).toBe(true);
    expect(s.has('file:/opt')).toBe(false);
    s.set('file:/etc', { exists: false });
    s.set('file:/opt', dirFact());
    expect(s.get('file:/etc')).toEqual({ exists: false });
    expect(s.has('file:/opt')).toBe(true);
    expect(facts.get('file:/etc')).toEqual(dirFact());
    expect(facts.has('file:/opt')).toBe(false);
  });
});

// ---------------------------------------------------------------- dependent tasks

describe('later tasks see what earlier planned changes will make', () => {
  it('a file inside a directory created earlier in the same plan', () => {
    const p = programOf(`
      - name: app dir
        directory: { path: /opt/app, mode: "0750" }
      - name: app config
        file: { path: /opt/app/app.conf, content: "port = 8080\\n", mode: "0640" }
    `);
    const changes = plan(p, baseDirs('/opt'));
    expect(outline(changes)).toEqual(['create directory /opt/app', 'create file /opt/app/app.conf']);
    expect(attrsOf(changes[0])).toEqual({ mode: '0750' });
    expect(attrsOf(changes[1]).mode).toBe('0640');
    expect(changes[1]!.diff).toContain('+port = 8080');
    expect(changes.map((c) => c.id)).toEqual(['h1#1', 'h1#2']);
  });

  it('a directory whose ancestors are missing creates them, and a file in one of them is then allowed', () => {
    const p = programOf(`
      - name: deep dir
        directory: { path: /srv/app/data/cache }
      - name: file in a created ancestor
        file: { path: /srv/app/README, content: "hi\\n" }
    `);
    const changes = plan(p);
    expect(outline(changes)).toEqual(['create directory /srv/app/data/cache', 'create file /srv/app/README']);
    expect(attrsOf(changes[0])).toEqual({ parents: '/srv /srv/app /srv/app/data' });
    expect(payloadOf<{ parents: string[] }>(changes[0]).parents).toEqual(['/srv', '/srv/app', '/srv/app/data']);
  });

  it('chown to a user created earlier in the same plan (and to the group useradd -U makes)', () => {
    const p = programOf(`
      - name: app user
        user: { name: app, uid: 2000, home: /opt/app, create_home: false }
      - name: app dir
        directory: { path: /opt/app, owner: app, group: app, mode: "0750" }
      - name: app config
        file: { path: /opt/app/app.conf, content: "x\\n", owner: app, group: app }
    `);
    const changes = plan(p, baseDirs('/opt'));
    expect(outline(changes)).toEqual(['create user app', 'create directory /opt/app', 'create file /opt/app/app.conf']);
    expect(attrsOf(changes[0])).toEqual({ uid: 2000, group: 'app', home: '/opt/app', shell: '/bin/sh' });
    expect(payloadOf<{ argv: string[] }>(changes[0]).argv).toEqual(['useradd', '-u', '2000', '-U', '-d', '/opt/app', '-s', '/bin/sh', '-M', '--', 'app']);
    expect(attrsOf(changes[1])).toEqual({ owner: 'app', group: 'app', mode: '0750' });
  });

  it('a user whose home is created by useradd: a file in the home needs no directory task', () => {
    const p = programOf(`
      - name: deploy user
        user: { name: deploy }
      - name: authorized keys
        file: { path: /home/deploy/.profile, content: "umask 027\\n", owner: deploy }
    `);
    expect(outline(plan(p, baseDirs('/home')))).toEqual(['create user deploy', 'create file /home/deploy/.profile']);
  });

  it('a service whose unit file is written earlier: daemon-reload planned once, before the first service change', () => {
    const p = programOf(`
      - name: unit file
        file:
          path: /etc/systemd/system/app.service
          content: "[Service]\\nExecStart=/usr/local/bin/app\\n"
      - name: app running
        service: { name: app, state: started, enabled: true }
      - name: other running
        service: { name: other.service, state: started }
    `);
    const changes = plan(p, {
      ...baseDirs('/etc/systemd/system'),
      'unit:other.service': unitFact('inactive', 'enabled'),
    });
    expect(outline(changes)).toEqual(['create file /etc/systemd/system/app.service', 'update service app.service', 'update service other.service']);
    expect(changes[1]!.attrs[0]).toEqual({ name: 'daemon-reload', after: true });
    expect(attrsOf(changes[1])).toEqual({ 'daemon-reload': true, active: ['inactive', 'active'], enabled: ['disabled', 'enabled'] });
    expect(payloadOf<{ daemonReload: boolean; verbs: string[] }>(changes[1])).toEqual({ unit: 'app.service', daemonReload: true, verbs: ['start', 'enable'] });
    // the reload already happened for the first service
    expect(payloadOf<{ daemonReload: boolean }>(changes[2]).daemonReload).toBe(false);
    expect(attrsOf(changes[2])).toEqual({ active: ['inactive', 'active'] });
  });

  // BUG (src/modules/service.ts plan): when the unit file changes but the service
  // is already started and enabled, the service task returns no change, so the
  // daemon-reload the module promises ("berth already does it when this plan
  // changed a unit file") is never planned and systemd keeps the old unit.
  it('a changed unit file of a service already in its state still gets a daemon-reload', () => {
    const p = programOf(`
      - name: unit file
        file: { path: /etc/systemd/system/app.service, content: "[Service]\\nExecStart=/usr/local/bin/app --v2\\n" }
      - name: app running
        service: { name: app, state: started, enabled: true }
    `);
    const changes = plan(p, {
      ...baseDirs('/etc/systemd/system'),
      'file:/etc/systemd/system/app.service': fileFact('[Service]\nExecStart=/usr/local/bin/app\n'),
      'unit:app.service': unitFact('active', 'enabled'),
    });
    expect(outline(changes)).toEqual(['update file /etc/systemd/system/app.service', 'update service app.service']);
    expect(payloadOf<{ daemonReload: boolean }>(changes[1]).daemonReload).toBe(true);
  });

  it('a unit file that does not change plans no daemon-reload', () => {
    const unit = '[Service]\nExecStart=/usr/local/bin/app\n';
    const p = programOf(`
      - name: unit file
        file: { path: /etc/systemd/system/app.service, content: "${unit.replace(/\n/g, '\\n')}" }
      - name: app running
        service: { name: app, state: started }
    `);
    const changes = plan(p, {
      ...baseDirs('/etc/systemd/system'),
      'file:/etc/systemd/system/app.service': fileFact(unit),
      'unit:app.service': unitFact('failed', 'enabled'),
    });
    expect(outline(changes)).toEqual(['update service app.service']);
    expect(payloadOf<{ daemonReload: boolean }>(changes[0]).daemonReload).toBe(false);
  });

  it('a command with `creates` that an earlier command creates is skipped', () => {
    const p = programOf(`
      - name: build
        command: { cmd: make install, chdir: /src/app, creates: /usr/local/bin/app }
      - name: build again (same guard)
        command: { cmd: make install-extra, creates: /usr/local/bin/app }
    `);
    const changes = plan(p);
    expect(outline(changes)).toEqual(['run command make install']);
    expect(attrsOf(changes[0])).toEqual({ cmd: 'make install', chdir: '/src/app' });
  });

  it('a command with `creates` that an earlier file task writes is skipped; one whose path exists already too', () => {
    const p = programOf(`
      - name: marker
        file: { path: /etc/app.done, content: "" }
      - name: init once
        command: { cmd: app init, creates: /etc/app.done }
      - name: seed once
        command: { argv: [app, seed], creates: /var/lib/app/seeded }
      - name: cleanup when there is something to clean
        command: { cmd: rm -f /tmp/app.lock, removes: /tmp/app.lock }
    `);
    const changes = plan(p, { ...baseDirs('/etc'), 'file:/var/lib/app/seeded': fileFact('') });
    expect(outline(changes)).toEqual(['create file /etc/app.done']);
  });
});

// ---------------------------------------------------------------- refusals

describe('refusals at plan time (exact one-line errors at the task)', () => {
  it('a file whose parent directory is missing and not created by an earlier task', () => {
    const p = programOf(`
      - name: app config
        file: { path: /opt/app/app.conf, content: "x" }
    `);
    const err = berthError(() => plan(p, baseDirs('/opt')));
    expect(err.format()).toBe(
      'playbooks/site.yml:4:7: parent directory /opt/app of /opt/app/app.conf does not exist on h1 and no earlier task creates it (add a directory task for /opt/app before this one)',
    );
  });

  it('a parent that is a regular file', () => {
    const p = programOf(`
      - name: app config
        file: { path: /etc/app/app.conf, content: "x" }
    `);
    const err = berthError(() => plan(p, { ...baseDirs('/etc'), 'file:/etc/app': fileFact('oops') }));
    expect(err.format()).toBe('playbooks/site.yml:4:7: /etc/app on h1 is not a directory');
  });

  it('an owner that does not exist and is not created earlier', () => {
    const p = programOf(`
      - name: first task
        directory: { path: /opt }
      - name: app dir
        directory: { path: /opt/app, owner: app }
    `);
    const err = berthError(() => plan(p, baseDirs('/opt')));
    expect(err.format()).toBe('playbooks/site.yml:6:7: owner "app" does not exist on h1 and no earlier task creates it (add a user task before this one)');
  });

  it('a group that does not exist (file group, user supplementary groups)', () => {
    const file = programOf(`
      - name: conf
        file: { path: /etc/app.conf, content: "", group: appadm }
    `);
    expect(berthError(() => plan(file, baseDirs('/etc'))).format()).toBe(
      'playbooks/site.yml:4:7: group "appadm" does not exist on h1 and no earlier task creates it (add a group (or user) task before this one)',
    );
    const user = programOf(`
      - name: app user
        user: { name: app, groups: [docker] }
    `);
    expect(berthError(() => plan(user)).format()).toBe(
      'playbooks/site.yml:4:7: group "docker" does not exist on h1 and no earlier task creates it (add a group task before this user)',
    );
  });

  it('a uid used by another user on the host', () => {
    const p = programOf(`
      - name: app user
        user: { name: app, uid: 2000 }
    `);
    const err = berthError(() => plan(p, { 'uid:2000': { name: 'postgres' } }));
    expect(err.format()).toBe('playbooks/site.yml:4:7: uid 2000 is already used by user "postgres" on h1 (choose another uid, or remove or renumber that user)');
  });

  it('a uid the spec gives to two users is refused before any host is asked (no program is built)', () => {
    const err = berthError(() =>
      programOf(`
      - name: first
        user: { name: alpha, uid: 3000 }
      - name: second
        user: { name: beta, uid: 3000 }
    `),
    );
    expect(err.format()).toBe('playbooks/site.yml:6:7: uid 3000 is given to user "beta" here and to user "alpha" at playbooks/site.yml:4:7 (each user needs its own uid)');
  });

  it('an existing user with another uid is refused unless force: true', () => {
    const tasks = (force: boolean) => `
      - name: app user
        user: { name: app, uid: 2000${force ? ', force: true' : ''} }
    `;
    const present = { 'user:app': userFact('app', 1500), 'group:app': groupFact('app', 1500) };
    expect(berthError(() => plan(programOf(tasks(false)), present)).format()).toBe(
      'playbooks/site.yml:4:7: user "app" exists on h1 with uid 1500, the spec wants 2000 (set force: true to renumber it with usermod (then chown its files), or remove the user first (userdel app))',
    );
    const changes = plan(programOf(tasks(true)), present);
    expect(outline(changes)).toEqual(['update user app']);
    expect(attrsOf(changes[0])).toEqual({ uid: [1500, 2000] });
    expect(payloadOf<{ argv: string[] }>(changes[0]).argv).toEqual(['usermod', '-u', '2000', '--', 'app']);
  });

  it('an existing group with another gid is refused unless force: true, and a gid clash is refused', () => {
    const g = (extra: string) => programOf(`
      - name: app group
        group: { name: app, gid: 2000${extra} }
    `);
    expect(berthError(() => plan(g(''), { 'group:app': groupFact('app', 1999) })).format()).toBe(
      'playbooks/site.yml:4:7: group "app" exists on h1 with gid 1999, the spec wants 2000 (set force: true to change it with groupmod (files keep the old gid), or change the spec)',
    );
    expect(outline(plan(g(', force: true'), { 'group:app': groupFact('app', 1999) }))).toEqual(['update group app']);
    expect(berthError(() => plan(g(''), { 'gid:2000': { name: 'docker' } })).format()).toBe(
      'playbooks/site.yml:4:7: gid 2000 is already used by group "docker" on h1 (choose another gid or rename that group)',
    );
  });

  it('a service whose unit is neither installed nor written earlier', () => {
    const p = programOf(`
      - name: app running
        service: { name: app, state: started }
    `);
    expect(berthError(() => plan(p)).format()).toBe(
      'playbooks/site.yml:4:7: unit app.service is not installed on h1 and no earlier task installs it (install the package that ships it, or write /etc/systemd/system/app.service in an earlier task)',
    );
  });

  it('a file path that is a directory on the host', () => {
    const p = programOf(`
      - name: conf
        file: { path: /etc/app, content: "x" }
    `);
    expect(berthError(() => plan(p, baseDirs('/etc', '/etc/app'))).format()).toBe(
      'playbooks/site.yml:4:7: /etc/app on h1 is a directory, not a regular file (remove it first, or choose another path)',
    );
  });

  it('an error in a role task points at the role`s tasks file', () => {
    const { programs } = buildTree(
      minimalTree({
        'roles/app/tasks/main.yml': '# app\n- name: conf\n  file: { path: /opt/app/app.conf, content: x }\n',
        'playbooks/site.yml': '- name: app\n  hosts: app\n  roles: [app]\n',
      }),
    );
    const err = berthError(() => plan(programs[0]!, baseDirs('/opt')));
    expect(err.format()).toMatch(/^roles\/app\/tasks\/main\.yml:2:3: parent directory \/opt\/app of /);
  });
});

// ---------------------------------------------------------------- idempotence

describe('idempotence: facts equal to the desired state give zero changes', () => {
  it('group, user, directory, file, service, apt, command guards', () => {
    const p = programOf(`
      - name: group
        group: { name: app, gid: 2000 }
      - name: user
        user: { name: app, uid: 2000, group: app, groups: [adm], home: /opt/app, shell: /bin/bash, create_home: false }
      - name: dir
        directory: { path: /opt/app, owner: app, group: app, mode: "0750" }
      - name: conf
        file: { path: /opt/app/app.conf, content: "port = 1\\n", owner: app, group: app, mode: "640" }
      - name: packages
        apt: { name: [curl, jq] }
      - name: running
        service: { name: app, state: started, enabled: true }
      - name: once
        command: { cmd: app init, unless: test -e /opt/app/.init }
      - name: absent file
        file: { path: /etc/app.old, state: absent }
    `);
    const present = {
      ...baseDirs('/opt'),
      'group:app': groupFact('app', 2000),
      'gid:2000': { name: 'app' },
      'group:adm': groupFact('adm', 4),
      'user:app': userFact('app', 2000, { groups: ['adm'], home: '/opt/app', shell: '/bin/bash' }),
      'uid:2000': { name: 'app' },
      'file:/opt/app': dirFact('app', 'app', '0750'),
      'file:/opt/app/app.conf': fileFact('port = 1\n', 'app', 'app', '0640'),
      'pkg:curl': { installed: true, version: '8.5.0' },
      'pkg:jq': { installed: true, version: '1.7' },
      'unit:app.service': unitFact('active', 'enabled'),
    };
    const facts = factsFor(p, present);
    for (const k of facts.keys()) if (k.startsWith('guard:')) facts.set(k, { code: 0 });
    expect(planHost(p, facts).changes).toEqual([]);
  });

  it('one attribute off gives exactly that attribute (mode), without a content diff', () => {
    const p = programOf(`
      - name: conf
        file: { path: /etc/app.conf, content: "a\\n", mode: "0600" }
    `);
    const changes = plan(p, { ...baseDirs('/etc'), 'file:/etc/app.conf': fileFact('a\n', 'root', 'root', '0644') });
    expect(outline(changes)).toEqual(['update file /etc/app.conf']);
    expect(changes[0]!.attrs).toEqual([{ name: 'mode', before: '0644', after: '0600' }]);
    expect(changes[0]!.diff).toBeUndefined();
  });

  it('a numeric owner matches by uid', () => {
    const p = programOf(`
      - name: dir
        directory: { path: /srv/data, owner: "10000", group: "10000" }
    `);
    expect(plan(p, { ...baseDirs('/srv'), 'file:/srv/data': dirFact('harbor', 'harbor', '0755', { uid: 10000, gid: 10000 }) })).toEqual([]);
  });

  it('planning is pure: the same facts give the same plan, and the facts are not changed', () => {
    const p = programOf(`
      - name: app dir
        directory: { path: /opt/app }
      - name: conf
        file: { path: /opt/app/a.conf, content: "x\\n" }
    `);
    const facts = factsFor(p, baseDirs('/opt'));
    const before = JSON.stringify([...facts]);
    const a = planHost(p, facts);
    const b = planHost(p, facts);
    const strip = (cs: Change[]) => cs.map(({ payload: _p, ...c }) => c);
    expect(strip(a.changes)).toEqual(strip(b.changes));
    expect(a.fingerprints).toEqual(b.fingerprints);
    expect(JSON.stringify([...facts])).toBe(before);
    expect(facts.get('file:/opt/app')).toEqual({ exists: false });
  });
});

// ---------------------------------------------------------------- handlers

describe('handlers', () => {
  const HANDLERS = `
    - name: reload web
      command: { cmd: nginx -s reload }
    - name: restart app
      service: { name: app, state: restarted }
  `;
  const present = {
    ...baseDirs('/etc'),
    'file:/etc/b.conf': fileFact('b\n'),
    'unit:app.service': unitFact('active', 'enabled'),
  };

  it('run once per play, after the tasks, only when notified by a changing task, with notifiedBy ids', () => {
    const p = programOf(
      `
      - name: a
        file: { path: /etc/a.conf, content: "a\\n" }
        notify: restart app
      - name: b (unchanged)
        file: { path: /etc/b.conf, content: "b\\n" }
        notify: reload web
      - name: c
        file: { path: /etc/c.conf, content: "c\\n" }
        notify: [restart app]
    `,
      { handlers: HANDLERS },
    );
    const changes = plan(p, present);
    expect(outline(changes)).toEqual(['create file /etc/a.conf', 'create file /etc/c.conf', 'run service app.service']);
    expect(changes[0]!.notify).toEqual(['restart app']);
    expect(changes[2]).toMatchObject({ id: 'h1#3', task: 'restart app', notifiedBy: ['h1#1', 'h1#2'] });
    expect(attrsOf(changes[2])).toEqual({ state: 'restarted' });
  });

  it('run in the order they are defined, not the order they were notified', () => {
    const p = programOf(
      `
      - name: a
        file: { path: /etc/a.conf, content: "a\\n" }
        notify: [restart app, reload web]
    `,
      { handlers: HANDLERS },
    );
    expect(plan(p, present).map((c) => c.task)).toEqual(['a', 'reload web', 'restart app']);
  });

  it('answer to their listen names too, and a task skipped by its guard notifies nothing', () => {
    const p = programOf(
      `
      - name: guarded
        command: { cmd: app migrate, creates: /etc/migrated }
        notify: restart app
      - name: conf
        file: { path: /etc/a.conf, content: "a\\n" }
        notify: config changed
    `,
      {
        handlers: `
          - name: restart app
            service: { name: app, state: restarted }
          - name: reload everything
            listen: config changed
            command: { cmd: systemctl reload-or-restart app }
        `,
      },
    );
    const changes = plan(p, { ...present, 'file:/etc/migrated': fileFact('') });
    expect(outline(changes)).toEqual(['create file /etc/a.conf', 'run command systemctl reload-or-restart app']);
    expect(changes[1]!.notifiedBy).toEqual(['h1#1']);
  });

  it('with no changing task, no handler runs', () => {
    const p = programOf(
      `
      - name: b (unchanged)
        file: { path: /etc/b.conf, content: "b\\n" }
        notify: [reload web, restart app]
    `,
      { handlers: HANDLERS },
    );
    expect(plan(p, present)).toEqual([]);
  });

  it('a handler a failed apply left pending runs on the next plan, even with nothing else to change', () => {
    const p = programOf(
      `
      - name: b (unchanged)
        file: { path: /etc/b.conf, content: "b\\n" }
        notify: reload web
    `,
      { handlers: HANDLERS },
    );
    const since = '2026-11-30T10:00:00.000Z';
    const changes = planHost(p, factsFor(p, present), [
      { play: p.segments[0]!.play, handler: 'restart app', since },
      { play: 'another play', handler: 'reload web', since },
    ]).changes;
    expect(outline(changes)).toEqual(['run service app.service']);
    expect(changes[0]!.notifiedBy).toEqual([carriedNotifier(since)]);
    expect(carriedSince(changes[0]!.notifiedBy![0]!)).toBe(since);
  });

  it('each play runs its own handlers once, after its own tasks', () => {
    const { programs } = buildTree(
      minimalTree({
        'playbooks/site.yml': `
          - name: first
            hosts: app
            tasks:
              - { name: a1, file: { path: /etc/a1, content: "1" }, notify: bump }
              - { name: a2, file: { path: /etc/a2, content: "2" }, notify: bump }
            handlers:
              - { name: bump, command: { cmd: echo first } }
          - name: second
            hosts: all
            tasks:
              - { name: b1, file: { path: /etc/b1, content: "3" }, notify: bump }
            handlers:
              - { name: bump, command: { cmd: echo second } }
        `,
      }),
    );
    const changes = plan(programs[0]!, baseDirs('/etc'));
    expect(changes.map((c) => `${c.play}: ${c.task}`)).toEqual(['first: a1', 'first: a2', 'first: bump', 'second: b1', 'second: bump']);
    expect(changes[2]!.notifiedBy).toEqual(['h1#1', 'h1#2']);
    expect(changes[4]!.notifiedBy).toEqual(['h1#4']);
    expect(changes[4]!.resource).toBe('command echo second');
  });
});

// ---------------------------------------------------------------- secrets

describe('secrets in plans', () => {
  const ENV = 'BERTH_UNIT_PLAN_DB_PASSWORD';
  const NEW = 'n3w-Passw0rd-for-db';
  const OLD = 'old-Passw0rd-123';
  beforeEach(() => {
    process.env[ENV] = NEW;
  });
  afterEach(() => {
    delete process.env[ENV];
  });

  const program = () =>
    buildTree(
      minimalTree({
        'inventories/t/group_vars/all.yml': `db_password: { secret_env: ${ENV} }\ndb_port: 5432\n`,
        'roles/db/tasks/main.yml': '- name: db config\n  template: { src: db.conf.hbs, dest: /etc/app/db.conf, mode: "0600" }\n  notify: restart app\n',
        'roles/db/handlers/main.yml': '- name: restart app\n  command: { argv: [systemctl, restart, app] }\n',
        'roles/db/templates/db.conf.hbs': 'user = app\npassword = {{ db_password }}\nport = {{ db_port }}\n',
        'playbooks/site.yml': '- name: app\n  hosts: app\n  roles: [db]\n',
      }),
    ).programs[0]!;

  it('a file rendered with a Secret: the diff shows (sensitive), never the value, old or new', () => {
    const changes = plan(program(), { ...baseDirs('/etc/app'), 'file:/etc/app/db.conf': fileFact(`user = app\npassword = ${OLD}\nport = 5433\n`) });
    expect(outline(changes)).toEqual(['update file /etc/app/db.conf', 'run command systemctl restart app']);
    const c = changes[0]!;
    expect(c.sensitive).toBe(true);
    // in a file that holds secrets, removed lines are never shown (one could hold an old secret)
    expect(c.diff).toContain('-(old line not shown: this file holds secrets)');
    expect(c.diff).not.toContain('-port = 5433');
    expect(c.diff).toContain('+port = 5432');
    expect(c.diff).toContain(' password = (sensitive)');
    expect(c.diff).not.toContain(OLD);
    expect(c.diff).not.toContain(NEW);
    expect(c.attrs).toContainEqual({ name: 'content', before: '(sensitive)', after: '(sensitive)' });
    // the payload (never printed) holds the real content for apply
    const content = payloadOf<{ content: unknown }>(c).content;
    expect(content).toBeInstanceOf(Secret);
    expect((content as Secret).reveal()).toBe(`user = app\npassword = ${NEW}\nport = 5432\n`);
  });

  it('when only the secret changed, the diff says so without showing a line of it', () => {
    const changes = plan(program(), { ...baseDirs('/etc/app'), 'file:/etc/app/db.conf': fileFact(`user = app\npassword = ${OLD}\nport = 5432\n`, 'root', 'root', '0600') });
    expect(outline(changes)).toEqual(['update file /etc/app/db.conf', 'run command systemctl restart app']);
    expect(changes[0]!.diff).toBe('(sensitive content changed)\n');
  });

  // An old line is matched to the new one only when the text around the secret is
  // the same; when the line also changed elsewhere (here the port) the old
  // password must still not show (redact() cannot catch it: berth never saw it).
  it('an old line holding another password is masked even when the rest of that line changed too', () => {
    const p = programOf(
      `
      - name: dsn
        file: { path: /etc/app.env, content: "DATABASE_URL=postgres://app:{{ db_password }}@db:5432/app\\n" }
    `,
      { vars: `db_password: { secret_env: ${ENV} }` },
    );
    const [c] = plan(p, { ...baseDirs('/etc'), 'file:/etc/app.env': fileFact(`DATABASE_URL=postgres://app:${OLD}@db:5433/app\n`) });
    expect(c!.diff).toContain('+DATABASE_URL=postgres://app:(sensitive)@db:5432/app');
    expect(c!.diff).not.toContain(OLD);
  });

  it('a new file shows its non-secret lines and masks the secret', () => {
    const changes = plan(program(), baseDirs('/etc/app'));
    expect(changes[0]!.diff).toContain('+password = (sensitive)');
    expect(changes[0]!.diff).toContain('+user = app');
    expect(changes[0]!.diff).not.toContain(NEW);
  });

  it('the same content already on the host: no change, no handler', () => {
    expect(
      plan(program(), { ...baseDirs('/etc/app'), 'file:/etc/app/db.conf': fileFact(`user = app\npassword = ${NEW}\nport = 5432\n`, 'root', 'root', '0600') }),
    ).toEqual([]);
  });

  it('renderJson has no payload and no secret value; renderText neither', () => {
    const p = program();
    const hp = planHost(p, factsFor(p, { ...baseDirs('/etc/app'), 'file:/etc/app/db.conf': fileFact(`user = app\npassword = ${OLD}\nport = 5433\n`) }));
    // the changes themselves are display-safe before any last-resort redaction
    const bare = JSON.stringify(hp.changes.map(({ payload: _p, ...c }) => c));
    expect(bare).not.toContain(NEW);
    expect(bare).not.toContain(OLD);
    const result: RunResult = {
      kind: 'plan',
      createdAt: '2026-01-01T00:00:00.000Z',
      berth: '0.0.0-test',
      options: { root: '/spec', inventory: 'inventories/t', playbook: 'playbooks/site.yml', extraVars: [] },
      spec: {},
      hosts: [{ host: 'h1', changes: hp.changes, fingerprints: hp.fingerprints, notes: [] }],
    };
    const json = renderJson(result);
    const parsed = JSON.parse(json) as { format: string; hosts: { changes: Record<string, unknown>[]; fingerprints: Record<string, string> }[]; summary: Record<string, number> };
    expect(parsed.format).toBe('berth-plan/1');
    expect(parsed.hosts[0]!.changes).toHaveLength(2);
    for (const c of parsed.hosts[0]!.changes) expect(c).not.toHaveProperty('payload');
    expect(json).not.toContain('"payload"');
    expect(json).not.toContain(NEW);
    expect(json).not.toContain(OLD);
    expect(json).toContain('password = (sensitive)');
    expect(parsed.summary).toMatchObject({ create: 0, update: 1, delete: 0, run: 1, changedHosts: 1, hosts: 1 });
    expect(parsed.hosts[0]!.fingerprints).toEqual(hp.fingerprints);
    const text = renderText(result, { color: false });
    expect(text).toContain('~ file /etc/app/db.conf');
    expect(text).toContain('(handler "restart app", notified by h1#1)');
    expect(text).not.toContain(NEW);
    expect(text).not.toContain(OLD);
  });

  it('a command with a secret argument is marked sensitive and shows (sensitive)', () => {
    const p = programOf(
      `
      - name: login
        command: { argv: [registry-login, --password, "{{ token }}"] }
    `,
      { vars: `token: { secret_env: ${ENV} }` },
    );
    const [c] = plan(p);
    expect(c!.sensitive).toBe(true);
    expect(c!.resource).toBe('command registry-login --password (sensitive)');
    expect(JSON.stringify(c!.attrs)).not.toContain(NEW);
  });
});

// ---------------------------------------------------------------- fingerprints

describe('fingerprints', () => {
  const p = () =>
    programOf(`
      - name: conf
        file: { path: /etc/app.conf, content: "a\\n" }
      - name: user
        user: { name: app }
    `);

  it('cover every fact, by key, as sha256 of the fact', () => {
    const prog = p();
    const facts = factsFor(prog, baseDirs('/etc'));
    const { fingerprints } = planHost(prog, facts);
    expect(Object.keys(fingerprints)).toEqual([...facts.keys()].sort());
    expect(fingerprints['file:/etc']).toBe(fingerprint(dirFact()));
    expect(fingerprints['file:/etc']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('change when a fact changes, and only for that fact', () => {
    const prog = p();
    const a = planHost(prog, factsFor(prog, { ...baseDirs('/etc'), 'file:/etc/app.conf': fileFact('a\n') })).fingerprints;
    const b = planHost(prog, factsFor(prog, { ...baseDirs('/etc'), 'file:/etc/app.conf': fileFact('b\n') })).fingerprints;
    const differ = Object.keys(a).filter((k) => a[k] !== b[k]);
    expect(differ).toEqual(['file:/etc/app.conf']);
    // the same facts give the same fingerprints
    expect(planHost(prog, factsFor(prog, { ...baseDirs('/etc'), 'file:/etc/app.conf': fileFact('a\n') })).fingerprints).toEqual(a);
  });
});

// ---------------------------------------------------------------- the example spec

describe('the example spec (inventories/example, playbooks/site.yml)', () => {
  // the example's secrets come from the environment; its offline installer is
  // built by the demo, so here the VM "downloads" it instead
  const SECRETS = ['HARBOR_ADMIN_PASSWORD', 'HARBOR_DB_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'OIDC_CLIENT_SECRET'];
  beforeAll(() => SECRETS.forEach((k, i) => (process.env[k] ??= `example-secret-${i}-value`)));
  const spec = () =>
    loadSpec({ root: REPO, inventory: 'inventories/example', extraVars: ['harbor={installer: {source: url, url: "https://downloads.example.com/harbor.tgz"}}'] });
  const hostRole = (cs: Change[]) => cs.filter((c) => c.role === 'harbor_host');
  // a bare Debian host: root, and the directories the later roles write into
  const ROOT_HOST = { 'user:root': userFact('root', 0), 'group:root': groupFact('root', 0), ...baseDirs('/etc/systemd/system'), ...baseDirs('/var/cache') };
  const CA = readFileSync(join(REPO, 'inventories/example/files/harbor-ca.crt'));

  // the dex client's values repository is a controller fact these host-only plans do not gather
  const noDex = { skipTags: ['dex_client'] };

  it('on an empty cache VM: the harbor group, user and directories', () => {
    const s = spec();
    const prog = buildProgram(s, 'harbor-cache-01', noDex);
    const all = plan(prog, ROOT_HOST);
    const changes = hostRole(all);
    expect(outline(changes)).toEqual(['create group harbor', 'create user harbor', 'create directory /opt/harbor', 'create directory /data']);
    expect(all.slice(0, 4)).toEqual(changes);
    expect(all.every((c) => c.play === 'Harbor cache VM')).toBe(true);
    expect(attrsOf(changes[0])).toEqual({ gid: 10000 });
    expect(attrsOf(changes[1])).toEqual({ uid: 10000, group: 'harbor', home: '/opt/harbor', shell: '/bin/bash' });
    expect(payloadOf<{ argv: string[] }>(changes[1]).argv).toEqual(['useradd', '-u', '10000', '-g', 'harbor', '-d', '/opt/harbor', '-s', '/bin/bash', '-M', '--', 'harbor']);
    expect(attrsOf(changes[2])).toEqual({ owner: 'harbor', group: 'harbor', mode: '0750', parents: '/opt' });
    expect(attrsOf(changes[3])).toEqual({ owner: 'harbor', group: 'harbor', mode: '0750' });
    expect(prog.connection).toMatchObject({ host: 'harbor-cache-01', address: '127.0.0.41', user: 'root', port: 22 });
  });

  it('on an empty node: the CA file, then the update-ca-certificates handler (node_mirror: no runtime, refused)', () => {
    const prog = buildProgram(spec(), 'k8s-node-02', {});
    const facts = { ...baseDirs('/usr/local/share/ca-certificates'), 'user:root': userFact('root', 0), 'group:root': groupFact('root', 0) };
    const trust = planHost({ ...prog, segments: prog.segments.map((s) => ({ ...s, tasks: s.tasks.filter((t) => t.role === 'node_trust') })) }, factsFor(prog, facts)).changes;
    expect(outline(trust)).toEqual(['create file /usr/local/share/ca-certificates/berth-harbor-ca.crt', 'run command update-ca-certificates']);
    expect(trust[1]).toMatchObject({ id: 'k8s-node-02#2', notifiedBy: ['k8s-node-02#1'], role: 'node_trust' });
    expect(trust[0]!.diff).toContain('+-----BEGIN CERTIFICATE-----');
    // a node without any container runtime has nothing to pull with
    expect(berthError(() => plan(prog, facts)).format()).toMatch(/^inventories\/example\/group_vars\/all\.yml:\d+:\d+: no container runtime found on k8s-node-02 /);
  });

  it('on a node without the trust directory: refused at the role task', () => {
    const prog = buildProgram(spec(), 'k8s-node-01', {});
    expect(berthError(() => plan(prog)).format()).toBe(
      'roles/node_trust/tasks/main.yml:6:3: parent directory /usr/local/share/ca-certificates of /usr/local/share/ca-certificates/berth-harbor-ca.crt does not exist on k8s-node-01 and no earlier task creates it (add a directory task for /usr/local/share/ca-certificates before this one)',
    );
  });

  it('the cache VM that matches the spec: zero changes (the nodes: test/unit/nodes.test.ts)', () => {
    const s = spec();
    const cache = buildProgram(s, 'harbor-cache-01', noDex);
    expect(
      hostRole(plan(cache, {
        ...ROOT_HOST,
        ...baseDirs('/opt'),
        'group:harbor': groupFact('harbor', 10000),
        'gid:10000': { name: 'harbor' },
        'user:harbor': userFact('harbor', 10000, { home: '/opt/harbor', shell: '/bin/bash' }),
        'uid:10000': { name: 'harbor' },
        'file:/opt/harbor': dirFact('harbor', 'harbor', '0750', { uid: 10000, gid: 10000 }),
        'file:/data': dirFact('harbor', 'harbor', '0750', { uid: 10000, gid: 10000 }),
      })),
    ).toEqual([]);
  });

  it('--tags and --skip-tags select tasks (no tags here: --tags x selects nothing)', () => {
    const s = spec();
    expect(buildProgram(s, 'harbor-cache-01', { tags: ['x'] }).segments[0]!.tasks).toEqual([]);
    expect(buildProgram(s, 'harbor-cache-01', {}).segments[0]!.tasks.map((t) => t.name).slice(0, 6)).toEqual([
      'host meets Harbor\'s minimums',
      'docker engine and compose are present',
      'harbor group (gid fixed by Harbor\'s prepare)',
      'harbor user (uid fixed by Harbor\'s prepare)',
      'install directory',
      'data volume',
    ]);
  });
});
