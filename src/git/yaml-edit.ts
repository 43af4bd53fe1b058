// Edits one static client in a dex Helm values file (YAML in another git
// repository) without touching anything else: the `yaml` Document API parses
// the file and gives every node's source range; the edit is a splice of the
// original text at those ranges (a new list item appended, or the values of
// the client's own keys replaced), so every byte outside the edited node
// stays as it was: comments, blank lines, quoting, anchors, key order.
// Then the result is parsed again and must equal the old document with
// exactly the client changed, or the edit is refused.
//
// Pure: text in, text out. No I/O, so the plan can call it.

import { isDeepStrictEqual } from 'node:util';
import { isAlias, isMap, isPair, isScalar, isSeq, parseAllDocuments, parseDocument, visit, type Document, type Node, type Pair, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { SENSITIVE } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';

/** The static client as berth wants it (dex's field names). */
export interface DexClient {
  id: string;
  name: string;
  redirectURIs: string[];
  /** The secret itself, written inline (`secret:`) ... */
  secret?: string;
  /** ... or the name of dex's environment variable that holds it (`secretEnv:`). */
  secretEnv?: string;
}

export type ClientField = 'name' | 'redirectURIs' | 'secret' | 'secretEnv';

export type EditResult =
  | { changed: false; item: string }
  | {
      changed: true;
      action: 'create' | 'update';
      text: string;
      /** The client's source text before (undefined: it was absent) and after the edit. */
      itemBefore?: string;
      itemAfter: string;
      /** The client's fields that change (secret's value is never in here). */
      fields: ClientField[];
    };

const PARSE = { merge: true, prettyErrors: false } as const;

/** Where the file is, for messages: "<repo> main:helmfile/values/dex.yaml". */
export interface FileLabel {
  /** Shown before line:col. */
  file: string;
}

function posError(label: FileLabel, text: string, offset: number | undefined, message: string, hint?: string): BerthError {
  if (offset === undefined) return new BerthError(message, { pos: { file: label.file }, hint });
  const { line, col } = lineCol(text, offset);
  return new BerthError(message, { pos: { file: label.file, line, col }, hint });
}

export function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

/** The one document of a values file, or a clear error at the line that breaks it. */
export function parseValues(text: string, label: FileLabel): Document.Parsed {
  const docs = parseAllDocuments(text, PARSE);
  if (!Array.isArray(docs) || docs.length === 0) throw posError(label, text, undefined, 'the values file is empty', 'it should hold dex\'s Helm values, with config.staticClients');
  const first = docs.find((d) => d.errors.length) ?? docs[0]!;
  const err = first.errors[0];
  if (err) throw posError(label, text, err.pos[0], `not valid YAML: ${err.message.split('\n')[0]}`);
  if (docs.length > 1) throw posError(label, text, docs[1]!.range[0], 'the values file holds more than one YAML document', 'berth edits a values file with one document');
  return docs[0]!;
}

// ---------------------------------------------------------------- text helpers

function colOf(text: string, offset: number): number {
  return offset - (text.lastIndexOf('\n', offset - 1) + 1);
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

/** The offset just after the line break that ends the line holding offset-1 (the end of a node's last line). */
function lineEndAfter(text: string, offset: number): number {
  if (offset > 0 && text[offset - 1] === '\n') return offset;
  const i = text.indexOf('\n', offset);
  return i < 0 ? text.length : i + 1;
}

const sp = (n: number) => ' '.repeat(Math.max(0, n));

/** True when `v` written plain reads back as the same string in YAML 1.1 (Helm's go-yaml) and 1.2. */
function plainIsSafe(v: string, flow: boolean): boolean {
  if (v === '' || v.trim() !== v || /[\n\r\t]/.test(v)) return false;
  for (const version of ['1.1', '1.2'] as const) {
    try {
      const d = parseDocument(flow ? `{k: ${v}}` : `k: ${v}`, { version });
      if (d.errors.length || d.warnings.length) return false;
      const js = d.toJS() as Record<string, unknown> | null;
      if (!js || Object.keys(js).length !== 1 || js.k !== v) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** A string scalar: plain when that is unambiguous, else double-quoted (or in the style the old value had). */
function scalarText(v: string, flow: boolean, like?: Scalar.Type): string {
  if (like === 'QUOTE_SINGLE' && !/[\n\r]/.test(v)) return `'${v.replace(/'/g, "''")}'`;
  if (like === 'QUOTE_DOUBLE') return JSON.stringify(v);
  return plainIsSafe(v, flow) ? v : JSON.stringify(v);
}

function flowSeqText(items: string[]): string {
  return `[${items.map((u) => scalarText(u, true)).join(', ')}]`;
}

// ---------------------------------------------------------------- what the client looks like

/** The fields of the client in dex's order, each rendered (block style). */
function clientLines(c: DexClient, seqIndent: number): string[] {
  return [
    `id: ${scalarText(c.id, false)}`,
    `name: ${scalarText(c.name, false)}`,
    'redirectURIs:',
    ...c.redirectURIs.map((u) => `${sp(seqIndent)}- ${scalarText(u, false)}`),
    c.secretEnv !== undefined ? `secretEnv: ${scalarText(c.secretEnv, false)}` : `secret: ${scalarText(c.secret ?? '', false)}`,
  ];
}

/** A new block list item at column `dash`, its keys `offset` columns right of the dash. */
function blockItem(c: DexClient, dash: number, offset: number, seqIndent: number): string {
  const [first, ...rest] = clientLines(c, seqIndent);
  return `${sp(dash)}-${sp(offset - 1)}${first}\n${rest.map((l) => `${sp(dash + offset)}${l}\n`).join('')}`;
}

function flowItem(c: DexClient): string {
  const secret = c.secretEnv !== undefined ? `secretEnv: ${scalarText(c.secretEnv, true)}` : `secret: ${scalarText(c.secret ?? '', true)}`;
  return `{id: ${scalarText(c.id, true)}, name: ${scalarText(c.name, true)}, redirectURIs: ${flowSeqText(c.redirectURIs)}, ${secret}}`;
}

/** The client as plain data (what the edited document must hold). */
function clientValue(c: DexClient, base: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base, id: c.id, name: c.name, redirectURIs: [...c.redirectURIs] };
  if (c.secretEnv !== undefined) {
    out.secretEnv = c.secretEnv;
    delete out.secret;
  } else {
    out.secret = c.secret ?? '';
    delete out.secretEnv;
  }
  return out;
}

function differingFields(cur: Record<string, unknown>, c: DexClient): ClientField[] {
  const out: ClientField[] = [];
  if (cur.name !== c.name) out.push('name');
  if (!isDeepStrictEqual(cur.redirectURIs, c.redirectURIs)) out.push('redirectURIs');
  if (c.secretEnv !== undefined) {
    if (cur.secretEnv !== c.secretEnv) out.push('secretEnv');
    if ('secret' in cur) out.push('secret');
  } else {
    if (cur.secret !== c.secret) out.push('secret');
    if ('secretEnv' in cur) out.push('secretEnv');
  }
  return out;
}

// ---------------------------------------------------------------- finding the list

function pairOf(map: YAMLMap, key: string): Pair<Node, Node | null> | undefined {
  return (map.items as Pair<Node, Node | null>[]).find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
}

/** Column offset of block lists under their keys in this file (0 or 2 usually), from the first one found. */
function seqIndentOf(doc: Document.Parsed, text: string): number {
  let found: number | undefined;
  visit(doc, {
    Pair(_, p) {
      if (found === undefined && isScalar(p.key) && p.key.range && isSeq(p.value) && !p.value.flow && p.value.range) {
        found = colOf(text, p.value.range[0]) - colOf(text, p.key.range[0]);
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found !== undefined && found >= 0 && found <= 8 ? found : 2;
}

/** The dash column of a block list item and the offset of its content from the dash; undefined when the layout is unusual. */
function dashOf(text: string, node: Node): { dash: number; offset: number } | undefined {
  const start = node.range![0];
  const prefix = text.slice(lineStart(text, start), start);
  const m = /^( *)-( +)(?:[&!][^\s]*\s+)*$/.exec(prefix);
  if (!m) return undefined;
  return { dash: m[1]!.length, offset: prefix.length - m[1]!.length };
}

interface Splice {
  start: number;
  end: number;
  text: string;
}

/** Applies the splices (they never overlap); what they insert takes the file's line breaks (CRLF files stay CRLF). */
function applySplices(text: string, splices: Splice[]): string {
  const crlf = text.includes('\r\n');
  let out = text;
  for (const s of [...splices].sort((a, b) => b.start - a.start)) {
    const ins = crlf ? s.text.replace(/\r?\n/g, '\r\n') : s.text;
    out = out.slice(0, s.start) + ins + out.slice(s.end);
  }
  return out;
}

/** A replacement for a node's value: the line break its range ended with is kept. */
function replaceNode(text: string, node: Node, by: string): Splice {
  const [start, end] = node.range!;
  const keepNl = end > start && text[end - 1] === '\n' && !by.endsWith('\n');
  const lead = start === end && text[start - 1] === ':' ? ' ' : '';
  return { start, end, text: lead + by + (keepNl ? '\n' : '') };
}

// ---------------------------------------------------------------- the edit

/**
 * Adds the client to (or updates it in) the list at `keyPath` (e.g.
 * ['config', 'staticClients']). Only the client's item is written: a new
 * item is appended after the list's last one in the file's own indentation;
 * an existing one keeps its other keys, comments and style, and only the
 * values of `name`, `redirectURIs` and `secret`/`secretEnv` that differ are
 * replaced.
 */
export function editStaticClient(text: string, label: FileLabel, keyPath: string[], want: DexClient): EditResult {
  const doc = parseValues(text, label);
  const where = keyPath.join('.');
  let parent: Node | null = doc.contents;
  for (const [i, k] of keyPath.slice(0, -1).entries()) {
    if (!isMap(parent)) throw posError(label, text, parent?.range?.[0], `${keyPath.slice(0, i).join('.') || 'the document'} is not a mapping, so ${where} cannot be found`);
    const p = pairOf(parent, k);
    if (!p) throw posError(label, text, parent.range?.[0], `${keyPath.slice(0, i + 1).join('.')} is missing`, `the dex Helm values keep dex's configuration under ${where}; check oidc.dex_values.path and key`);
    if (isAlias(p.value)) throw posError(label, text, p.value.range?.[0], `${keyPath.slice(0, i + 1).join('.')} is an alias (*${p.value.source}): berth does not edit through aliases`);
    parent = p.value;
  }
  if (!isMap(parent)) throw posError(label, text, parent?.range?.[0], `${keyPath.slice(0, -1).join('.') || 'the document'} is not a mapping`, `berth adds the client to the list ${where}`);
  const last = keyPath[keyPath.length - 1]!;
  const pair = pairOf(parent, last);
  const list = pair?.value ?? null;
  const oldJs = plain(doc);

  let splices: Splice[];
  let action: 'create' | 'update' = 'create';
  let fields: ClientField[] = ['name', 'redirectURIs', want.secretEnv !== undefined ? 'secretEnv' : 'secret'];
  let itemBefore: string | undefined;
  let itemRange: (t: string) => string;

  const seqIndent = seqIndentOf(doc, text);
  if (!pair || list === null || (isScalar(list) && list.value === null)) {
    // no list yet: `staticClients:` (empty or null), or no key at all
    if (pair && isScalar(list) && list.range && list.range[0] !== list.range[1]) {
      // written as ~ or null: becomes a flow list with the client
      splices = [replaceNode(text, list, `[${flowItem(want)}]`)];
    } else if (pair) {
      const keyCol = colOf(text, pair.key.range![0]);
      const at = lineEndAfter(text, (pair.value ?? pair.key).range![1]);
      splices = [{ start: at, end: at, text: (at === text.length && !text.endsWith('\n') ? '\n' : '') + blockItem(want, keyCol + seqIndent, 2, seqIndent) }];
    } else {
      if (parent.flow || !parent.items.length) throw posError(label, text, parent.range?.[0], `${where} is missing and ${keyPath.slice(0, -1).join('.') || 'the document'} is not a block mapping berth can add it to`, `add "${last}: []" yourself`);
      const keyCol = colOf(text, (parent.items[0] as Pair<Node>).key.range![0]);
      const lastPair = parent.items[parent.items.length - 1] as Pair<Node, Node | null>;
      const at = lineEndAfter(text, (lastPair.value ?? lastPair.key).range![1]);
      const nl = at === text.length && !text.endsWith('\n') ? '\n' : '';
      splices = [{ start: at, end: at, text: `${nl}${sp(keyCol)}${last}:\n${blockItem(want, keyCol + seqIndent, 2, seqIndent)}` }];
    }
    itemRange = (t) => extractItem(t, label, keyPath, want.id) ?? '';
  } else {
    if (!isSeq(list)) throw posError(label, text, list.range?.[0], `${where} is not a list (dex's static clients are a list of clients)`);
    const items = list.items as Node[];
    const jsList = ((getIn(oldJs, keyPath) as unknown[]) ?? []).filter((x) => isObject(x) && x.id === want.id);
    const idx = items.findIndex((it) => isMap(it) && isScalar(it.get('id', true)) && String((it.get('id', true) as Scalar).value) === want.id);
    if (jsList.length > 1) throw posError(label, text, items[idx]?.range?.[0] ?? list.range?.[0], `${where} holds ${jsList.length} clients with id ${want.id}`, 'dex refuses duplicate client ids: remove all but one');
    if (jsList.length === 1 && idx < 0) throw posError(label, text, list.range?.[0], `client ${want.id} in ${where} is written through an alias or merge key`, 'write it as a plain list item for berth to manage it');
    if (idx < 0) {
      // a new client, after the last one
      if (list.flow) {
        if (!items.length) splices = [replaceNode(text, list, `[${flowItem(want)}]`)];
        else {
          const end = items[items.length - 1]!.range![1];
          splices = [{ start: end, end, text: `, ${flowItem(want)}` }];
        }
      } else {
        const lastItem = items[items.length - 1]!;
        const d = dashOf(text, lastItem);
        if (!d) throw posError(label, text, lastItem.range?.[0], `berth cannot tell the indentation of ${where}'s items`, 'write each item as "- key: value"');
        const at = lineEndAfter(text, list.range![1]);
        const nl = at === text.length && !text.endsWith('\n') ? '\n' : '';
        const offset = isMap(lastItem) || isAlias(lastItem) ? d.offset : 2;
        splices = [{ start: at, end: at, text: nl + blockItem(want, d.dash, offset, seqIndent) }];
      }
      itemRange = (t) => extractItem(t, label, keyPath, want.id) ?? '';
    } else {
      const item = items[idx] as YAMLMap;
      const cur = jsList[0] as Record<string, unknown>;
      fields = differingFields(cur, want);
      itemBefore = itemText(text, item, list.flow === true);
      if (!fields.length) return { changed: false, item: itemBefore };
      action = 'update';
      splices = item.flow ? [flowItemUpdate(text, item, want)] : blockItemUpdate(text, label, item, cur, want, seqIndent);
      itemRange = (t) => extractItem(t, label, keyPath, want.id) ?? '';
    }
  }

  const out = applySplices(text, splices);
  // the result must be the old document with exactly the client changed
  const after = parseValues(out, { file: `${label.file} (as berth would write it)` });
  const expected = withClient(oldJs, keyPath, want);
  if (!isDeepStrictEqual(plain(after), expected)) {
    throw posError(label, text, pair?.key.range?.[0], `berth cannot edit client ${want.id} in ${where} without changing other values (an anchor or merge key shared with it?)`, 'edit the client by hand once, as a plain list item; berth keeps it up to date from then on');
  }
  return { changed: true, action, text: out, ...(itemBefore !== undefined ? { itemBefore } : {}), itemAfter: itemRange(out), fields };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The document as JSON data (aliases expanded, no shared objects). */
function plain(doc: Document.Parsed): unknown {
  return JSON.parse(JSON.stringify(doc.toJS({ maxAliasCount: 1000 }) ?? null)) as unknown;
}

function getIn(v: unknown, path: string[]): unknown {
  let cur = v;
  for (const k of path) cur = isObject(cur) ? cur[k] : undefined;
  return cur;
}

function withClient(js: unknown, keyPath: string[], c: DexClient): unknown {
  const root = JSON.parse(JSON.stringify(js)) as Record<string, unknown>;
  let cur = root;
  for (const k of keyPath.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
  const last = keyPath[keyPath.length - 1]!;
  const list = Array.isArray(cur[last]) ? (cur[last] as unknown[]) : [];
  const i = list.findIndex((x) => isObject(x) && x.id === c.id);
  if (i < 0) list.push(clientValue(c));
  else list[i] = clientValue(c, list[i] as Record<string, unknown>);
  cur[last] = list;
  return root;
}

/** The source text of a list item: its whole lines for a block list, the node for a flow list. */
function itemText(text: string, item: Node, inFlowList: boolean): string {
  const [start, end] = item.range!;
  if (inFlowList) return text.slice(start, end);
  return text.slice(lineStart(text, start), lineEndAfter(text, end));
}

/** The source text of client `id` in the list at keyPath, or undefined when it is not there. */
export function extractItem(text: string, label: FileLabel, keyPath: string[], id: string): string | undefined {
  const doc = parseValues(text, label);
  const list = doc.getIn(keyPath, true);
  if (!isSeq(list)) return undefined;
  const item = (list.items as Node[]).find((it) => isMap(it) && isScalar(it.get('id', true)) && String((it.get('id', true) as Scalar).value) === id);
  return item ? itemText(text, item, (list as YAMLSeq).flow === true) : undefined;
}

/** An existing client written as a flow mapping: rewritten as one, keeping its other keys' source text. */
function flowItemUpdate(text: string, item: YAMLMap, c: DexClient): Splice {
  const drop = c.secretEnv !== undefined ? 'secret' : 'secretEnv';
  const managed: Record<string, string> = {
    name: scalarText(c.name, true),
    redirectURIs: flowSeqText(c.redirectURIs),
    ...(c.secretEnv !== undefined ? { secretEnv: scalarText(c.secretEnv, true) } : { secret: scalarText(c.secret ?? '', true) }),
  };
  const parts: string[] = [];
  const seen = new Set<string>();
  for (const p of item.items as Pair<Node, Node | null>[]) {
    const k = isScalar(p.key) ? String(p.key.value) : undefined;
    const keySrc = text.slice(p.key.range![0], p.key.range![1]);
    if (k === drop) continue;
    if (k !== undefined && k in managed) {
      parts.push(`${keySrc}: ${managed[k]}`);
      seen.add(k);
    } else parts.push(p.value?.range ? `${keySrc}: ${text.slice(p.value.range[0], p.value.range[1])}` : keySrc);
  }
  for (const [k, v] of Object.entries(managed)) if (!seen.has(k)) parts.push(`${k}: ${v}`);
  return { start: item.range![0], end: item.range![1], text: `{${parts.join(', ')}}` };
}

/** An existing client written as a block mapping: only the values that differ are replaced, missing keys added at its end. */
function blockItemUpdate(text: string, label: FileLabel, item: YAMLMap, cur: Record<string, unknown>, c: DexClient, seqIndent: number): Splice[] {
  const splices: Splice[] = [];
  const pairs = item.items as Pair<Node, Node | null>[];
  const keyCol = colOf(text, item.range![0]);
  const lastPair = pairs[pairs.length - 1]!;
  const endAt = lineEndAfter(text, (lastPair.value ?? lastPair.key).range![1]);
  const added: string[] = [];

  const setScalar = (key: 'name' | 'secret' | 'secretEnv', value: string) => {
    const p = pairOf(item, key);
    if (p?.value && isScalar(p.value) && p.value.value === value) return;
    if (!p) {
      added.push(`${sp(keyCol)}${key}: ${scalarText(value, false)}\n`);
      return;
    }
    const like = p.value && isScalar(p.value) ? p.value.type : undefined;
    const block = like === 'BLOCK_FOLDED' || like === 'BLOCK_LITERAL';
    splices.push(replaceNode(text, p.value ?? p.key, scalarText(value, false, block ? undefined : like)));
  };
  const setUris = () => {
    const p = pairOf(item, 'redirectURIs');
    if (p?.value && isSeq(p.value) && isDeepStrictEqual(p.value.toJSON(), c.redirectURIs)) return;
    if (!p) {
      added.push(`${sp(keyCol)}redirectURIs:\n${c.redirectURIs.map((u) => `${sp(keyCol + seqIndent)}- ${scalarText(u, false)}\n`).join('')}`);
      return;
    }
    const v = p.value;
    if (v && isSeq(v) && !v.flow && v.items.length) {
      const col = colOf(text, v.range![0]);
      splices.push(replaceNode(text, v, c.redirectURIs.map((u, i) => `${i ? sp(col) : ''}- ${scalarText(u, false)}\n`).join('')));
    } else splices.push(replaceNode(text, v ?? p.key, flowSeqText(c.redirectURIs)));
  };
  const remove = (key: 'secret' | 'secretEnv') => {
    const p = pairOf(item, key);
    if (!p) return;
    if (p === pairs[0]) throw posError(label, text, p.key.range![0], `client ${c.id}: berth would remove ${key}, which opens the list item`, `move ${key} below id, or switch between secret and secretEnv by hand`);
    splices.push({ start: lineStart(text, p.key.range![0]), end: lineEndAfter(text, (p.value ?? p.key).range![1]), text: '' });
  };

  if (cur.name !== c.name) setScalar('name', c.name);
  if (!isDeepStrictEqual(cur.redirectURIs, c.redirectURIs)) setUris();
  if (c.secretEnv !== undefined) {
    if (cur.secretEnv !== c.secretEnv) setScalar('secretEnv', c.secretEnv);
    remove('secret');
  } else {
    if (cur.secret !== c.secret) setScalar('secret', c.secret ?? '');
    remove('secretEnv');
  }
  if (added.length) splices.push({ start: endAt, end: endAt, text: (endAt === text.length && !text.endsWith('\n') ? '\n' : '') + added.join('') });
  return splices;
}

// ---------------------------------------------------------------- masking for display

/** Keys whose values berth never shows in a diff of a values file (`secret`, `clientSecret`, `bindPW`, `password`, tokens ...). */
export const SECRET_KEY = /(secret|password|passwd|pw|token|apikey|privatekey|credentials?)$/i;

/**
 * The text with every secret-looking value (a scalar under a key SECRET_KEY
 * matches, anywhere in the document) replaced by "(sensitive)", line for line:
 * the masked text has the same lines as the real one, so a diff of the real
 * texts can be shown with the masked lines.
 */
export function maskSecretValues(text: string): string {
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, PARSE);
  } catch {
    return text.replace(/[^\n]+/g, SENSITIVE);
  }
  if (doc.errors.length) return text.replace(/[^\n]+/g, SENSITIVE);
  const ranges: [number, number][] = [];
  visit(doc, {
    Pair(_, p) {
      if (isScalar(p.key) && SECRET_KEY.test(String(p.key.value)) && isScalar(p.value) && p.value.range && p.value.value !== null) {
        ranges.push([p.value.range[0], p.value.range[1]]);
      }
    },
  });
  let out = text;
  for (const [start, end] of ranges.sort((a, b) => b[0] - a[0])) {
    const masked = out
      .slice(start, end)
      .split('\n')
      .map((piece, i) => (i === 0 ? (piece ? SENSITIVE : '') : piece.replace(/^(\s*)\S.*$/, `$1${SENSITIVE}`)))
      .join('\n');
    out = out.slice(0, start) + masked + out.slice(end);
  }
  return out;
}
