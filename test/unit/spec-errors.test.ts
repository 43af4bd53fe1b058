// Bad specs and the one line berth prints for each: file:line:col: key.path:
// message (hint). Each case is a small spec tree in a temp dir; line numbers
// count from the first line of each (dedented) file text.

import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTree, berthError, minimalTree, writeTree, type Tree, type TreeOptions } from './helpers.js';
import { loadSpec } from '../../src/spec/load.js';
import { buildProgram, hostsInScope } from '../../src/plan/program.js';

interface Case {
  name: string;
  files: Tree;
  opts?: TreeOptions;
  /** Runs after the files are written (symbolic links). */
  setup?: (root: string) => void;
  want: string;
}

const KNOWN_MODULES = 'apt, backup, certificate, command, containerd_config, containerd_hosts, containers_mirrors, copy, dex_static_client, directory, docker_mirror, file, flush_handlers, get_url, group, harbor_config, harbor_project, harbor_prune, harbor_registry, preflight, registry_ca, restore, service, template, user, wait_for';

/** A playbook with one play on group app; `body` is indented under the play. */
function play(body: string): string {
  return `- name: app\n  hosts: app\n${body}`;
}

const CASES: Case[] = [
  // ------------------------------------------------------------ YAML itself
  {
    name: 'YAML syntax error (bad indentation) in hosts.yml',
    files: {
      'inventories/t/hosts.yml': `
        all:
          children:
            app:
              hosts:
                h1:
             oops: 1
      `,
    },
    // the yaml library reports BAD_INDENT at the line break before the key; berth points at the key
    want: 'inventories/t/hosts.yml:6:6: YAML syntax error: All mapping items must start at the same column',
  },
  {
    name: 'YAML syntax error (unclosed flow mapping) in group_vars',
    files: {
      'inventories/t/group_vars/all.yml': `
        harbor:
          user: harbor
          ports: { http: 80, https: 443
        other: 1
      `,
    },
    // the parser notices the missing } where the next key starts
    want: 'inventories/t/group_vars/all.yml:4:1: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
  },
  {
    name: 'duplicate key in group_vars',
    files: {
      'inventories/t/group_vars/all.yml': `
        harbor:
          user: harbor
          uid: 10000
          user: other
      `,
    },
    want: 'inventories/t/group_vars/all.yml:4:3: YAML syntax error: Map keys must be unique (each key may appear once per mapping)',
  },
  {
    name: 'binary spec file',
    files: { 'inventories/t/group_vars/all.yml': Buffer.from([0x61, 0x3a, 0x20, 0x00, 0x01, 0x0a]) },
    want: 'inventories/t/group_vars/all.yml: binary file (contains NUL bytes), expected YAML text',
  },
  {
    name: 'group_vars file that is a list, not a mapping',
    files: { 'inventories/t/group_vars/app.yml': '- a\n- b\n' },
    want: 'inventories/t/group_vars/app.yml:1:1: must be a mapping of variable names to values',
  },

  // ------------------------------------------------------------ inventory
  // BUG (src/spec/schemas.ts schemaError): a propertyNames error (bad host, group or
  // variable name) is reported at the enclosing mapping as 'a mapping is not valid'
  // instead of at the bad key, naming it.
  {
    name: 'invalid host name',
    files: {
      'inventories/t/hosts.yml': `
        all:
          children:
            app:
              hosts:
                h1:
                "web 01":
      `,
    },
    want: `inventories/t/hosts.yml:6:9: all.children.app.hosts["web 01"]: invalid name "web 01" (host names use letters, digits, '.', '_' and '-', and start and end with a letter or digit)`,
  },
  {
    name: 'unknown key in an inventory group',
    files: {
      'inventories/t/hosts.yml': `
        all:
          children:
            app:
              host:
                h1:
      `,
    },
    want: 'inventories/t/hosts.yml:4:7: all.children.app.host: unknown key "host" (known keys: hosts, vars, children)',
  },
  {
    name: 'a group that contains itself',
    files: {
      'inventories/t/hosts.yml': `
        all:
          children:
            app:
              hosts:
                h1:
              children:
                app:
      `,
    },
    want: 'inventories/t/hosts.yml:7:9: group "app" contains itself (all → app → app)',
  },
  {
    name: 'invalid port (too big) in host_vars',
    files: { 'inventories/t/host_vars/h1.yml': '# ssh on a high port\nberth_port: 70000\n' },
    want: 'inventories/t/host_vars/h1.yml:2:13: berth_port: 70000 must be <= 65535',
  },
  {
    name: 'invalid port (a string) inline in hosts.yml',
    files: {
      'inventories/t/hosts.yml': `
        all:
          children:
            app:
              hosts:
                h1: { berth_port: "ssh" }
      `,
    },
    want: 'inventories/t/hosts.yml:5:27: berth_port: must be integer, got string "ssh"',
  },
  {
    name: 'wrong type for berth_become in group_vars',
    files: { 'inventories/t/group_vars/app.yml': 'berth_user: deploy\nberth_become: "yes"\n' },
    want: 'inventories/t/group_vars/app.yml:2:15: berth_become: must be boolean, got string "yes" (true runs every command through `sudo -n` as root)',
  },
  {
    name: 'unknown berth_ connection variable',
    files: { 'inventories/t/host_vars/h1.yml': 'berth_user: root\nberth_prot: 22\n' },
    want:
      'inventories/t/host_vars/h1.yml:2:1: berth_prot: unknown key "berth_prot" (known keys: berth_host, berth_port, berth_user, berth_become, berth_connection, berth_key_file, berth_known_hosts, berth_host_key_policy, berth_connect_timeout)',
  },
  // BUG (src/spec/schemas.ts schemaError, propertyNames): reported as
  // 'inventories/t/group_vars/all.yml:1:1: a mapping is not valid (...)'.
  {
    name: 'invalid variable name',
    files: { 'inventories/t/group_vars/all.yml': 'good_name: 1\nbad-name: 2\n' },
    want: `inventories/t/group_vars/all.yml:2:1: bad-name: invalid name "bad-name" (variable names start with a letter or '_' and use letters, digits and '_')`,
  },
  {
    name: 'group_vars for an unknown group',
    files: { 'inventories/t/group_vars/apps.yml': 'x: 1\n' },
    want: 'inventories/t/group_vars/apps.yml: group_vars for unknown group "apps" (groups in inventories/t/hosts.yml: all, app)',
  },
  {
    name: 'host_vars (a directory) for an unknown host',
    files: { 'inventories/t/host_vars/h2/main.yml': 'x: 1\n' },
    want: 'inventories/t/host_vars/h2/main.yml: host_vars for unknown host "h2" (hosts in inventories/t/hosts.yml: h1)',
  },

  // ------------------------------------------------------------ playbook
  {
    name: 'unknown key in a play',
    files: { 'playbooks/site.yml': play('  rolez: [harbor_host]\n') },
    want: 'playbooks/site.yml:3:3: [0].rolez: unknown key "rolez" (known keys: name, hosts, become, vars, tags, roles, tasks, handlers)',
  },
  {
    name: 'wrong type in a play',
    files: { 'playbooks/site.yml': play('  become: "yes"\n  tasks: []\n') },
    want: 'playbooks/site.yml:3:11: [0].become: must be boolean, got string "yes"',
  },
  {
    name: 'a play without hosts (second play)',
    files: { 'playbooks/site.yml': play('  tasks: []\n') + '- name: second\n  tasks: []\n' },
    want: 'playbooks/site.yml:4:3: [1]: missing required key "hosts"',
  },
  {
    name: 'play hosts with a character patterns do not use',
    files: { 'playbooks/site.yml': '- name: app\n  hosts: "app nodes"\n  tasks: []\n' },
    want: `playbooks/site.yml:2:10: [0].hosts: "app nodes" is not valid (group or host names joined by ',' or ':' ('all', 'cache', 'nodes:!k8s-node-03'))`,
  },
  // BUG (src/spec/load.ts loadSpec, src/plan/program.ts): selectHosts gets the play's
  // position (1:3), not the position of its hosts: value.
  {
    name: 'play hosts naming an unknown group (points at the hosts line)',
    files: { 'playbooks/site.yml': '- name: app\n  hosts: app:!h2\n  tasks: []\n' },
    want: 'playbooks/site.yml:2:10: play "app" hosts: no host or group named "h2" (groups: all, app; hosts: h1)',
  },
  {
    name: 'unknown role (hint lists the roles there are)',
    files: { 'playbooks/site.yml': play('  roles: [harbour_host]\n') },
    want: 'playbooks/site.yml:3:11: unknown role "harbour_host" (roles found: certs, dex_client, direnv, harbor, harbor_api, harbor_host, node_mirror, node_trust)',
  },
  {
    name: 'unknown module',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: copy it\n      lineinfile: { path: /b, line: a }\n') },
    want: `playbooks/site.yml:5:7: unknown module "lineinfile" (known modules: ${KNOWN_MODULES})`,
  },
  {
    name: 'two modules in a task',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: both\n      file: { path: /x }\n      directory: { path: /y }\n') },
    want: 'playbooks/site.yml:4:7: task names 2 modules (file, directory) (split it into one task per module)',
  },
  {
    name: 'a misspelt task keyword next to a module',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: conf\n      file: { path: /x }\n      notfy: restart\n') },
    want: `playbooks/site.yml:6:7: unknown key "notfy" in task (a task has one module (${KNOWN_MODULES}) and the keywords name, notify, listen, tags, when, loop, become)`,
  },
  {
    name: 'a task without a module',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: nothing\n      tags: [x]\n') },
    want: `playbooks/site.yml:4:7: task names no module (add one of: ${KNOWN_MODULES})`,
  },
  // BUG (src/plan/program.ts buildProgram): the error is placed at the task (4:7),
  // not at the notify: that names the missing handler.
  {
    name: 'notify naming an unknown handler (points at the notify line)',
    files: {
      'playbooks/site.yml': play(
        [
          '  tasks:',
          '    - name: conf',
          '      file: { path: /etc/app.conf, content: x }',
          '      notify: restart ap',
          '  handlers:',
          '    - name: restart app',
          '      command: { cmd: "true" }',
          '',
        ].join('\n'),
      ),
    },
    want: 'playbooks/site.yml:6:15: notify: no handler named "restart ap" in play "app" (handlers: restart app)',
  },
  {
    name: 'unknown key in module arguments',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: conf\n      file: { path: /x, mdoe: "0644" }\n') },
    want: 'playbooks/site.yml:5:25: mdoe: unknown key "mdoe" (known keys: path, content, src, owner, group, mode, state, sensitive)',
  },
  {
    name: 'bad mode',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: conf\n      file: { path: /x, mode: "0899" }\n') },
    want: 'playbooks/site.yml:5:31: mode: "0899" is not valid (an octal mode such as "0644" (quote it in YAML))',
  },
  {
    name: 'wrong type in module arguments after templating',
    files: {
      'playbooks/site.yml': play('  vars:\n    app_uid: many\n  tasks:\n    - name: app user\n      user:\n        name: app\n        uid: "{{ app_uid }}"\n'),
    },
    want: 'playbooks/site.yml:9:14: uid: must be integer, got string "many"',
  },
  {
    name: 'missing variable in module arguments',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: conf\n      file:\n        path: "/etc/{{ app_name }}.conf"\n') },
    want: 'playbooks/site.yml:6:15: template variable "app_name" is not defined (known variables: group_names, groups, inventory_hostname)',
  },
  {
    name: 'loop over a non-list',
    files: {
      'playbooks/site.yml': play(
        '  vars:\n    port: 80\n  tasks:\n    - name: open port\n      command: { cmd: "echo {{ item }}" }\n      loop: "{{ port }}"\n',
      ),
    },
    want: 'playbooks/site.yml:8:13: loop must be a list or a mapping (e.g. loop: "{{ users }}" or a YAML list)',
  },
  {
    name: 'when naming an undefined variable',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: conf\n      file: { path: /x }\n      when: tls.enabled\n') },
    want: 'playbooks/site.yml:6:13: condition: variable "tls.enabled" is not defined (known variables: group_names, groups, inventory_hostname)',
  },
  {
    name: 'template not found',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: conf\n      template: { src: templates/app.conf.hbs, dest: /etc/app.conf }\n') },
    want: 'playbooks/site.yml:4:7: template not found: templates/app.conf.hbs (paths are relative to the spec root)',
  },
  {
    name: 'a file src outside the spec repository',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: steal\n      file: { path: /tmp/p, src: ../../../../../../etc/passwd }\n') },
    want: 'playbooks/site.yml:4:7: ../../../../../../etc/passwd resolves outside the spec repository (/etc/passwd) (templates and files must live in the repository)',
  },
  {
    name: 'apt package name with upper-case letters',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: tools\n      apt:\n        name: [curl, JQ]\n') },
    want: 'playbooks/site.yml:6:22: name[1]: "JQ" is not valid (must match ^[a-z0-9][a-z0-9+.-]+$)',
  },
  // the schema's anyOf (state | enabled | daemon_reload), said as such
  {
    name: 'service without state, enabled or daemon_reload',
    files: { 'playbooks/site.yml': play('  tasks:\n    - name: svc\n      service: { name: app }\n') },
    want: 'playbooks/site.yml:5:16: needs at least one of state, enabled or daemon_reload',
  },
  {
    name: 'a template with a missing variable (error at the template line)',
    files: {
      'roles/app/defaults/main.yml': 'app:\n  name: demo\n  port: 8080\n',
      'roles/app/tasks/main.yml': '- name: config\n  template: { src: app.conf.hbs, dest: /etc/app.conf }\n',
      'roles/app/templates/app.conf.hbs': '# app\nname = {{ app.name }}\nport = {{ app.prot }}\n',
      'playbooks/site.yml': play('  roles: [app]\n'),
    },
    want: 'roles/app/templates/app.conf.hbs:3:11: template variable "app.prot" is not defined (did you mean "port"? known keys of "app": port, name)',
  },
  {
    name: 'role defaults that are a list',
    files: {
      'roles/app/defaults/main.yml': '- name: demo\n',
      'roles/app/tasks/main.yml': '[]\n',
      'playbooks/site.yml': play('  roles: [app]\n'),
    },
    want: 'roles/app/defaults/main.yml:1:1: must be a mapping or null, got a list',
  },
  {
    name: 'role input schema: harbor_host with harbor.uid 1000 (error at the group_vars line)',
    files: {
      'inventories/t/group_vars/all.yml': '# the cache\nharbor:\n  hostname: cache.example.com\n  uid: 1000\n',
      'playbooks/site.yml': play('  roles: [harbor_host]\n'),
    },
    want:
      "inventories/t/group_vars/all.yml:4:8: harbor.uid: must be 10000, got 1000 (Harbor's prepare script hard-codes uid/gid 10000 (make/photon/prepare/g.py); files it writes would be owned by nobody else)",
  },
  {
    name: 'role input schema: an unknown key in role parameters (error at the playbook line)',
    files: {
      'inventories/t/group_vars/all.yml': 'tls: { ca_cert: ca.crt }\n',
      'ca.crt': 'x\n',
      'playbooks/site.yml': play('  roles:\n    - role: node_trust\n      vars:\n        node_trust: { ca_nmae: x.crt }\n'),
    },
    want: 'playbooks/site.yml:6:23: node_trust.ca_nmae: unknown key "ca_nmae" (known keys: ca_name)',
  },
  {
    name: 'symbolic link loop inside a role dir (a link to its own directory)',
    files: { 'roles/app/tasks/main.yml': '[]\n', 'playbooks/site.yml': play('  roles: [app]\n') },
    setup: (root) => symlinkSync('..', join(root, 'roles/app/tasks/up')),
    want: 'roles/app/tasks/up: symbolic link loop in role directory',
  },
  {
    name: 'symbolic link loop inside a role dir (links to each other)',
    files: { 'roles/app/tasks/main.yml': '[]\n', 'playbooks/site.yml': play('  roles: [app]\n') },
    setup: (root) => {
      mkdirSync(join(root, 'roles/app/files'));
      symlinkSync('b', join(root, 'roles/app/files/a'));
      symlinkSync('a', join(root, 'roles/app/files/b'));
    },
    want: 'roles/app/files/a: symbolic link loop',
  },
  {
    name: 'a bad -e',
    files: {},
    opts: { extraVars: ['harbor_uid'] },
    want: '-e "harbor_uid": expected key=value or @file.yml',
  },
  {
    name: 'YAML syntax error in -e value',
    files: {},
    opts: { extraVars: ['ports=[80, 443'] },
    want: '-e #1:1:9: YAML syntax error: Flow sequence must end with a ]',
  },
];

