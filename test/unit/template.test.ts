import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parse as parseToml } from 'smol-toml';
import { evalCondition, lookupPath, renderTemplate, renderValue } from '../../src/template/index.js';
import { Secret } from '../../src/secrets/secret.js';
import { BerthError } from '../../src/util/errors.js';

const FILE = { file: 'roles/harbor/templates/harbor.yml.hbs' };

/** Renders and insists on a plain string (no secret reached the output). */
function plain(source: string, context: Record<string, unknown> = {}): string {
  const out = renderTemplate(source, context, FILE);
  if (typeof out !== 'string') throw new Error(`expected a plain string, got ${inspect(out)}`);
  return out;
}

/** Renders and insists on a Secret. */
function secret(source: string, context: Record<string, unknown>): Secret {
  const out = renderTemplate(source, context, FILE);
  if (!(out instanceof Secret)) throw new Error(`expected a Secret, got ${JSON.stringify(out)}`);
  return out;
}

/** The BerthError a call throws (fails the test if it throws nothing or something else). */
function berthError(fn: () => unknown): BerthError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BerthError) return e;
    throw new Error(`expected a BerthError, got ${inspect(e)}`);
  }
  throw new Error('expected a BerthError, nothing was thrown');
}

// ---------------------------------------------------------------- strict mode and positions

