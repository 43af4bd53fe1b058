// known_hosts parsing against files made by the real ssh-keygen, with
// `ssh-keygen -F` (OpenSSH's own lookup) as the oracle for host matching.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendHostKey,
  checkHostKey,
  hostKeyName,
  keyTypeOfBlob,
  knownKeyTypes,
  lookupHostKey,
  matchHostField,
  matchPattern,
  parseKnownHosts,
} from '../../src/transport/knownhosts.js';

let dir: string;
interface Key {
  type: string;
  b64: string;
}
const keys: Record<string, Key> = {};

function keygen(name: string, type: 'ed25519' | 'ecdsa'): Key {
  const f = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', f]);
  const [t, b64] = readFileSync(`${f}.pub`, 'utf8').trim().split(' ');
  return { type: t!, b64: b64! };
}

/** OpenSSH's opinion: does `ssh-keygen -F name` find an entry in `file`? */
function opensshFinds(file: string, name: string): boolean {
  return spawnSync('ssh-keygen', ['-F', name, '-f', file], { encoding: 'utf8' }).status === 0;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-kh-'));
  keys['a'] = keygen('a', 'ed25519');
  keys['b'] = keygen('b', 'ed25519');
  keys['c'] = keygen('c', 'ecdsa');
  keys['d'] = keygen('d', 'ed25519');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const k = (n: string): Key => keys[n]!;
const line = (hosts: string, key: Key, marker = ''): string => `${marker ? marker + ' ' : ''}${hosts} ${key.type} ${key.b64} comment here`;

function plainFile(): string {
  const f = join(dir, `kh-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    f,
    [
      '# a comment line',
      '',
      line('web1,10.0.0.1', k('a')),
      line('*.example.com,!bad.example.com', k('a')),
      line('[10.0.0.2]:2222', k('a')),
      line('db?', k('a')),
      line('[10.0.0.*]:2200', k('a')),
      line('*', k('b'), '@revoked'),
      line('*.ca.test', k('c'), '@cert-authority'),
      'garbage-line-without-key',
      '',
    ].join('\n'),
  );
  return f;
}

describe('pattern matching', () => {
  it('handles * and ? wildcards, case-insensitively', () => {
    expect(matchPattern('web1', 'web?')).toBe(true);
    expect(matchPattern('web12', 'web?')).toBe(false);
    expect(matchPattern('a.b.example.com', '*.example.com')).toBe(true);
    expect(matchPattern('example.com', '*.example.com')).toBe(false);
    expect(matchPattern('WEB1', 'web*')).toBe(true);
    expect(matchPattern('anything', '*')).toBe(true);
    expect(matchPattern('aXbXc', 'a*b*c')).toBe(true);
    expect(matchPattern('aXbXd', 'a*b*c')).toBe(false);
  });

  it('negation in a list rejects the line', () => {
    expect(matchHostField('good.example.com', '*.example.com,!bad.example.com')).toBe(true);
    expect(matchHostField('bad.example.com', '*.example.com,!bad.example.com')).toBe(false);
    expect(matchHostField('bad.example.com', '!bad.example.com')).toBe(false);
    expect(matchHostField('other', '!bad.example.com')).toBe(false); // negation alone matches nothing
  });

  it('agrees with ssh-keygen -F on every name', () => {
    // the same host lines without the marker lines (`ssh-keygen -F` lists @revoked lines too)
    const f = join(dir, 'kh-oracle');
    const plain = readFileSync(plainFile(), 'utf8').split('\n').filter((l) => !l.startsWith('@'));
    writeFileSync(f, plain.join('\n'));
    const names = [
      'web1',
      'WEB1',
      '10.0.0.1',
      'web2',
      'x.example.com',
      'bad.example.com',
      'example.com',
      'db1',
      'db12',
      '[10.0.0.2]:2222',
      '[10.0.0.2]:22',
      '10.0.0.2',
      '[10.0.0.7]:2200',
      '[10.0.0.7]:2201',
    ];
    const entries = parseKnownHosts(readFileSync(f, 'utf8'));
    expect(entries).toHaveLength(5);
    for (const n of names) {
      const ours = entries.some((e) => matchHostField(n.toLowerCase(), e.hosts));
      expect({ name: n, found: ours }).toEqual({ name: n, found: opensshFinds(f, n) });
    }
  });
});

describe('checkHostKey (plain file)', () => {
  it('finds known keys by name, address, wildcard and port', () => {
    const f = plainFile();
    const a = k('a');
    expect(checkHostKey(f, 'web1', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, 'Web1', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, '10.0.0.1', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, 'shop.example.com', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, 'db7', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, '10.0.0.2', 2222, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, '10.0.0.9', 2200, a.type, a.b64)).toBe('ok');
  });

  it('does not match across ports, negations or near misses', () => {
    const f = plainFile();
    const a = k('a');
    expect(checkHostKey(f, '10.0.0.2', 22, a.type, a.b64)).toBe('unknown');
    expect(checkHostKey(f, '10.0.0.1', 2222, a.type, a.b64)).toBe('unknown');
    expect(checkHostKey(f, 'bad.example.com', 22, a.type, a.b64)).toBe('unknown');
    expect(checkHostKey(f, 'db17', 22, a.type, a.b64)).toBe('unknown');
    expect(checkHostKey(f, 'web2', 22, a.type, a.b64)).toBe('unknown');
  });

  it('reports a different key of the same type as a mismatch, with its line', () => {
    const f = plainFile();
    const d = k('d');
    expect(checkHostKey(f, 'web1', 22, d.type, d.b64)).toBe('mismatch');
    expect(lookupHostKey(f, 'web1', 22, d.type, d.b64)).toEqual({ status: 'mismatch', line: 3 });
    expect(checkHostKey(f, '10.0.0.2', 2222, d.type, d.b64)).toBe('mismatch');
  });

  it('a key of another type is unknown, not a mismatch', () => {
    const f = plainFile();
    const c = k('c');
    expect(checkHostKey(f, 'web1', 22, c.type, c.b64)).toBe('unknown');
  });

  it('@revoked keys are refused even where another line would accept them', () => {
    const f = plainFile();
    const b = k('b');
    expect(checkHostKey(f, 'anyhost', 22, b.type, b.b64)).toBe('revoked');
    writeFileSync(f, readFileSync(f, 'utf8') + line('trusted', b) + '\n');
    expect(checkHostKey(f, 'trusted', 22, b.type, b.b64)).toBe('revoked');
  });

  it('@cert-authority lines are ignored', () => {
    const f = plainFile();
    const c = k('c');
    expect(checkHostKey(f, 'node.ca.test', 22, c.type, c.b64)).toBe('unknown');
  });

  it('several names: a mismatch under one name wins over a match under another', () => {
    const f = join(dir, 'kh-multi');
    writeFileSync(f, `${line('10.9.9.9', k('a'))}\n${line('alias', k('d'))}\n`);
    const a = k('a');
    expect(checkHostKey(f, ['10.9.9.9', 'other'], 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, ['10.9.9.9', 'alias'], 22, a.type, a.b64)).toBe('mismatch');
  });

  it('a missing file knows nothing', () => {
    const a = k('a');
    expect(checkHostKey(join(dir, 'nope', 'known_hosts'), 'web1', 22, a.type, a.b64)).toBe('unknown');
  });

  it('lists the key types on record for a host (for algorithm negotiation)', () => {
    const f = join(dir, 'kh-types');
    writeFileSync(f, `${line('h1', k('c'))}\n${line('h1', k('a'))}\n${line('h2', k('a'))}\n${line('*', k('b'), '@revoked')}\n`);
    expect(knownKeyTypes(f, 'h1', 22)).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
    expect(knownKeyTypes(f, 'h3', 22)).toEqual([]);
  });
});

describe('hashed known_hosts (ssh-keygen -H)', () => {
  it('matches hashed names and [host]:port entries exactly like the plain file', () => {
    const f = join(dir, 'kh-hashed');
    writeFileSync(f, [line('web1', k('a')), line('[10.0.0.2]:2222', k('a')), line('10.0.0.3', k('c'))].join('\n') + '\n');
    execFileSync('ssh-keygen', ['-q', '-H', '-f', f]);
    const text = readFileSync(f, 'utf8');
    expect(text).not.toContain('web1');
    expect(text).not.toContain('10.0.0.2');
    expect(text.match(/^\|1\|/gm)).toHaveLength(3);

    const a = k('a');
    const c = k('c');
    const d = k('d');
    expect(checkHostKey(f, 'web1', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, 'WEB1', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, 'web2', 22, a.type, a.b64)).toBe('unknown');
    expect(checkHostKey(f, '10.0.0.2', 2222, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, '10.0.0.2', 22, a.type, a.b64)).toBe('unknown');
    expect(checkHostKey(f, '10.0.0.3', 22, c.type, c.b64)).toBe('ok');
    expect(checkHostKey(f, 'web1', 22, d.type, d.b64)).toBe('mismatch');
  });
});

describe('appendHostKey', () => {
  it('creates the directory and a 0600 file that OpenSSH reads back', () => {
    const f = join(dir, 'new', 'sub', 'known_hosts');
    const a = k('a');
    appendHostKey(f, '127.0.0.5', 22, a.type, a.b64);
    appendHostKey(f, '127.0.0.5', 2222, a.type, a.b64);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, 'utf8')).toBe(`127.0.0.5 ${a.type} ${a.b64}\n[127.0.0.5]:2222 ${a.type} ${a.b64}\n`);
    expect(checkHostKey(f, '127.0.0.5', 22, a.type, a.b64)).toBe('ok');
    expect(checkHostKey(f, '127.0.0.5', 2222, a.type, a.b64)).toBe('ok');
    expect(opensshFinds(f, '127.0.0.5')).toBe(true);
    expect(opensshFinds(f, '[127.0.0.5]:2222')).toBe(true);
  });

  it('keeps existing lines and mode, and adds a newline the old file lacked', () => {
    const f = join(dir, 'kh-existing');
    writeFileSync(f, line('old', k('c'))); // no trailing newline
    chmodSync(f, 0o644);
    const a = k('a');
    appendHostKey(f, 'newhost', 22, a.type, a.b64);
    expect(statSync(f).mode & 0o777).toBe(0o644);
    const lines = readFileSync(f, 'utf8').split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(line('old', k('c')));
    expect(checkHostKey(f, 'old', 22, k('c').type, k('c').b64)).toBe('ok');
    expect(checkHostKey(f, 'newhost', 22, a.type, a.b64)).toBe('ok');
  });

  it('refuses junk that would corrupt the file', () => {
    const f = join(dir, 'kh-junk');
    expect(() => appendHostKey(f, 'a b', 22, 'ssh-ed25519', 'AAAA')).toThrow(/invalid host name/);
    expect(() => appendHostKey(f, 'h', 22, 'ssh ed25519', 'AAAA')).toThrow(/invalid host key type/);
    expect(() => appendHostKey(f, 'h', 22, 'ssh-ed25519', 'AA AA')).toThrow(/not base64/);
  });
});

describe('helpers', () => {
  it('names hosts on other ports as [host]:port', () => {
    expect(hostKeyName('Web1', 22)).toBe('web1');
    expect(hostKeyName('10.0.0.1', 2222)).toBe('[10.0.0.1]:2222');
  });

  it('reads the key type out of a wire-format key blob', () => {
    const a = k('a');
    expect(keyTypeOfBlob(Buffer.from(a.b64, 'base64'))).toBe('ssh-ed25519');
    expect(keyTypeOfBlob(Buffer.from(k('c').b64, 'base64'))).toBe('ecdsa-sha2-nistp256');
    expect(keyTypeOfBlob(Buffer.alloc(2))).toBe('');
  });
});
