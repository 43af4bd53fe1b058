// Minimal edits of TOML files that belong to someone else (containerd's
// config.toml): smol-toml says what the file means, a small scanner says where
// each statement is, and an edit touches only the bytes of one value or adds
// one line. The result is parsed again and must mean exactly the old file plus
// the one value, or the edit is refused: comments, order, spacing and every
// other setting stay as the owner wrote them.

import { isDeepStrictEqual } from 'node:util';
import { parse, TomlError } from 'smol-toml';
import { quoteString } from '../template/helpers.js';

export type TomlPath = string[];

/** One top-level statement of a TOML document, with its byte offsets. */
export interface Statement {
  kind: 'table' | 'array-table' | 'keyval';
  /** Table headers: the header's key. Key/values: the full path (table + dotted key). */
  path: TomlPath;
  /** Key/values: the key as written, relative to the table. */
  key?: TomlPath;
  /** Offset of the statement's first character and of the end of its line (after the newline, if any). */
  start: number;
  lineEnd: number;
  /** Leading whitespace of the statement's line. */
  indent: string;
  /** Key/values: the value's text span. */
  valueStart?: number;
  valueEnd?: number;
  /** 1-based line of the statement. */
  line: number;
}

export class TomlEditError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'TomlEditError';
  }
}

/** Parses a document, turning smol-toml's error into one line with its line number. */
export function parseToml(text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) throw new TomlEditError(`not valid TOML: ${e.message.split('\n')[0]}`, e.line);
    throw e;
  }
}

const BARE = /^[A-Za-z0-9_-]+$/;

/** A key path as TOML writes it: plugins."io.containerd.grpc.v1.cri".registry */
export function formatKey(path: TomlPath): string {
  return path.map((k) => (BARE.test(k) ? k : quoteString(k))).join('.');
}

