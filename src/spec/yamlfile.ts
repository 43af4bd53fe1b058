import { existsSync, lstatSync, readFileSync, statSync, type Stats } from 'node:fs';
import { relative } from 'node:path';
import { LineCounter, isCollection, isMap, isPair, isScalar, isSeq, parseDocument, visit, type Document, type Node } from 'yaml';
import { BerthError } from '../util/errors.js';
import type { SourcePos } from '../types.js';

export type KeyPath = (string | number)[];

/** A parsed YAML file that can say where any value in it was written. */
export interface YamlFile {
  /** Path as shown to users (relative to the spec root when inside it). */
  file: string;
  value: unknown;
  /** Position of the value at `path` (or of the deepest existing parent). */
  locate(path: KeyPath): SourcePos;
  /** Position of the key at the end of `path` (for "unknown key" errors). */
  locateKey(path: KeyPath): SourcePos;
}

/** Largest spec file berth reads; anything bigger is almost certainly a mistake. */
export const MAX_SPEC_FILE_BYTES = 4 * 1024 * 1024;

export function displayPath(abs: string, root: string): string {
  const rel = relative(root, abs);
  return rel.startsWith('..') || rel === '' ? abs : rel;
}

export function readYamlFile(abs: string, root: string): YamlFile {
  const file = displayPath(abs, root);
  let buf: Buffer;
  try {
    buf = readFileSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'ELOOP' ? 'symbolic link loop' : code === 'EISDIR' ? 'is a directory, expected a YAML file' : `cannot read file (${code ?? String(e)})`;
    throw new BerthError(why, { pos: { file } });
  }
  if (buf.length > MAX_SPEC_FILE_BYTES) {
    throw new BerthError(`file is ${buf.length} bytes; spec files must be under ${MAX_SPEC_FILE_BYTES}`, { pos: { file } });
  }
  return parseYaml(decodeText(buf, file, 'YAML'), file);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The text of a spec file (YAML, JSON, a template): UTF-8, no NUL bytes, else an error naming the line. */
export function decodeText(buf: Buffer, file: string, kind: string): string {
  if (buf.includes(0)) throw new BerthError(`binary file (contains NUL bytes), expected ${kind} text`, { pos: { file } });
  try {
    return utf8.decode(buf);
  } catch {
    // find the first byte that is not UTF-8, for its line
    let bad = 0;
    for (let n = buf.length; bad < n; ) {
      const c = buf[bad]!;
      const len = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
      if (len === 0 || bad + len > n || !buf.subarray(bad + 1, bad + len).every((b) => (b & 0xc0) === 0x80)) break;
      bad += len;
    }
    const line = buf.subarray(0, bad).toString('utf8').split('\n').length;
    throw new BerthError(`not UTF-8 text (byte 0x${buf[bad]?.toString(16).padStart(2, '0') ?? '??'})`, {
      pos: { file, line },
      hint: 'save the file as UTF-8',
    });
  }
}

export function parseYaml(text: string, file: string): YamlFile {
  const lc = new LineCounter();
  // merge: YAML 1.1 merge keys (<<: *defaults), which Ansible specs use
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true, merge: true });
  const at = (offset: number): SourcePos => {
    const { line, col } = lc.linePos(offset);
    return { file, line, col };
  };
  const err = doc.errors[0];
  if (err) {
    // errors reported at a line break (bad indentation) mean the next token: point there
    let off = err.pos[0];
    while (off < text.length && (text[off] === '\n' || text[off] === '\r' || text[off] === ' ')) off++;
    const pos = at(off < text.length ? off : err.pos[0]);
    // a tab in the indentation of the line (or the one before) is the usual cause of odd errors
    const lines = text.split('\n');
    const tabbed = [pos.line!, pos.line! - 1].find((n) => n >= 1 && /^ *\t/.test(lines[n - 1] ?? ''));
    if (tabbed !== undefined) {
      throw new BerthError('YAML syntax error: a tab indents this line', { pos: { file, line: tabbed, col: 1 + /^ */.exec(lines[tabbed - 1]!)![0].length }, hint: 'YAML indents with spaces only' });
    }
    let msg = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    if (err.code === 'MULTIPLE_DOCS') msg = 'the file holds a second YAML document (a line with ---); berth reads one per file';
    throw new BerthError(`YAML syntax error: ${msg}`, {
      pos,
      hint: err.code === 'DUPLICATE_KEY' ? 'each key may appear once per mapping' : undefined,
    });
  }
  const warn = doc.warnings[0];
  if (warn) {
    const tag = /Unresolved tag: (\S+)/.exec(warn.message)?.[1];
    throw new BerthError(tag ? `unknown YAML tag ${tag}` : `YAML: ${warn.message.split('\n')[0]}`, {
      pos: at(warn.pos[0]),
      hint: tag === '!vault' ? 'berth reads secrets from { secret_env: NAME } or { secret_file: path }, not Ansible Vault' : tag ? 'berth knows only the standard YAML tags' : undefined,
    });
  }
  visit(doc, {
    Pair(_k, pair) {
      if (isCollection(pair.key)) {
        throw new BerthError('a mapping key must be a plain value, not a mapping or a list', { pos: at((pair.key as Node).range?.[0] ?? 0) });
      }
    },
    Alias(_k, alias) {
      if (!alias.resolve(doc)) {
        throw new BerthError(`YAML alias *${alias.source} names no anchor`, { pos: at(alias.range?.[0] ?? 0), hint: `define &${alias.source} on a value before this line` });
      }
    },
    Scalar(_k, node) {
      if (typeof node.value === 'number' && node.format === 'OCT') {
        const src = text.slice(node.range?.[0] ?? 0, node.range?.[1] ?? 0);
        throw new BerthError(`${src} is a YAML octal number (${node.value} in decimal), which berth does not guess the meaning of`, {
          pos: at(node.range?.[0] ?? 0),
          hint: `write a file mode as a quoted string ("${src.replace(/^0o/, '0')}"), other numbers in decimal`,
        });
      }
    },
  });
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    const m = (e as Error).message;
    const why = /Excessive alias count/.test(m) ? 'YAML aliases expand to too many values (more than 1000); refusing a possible YAML bomb' : `YAML error: ${m}`;
    throw new BerthError(why, { pos: { file } });
  }
  const posOf = (node: Node | null | undefined): SourcePos => {
    const offset = node?.range?.[0];
    if (offset === undefined) return { file, line: 1, col: 1 };
    return at(offset);
  };
  return {
    file,
    value,
    locate: (path) => posOf(walk(doc, path).node),
    locateKey: (path) => {
      const w = walk(doc, path);
      return posOf(w.complete && w.key ? w.key : w.node);
    },
  };
}