/** Loads the tree and builds every program, as `berth plan` does before contacting any host. */
function run(c: Case): void {
  const root = writeTree(minimalTree(c.files));
  c.setup?.(root);
  const spec = loadSpec({ root, inventory: 'inventories/t', extraVars: c.opts?.extraVars });
  for (const h of hostsInScope(spec, {})) buildProgram(spec, h, {});
}

describe('one-line errors for bad specs', () => {
  it('has at least 25 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const err = berthError(() => run(c));
    expect(err.format()).toBe(c.want);
    // one line, and no stack trace in what the user sees
    expect(err.format()).not.toMatch(/\n|\bat .*\.ts:\d+/);
  });
});

describe('errors about secrets', () => {
  const ENV = 'BERTH_UNIT_ERR_SECRET';
  afterEach(() => {
    delete process.env[ENV];
  });

  it('a missing secret env var points at the line in the role parameters', () => {
    const err = berthError(() =>
      buildTree(
        minimalTree({
          'roles/app/tasks/main.yml': '[]\n',
          'playbooks/site.yml': play(`  roles:\n    - role: app\n      vars:\n        db_password: { secret_env: ${ENV} }\n`),
        }),
      ),
    );
    expect(err.format()).toBe(`playbooks/site.yml:6:22: secret environment variable ${ENV} is not set (export ${ENV}=… before running berth (the value is never printed))`);
  });

  it('an error about a value that holds a secret never shows the secret', () => {
    process.env[ENV] = 'very-secret-port-value';
    const err = berthError(() =>
      buildTree(
        minimalTree({
          'inventories/t/group_vars/all.yml': `app_uid: { secret_env: ${ENV} }\n`,
          'playbooks/site.yml': play('  tasks:\n    - name: app user\n      user: { name: app, uid: "{{ app_uid }}" }\n'),
        }),
      ),
    );
    expect(err.format()).toBe('playbooks/site.yml:5:31: uid: must be integer, got string "(sensitive)"');
    expect(err.format()).not.toContain('very-secret');
  });
});