/** The value at `path` in a parsed document (undefined when absent or not reachable through tables). */
export function getPath(doc: unknown, path: TomlPath): unknown {
  let cur: unknown = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || cur instanceof Date) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function setPath(doc: Record<string, unknown>, path: TomlPath, value: unknown): void {
  let cur = doc;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    // smol-toml's tables have no prototype; a new one must match them
    if (next === undefined) cur = cur[k] = Object.create(null) as Record<string, unknown>;
    else cur = next as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

// ---------------------------------------------------------------- scanner

/**
 * The statements of a document that smol-toml has accepted. The scanner only
 * needs to find boundaries (keys, values, headers, comments, strings that span
 * lines), so it can trust the document to be valid.
 */
export function scanStatements(text: string): Statement[] {
  const out: Statement[] = [];
  let i = 0;
  let table: TomlPath = [];
  const n = text.length;
  const lineOf = (pos: number) => {
    let l = 1;
    for (let k = 0; k < pos; k++) if (text.charCodeAt(k) === 10) l++;
    return l;
  };
  const skipSpaces = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  // whitespace, newlines and comments (inside arrays and between statements)
  const skipAll = () => {
    for (;;) {
      while (i < n && /[ \t\r\n]/.test(text[i]!)) i++;
      if (text[i] === '#') {
        while (i < n && text[i] !== '\n') i++;
        continue;
      }
      return;
    }
  };
  const toLineEnd = () => {
    skipSpaces();
    if (text[i] === '#') while (i < n && text[i] !== '\n') i++;
    while (i < n && text[i] !== '\n') i++;
    if (i < n) i++;
    return i;
  };
  const readKey = (): TomlPath => {
    const parts: string[] = [];
    for (;;) {
      skipSpaces();
      const c = text[i];
      if (c === '"') {
        const s = i;
        i++;
        while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
        i++;
        parts.push(parse(`k = ${text.slice(s, i)}`).k as string);
      } else if (c === "'") {
        const s = ++i;
        while (i < n && text[i] !== "'") i++;
        parts.push(text.slice(s, i));
        i++;
      } else {
        const s = i;
        while (i < n && /[A-Za-z0-9_-]/.test(text[i]!)) i++;
        parts.push(text.slice(s, i));
      }
      skipSpaces();
      if (text[i] === '.') {
        i++;
        continue;
      }
      return parts;
    }
  };
  const skipString = () => {
    const q = text[i]!;
    if (text.startsWith(q.repeat(3), i)) {
      i += 3;
      for (;;) {
        if (i >= n) return;
        if (q === '"' && text[i] === '\\') {
          i += 2;
          continue;
        }
        if (text.startsWith(q.repeat(3), i)) {
          i += 3;
          // up to two quotes may sit right before the closing delimiter
          let extra = 0;
          while (extra < 2 && text[i] === q) {
            i++;
            extra++;
          }
          return;
        }
        i++;
      }
    }
    i++;
    while (i < n && text[i] !== q && text[i] !== '\n') i += q === '"' && text[i] === '\\' ? 2 : 1;
    i++;
  };
  const skipValue = (): void => {
    const c = text[i];
    if (c === '"' || c === "'") return skipString();
    if (c === '[') {
      i++;
      for (;;) {
        skipAll();
        if (i >= n || text[i] === ']') {
          i++;
          return;
        }
        skipValue();
        skipAll();
        if (text[i] === ',') i++;
      }
    }
    if (c === '{') {
      i++;
      for (;;) {
        skipAll();
        if (i >= n || text[i] === '}') {
          i++;
          return;
        }
        readKey();
        skipSpaces();
        if (text[i] === '=') i++;
        skipSpaces();
        skipValue();
        skipAll();
        if (text[i] === ',') i++;
      }
    }
    while (i < n && !/[ \t\r\n#,\]}]/.test(text[i]!)) i++;
  };

  for (;;) {
    skipAll();
    if (i >= n) break;
    const start = i;
    const bol = text.lastIndexOf('\n', start - 1) + 1;
    const indent = text.slice(bol, start);
    const line = lineOf(start);
    if (text[i] === '[') {
      const array = text[i + 1] === '[';
      i += array ? 2 : 1;
      const path = readKey();
      skipSpaces();
      i += array ? 2 : 1;
      table = array ? [...path, '[]'] : path;
      out.push({ kind: array ? 'array-table' : 'table', path, start, lineEnd: toLineEnd(), indent, line });
      continue;
    }
    const key = readKey();
    skipSpaces();
    i++; // '='
    skipSpaces();
    const valueStart = i;
    skipValue();
    const valueEnd = i;
    out.push({ kind: 'keyval', path: [...table, ...key], key, start, lineEnd: toLineEnd(), indent, valueStart, valueEnd, line });
  }
  return out;
}

const samePath = (a: TomlPath, b: TomlPath) => a.length === b.length && a.every((x, k) => x === b[k]);
const startsWith = (a: TomlPath, prefix: TomlPath) => prefix.length <= a.length && prefix.every((x, k) => x === a[k]);

/** The 1-based line where `path` is set or its table starts, if the document names it. */
export function lineOfPath(text: string, path: TomlPath): number | undefined {
  const st = scanStatements(text);
  return (
    st.find((s) => s.kind === 'keyval' && samePath(s.path, path))?.line ??
    st.find((s) => s.kind !== 'keyval' && samePath(s.path, path))?.line ??
    st.find((s) => startsWith(s.path, path))?.line
  );
}

// ---------------------------------------------------------------- the edit

export interface EditResult {
  text: string;
  changed: boolean;
  /** What was done, for messages: "replaced the value on line 12", "added line 9", "added a table at the end". */
  how?: string;
}

/**
 * Sets the string `value` at `[...table, key]` with the smallest textual
 * change: the old value's bytes are replaced where the key is set, else one
 * line goes under the table's header, else a new table is added after the
 * last table of the same parent (or at the end). Throws TomlEditError when
 * the document is not valid TOML or cannot be edited without touching
 * something else.
 */
export function setTomlString(text: string, table: TomlPath, key: string, value: string): EditResult {
  const before = parseToml(text);
  const full = [...table, key];
  if (getPath(before, full) === value) return { text, changed: false };
  const st = scanStatements(text);
  const quoted = quoteString(value);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  let next: string;
  let how: string;

  const existing = st.find((s) => s.kind === 'keyval' && samePath(s.path, full));
  const header = st.find((s) => s.kind === 'table' && samePath(s.path, table));
  if (existing) {
    next = text.slice(0, existing.valueStart) + quoted + text.slice(existing.valueEnd);
    how = `replaced the value on line ${existing.line}`;
  } else if (header) {
    const idx = st.indexOf(header);
    const firstKey = st[idx + 1]?.kind === 'keyval' ? st[idx + 1] : undefined;
    const indent = firstKey ? firstKey.indent : `${header.indent}  `;
    const nl = text.slice(header.start, header.lineEnd).endsWith('\n') ? '' : eol;
    next = `${text.slice(0, header.lineEnd)}${nl}${indent}${formatKey([key])} = ${quoted}${eol}${text.slice(header.lineEnd)}`;
    how = `added a line under [${formatKey(table)}] (line ${header.line + 1})`;
  } else {
    // a table defined by dotted keys or inline cannot take a [header]: refuse rather than guess
    const implicit = st.find((s) => s.kind === 'keyval' && startsWith(s.path, table) && !samePath(s.path, table));
    const inline = st.find((s) => s.kind === 'keyval' && startsWith(table, s.path));
    if (implicit || inline) {
      const at = (implicit ?? inline)!;
      throw new TomlEditError(`[${formatKey(table)}] is written with dotted keys or an inline table (line ${at.line}); berth does not rewrite that form`, at.line);
    }
    const parent = table.slice(0, -1);
    let after: Statement | undefined;
    // indented like a sibling table (same depth under the parent), else one step in from the parent
    let siblingIndent: string | undefined;
    let parentIndent: string | undefined;
    for (let k = 0; k < st.length; k++) {
      const s = st[k]!;
      if (s.kind !== 'keyval' && parent.length > 0 && startsWith(s.path, parent)) {
        // the block of this table runs until the next header
        let last = s;
        for (let m = k + 1; m < st.length && st[m]!.kind === 'keyval'; m++) last = st[m]!;
        after = last;
        if (samePath(s.path, parent)) parentIndent = s.indent;
        else if (s.path.length === table.length) siblingIndent = s.indent;
      }
    }
    const headerIndent = siblingIndent ?? (parentIndent !== undefined ? `${parentIndent}  ` : '');
    const block = `${headerIndent}[${formatKey(table)}]${eol}${headerIndent}  ${formatKey([key])} = ${quoted}${eol}`;
    if (after) {
      const cut = after.lineEnd;
      const nl = text.slice(0, cut).endsWith('\n') ? '' : eol;
      next = `${text.slice(0, cut)}${nl}${eol}${block}${text.slice(cut)}`;
      how = `added [${formatKey(table)}] after line ${lineNumberAt(text, cut - 1)}`;
    } else {
      const body = text.length === 0 || text.endsWith('\n') ? text : `${text}${eol}`;
      next = `${body}${body.trim() ? eol : ''}${block}`;
      how = `added [${formatKey(table)}] at the end`;
    }
  }

  // the edit must mean exactly: the old document plus this one value
  let after: Record<string, unknown>;
  try {
    after = parseToml(next);
  } catch (e) {
    throw new TomlEditError(`berth's edit would break the file (${(e as Error).message}); set ${formatKey(full)} by hand`);
  }
  const want = parseToml(text); // a fresh copy (TOML dates are class instances: no structuredClone)
  setPath(want, full, value);
  if (!isDeepStrictEqual(after, want)) {
    throw new TomlEditError(`berth's edit would change more than ${formatKey(full)}; set it by hand`);
  }
  return { text: next, changed: true, how };
}

function lineNumberAt(text: string, pos: number): number {
  let l = 1;
  for (let k = 0; k < pos && k < text.length; k++) if (text.charCodeAt(k) === 10) l++;
  return l;
}
