// The dex values file edit (src/git/yaml-edit.ts): the client's lines are the
// only bytes that change, in every layout a Helm values file may use, and the
// diff the plan shows never holds a secret. Pure: no git, no hosts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { editStaticClient, extractItem, maskSecretValues, type DexClient, type EditResult } from '../../src/git/yaml-edit.js';
import { maskedDiff } from '../../src/plan/diff.js';
import { REPO, berthError, dedent } from './helpers.js';

const FIXTURE = readFileSync(join(REPO, 'test/fixtures/dex/values.yaml'), 'utf8');
const KEY = ['config', 'staticClients'];
const LABEL = { file: 'cluster.git main:helmfile/values/dex.yaml' };
const SECRET = 'c2VjcmV0K3NsYXNoLz0gd2l0aCBtb3Jl';
const HARBOR: DexClient = {
  id: 'harbor-cache-oidc-dex',
  name: 'Harbor (harbor-cache.example.com)',
  redirectURIs: ['https://harbor-cache.example.com/c/oidc/callback'],
  secret: SECRET,
};

function edited(text: string, want: DexClient = HARBOR, key = KEY): Extract<EditResult, { changed: true }> {
  const r = editStaticClient(text, LABEL, key, want);
  if (!r.changed) throw new Error('expected a change');
  return r;
}

/** The lines of `b` that differ from `a` (same line count expected), as "n: text". */
function changedLines(a: string, b: string): string[] {
  const x = a.split('\n');
  const y = b.split('\n');
  expect(y.length).toBe(x.length);
  return y.flatMap((l, i) => (l === x[i] ? [] : [`${i + 1}: ${l}`]));
}

/** `after` is `before` with exactly `inserted` put in at one place. */
function expectInsertion(before: string, after: string, inserted: string): void {
  const at = after.indexOf(inserted);
  expect(at).toBeGreaterThanOrEqual(0);
  expect(after.slice(0, at) + after.slice(at + inserted.length)).toBe(before);
}

const clientsOf = (text: string) => (parse(text, { merge: true }) as { config: { staticClients: Record<string, unknown>[] } }).config.staticClients;