describe('errors point at the template line', () => {
  const ctx = { hostname: 'cache-1', tls: { mode: 'selfsigned' }, harbor: { port: 443 } };

  it('a missing variable on line 3 of a template file reports file:3:col, names it and lists known variables', () => {
    const err = berthError(() => renderTemplate('hostname: {{hostname}}\nport: 443\n  cert: {{tls_cert}}\n', ctx, FILE));
    expect(err.pos).toEqual({ file: FILE.file, line: 3, col: 11 });
    expect(err.message).toContain('"tls_cert"');
    expect(err.hint).toMatch(/known variables: .*hostname/);
    expect(err.hint).toContain('tls');
    expect(err.format()).toMatch(/^roles\/harbor\/templates\/harbor\.yml\.hbs:3:11: template variable "tls_cert" is not defined \(/);
  });

  it('a misspelt nested key names the whole path and suggests the key', () => {
    const err = berthError(() => renderTemplate('a\n{{tls.mdoe}}', ctx, FILE));
    expect(err.pos).toMatchObject({ line: 2, col: 3 });
    expect(err.message).toContain('"tls.mdoe"');
    expect(err.hint).toContain('did you mean "mode"');
  });

  it('a missing parent in the middle of a path (not caught by Handlebars itself) is located too', () => {
    const err = berthError(() => renderTemplate('x\ny\nz {{#if dex.enabled}}on{{/if}}', ctx, FILE));
    expect(err.pos).toMatchObject({ file: FILE.file, line: 3 });
    expect(err.message).toContain('"dex.enabled"');
  });

  it('a missing helper argument is an error naming the argument, with a suggestion', () => {
    const err = berthError(() => renderTemplate('one\n  {{shq hostnme}}', ctx, FILE));
    expect(err.pos).toEqual({ file: FILE.file, line: 2, col: 9 });
    expect(err.message).toContain('"hostnme"');
    expect(err.message).toContain('shq');
    expect(err.hint).toContain('did you mean "hostname"');
  });

  it('an unknown helper is named, with the helpers that exist', () => {
    const err = berthError(() => renderTemplate('{{shellquote hostname}}', ctx, FILE));
    expect(err.message).toBe('unknown helper "shellquote"');
    expect(err.hint).toContain('shq');
  });

  it('a top-level name used inside #each is explained', () => {
    const err = berthError(() => renderTemplate('{{#each harbor}}{{hostname}}{{/each}}', ctx, FILE));
    expect(err.hint).toContain('@root.hostname');
  });

  it('a syntax error reports the line the parser stopped on', () => {
    const err = berthError(() => renderTemplate('a: 1\nb: 2\nc: {{#if tls}}\nd: 4\n', ctx, FILE));
    expect(err.pos).toMatchObject({ file: FILE.file, line: 5 });
    expect(err.message).toMatch(/^template syntax error: unexpected end of template/);
    const err2 = berthError(() => renderTemplate('a\nb {{ hostname }\n', ctx, FILE));
    expect(err2.pos).toMatchObject({ line: 2 });
  });

  it('a block mismatch reports its line', () => {
    const err = berthError(() => renderTemplate('a\n{{#if tls}}x{{/each}}', ctx, FILE));
    expect(err.pos).toMatchObject({ line: 2 });
    expect(err.message).toContain("if doesn't match each");
  });

  it('an inline template adds the line of the string in the YAML file', () => {
    const origin = { file: 'playbooks/site.yml', line: 14, col: 12 };
    const onThird = berthError(() => renderTemplate('a\nb\n{{nope}}', ctx, origin));
    expect(onThird.pos).toEqual({ file: 'playbooks/site.yml', line: 16 });
    const onFirst = berthError(() => renderTemplate('x {{nope}}', ctx, origin));
    expect(onFirst.pos).toEqual({ file: 'playbooks/site.yml', line: 14, col: 12 });
    expect(onFirst.format()).toMatch(/^playbooks\/site\.yml:14:12: template variable "nope" is not defined/);
  });

  it('the same source renders with different contexts (compiled once, not bound to a context)', () => {
    expect(plain('{{hostname}}', { hostname: 'a' })).toBe('a');
    expect(plain('{{hostname}}', { hostname: 'b' })).toBe('b');
  });

  it('nothing is HTML-escaped', () => {
    expect(plain('{{x}}', { x: `<a href="x">&'</a>` })).toBe(`<a href="x">&'</a>`);
  });
});

// ---------------------------------------------------------------- secrets

describe('secrets', () => {
  const value = `hunter2 p@ss'w"rd $(id) \`x\`\nsecond line`;
  const ctx = () => ({ admin: 'admin', db: { password: new Secret(value) } });

  it('a template with a secret returns a Secret: real value inside, "(sensitive)" everywhere it prints', () => {
    const out = secret('user: {{admin}}\npassword: {{db.password}}\n', ctx());
    expect(out.reveal()).toBe(`user: admin\npassword: ${value}\n`);
    expect(out.display).toBe('user: admin\npassword: (sensitive)\n');
    for (const printed of [String(out), `${out}`, JSON.stringify({ out }), inspect(out), inspect({ deep: [out] })]) {
      expect(printed).not.toContain('hunter2');
      expect(printed).toContain('(sensitive)');
    }
  });

  it('a template that does not use the secret returns a plain string', () => {
    expect(plain('user: {{admin}}', ctx())).toBe('user: admin');
  });

  it('a secret inside a list and a map is found', () => {
    const out = secret('{{#each users}}{{name}}={{pw}};{{/each}}', { users: [{ name: 'a', pw: new Secret('s3cret-a') }] });
    expect(out.reveal()).toBe('a=s3cret-a;');
    expect(out.display).toBe('a=(sensitive);');
  });

  // Each helper: the real pass must equal what the helper gives for the plain
  // value, and the display must not contain any of the value.
  for (const helper of ['shq', 'b64', 'json', 'toml', 'yaml', 'quote', 'upper', 'lower', 'trim', 'indent 4', 'lines']) {
    it(`a Secret through ${helper} stays secret in display and is right in real`, () => {
      const tpl = `k = {{${helper} db.password}}`;
      const out = secret(tpl, ctx());
      expect(out.reveal()).toBe(plain(tpl, { db: { password: value } }));
      expect(out.reveal()).not.toBe(plain(tpl, { db: { password: 'other' } }));
      expect(out.display).not.toMatch(/hunter2|p@ss|id\)|second/i);
      expect(out.display).toMatch(/\(sensitive\)/i);
    });
  }

  it('b64 and upper show "(sensitive)", not an encoding of the display text', () => {
    const out = secret('{{b64 s}}|{{b64 (upper s)}}', { s: new Secret('topsecret') });
    expect(out.display).toBe('(sensitive)|(sensitive)');
    expect(out.reveal()).toBe(`${Buffer.from('topsecret').toString('base64')}|${Buffer.from('TOPSECRET').toString('base64')}`);
  });

  it('a map holding a secret through json, yaml and toml: real parses back, display masks only the secret', () => {
    const cfg = { user: 'robot', password: new Secret(value) };
    const j = secret('{{json cfg}}', { cfg });
    expect(JSON.parse(j.reveal())).toEqual({ user: 'robot', password: value });
    expect(JSON.parse(j.display)).toEqual({ user: 'robot', password: '(sensitive)' });
    const y = secret('{{yaml cfg}}', { cfg });
    expect(YAML.parse(y.reveal())).toEqual({ user: 'robot', password: value });
    expect(YAML.parse(y.display)).toEqual({ user: 'robot', password: '(sensitive)' });
    const t = secret('{{toml cfg}}', { cfg });
    expect(parseToml(t.reveal())).toEqual({ user: 'robot', password: value });
    expect(parseToml(t.display)).toEqual({ user: 'robot', password: '(sensitive)' });
  });

  it('a rendered config (itself a Secret with a display) indented into another keeps its non-secret lines', () => {
    const inner = secret('a: 1\nb: {{s}}\n', { s: new Secret('zzz-secret') });
    const outer = secret('conf:\n  {{indent 2 inner}}', { inner });
    expect(outer.reveal()).toBe('conf:\n  a: 1\n  b: zzz-secret\n');
    expect(outer.display).toBe('conf:\n  a: 1\n  b: (sensitive)\n');
  });

  it('a secret used only to decide a branch does not reach the output', () => {
    expect(plain('{{#if s}}set{{/if}}', { s: new Secret('x-secret') })).toBe('set');
  });

  it('errors raised while rendering with secrets never contain the value', () => {
    const s = new Secret('leaky-value-123');
    const err = berthError(() => renderTemplate('{{indent s s}}', { s }, FILE));
    expect(err.format()).not.toContain('leaky');
    expect(err.message).toContain('indent');
    const err2 = berthError(() => renderTemplate('{{s.inner}}', { s }, FILE));
    expect(err2.format()).not.toContain('leaky');
    expect(err2.hint).toContain('"s" is a secret');
  });
});

