// The minimal edit of someone else's TOML (containerd's config.toml): one
// value or one line changes, every other byte stays, and the result is parsed
// again to mean exactly the old document plus that value.

import { describe, expect, it } from 'vitest';
import { parse } from 'smol-toml';
import { TomlEditError, lineOfPath, scanStatements, setTomlString } from '../../src/toml/edit.js';
import { containerdConfigEdit } from '../../src/modules/containerd_config.js';
import { BerthError } from '../../src/util/errors.js';
import { berthError } from './helpers.js';

const V2 = ['plugins', 'io.containerd.grpc.v1.cri', 'registry'];
const V3 = ['plugins', 'io.containerd.cri.v1.images', 'registry'];
const CERTS = '/etc/containerd/certs.d';

/** Debian 12's /etc/containerd/config.toml, as the containerd package ships it. */
const DEBIAN = `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`;

/** The registry part of `containerd config default` (1.6/1.7), where most kubeadm nodes start. */
const DEFAULT_DUMP = `disabled_plugins = []
imports = []
oom_score = 0
root = "/var/lib/containerd"
state = "/run/containerd"
version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""

      [plugins."io.containerd.grpc.v1.cri".registry.auths]

      [plugins."io.containerd.grpc.v1.cri".registry.configs]

      [plugins."io.containerd.grpc.v1.cri".registry.headers]

      [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
`;

/** The lines of `after` that are not in `before`, when everything else is kept in order. */
function added(before: string, after: string): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  const extra: string[] = [];
  let i = 0;
  for (const line of b) {
    if (i < a.length && line === a[i]) i++;
    else extra.push(line);
  }
  expect(i, 'every old line is kept, in order').toBe(a.length);
  return extra;
}