export function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

export function linkProblem(p: string): string {
  try {
    statSync(p);
    return 'it resolves';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ELOOP' ? 'a symbolic link loop' : code === 'ENOENT' ? 'its target does not exist' : `cannot follow it: ${code}`;
  }
}

/**
 * The one file of `candidates` (main.yml or main.yaml, hosts.yml or hosts.yaml)
 * that exists; two of them, or a link to nothing, is an error.
 */
export function oneOf(candidates: string[], root: string): string | undefined {
  const there = candidates.filter((f) => lstatOrUndefined(f) !== undefined);
  if (there.length > 1) {
    throw new BerthError(`both ${there.map((f) => displayPath(f, root)).join(' and ')} exist`, { pos: { file: displayPath(there[1]!, root) }, hint: 'berth would read only one of them: keep one' });
  }
  const f = there[0];
  if (f && !existsSync(f)) throw new BerthError(`symbolic link that leads nowhere (${linkProblem(f)})`, { pos: { file: displayPath(f, root) } });
  return f;
}

function walk(doc: Document, path: KeyPath): { node: Node | null; key: Node | null; complete: boolean } {
  let node = doc.contents as Node | null;
  let key: Node | null = null;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return { node, key, complete: false };
      key = pair.key as Node;
      node = (pair.value as Node | null) ?? key;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as Node | undefined;
      if (item === undefined) return { node, key, complete: false };
      key = null;
      node = item;
    } else {
      return { node, key, complete: false };
    }
  }
  return { node, key, complete: true };
}