describe('adding the client', () => {
  it('appends it after the last client, in the list\'s indentation; every other byte stays (comments, anchors, quoting, blank lines)', () => {
    const r = edited(FIXTURE);
    expect(r.action).toBe('create');
    expect(r.itemBefore).toBeUndefined();
    expect(r.itemAfter).toBe(
      [
        '    - id: harbor-cache-oidc-dex',
        '      name: Harbor (harbor-cache.example.com)',
        '      redirectURIs:',
        '        - https://harbor-cache.example.com/c/oidc/callback',
        `      secret: ${SECRET}`,
        '',
      ].join('\n'),
    );
    expectInsertion(FIXTURE, r.text, r.itemAfter);
    // right after the grafana client, before the blank line and enablePasswordDB
    expect(r.text).toContain(`secret: "Zm9vYmFyLWdyYWZhbmEtc2VjcmV0"   # do not reuse\n${r.itemAfter}\n  enablePasswordDB: false`);
    const clients = clientsOf(r.text);
    expect(clients.map((c) => c.id)).toEqual(['argo-cd', 'grafana', 'harbor-cache-oidc-dex']);
    expect(clients[2]).toEqual({ id: HARBOR.id, name: HARBOR.name, redirectURIs: HARBOR.redirectURIs, secret: SECRET });
    // the alias of the Argo CD client still resolves
    expect(clients[0]!.redirectURIs).toEqual(['https://argocd.example.com/auth/callback', 'https://argocd.example.com/api/dex/callback']);
  });

  it('a second edit finds nothing to do', () => {
    const once = edited(FIXTURE).text;
    const again = editStaticClient(once, LABEL, KEY, HARBOR);
    expect(again.changed).toBe(false);
    expect(again.changed === false && again.item).toBe(extractItem(once, LABEL, KEY, HARBOR.id));
  });

  it('follows a file that does not indent lists under their keys', () => {
    const text = dedent(`
      config:
        staticClients:
        - id: a
          name: A
          redirectURIs:
          - https://a/cb
          secret: x
        other: 1
    `);
    const r = edited(text);
    expect(r.itemAfter).toBe(`  - id: harbor-cache-oidc-dex\n    name: Harbor (harbor-cache.example.com)\n    redirectURIs:\n    - https://harbor-cache.example.com/c/oidc/callback\n    secret: ${SECRET}\n`);
    expectInsertion(text, r.text, r.itemAfter);
  });

  it('adds the list when the key is missing, empty, [] or null, and writes into a flow list', () => {
    const missing = 'config:\n  issuer: https://dex.example.com # keep\n';
    const a = edited(missing);
    expect(a.text).toBe(`${missing}  staticClients:\n${a.itemAfter}`);
    expect(clientsOf(a.text)).toHaveLength(1);

    const empty = 'config:\n  staticClients:\n  issuer: x\n';
    const b = edited(empty);
    expectInsertion(empty, b.text, b.itemAfter);
    expect(clientsOf(b.text)).toHaveLength(1);

    for (const v of ['[]', '~', 'null']) {
      const t = `config:\n  staticClients: ${v}   # none yet\n  issuer: x\n`;
      const c = edited(t);
      expect(c.text).toBe(`config:\n  staticClients: [{id: harbor-cache-oidc-dex, name: Harbor (harbor-cache.example.com), redirectURIs: [https://harbor-cache.example.com/c/oidc/callback], secret: ${SECRET}}]   # none yet\n  issuer: x\n`);
    }

    const flow = 'config:\n  staticClients: [{id: a, secret: x}]\n';
    const d = edited(flow);
    expect(d.text).toBe(`config:\n  staticClients: [{id: a, secret: x}, {id: harbor-cache-oidc-dex, name: Harbor (harbor-cache.example.com), redirectURIs: [https://harbor-cache.example.com/c/oidc/callback], secret: ${SECRET}}]\n`);
  });

  it('a file with CRLF line breaks keeps them', () => {
    const text = FIXTURE.replace(/\n/g, '\r\n');
    const r = edited(text);
    expect(r.itemAfter).toBe(edited(FIXTURE).itemAfter.replace(/\n/g, '\r\n'));
    expectInsertion(text, r.text, r.itemAfter);
    expect(r.text.replace(/\r\n/g, '')).not.toContain('\n');
    expect(editStaticClient(r.text, LABEL, KEY, HARBOR).changed).toBe(false);
    const u = edited(r.text, { ...HARBOR, name: 'renamed' });
    expect(u.text.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it('a file without a final line break, and a list at the top level (key staticClients)', () => {
    const text = 'staticClients:\n  - id: a\n    secret: x';
    const r = edited(text, HARBOR, ['staticClients']);
    expect(r.text).toBe(`${text}\n${r.itemAfter}`);
    expect((parse(r.text) as { staticClients: unknown[] }).staticClients).toHaveLength(2);
  });
});

describe('updating the client', () => {
  const once = edited(FIXTURE).text;

  it('replaces only the values that differ: the rest of its lines, and the file, stay', () => {
    const r = edited(once, { ...HARBOR, name: 'Harbor cache', secret: 'rotated-secret-value' });
    expect(r.action).toBe('update');
    expect(r.fields).toEqual(['name', 'secret']);
    const lines = changedLines(once, r.text);
    expect(lines).toEqual([expect.stringMatching(/^\d+: {7}name: Harbor cache$/), expect.stringMatching(/^\d+: {7}secret: rotated-secret-value$/)]);
    expect(r.itemBefore).toBe(extractItem(once, LABEL, KEY, HARBOR.id));
  });

  it('keeps the quoting style and the trailing comment of a value it replaces', () => {
    const r = edited(FIXTURE, { id: 'grafana', name: "Grafana's", redirectURIs: ['https://grafana.example.com/login/generic_oauth'], secret: 'new "one"' });
    expect(changedLines(FIXTURE, r.text)).toEqual(["66:       name: Grafana's", '69:       secret: "new \\"one\\""   # do not reuse']);
  });

  it('switches between an inline secret and secretEnv, keeping the other keys', () => {
    const r = edited(once, { ...HARBOR, secret: undefined, secretEnv: 'HARBOR_OIDC_SECRET' });
    expect(r.fields).toEqual(['secretEnv', 'secret']);
    expect(r.itemAfter).not.toContain('secret:');
    expect(r.itemAfter).toContain('      secretEnv: HARBOR_OIDC_SECRET\n');
    expect(clientsOf(r.text)[2]).toEqual({ id: HARBOR.id, name: HARBOR.name, redirectURIs: HARBOR.redirectURIs, secretEnv: 'HARBOR_OIDC_SECRET' });
    const back = edited(r.text, HARBOR);
    // secret comes back at the item's end, where secretEnv was: the file is as before
    expect(back.text).toBe(once);
    expect(clientsOf(back.text)[2]).toEqual({ id: HARBOR.id, name: HARBOR.name, redirectURIs: HARBOR.redirectURIs, secret: SECRET });
  });

  it('replaces redirectURIs in its own style (block, flow, or an alias), and adds missing keys at the item\'s end', () => {
    const text = dedent(`
      config:
        staticClients:
          - id: harbor-cache-oidc-dex   # berth manages this one
            public: false
            redirectURIs:
              - https://old.example.com/c/oidc/callback
              - https://older.example.com/c/oidc/callback
            trustedPeers: [argo-cd]
        issuer: x
    `);
    const r = edited(text);
    expect(r.fields).toEqual(['name', 'redirectURIs', 'secret']);
    expect(r.itemAfter).toBe(
      [
        '    - id: harbor-cache-oidc-dex   # berth manages this one',
        '      public: false',
        '      redirectURIs:',
        '        - https://harbor-cache.example.com/c/oidc/callback',
        '      trustedPeers: [argo-cd]',
        '      name: Harbor (harbor-cache.example.com)',
        `      secret: ${SECRET}`,
        '',
      ].join('\n'),
    );
    const flow = edited('config:\n  staticClients:\n    - id: harbor-cache-oidc-dex\n      redirectURIs: [https://old/cb]\n      name: Harbor (harbor-cache.example.com)\n      secret: x\n');
    expect(flow.itemAfter).toContain('      redirectURIs: [https://harbor-cache.example.com/c/oidc/callback]\n');
  });

  it('rewrites a client written as a flow mapping as one (its anchor and other keys kept)', () => {
    const text = 'config:\n  staticClients:\n    - &h {id: harbor-cache-oidc-dex, public: true, secret: old}\n';
    const r = edited(text);
    expect(r.text).toBe(`config:\n  staticClients:\n    - &h {id: harbor-cache-oidc-dex, public: true, secret: ${SECRET}, name: Harbor (harbor-cache.example.com), redirectURIs: [https://harbor-cache.example.com/c/oidc/callback]}\n`);
  });
});

describe('values that need quotes', () => {
  it.each(['yes', 'on', '0777', '1e3', '~', 'a: b', 'x #y', '- z', '@at', '', ' lead', 'multi\nline', "it's", '{x}'])('%j reads back as the same string in YAML 1.1 and 1.2', (v) => {
    const r = edited('config:\n  staticClients: []\n', { ...HARBOR, secret: v, name: v || 'n' });
    for (const version of ['1.1', '1.2'] as const) {
      const c = (parse(r.text, { version }) as { config: { staticClients: Record<string, unknown>[] } }).config.staticClients[0]!;
      expect(c.secret).toBe(v);
      expect(c.name).toBe(v || 'n');
    }
    const b = edited('config:\n  staticClients:\n    - id: a\n', { ...HARBOR, secret: v });
    for (const version of ['1.1', '1.2'] as const) expect((parse(b.text, { version }) as { config: { staticClients: Record<string, unknown>[] } }).config.staticClients[1]!.secret).toBe(v);
  });
});

describe('what berth refuses to edit, with the line that says why', () => {
  const err = (text: string, key = KEY, want = HARBOR) => berthError(() => editStaticClient(text, LABEL, key, want)).format();

  it('invalid YAML, several documents, an empty file', () => {
    expect(err('config:\n  staticClients:\n    - id: a\n   bad: [\n')).toMatch(/^cluster\.git main:helmfile\/values\/dex\.yaml:\d+:\d+: not valid YAML: /);
    expect(err('config: {}\n---\nother: 1\n')).toBe('cluster.git main:helmfile/values/dex.yaml:2:1: the values file holds more than one YAML document (berth edits a values file with one document)');
    expect(err('')).toMatch(/^cluster\.git main:helmfile\/values\/dex\.yaml: the values file is empty/);
  });

  it('a missing parent, a list that is not one, a parent through an alias', () => {
    expect(err('dex:\n  config: {}\n')).toBe(
      "cluster.git main:helmfile/values/dex.yaml:1:1: config is missing (the dex Helm values keep dex's configuration under config.staticClients; check oidc.dex_values.path and key)",
    );
    expect(err('config:\n  staticClients: {a: 1}\n')).toBe("cluster.git main:helmfile/values/dex.yaml:2:18: config.staticClients is not a list (dex's static clients are a list of clients)");
    expect(err('base: &b\n  staticClients: []\nconfig: *b\n')).toBe('cluster.git main:helmfile/values/dex.yaml:3:9: config is an alias (*b): berth does not edit through aliases');
  });

  it('two clients with the id, or the client only through an alias', () => {
    expect(err('config:\n  staticClients:\n    - id: harbor-cache-oidc-dex\n    - id: harbor-cache-oidc-dex\n')).toBe(
      'cluster.git main:helmfile/values/dex.yaml:3:7: config.staticClients holds 2 clients with id harbor-cache-oidc-dex (dex refuses duplicate client ids: remove all but one)',
    );
    expect(err('x: &h {id: harbor-cache-oidc-dex}\nconfig:\n  staticClients:\n    - *h\n')).toBe(
      'cluster.git main:helmfile/values/dex.yaml:4:5: client harbor-cache-oidc-dex in config.staticClients is written through an alias or merge key (write it as a plain list item for berth to manage it)',
    );
  });

  it('an edit that would change something else too (the client is anchored and aliased elsewhere)', () => {
    const text = 'config:\n  staticClients:\n    - &h\n      id: harbor-cache-oidc-dex\n      secret: old\nbackup: *h\n';
    expect(err(text)).toMatch(/^cluster\.git main:helmfile\/values\/dex\.yaml:2:3: berth cannot edit client harbor-cache-oidc-dex in config\.staticClients without changing other values/);
  });
});

describe('the diff the plan shows', () => {
  it('masks every secret-looking value line for line (inline secrets, clientSecret, bindPW, block scalars)', () => {
    const text = dedent(`
      connectors:
        - type: ldap
          config:
            bindPW: hunter2-ldap
            clientSecret: gh-secret-1
      staticClients:
        - id: a
          secret: |
            line-one-of-it
            line-two-of-it
          secretEnv: A_SECRET
        - id: b
          secret: 'inline-b'   # c
    `);
    const m = maskSecretValues(text);
    expect(m.split('\n')).toHaveLength(text.split('\n').length);
    for (const s of ['hunter2-ldap', 'gh-secret-1', 'line-one-of-it', 'line-two-of-it', 'inline-b']) expect(m).not.toContain(s);
    expect(m).toContain('    bindPW: (sensitive)\n');
    expect(m).toContain("    secret: (sensitive)   # c\n");
    expect(m).toContain('    secretEnv: A_SECRET\n');
  });

  it('a changed secret is a changed line, masked on both sides; no secret value in it', () => {
    const before = edited(FIXTURE).text;
    const after = edited(before, { ...HARBOR, secret: 'rotated-secret-value' }).text;
    const d = maskedDiff('helmfile/values/dex.yaml', before, after, maskSecretValues(before), maskSecretValues(after))!;
    expect(d).toContain('-      secret: (sensitive)\n+      secret: (sensitive)\n');
    expect(d.split('\n').filter((l) => /^[-+] /.test(l) || /^[-+]\s/.test(l))).toEqual(['-      secret: (sensitive)', '+      secret: (sensitive)']);
    for (const s of [SECRET, 'rotated-secret-value', 'Zm9vYmFyLWdyYWZhbmEtc2VjcmV0']) expect(d).not.toContain(s);
    expect(d.startsWith('--- helmfile/values/dex.yaml\n+++ helmfile/values/dex.yaml\n@@ -')).toBe(true);
  });

  it('an added client: its lines, the context around it, the secret masked', () => {
    const after = edited(FIXTURE).text;
    const d = maskedDiff('helmfile/values/dex.yaml', FIXTURE, after, maskSecretValues(FIXTURE), maskSecretValues(after))!;
    expect(d).toBe(
      [
        '--- helmfile/values/dex.yaml',
        '+++ helmfile/values/dex.yaml',
        '@@ -67,6 +67,11 @@',
        '       redirectURIs:',
        '         - https://grafana.example.com/login/generic_oauth',
        '       secret: (sensitive)   # do not reuse',
        '+    - id: harbor-cache-oidc-dex',
        '+      name: Harbor (harbor-cache.example.com)',
        '+      redirectURIs:',
        '+        - https://harbor-cache.example.com/c/oidc/callback',
        '+      secret: (sensitive)',
        ' ',
        '   enablePasswordDB: false',
        ' ',
        '',
      ].join('\n'),
    );
  });
});