// ---------------------------------------------------------------- shell quoting

describe('shq against a real sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-shq-'));
  const canary = join(dir, 'pwned');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const payloads = [
    `$(touch ${canary})`,
    `\`touch ${canary}\``,
    `"; touch ${canary}; echo "`,
    `'; touch ${canary}; echo '`,
    `it's "quoted"`,
    'line one\nline two\n',
    '\n',
    '',
    '*',
    '-n',
    '${HOME} $HOME \\ \\n',
    "'",
    "''''",
    'tab\there',
    'ünïcødé ✓',
  ];

  for (const p of payloads) {
    it(`prints ${JSON.stringify(p)} byte for byte`, () => {
      for (const s of [p, new Secret(p)]) {
        const out = renderTemplate('printf %s {{shq s}}', { s }, FILE);
        const script = out instanceof Secret ? out.reveal() : out;
        const printed = execFileSync('sh', ['-c', script]);
        expect(printed.equals(Buffer.from(p, 'utf8'))).toBe(true);
      }
      expect(existsSync(canary)).toBe(false);
    });
  }
});

// ---------------------------------------------------------------- renderValue

describe('renderValue', () => {
  const password = new Secret('pw-value-xyz');
  const ctx = {
    ports: { https: 443 },
    flags: { on: true },
    names: ['a', 'b'],
    cfg: { k: 'v' },
    nothing: null,
    db: { password },
    multi: 'l1\nl2',
  };
  const locate = (path: (string | number)[]) => ({ file: 'playbooks/site.yml', line: 30 + path.length, col: 9 });

  it('renders strings with {{, leaves everything else alone, and types single expressions', () => {
    const out = renderValue(
      {
        port: '{{ports.https}}',
        on: '{{ flags.on }}',
        list: '{{names}}',
        map: '{{cfg}}',
        none: '{{nothing}}',
        pw: '{{db.password}}',
        text: 'port {{ports.https}}',
        spaced: ' {{ports.https}}',
        isOn: '{{eq flags.on true}}',
        fallback: '{{default missing 5}}',
        lines: '{{lines multi}}',
        number: 7,
        literal: 'no braces {',
        nested: [{ deep: '{{ports.https}}' }],
      },
      ctx,
      locate,
    ) as Record<string, unknown>;
    expect(out).toEqual({
      port: 443,
      on: true,
      list: ['a', 'b'],
      map: { k: 'v' },
      none: null,
      pw: password,
      text: 'port 443',
      spaced: ' 443',
      isOn: true,
      fallback: 5,
      lines: ['l1', 'l2'],
      number: 7,
      literal: 'no braces {',
      nested: [{ deep: 443 }],
    });
    expect(out.pw).toBe(password);
  });

  it('a string with a secret becomes a Secret; a typed helper result on a secret too', () => {
    const out = renderValue(
      { url: 'https://robot:{{db.password}}@cache', dflt: '{{default db.password "x"}}', lines: '{{lines db.password}}' },
      ctx,
      locate,
    ) as Record<string, unknown>;
    expect(out.url).toBeInstanceOf(Secret);
    expect((out.url as Secret).reveal()).toBe('https://robot:pw-value-xyz@cache');
    expect((out.url as Secret).display).toBe('https://robot:(sensitive)@cache');
    expect(out.dflt).toBeInstanceOf(Secret);
    expect((out.dflt as Secret).reveal()).toBe('pw-value-xyz');
    expect(out.lines).toEqual([expect.any(Secret)]);
    expect(((out.lines as Secret[])[0] as Secret).reveal()).toBe('pw-value-xyz');
    expect(JSON.stringify(out)).not.toContain('pw-value');
  });

  it('errors carry the position of the string that failed', () => {
    const err = berthError(() => renderValue({ args: { dest: ['ok', '{{ports.htps}}'] } }, ctx, locate));
    expect(err.pos).toEqual({ file: 'playbooks/site.yml', line: 33, col: 9 });
    expect(err.message).toContain('"ports.htps"');
    const second = berthError(() => renderValue({ content: 'a\n{{nope}}' }, ctx, locate));
    expect(second.pos).toEqual({ file: 'playbooks/site.yml', line: 32 });
  });
});