describe('setTomlString', () => {
  it("Debian's config: a registry table after the cri plugin's block, every old byte kept", () => {
    const r = setTomlString(DEBIAN, V2, 'config_path', CERTS);
    expect(r.changed).toBe(true);
    expect(added(DEBIAN, r.text)).toEqual(['', '    [plugins."io.containerd.grpc.v1.cri".registry]', `      config_path = "${CERTS}"`]);
    // it sits inside the cri block, before the next plugin
    expect(r.text.indexOf('.registry]')).toBeLessThan(r.text.indexOf('internal.v1.opt'));
    expect((parse(r.text) as any).plugins['io.containerd.grpc.v1.cri'].registry.config_path).toBe(CERTS);
  });

  it('indented like the sibling tables, not like the deepest one before it', () => {
    const text = [
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  sandbox_image = "registry.k8s.io/pause:3.9"',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '      SystemdCgroup = false',
      '',
      '[plugins."io.containerd.internal.v1.opt"]',
      '  path = "/var/lib/containerd/opt"',
      '',
    ].join('\n');
    const r = setTomlString(`version = 2\n${text}`, V2, 'config_path', CERTS);
    expect(r.text).toBe(`version = 2\n${text.replace('SystemdCgroup = false\n', `SystemdCgroup = false\n\n  [plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "${CERTS}"\n`)}`);
  });

  it('`containerd config default`: only the value of config_path = "" changes', () => {
    const r = setTomlString(DEFAULT_DUMP, V2, 'config_path', CERTS);
    expect(r.text).toBe(DEFAULT_DUMP.replace('config_path = ""', `config_path = "${CERTS}"`));
    expect(r.how).toBe('replaced the value on line 14');
  });

  it('a table header without the key: one line under it, indented like its first key', () => {
    const text = '# mine\nversion = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry] # kept\n        headers = {}\n';
    const r = setTomlString(text, V2, 'config_path', CERTS);
    expect(r.text).toBe(`# mine\nversion = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry] # kept\n        config_path = "${CERTS}"\n        headers = {}\n`);
  });

  it('a dotted key at the top level and a comment on its line: the value alone is replaced', () => {
    const text = `version = 2\nplugins."io.containerd.grpc.v1.cri".registry.config_path = '/old' # who set this\nroot = "/x"\n`;
    const r = setTomlString(text, V2, 'config_path', CERTS);
    expect(r.text).toBe(`version = 2\nplugins."io.containerd.grpc.v1.cri".registry.config_path = "${CERTS}" # who set this\nroot = "/x"\n`);
  });

  it('headers inside multi-line strings and arrays are not headers', () => {
    const text = [
      'version = 2',
      'note = """',
      '[plugins."io.containerd.grpc.v1.cri".registry]',
      'config_path = "fake"',
      '"""',
      "lit = '''",
      "[plugins.x] '''",
      'list = [',
      '  "a", # [plugins."io.containerd.grpc.v1.cri".registry]',
      '  "b",',
      ']',
      '',
    ].join('\n');
    const r = setTomlString(text, V2, 'config_path', CERTS);
    expect(r.text).toBe(`${text}\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "${CERTS}"\n`);
    expect((parse(r.text) as any).note).toBe((parse(text) as any).note);
  });

  it('keeps CRLF line endings', () => {
    const text = 'version = 2\r\n[plugins."io.containerd.grpc.v1.cri".registry]\r\n  x = 1\r\n';
    expect(setTomlString(text, V2, 'config_path', CERTS).text).toBe(`version = 2\r\n[plugins."io.containerd.grpc.v1.cri".registry]\r\n  config_path = "${CERTS}"\r\n  x = 1\r\n`);
  });

  it('a value that is already there: the same text, unchanged', () => {
    const text = DEFAULT_DUMP.replace('config_path = ""', `config_path = "${CERTS}"`);
    const r = setTomlString(text, V2, 'config_path', CERTS);
    expect(r).toEqual({ text, changed: false });
  });

  it('a registry table written inline or with dotted keys is refused, naming the line', () => {
    const inline = '[plugins."io.containerd.grpc.v1.cri"]\n  registry = { headers = {} }\n';
    const e1 = (() => {
      try {
        setTomlString(inline, V2, 'config_path', CERTS);
      } catch (e) {
        return e as TomlEditError;
      }
    })();
    expect(e1).toBeInstanceOf(TomlEditError);
    expect(e1!.message).toBe('[plugins."io.containerd.grpc.v1.cri".registry] is written with dotted keys or an inline table (line 2); berth does not rewrite that form');
    expect(() => setTomlString('[plugins."io.containerd.grpc.v1.cri"]\nregistry.headers.x = "y"\n', V2, 'config_path', CERTS)).toThrow(/dotted keys or an inline table \(line 2\)/);
  });

  it('invalid TOML: an error with its line, nothing written', () => {
    let err: TomlEditError | undefined;
    try {
      setTomlString('version = 2\n[plugins\n', V2, 'config_path', CERTS);
    } catch (e) {
      err = e as TomlEditError;
    }
    expect(err).toBeInstanceOf(TomlEditError);
    expect(err!.line).toBe(2);
    expect(err!.message).toMatch(/^not valid TOML: /);
  });

  it('the scanner finds statements and their lines', () => {
    const st = scanStatements(DEBIAN);
    expect(st.map((s) => `${s.line} ${s.kind} ${s.path.join('|')}`)).toEqual([
      '1 keyval version',
      '3 table plugins',
      '4 table plugins|io.containerd.grpc.v1.cri',
      '5 table plugins|io.containerd.grpc.v1.cri|cni',
      '6 keyval plugins|io.containerd.grpc.v1.cri|cni|bin_dir',
      '7 keyval plugins|io.containerd.grpc.v1.cri|cni|conf_dir',
      '8 table plugins|io.containerd.internal.v1.opt',
      '9 keyval plugins|io.containerd.internal.v1.opt|path',
    ]);
    expect(lineOfPath(DEFAULT_DUMP, [...V2, 'mirrors'])).toBe(22);
  });
});

describe('containerdConfigEdit (config_path for the CRI plugin)', () => {
  const where = '/etc/containerd/config.toml on n1';

  it('no config.toml: a version 2 file for containerd 1.x, version 3 for 2.x', () => {
    expect(containerdConfigEdit(undefined, CERTS, 1, where)).toEqual({
      text: `version = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "${CERTS}"\n`,
      changed: true,
      version: 2,
    });
    const v3 = containerdConfigEdit(undefined, CERTS, 2, where);
    expect(v3.version).toBe(3);
    expect((parse(v3.text) as any).plugins['io.containerd.cri.v1.images'].registry.config_path).toBe(CERTS);
  });

  it('a version 3 file gets the images plugin key', () => {
    const text = 'version = 3\n\n[plugins."io.containerd.cri.v1.images"]\n  snapshotter = "overlayfs"\n';
    const r = containerdConfigEdit(text, CERTS, 2, where);
    expect(r.text).toBe(`${text}\n  [plugins."io.containerd.cri.v1.images".registry]\n    config_path = "${CERTS}"\n`);
    expect((parse(r.text) as any).plugins['io.containerd.cri.v1.images'].registry.config_path).toBe(CERTS);
    expect(V3).toEqual(['plugins', 'io.containerd.cri.v1.images', 'registry']);
  });

  it('a file of comments only keeps them', () => {
    const text = '# managed by hand\n';
    expect(containerdConfigEdit(text, CERTS, 1, where).text).toBe(`# managed by hand\n\nversion = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "${CERTS}"\n`);
  });

  it('config_path already lists the directory among others: no change', () => {
    const text = DEFAULT_DUMP.replace('config_path = ""', `config_path = "/etc/docker/certs.d:${CERTS}"`);
    expect(containerdConfigEdit(text, CERTS, 1, where)).toEqual({ text, changed: false, version: 2 });
  });

  it('legacy mirrors with config_path: refused, naming the line and why (containerd 1.7)', () => {
    const text = `${DEFAULT_DUMP}        [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n          endpoint = ["https://mirror.example.com"]\n`;
    const e = berthError(() => containerdConfigEdit(text, CERTS, 1, where));
    expect(e.format()).toBe(
      '/etc/containerd/config.toml on n1:22 sets legacy registry mirrors ([plugins."io.containerd.grpc.v1.cri".registry.mirrors] docker.io); containerd 1.7 and later refuse them together with config_path, and the CRI plugin would not load (move each mirror to a certs.d/<upstream>/hosts.toml (berth writes them for the proxy projects) and delete the mirrors tables)',
    );
  });

  it('registry configs with tls: refused as well', () => {
    const text = `version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.configs."reg.example.com".tls]\n  ca_file = "/x.crt"\n`;
    expect(berthError(() => containerdConfigEdit(text, CERTS, 1, where)).message).toMatch(/^\/etc\/containerd\/config.toml on n1:2 sets registry configs\.\*\.tls \(reg\.example\.com\)/);
  });

  it('a version 1 file (no version key) and an unknown version are refused', () => {
    expect(berthError(() => containerdConfigEdit('[plugins.cri]\n  x = 1\n', CERTS, 1, where)).message).toBe(
      '/etc/containerd/config.toml on n1 has no version key, so containerd reads it in the deprecated version 1 format',
    );
    expect(berthError(() => containerdConfigEdit('version = 7\n', CERTS, 1, where)).message).toMatch(/has version = 7; berth knows versions 2/);
  });

  it('invalid TOML names the file and line', () => {
    const e = berthError(() => containerdConfigEdit('version = 2\nroot = \n', CERTS, 1, where));
    expect(e).toBeInstanceOf(BerthError);
    expect(e.message).toMatch(/^\/etc\/containerd\/config\.toml on n1:2 is not valid TOML: /);
  });
});