// The places a value was written, when maps from several layers merge.
describe('role input errors point at the layer that wrote the value', () => {
  // BUG (src/spec/vars.ts, see spec-load.test.ts): the host_vars file merges
  // into `tls`, so the origin of `tls` moves there and tls.ca_cert (written
  // in group_vars/all.yml) is looked up in host_vars/h1.yml.
  it('tls.ca_cert set in group_vars/all.yml, tls merged from host_vars: error at group_vars', () => {
    const err = berthError(() =>
      buildTree(
        minimalTree({
          'inventories/t/group_vars/all.yml': '# trust\ntls:\n  ca_cert: ""\n',
          'inventories/t/host_vars/h1.yml': 'tls:\n  mode: selfsigned\n',
          'playbooks/site.yml': play('  roles: [node_trust]\n'),
        }),
      ),
    );
    expect(err.format()).toBe('inventories/t/group_vars/all.yml:3:12: tls.ca_cert: "" must NOT have fewer than 1 characters (path of the CA certificate (PEM) in the spec repository)');
  });

  it('harbor.user from role defaults overridden in group_vars: error at group_vars', () => {
    const err = berthError(() =>
      buildTree(
        minimalTree({
          'inventories/t/group_vars/all.yml': 'harbor:\n  user: Harbor\n',
          'playbooks/site.yml': play('  roles: [harbor_host]\n'),
        }),
      ),
    );
    expect(err.format()).toBe('inventories/t/group_vars/all.yml:2:9: harbor.user: "Harbor" is not valid (must match ^[a-z_][a-z0-9_-]*$)');
  });
});