// ---------------------------------------------------------------- conditions

describe('evalCondition', () => {
  const pos = { file: 'roles/certs/tasks/main.yml', line: 7, col: 11 };
  const ctx = {
    out: '',
    tls: { mode: 'selfsigned', enabled: true, off: false },
    count: 0,
    empty: [],
    some: ['x'],
    word: 'no',
    s: new Secret('yes-secret'),
  };

  const falsy = ['', 'false', 'FALSE', 'False', '0', 'no', 'No', 'null', 'undefined', '  false\n'];
  const truthy = ['true', '1', 'yes', 'x', 'off-by-one', '00'];
  for (const text of falsy) {
    it(`rendered ${JSON.stringify(text)} is false`, () => {
      expect(evalCondition('{{out}}', { out: text }, pos)).toBe(false);
    });
  }
  for (const text of truthy) {
    it(`rendered ${JSON.stringify(text)} is true`, () => {
      expect(evalCondition('{{out}}', { out: text }, pos)).toBe(true);
    });
  }

  it('templates with helpers', () => {
    expect(evalCondition("{{eq tls.mode 'selfsigned'}}", ctx, pos)).toBe(true);
    expect(evalCondition("{{eq tls.mode 'acme'}}", ctx, pos)).toBe(false);
    expect(evalCondition('{{#if tls.off}}yes{{/if}}', ctx, pos)).toBe(false);
    expect(evalCondition('{{s}}', ctx, pos)).toBe(true);
  });

  it('bare variable paths', () => {
    expect(evalCondition('tls.enabled', ctx, pos)).toBe(true);
    expect(evalCondition('tls.off', ctx, pos)).toBe(false);
    expect(evalCondition('not tls.off', ctx, pos)).toBe(true);
    expect(evalCondition('!tls.enabled', ctx, pos)).toBe(false);
    expect(evalCondition('count', ctx, pos)).toBe(false);
    expect(evalCondition('empty', ctx, pos)).toBe(false);
    expect(evalCondition('some', ctx, pos)).toBe(true);
    expect(evalCondition('word', ctx, pos)).toBe(false);
    expect(evalCondition('tls', ctx, pos)).toBe(true);
  });

  it('an undefined variable is an error at the condition, with known names', () => {
    const err = berthError(() => evalCondition('tls.enabeld', ctx, pos));
    expect(err.pos).toEqual(pos);
    expect(err.message).toContain('"tls.enabeld"');
    expect(err.hint).toContain('did you mean "enabled"');
    const tpl = berthError(() => evalCondition('{{eq tsl.mode "x"}}', ctx, pos));
    expect(tpl.pos).toMatchObject({ file: pos.file, line: 7 });
  });

  it('an expression that is neither is rejected', () => {
    const err = berthError(() => evalCondition("tls.mode == 'selfsigned'", ctx, pos));
    expect(err.hint).toContain('{{eq');
  });
});

