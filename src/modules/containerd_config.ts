// config_path in containerd's config.toml, so the CRI plugin (what kubelet
// pulls through) reads certs.d/<upstream>/hosts.toml. The file belongs to the
// node's owner: berth changes only that one value (src/toml/edit.ts), shows
// the edit as a diff, and refuses configurations that containerd would reject
// with it (legacy registry mirrors). A changed config.toml needs a containerd
// restart: the task notifies it.

import { posix } from 'node:path';
import { fileFacts, planFile } from './file.js';
import { applyTagged, nodeFacts, planDir, runtimesOf, selection, tag } from './node_common.js';
import { CERTS_DIRS } from './registry_ca.js';
import { CONTAINERD_CONFIG, registryTable, type RuntimeSetting } from '../facts/runtimes.js';
import { fileKey, type FileFact } from '../facts/queries.js';
import { TomlEditError, formatKey, getPath, lineOfPath, parseToml, setTomlString } from '../toml/edit.js';
import { quoteString } from '../template/helpers.js';
import { BerthError } from '../util/errors.js';
import type { Module, ModuleContext, PlannedChange } from '../types.js';

export interface ContainerdConfigArgs {
  runtime?: RuntimeSetting;
  /** containerd's config file. */
  path?: string;
  /** The hosts directory the CRI plugin should read. */
  config_path?: string;
}

export interface ConfigEdit {
  text: string;
  changed: boolean;
  version: number;
}

/**
 * The config.toml that sets `config_path` (pure). `text` undefined: the file
 * does not exist; `major` is containerd's major version (2.x reads version 3).
 */
export function containerdConfigEdit(text: string | undefined, want: string, major: number, where: string): ConfigEdit {
  const fresh = major >= 2 ? 3 : 2;
  const block = (v: number) => `version = ${v}\n\n[${formatKey(registryTable(v)!)}]\n  config_path = ${quoteString(want)}\n`;
  if (text === undefined) return { text: block(fresh), changed: true, version: fresh };
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (e) {
    const line = e instanceof TomlEditError && e.line ? `:${e.line}` : '';
    throw new BerthError(`${where}${line} is ${(e as Error).message}`, { hint: 'fix the file on the node; berth edits only valid TOML' });
  }
  if (Object.keys(doc).length === 0) {
    // comments only: containerd's defaults; keep the comments and add the table
    const body = text.length === 0 || text.endsWith('\n') ? text : `${text}\n`;
    return { text: `${body}${body.trim() ? '\n' : ''}${block(fresh)}`, changed: true, version: fresh };
  }
  const version = doc.version;
  if (version === undefined) {
    throw new BerthError(`${where} has no version key, so containerd reads it in the deprecated version 1 format`, {
      hint: 'berth edits version 2 and 3 files: run `containerd config migrate`, or add version = 2 and the full plugin names',
    });
  }
  const table = typeof version === 'number' ? registryTable(version) : undefined;
  if (typeof version !== 'number' || !table) throw new BerthError(`${where} has version = ${JSON.stringify(version)}; berth knows versions 2 (containerd 1.x) and 3 (containerd 2.x)`);
  const registry = getPath(doc, table);
  const mirrors = getPath(registry, ['mirrors']);
  if (mirrors && typeof mirrors === 'object' && Object.keys(mirrors).length > 0) {
    const line = lineOfPath(text, [...table, 'mirrors']);
    throw new BerthError(
      `${where}${line ? `:${line}` : ''} sets legacy registry mirrors ([${formatKey([...table, 'mirrors'])}] ${Object.keys(mirrors).join(', ')}); containerd 1.7 and later refuse them together with config_path, and the CRI plugin would not load`,
      { hint: 'move each mirror to a certs.d/<upstream>/hosts.toml (berth writes them for the proxy projects) and delete the mirrors tables' },
    );
  }
  const configs = getPath(registry, ['configs']);
  if (configs && typeof configs === 'object') {
    const withTls = Object.entries(configs as Record<string, unknown>).filter(([, c]) => getPath(c, ['tls']) !== undefined).map(([h]) => h);
    if (withTls.length) {
      const line = lineOfPath(text, [...table, 'configs', withTls[0]!, 'tls']);
      throw new BerthError(`${where}${line ? `:${line}` : ''} sets registry configs.*.tls (${withTls.join(', ')}); containerd refuses them together with config_path`, {
        hint: 'put the CA or client certificate in that registry\'s certs.d/<host>/hosts.toml instead, and delete the tls tables',
      });
    }
  }
  const cur = getPath(registry, ['config_path']);
  if (typeof cur === 'string' && cur.split(':').includes(want)) return { text, changed: false, version };
  try {
    const r = setTomlString(text, table, 'config_path', want);
    return { text: r.text, changed: r.changed, version };
  } catch (e) {
    if (e instanceof TomlEditError) throw new BerthError(`${where}${e.line ? `:${e.line}` : ''}: ${e.message}`, { hint: `set ${formatKey([...table, 'config_path'])} = ${quoteString(want)} by hand` });
    throw e;
  }
}

const pathOf = (a: ContainerdConfigArgs) => a.path ?? CONTAINERD_CONFIG;

function current(path: string, state: Parameters<Module['plan']>[1], ctx: ModuleContext): string | undefined {
  const f = state.get<FileFact>(fileKey(path)) ?? { exists: false };
  if (!f.exists) return undefined;
  if (f.type !== 'file') throw new BerthError(`${path} on ${ctx.host} is a ${f.type}, not a regular file`, { pos: ctx.pos });
  if (f.content === undefined) throw new BerthError(`${path} on ${ctx.host} is ${f.size} bytes, too big for berth to edit`, { pos: ctx.pos });
  return Buffer.from(f.content, 'base64').toString('utf8');
}

export const containerdConfigModule: Module<ContainerdConfigArgs> = {
  name: 'containerd_config',
  schema: 'containerd_config',
  facts: (a) => [...nodeFacts(), ...fileFacts(pathOf(a), {}), ...fileFacts(posix.dirname(pathOf(a)), {})],
  plan(a, state, ctx): PlannedChange[] {
    if (!selection(a.runtime, state, ctx).containerd) return [];
    const path = pathOf(a);
    const major = runtimesOf(state, ctx).containerd?.major ?? 1;
    let edit: ConfigEdit;
    try {
      edit = containerdConfigEdit(current(path, state, ctx), a.config_path ?? CERTS_DIRS.containerd, major, `${path} on ${ctx.host}`);
    } catch (e) {
      if (e instanceof BerthError && !e.pos) throw new BerthError(e.message, { pos: ctx.pos, hint: e.hint });
      throw e;
    }
    if (!edit.changed) return [];
    return [...planDir(posix.dirname(path), state, ctx), ...tag('file', planFile(path, edit.text, {}, state, ctx))];
  },
  apply: applyTagged,
};
