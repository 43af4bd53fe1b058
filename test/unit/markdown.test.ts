// plan --format markdown: the text a CI job posts on a merge request.

import { describe, expect, it } from 'vitest';
import { renderMarkdown } from '../../src/plan/markdown.js';
import { Secret } from '../../src/secrets/secret.js';
import type { HostResult, RunResult } from '../../src/engine.js';
import type { Change } from '../../src/types.js';

let n = 0;
function change(host: string, action: Change['action'], resource: string, more: Partial<Change> = {}): Change {
  return { id: `${host}#${++n}`, host, play: 'p', task: 't', module: 'file', resource, action, attrs: [], tags: [], ...more };
}

function run(hosts: HostResult[], more: Partial<RunResult> = {}): RunResult {
  return {
    kind: 'plan',
    createdAt: '2025-01-01T00:00:00.000Z',
    berth: '0.1.0',
    options: { root: '/spec', inventory: 'inventories/prod', playbook: 'playbooks/site.yml', extraVars: [] },
    spec: { commit: '0123456789abcdef0123456789abcdef01234567', dirty: false },
    hosts,
    ...more,
  };
}

const host = (name: string, changes: Change[], more: Partial<HostResult> = {}): HostResult => ({ host: name, changes, fingerprints: {}, notes: [], ...more });

