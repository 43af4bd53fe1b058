import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
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
    throw new BerthError(code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(e)})`, { pos: { file } });
  }
  if (buf.length > MAX_SPEC_FILE_BYTES) {
    throw new BerthError(`file is ${buf.length} bytes; spec files must be under ${MAX_SPEC_FILE_BYTES}`, { pos: { file } });
  }
  if (buf.includes(0)) throw new BerthError('binary file (contains NUL bytes), expected YAML text', { pos: { file } });
  return parseYaml(buf.toString('utf8'), file);
}

export function parseYaml(text: string, file: string): YamlFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true });
  const err = doc.errors[0];
  if (err) {
    // errors reported at a line break (bad indentation) mean the next token: point there
    let off = err.pos[0];
    while (off < text.length && (text[off] === '\n' || text[off] === '\r' || text[off] === ' ')) off++;
    const at = lc.linePos(off < text.length ? off : err.pos[0]);
    const msg = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw new BerthError(`YAML syntax error: ${msg}`, {
      pos: { file, line: at.line, col: at.col },
      hint: err.code === 'DUPLICATE_KEY' ? 'each key may appear once per mapping' : undefined,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new BerthError(`YAML error: ${(e as Error).message}`, { pos: { file } });
  }
  const posOf = (node: Node | null | undefined): SourcePos => {
    const offset = node?.range?.[0];
    if (offset === undefined) return { file, line: 1, col: 1 };
    const { line, col } = lc.linePos(offset);
    return { file, line, col };
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