// ---------------------------------------------------------------- helpers

describe('helpers', () => {
  it('json, with and without indent', () => {
    expect(plain('{{json v}}', { v: { a: [1, 'x'] } })).toBe('{"a":[1,"x"]}');
    expect(plain('{{json v 2}}', { v: { a: 1 } })).toBe('{\n  "a": 1\n}');
    expect(plain('{{json s}}', { s: 'say "hi"' })).toBe('"say \\"hi\\""');
  });

  it('yaml of a map and of a string that needs quotes', () => {
    expect(YAML.parse(plain('{{yaml v}}', { v: { a: 1, b: ['x: y'] } }))).toEqual({ a: 1, b: ['x: y'] });
    expect(plain('key: {{yaml s}}', { s: 'a: b' })).toBe('key: "a: b"');
  });

  it('toml of a table, a string, a number, a boolean and a list; null is refused', () => {
    const doc = plain('{{toml v}}', { v: { name: 'x', port: 443, nested: { on: true } } });
    expect(parseToml(doc)).toEqual({ name: 'x', port: 443, nested: { on: true } });
    const weird = 'a "b" \\ c\n\t\u0001\u007f é';
    const line = plain('a = {{toml s}}\nb = {{toml n}}\nc = {{toml t}}\nd = {{toml l}}', { s: weird, n: 1.5, t: false, l: ['x', 2] });
    expect(parseToml(line)).toEqual({ a: weird, b: 1.5, c: false, d: ['x', 2] });
    const err = berthError(() => renderTemplate('{{toml v}}', { v: { a: null } }, FILE));
    expect(err.message).toMatch(/toml.*null/);
  });

  it('quote gives a string YAML, TOML and JSON all read back exactly', () => {
    const weird = 'it\'s "x" \\ \n\r\t\b\f \u0000 \u001b \u007f \u0085 ✓ 😀 #: -';
    const q = plain('{{quote s}}', { s: weird });
    expect(YAML.parse(`k: ${q}`)).toEqual({ k: weird });
    expect(parseToml(`k = ${q}`)).toEqual({ k: weird });
    expect(JSON.parse(q)).toBe(weird);
  });

  it('b64 and b64decode', () => {
    expect(plain('{{b64 s}}', { s: 'héllo\n' })).toBe(Buffer.from('héllo\n').toString('base64'));
    expect(plain('{{b64decode (b64 s)}}', { s: 'héllo\n' })).toBe('héllo\n');
    const err = berthError(() => renderTemplate('{{b64decode s}}', { s: 'not base64!' }, FILE));
    expect(err.message).toContain('base64');
  });

  it('indent: every line but the first, or also the first with first=true; blank lines stay blank', () => {
    expect(plain('x:\n  {{indent 2 s}}', { s: 'a\nb\n\nc' })).toBe('x:\n  a\n  b\n\n  c');
    expect(plain('{{indent 4 s first=true}}', { s: 'a\nb' })).toBe('    a\n    b');
  });

  it('default takes the fallback for a missing, null or empty value', () => {
    const ctx = { set: 'v', empty: '', nil: null, zero: 0 };
    expect(plain('{{default set "d"}} {{default missing "d"}} {{default empty "d"}} {{default nil "d"}} {{default zero "d"}}', ctx)).toBe(
      'v d d d 0',
    );
  });

  it('eq, ne, and, or, not', () => {
    const ctx = { a: 1, b: 2, t: true, f: false, list: [] };
    expect(plain('{{eq a 1}} {{eq a b}} {{ne a b}} {{ne a 1}}', ctx)).toBe('true false true false');
    expect(plain('{{and t t}} {{and t f}} {{or f t}} {{or f list}} {{not f}} {{not list}} {{not t}}', ctx)).toBe(
      'true false true false true true false',
    );
    expect(plain('{{#if (and t (not f))}}yes{{/if}}', ctx)).toBe('yes');
  });

  it('join, upper, lower, trim, replace', () => {
    const ctx = { l: ['a', 'b', 3], s: '  Mixed Case  ' };
    expect(plain('{{join l}}|{{join l ", "}}', ctx)).toBe('a,b,3|a, b, 3');
    expect(plain('{{upper s}}|{{lower s}}|{{trim s}}', ctx)).toBe('  MIXED CASE  |  mixed case  |Mixed Case');
    expect(plain('{{replace s "a" "4"}}', ctx)).toBe('  Mixed C4se  ');
  });

  it('lines gives a list (for #each), without a trailing empty line', () => {
    expect(plain('{{#each (lines s)}}[{{this}}]{{/each}}', { s: 'a\r\nb\nc\n' })).toBe('[a][b][c]');
    expect(plain('{{#each (lines s)}}[{{this}}]{{/each}}', { s: '' })).toBe('');
  });

  it('helpers check their arguments', () => {
    expect(berthError(() => renderTemplate('{{upper l}}', { l: [1] }, FILE)).message).toContain('must be text');
    expect(berthError(() => renderTemplate('{{eq 1}}', {}, FILE)).message).toContain('takes 2 arguments');
    expect(berthError(() => renderTemplate('{{join s}}', { s: 'x' }, FILE)).message).toContain('must be a list');
  });
});

describe('lookupPath', () => {
  const ctx = { a: { b: [{ c: 'deep' }] }, s: new Secret('zz-top') };
  it('walks maps and list indexes, and answers undefined for anything missing', () => {
    expect(lookupPath(ctx, 'a.b.0.c')).toBe('deep');
    expect(lookupPath(ctx, ['a', 'b', 0, 'c'])).toBe('deep');
    expect(lookupPath(ctx, 'a.b.1.c')).toBeUndefined();
    expect(lookupPath(ctx, 'a.x.y')).toBeUndefined();
    expect(lookupPath(ctx, 'a.constructor')).toBeUndefined();
    expect(lookupPath(ctx, 's.length')).toBeUndefined();
    expect(lookupPath(ctx, '')).toBe(ctx);
  });
});