describe('renderMarkdown', () => {
  it('a plan: marker, headline, host table, and per host a diff block with the changes', () => {
    const diff = '--- /etc/harbor/harbor.yml\n+++ /etc/harbor/harbor.yml\n@@ -1,2 +1,2 @@\n hostname: a\n-http_port: 80\n+http_port: 8080\n';
    const md = renderMarkdown(
      run([
        host('cache-01', [
          change('cache-01', 'update', 'file /etc/harbor/harbor.yml', { attrs: [{ name: 'content' }], diff }),
          change('cache-01', 'create', 'user harbor', { attrs: [{ name: 'uid', after: 10000 }, { name: 'shell', after: '/bin/bash' }] }),
          change('cache-01', 'run', 'service harbor.service', { task: 'restart', notifiedBy: ['cache-01#1'], attrs: [{ name: 'state', after: 'restarted' }] }),
        ]),
        host('node-01', []),
        host('node-02', [], { error: 'node-02: cannot connect to 10.0.1.12:22 (timed out)' }),
      ]),
    );
    expect(md).toBe(
      [
        '<!-- berth plan: inventories/prod -->',
        '### berth plan: 1 to create, 1 to update, 0 to delete, 1 to run · 1 host(s) failed',
        '',
        '`inventories/prod` · `playbooks/site.yml` · 3 host(s), 1 with changes · spec `0123456789ab`',
        '',
        '| host | changes | |',
        '| --- | --- | --- |',
        '| `cache-01` | 1 to create, 1 to update, 1 to run | |',
        '| `node-01` | none | |',
        '| `node-02` | — | **failed:** node-02: cannot connect to 10.0.1.12:22 (timed out) |',
        '',
        '<details open><summary><code>cache-01</code>: 1 to create, 1 to update, 1 to run</summary>',
        '',
        '```diff',
        '~ file /etc/harbor/harbor.yml',
        '--- /etc/harbor/harbor.yml',
        '+++ /etc/harbor/harbor.yml',
        '@@ -1,2 +1,2 @@',
        ' hostname: a',
        '-http_port: 80',
        '+http_port: 8080',
        '+ user harbor',
        '    uid: 10000, shell: /bin/bash',
        `! service harbor.service (handler "restart", notified by ${'cache-01#' + (n - 2)})`,
        '    state: restarted',
        '```',
        '',
        '</details>',
        '',
      ].join('\n'),
    );
  });

  it('no changes: says the hosts match the spec, with no host blocks', () => {
    const md = renderMarkdown(run([host('a', []), host('b', [])], { spec: {} }));
    expect(md).toBe(
      [
        '<!-- berth plan: inventories/prod -->',
        '### berth plan: no changes',
        '',
        '`inventories/prod` · `playbooks/site.yml` · 2 host(s), 0 with changes',
        '',
        'The hosts match the spec.',
        '',
        '| host | changes | |',
        '| --- | --- | --- |',
        '| `a` | none | |',
        '| `b` | none | |',
        '',
      ].join('\n'),
    );
  });

  it('content cannot break out: backticks get a longer fence, | and HTML in cells are escaped', () => {
    const diff = '--- /x.md\n+++ /x.md\n@@ -0,0 +1,3 @@\n+```\n+````sh\n+<script>\n';
    const md = renderMarkdown(
      run([host('h|1', [change('h|1', 'create', 'file /x.md', { attrs: [{ name: 'content' }], diff })], { error: 'bad <b>thing</b> | here' })]),
    );
    expect(md).toContain('| `h\\|1` | 1 to create | **failed:** bad &lt;b&gt;thing&lt;/b&gt; \\| here |');
    expect(md).toContain('<summary><code>h\\|1</code>: 1 to create</summary>');
    // the body's longest backtick run is 4: the fence is 5
    expect(md).toContain('\n`````diff\n+ file /x.md\n');
    expect(md).toContain('\n+<script>\n`````\n');
  });

  it('prints secrets as (sensitive), even ones that slipped into a note or a diff', () => {
    const s = new Secret('md-secret-value-42');
    const md = renderMarkdown(
      run([
        host('h', [change('h', 'update', 'file /etc/app.env', { sensitive: true, diff: `--- a\n+++ b\n@@ -1 +1 @@\n-X=1\n+TOKEN=${s.display}\n` })], {
          notes: ['warning: a command printed md-secret-value-42'],
        }),
      ], { notes: ['generated vault entry app.token (20 random bytes, base64) and stored it in inventories/prod/vault.age: commit that file'] }),
    );
    expect(md).not.toContain('md-secret-value-42');
    expect(md).toContain('+TOKEN=(sensitive)');
    expect(md).toContain('- warning: a command printed (sensitive)');
    expect(md).toContain('> **note:** generated vault entry app.token (20 random bytes, base64) and stored it in inventories/prod/vault.age: commit that file\n');
  });

  it('stays under its size budget: hosts that do not fit keep their row and point at the job log', () => {
    const big = Array.from({ length: 400 }, (_, i) => `+line ${i} ${'x'.repeat(60)}`).join('\n');
    const hosts = Array.from({ length: 6 }, (_, i) =>
      host(`node-${i}`, [change(`node-${i}`, 'create', `file /big`, { attrs: [{ name: 'content' }], diff: `--- /dev/null\n+++ /big\n${big}\n` })]),
    );
    const md = renderMarkdown(run(hosts), { maxChars: 60_000 });
    expect(md.length).toBeLessThanOrEqual(60_000);
    const shown = [...md.matchAll(/<details><summary><code>(node-\d)<\/code>/g)].map((m) => m[1]);
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.length).toBeLessThan(6);
    for (let i = 0; i < 6; i++) expect(md).toContain(`| \`node-${i}\` | 1 to create | |`);
    expect(md).toMatch(/_Details of \d host\(s\) left out to keep this comment under 60000 characters \(`node-\d`.*\): the job log has the full plan\._\n$/);
  });

  it('an apply result counts what was done and marks what failed or was skipped', () => {
    const a = change('h', 'create', 'directory /opt/a');
    const b = change('h', 'create', 'file /opt/a/b');
    const c = change('h', 'run', 'command migrate');
    const md = renderMarkdown(
      run([host('h', [a, b, c], { status: { [a.id]: 'done', [b.id]: 'failed', [c.id]: 'skipped' }, error: 'h: file /opt/a/b: disk full' })], { kind: 'apply' }),
    );
    expect(md).toContain('<!-- berth apply: inventories/prod -->\n### berth apply: 1 created, 0 updated, 0 deleted, 0 run · 1 host(s) failed\n');
    expect(md).toContain('| `h` | 1 created | **failed:** h: file /opt/a/b: disk full |');
    expect(md).toContain('\n+ directory /opt/a\n+ file /opt/a/b  [failed]\n! command migrate  [skipped]\n');
  });
});
