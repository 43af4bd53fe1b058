// The engine's pieces for facts the controller reads itself (Harbor's API):
// gathering with a shared memo, the state record's `remembered` values, and
// errors that point at the variable an argument came from.

import { describe, expect, it } from 'vitest';
import { gatherControllerFacts } from '../../src/facts/controller.js';
import { nextRecord, rememberedQuery, type RunRecord } from '../../src/apply/record.js';
import { sourceVariable } from '../../src/template/index.js';
import { BerthError } from '../../src/util/errors.js';
import type { ControllerFactQuery } from '../../src/types.js';
import { berthError, buildTree, minimalTree } from './helpers.js';

const q = (key: string, source: string, fetch: ControllerFactQuery['fetch']): ControllerFactQuery => ({ key, source, fetch });

describe('gatherControllerFacts', () => {
  it('runs each key once, shares memoised work between queries, and counts requests', async () => {
    let lists = 0;
    const list = (c: Parameters<ControllerFactQuery['fetch']>[0]) =>
      c.memo('list', async () => {
        lists++;
        c.stats.requests++;
        return ['a', 'b'];
      });
    const g = await gatherControllerFacts(
      [
        q('x:a', 'api', async (c) => (await list(c)).includes('a')),
        q('x:b', 'api', async (c) => (await list(c)).includes('b')),
        q('x:a', 'api', async () => 'the second query of a key is not run'),
      ],
      'h1',
    );
    expect([...g.facts]).toEqual([
      ['x:a', true],
      ['x:b', true],
    ]);
    expect(lists).toBe(1);
    expect(g.requests).toBe(1);
  });

  it('refuses one key asked of two sources (two Harbors on one host)', async () => {
    const e = await gatherControllerFacts([q('harbor:version', 'https://a', async () => 1), q('harbor:version', 'https://b', async () => 2)], 'h1').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BerthError);
    expect((e as BerthError).format()).toBe('h1: fact harbor:version is asked of two sources (https://a and https://b) (the tasks of one host must talk to one Harbor (one harbor_api.url))');
  });

  it('a failing query fails the gathering with its own message', async () => {
    const e = await gatherControllerFacts([q('x:ok', 's', async () => 1), q('x:bad', 's', async () => Promise.reject(new BerthError('harbor_project p: Harbor answered 503')))], 'h1').catch((x: unknown) => x);
    expect((e as BerthError).message).toBe('harbor_project p: Harbor answered 503');
  });
});

describe('the state record keeps `remembered` values across applies', () => {
  const run = (at: string): RunRecord => ({ at, berth: '0', spec: { commit: null, dirty: false } as unknown as RunRecord['spec'], inventory: 'i', playbook: 'p', status: 'ok', changes: [] });

  it('merges new values over the old, forgets nulls, and reads them back through rememberedQuery', () => {
    const r1 = nextRecord(undefined, run('1'), [], { 'harbor_registry:a:access_secret': 'hmac-sha256:11', 'harbor_setting:oidc_client_secret': 'hmac-sha256:22' });
    const r2 = nextRecord(r1, run('2'), [], { 'harbor_registry:a:access_secret': null, 'harbor_registry:b:access_secret': 'hmac-sha256:33' });
    expect(r2.remembered).toEqual({ 'harbor_registry:b:access_secret': 'hmac-sha256:33', 'harbor_setting:oidc_client_secret': 'hmac-sha256:22' });
    // an apply that remembers nothing keeps what was there
    const r3 = nextRecord(r2, run('3'));
    expect(r3.remembered).toEqual(r2.remembered);
    expect(r3.history.map((h) => h.at)).toEqual(['2', '1']);
    expect(rememberedQuery().parse(JSON.stringify(r3), 0)).toEqual(r2.remembered);
    expect(rememberedQuery().parse('', 0)).toEqual({});
    expect(rememberedQuery().parse('not json', 0)).toEqual({});
  });
});

describe('errors point at the variable an argument came from', () => {
  it('sourceVariable: one expression naming a variable, or the first variable a helper takes', () => {
    expect(sourceVariable('{{ item.value.proxy }}')).toEqual(['item', 'value', 'proxy']);
    expect(sourceVariable('{{ default item.value.quota -1 }}')).toEqual(['item', 'value', 'quota']);
    expect(sourceVariable('{{ @root.harbor.hostname }}')).toEqual(['harbor', 'hostname']);
    expect(sourceVariable('https://{{ harbor.hostname }}')).toBeUndefined();
    expect(sourceVariable('plain')).toBeUndefined();
    expect(sourceVariable('{{ keys }}')).toBeUndefined();
  });

  it('locateArg: through a loop over a map, to the line in group_vars', () => {
    const { programs } = buildTree(
      minimalTree({
        'inventories/t/group_vars/all.yml': 'things:\n  first: { check: "true" }\n  second:\n    check: "false"\n',
        'playbooks/site.yml': '- name: app\n  hosts: app\n  tasks:\n    - name: thing\n      command:\n        cmd: "echo {{ item.key }}"\n        unless: "{{ item.value.check }}"\n      loop: "{{ things }}"\n',
      }),
    );
    const tasks = programs[0]!.segments[0]!.tasks;
    expect(tasks.map((t) => t.ctx.locateArg!(['unless']))).toEqual([
      { file: 'inventories/t/group_vars/all.yml', line: 2, col: 19 },
      { file: 'inventories/t/group_vars/all.yml', line: 4, col: 12 },
    ]);
    // an argument written in the task itself: the task's line
    expect(tasks[0]!.ctx.locateArg!(['cmd'])).toEqual({ file: 'playbooks/site.yml', line: 6, col: 14 });
  });

  it('keyOf: a value that must name a key of a top-level map, with the known keys', () => {
    const e = berthError(() =>
      buildTree({
        ...minimalTree({
          'inventories/t/group_vars/all.yml': 'registries:\n  hub: { type: docker-hub, url: "https://hub.docker.com" }\nprojects:\n  p1: { proxy: hubb }\nharbor: { hostname: h.example.com, version: v2.12.4, admin_password: xxxxxxxx }\n',
          'playbooks/site.yml': '- name: app\n  hosts: app\n  roles: [harbor_api]\n',
        }),
      }),
    );
    expect(e.format()).toBe('inventories/t/group_vars/all.yml:4:16: projects.p1.proxy: unknown registry "hubb" (known registries: hub)');
  });
});
