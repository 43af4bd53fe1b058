// Swagger 2.0 schema objects -> JSON Schema for ajv.
//
// Harbor's API is served by go-swagger, so the conversion follows what the
// generated Go server does with the document, not only what the Swagger 2.0
// text says:
//   - `x-nullable: true` and its go-swagger synonym `x-isnullable: true` let a
//     value be JSON null; nothing else may be null.
//   - `readOnly` properties: in a request the generated models reject a
//     non-zero value (ContextValidate); they are never required in a request.
//   - `x-omitempty: false` properties are always serialised by the Go server, so
//     a response without them is not what Harbor sends.
//   - formats: the integer formats are range checks (int64 is "any integer",
//     JSON numbers above 2^53 cannot be told apart in JS anyway); date-time is
//     strict RFC 3339 in responses (what Go's strfmt writes) and lenient in
//     requests (what strfmt accepts); uri is never rejected (Go's url.Parse
//     accepts nearly anything).
//   - `type: file` is not validated.
// Swagger vendor keys (x-*), examples and descriptions are dropped.

import { Ajv, type ErrorObject } from 'ajv';

export type SchemaMode = 'request' | 'response';
export type JsonObject = Record<string, unknown>;

/** The ajv `$id` of the document that holds the converted definitions, per mode. */
export const DEFINITIONS_ID: Record<SchemaMode, string> = {
  request: 'harbor-swagger-request',
  response: 'harbor-swagger-response',
};

/** Custom keyword marking a readOnly property inside a request schema. */
export const READ_ONLY_KEYWORD = 'harborReadOnly';

const MAX_DEPTH = 64;

const COPIED_KEYWORDS = [
  'format',
  'enum',
  'pattern',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'uniqueItems',
  'multipleOf',
  'minProperties',
  'maxProperties',
] as const;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function pointerToken(name: string): string {
  return encodeURIComponent(name.replace(/~/g, '~0').replace(/\//g, '~1'));
}

/** The `$ref` that reaches definition `name` in the converted document of `mode`. */
export function definitionRef(mode: SchemaMode, name: string): string {
  return `${DEFINITIONS_ID[mode]}#/definitions/${pointerToken(name)}`;
}

/** `#/definitions/Name` -> `Name`, else undefined. */
export function definitionName(ref: string): string | undefined {
  const m = /^#\/definitions\/(.+)$/.exec(ref);
  if (!m || m[1] === undefined) return undefined;
  return decodeURIComponent(m[1]).replace(/~1/g, '/').replace(/~0/g, '~');
}

function isNullable(node: JsonObject): boolean {
  return node['x-nullable'] === true || node['x-isnullable'] === true;
}

/** Converts one Swagger schema object (and everything below it) for `mode`. */
export function convertSchema(node: unknown, mode: SchemaMode, depth = 0): JsonObject {
  if (depth > MAX_DEPTH) throw new Error('swagger schema nested deeper than 64 levels');
  if (!isObject(node)) return {};
  let out: JsonObject;
  if (typeof node.$ref === 'string') {
    const name = definitionName(node.$ref);
    if (name === undefined) throw new Error(`unsupported $ref in a schema: ${node.$ref}`);
    out = { $ref: definitionRef(mode, name) };
  } else {
    out = {};
    if (typeof node.type === 'string' && node.type !== 'file') out.type = node.type;
    for (const k of COPIED_KEYWORDS) if (node[k] !== undefined) out[k] = node[k];
    // Swagger 2.0 (draft 4) exclusive bounds are booleans next to the bound.
    if (node.exclusiveMaximum === true && typeof node.maximum === 'number') {
      out.exclusiveMaximum = node.maximum;
      delete out.maximum;
    }
    if (node.exclusiveMinimum === true && typeof node.minimum === 'number') {
      out.exclusiveMinimum = node.minimum;
      delete out.minimum;
    }
    const required = Array.isArray(node.required) ? node.required.filter((r): r is string => typeof r === 'string') : [];
    if (isObject(node.properties)) {
      const props: JsonObject = {};
      for (const [name, sub] of Object.entries(node.properties)) {
        let converted = convertSchema(sub, mode, depth + 1);
        if (isObject(sub)) {
          if (mode === 'request' && sub.readOnly === true) {
            converted = { allOf: [converted], [READ_ONLY_KEYWORD]: true };
            const i = required.indexOf(name);
            if (i >= 0) required.splice(i, 1);
          }
          if (mode === 'response' && sub['x-omitempty'] === false && !required.includes(name)) required.push(name);
        }
        props[name] = converted;
      }
      out.properties = props;
    }
    if (required.length > 0) out.required = required;
    if (Array.isArray(node.items)) out.items = node.items.map((s) => convertSchema(s, mode, depth + 1));
    else if (node.items !== undefined) out.items = convertSchema(node.items, mode, depth + 1);
    if (typeof node.additionalProperties === 'boolean') out.additionalProperties = node.additionalProperties;
    else if (isObject(node.additionalProperties)) out.additionalProperties = convertSchema(node.additionalProperties, mode, depth + 1);
    if (Array.isArray(node.allOf)) out.allOf = node.allOf.map((s) => convertSchema(s, mode, depth + 1));
  }
  return isNullable(node) ? { anyOf: [out, { type: 'null' }] } : out;
}

// ---------------------------------------------------------------- formats

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
// What go-openapi/strfmt parses: RFC 3339 and its common relatives (space
// separator, no seconds, no zone, zone without colon).
const LENIENT_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$/;

function validDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
  if (!m) return false;
  const month = Number(m[2]);
  const day = Number(m[3]);
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

const isInt = (n: number): boolean => Number.isInteger(n);

const NUMBER_FORMATS: Record<string, (n: number) => boolean> = {
  int8: (n) => isInt(n) && n >= -128 && n <= 127,
  int16: (n) => isInt(n) && n >= -32768 && n <= 32767,
  int32: (n) => isInt(n) && n >= -(2 ** 31) && n <= 2 ** 31 - 1,
  int64: isInt,
  int: isInt,
  uint8: (n) => isInt(n) && n >= 0 && n <= 255,
  uint16: (n) => isInt(n) && n >= 0 && n <= 65535,
  uint32: (n) => isInt(n) && n >= 0 && n <= 2 ** 32 - 1,
  uint64: (n) => isInt(n) && n >= 0,
  uint: (n) => isInt(n) && n >= 0,
  float: Number.isFinite,
  float32: Number.isFinite,
  float64: Number.isFinite,
  double: Number.isFinite,
};

function stringFormats(mode: SchemaMode): Record<string, (s: string) => boolean> {
  return {
    'date-time': mode === 'response' ? (s) => RFC3339.test(s) && validDate(s) : (s) => LENIENT_DATE_TIME.test(s) && validDate(s),
    date: (s) => /^\d{4}-\d{2}-\d{2}$/.test(s) && validDate(s),
    // eslint-disable-next-line no-control-regex
    uri: (s) => !/[\u0000-\u001f\u007f]/.test(s),
  };
}

/** Every `format` value used anywhere in the document. */
export function collectFormats(doc: unknown): Set<string> {
  const found = new Set<string>();
  const stack: Array<{ v: unknown; d: number }> = [{ v: doc, d: 0 }];
  let budget = 1_000_000;
  while (stack.length > 0 && budget-- > 0) {
    const { v, d } = stack.pop()!;
    if (d > 200) continue;
    if (Array.isArray(v)) for (const x of v) stack.push({ v: x, d: d + 1 });
    else if (isObject(v)) {
      if (typeof v.format === 'string') found.add(v.format);
      for (const x of Object.values(v)) stack.push({ v: x, d: d + 1 });
    }
  }
  return found;
}

function isZeroValue(v: unknown): boolean {
  if (v === null || v === undefined || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (isObject(v)) return Object.keys(v).length === 0;
  return false;
}

/**
 * An ajv instance holding all `definitions` converted for `mode` under
 * DEFINITIONS_ID[mode], with the formats and keywords described above.
 */
export function makeAjv(mode: SchemaMode, definitions: JsonObject, formatsInDoc: Set<string>): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, validateFormats: true, coerceTypes: false, useDefaults: false });
  for (const [name, validate] of Object.entries(NUMBER_FORMATS)) ajv.addFormat(name, { type: 'number', validate });
  for (const [name, validate] of Object.entries(stringFormats(mode))) ajv.addFormat(name, { type: 'string', validate });
  // A format this module does not know is not a reason to reject anything.
  for (const f of formatsInDoc) {
    if (!(f in NUMBER_FORMATS) && !(f in stringFormats(mode))) ajv.addFormat(f, true);
  }
  ajv.addKeyword({
    keyword: READ_ONLY_KEYWORD,
    schemaType: 'boolean',
    validate: (schema: boolean, data: unknown) => !schema || isZeroValue(data),
  });
  const defs: JsonObject = {};
  for (const [name, def] of Object.entries(definitions)) defs[name] = convertSchema(def, mode);
  ajv.addSchema({ $id: DEFINITIONS_ID[mode], definitions: defs });
  return ajv;
}

/** One line per ajv error, rooted at `where` (e.g. "project in body"). */
export function formatAjvErrors(where: string, errors: ErrorObject[] | null | undefined): string[] {
  const out: string[] = [];
  for (const e of errors ?? []) {
    // anyOf branches repeat the same fact (not null / not the type): keep the useful ones.
    if (e.keyword === 'anyOf') continue;
    const at = e.instancePath ? `${where}${e.instancePath.replace(/\//g, '.')}` : where;
    if (e.keyword === READ_ONLY_KEYWORD) out.push(`${at} is readOnly and must not be sent with a value`);
    else if (e.keyword === 'type' && e.params && 'type' in e.params && e.params.type === 'null') continue;
    else if (e.keyword === 'enum') out.push(`${at} ${e.message ?? 'is not allowed'}: ${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)}`);
    else if (e.keyword === 'required') out.push(`${at}.${String((e.params as { missingProperty?: unknown }).missingProperty)} is required`);
    else out.push(`${at} ${e.message ?? 'is invalid'}`);
  }
  return [...new Set(out)];
}

/**
 * Object keys in `value` that `schema` (raw Swagger, refs into `definitions`)
 * does not describe where it lists properties without additionalProperties:
 * Go's JSON decoder drops them silently, so a client sending them is almost
 * certainly wrong (e.g. a nested `credential` in the flat RegistryUpdate).
 */
export function unknownFields(schema: unknown, value: unknown, definitions: JsonObject, where: string): string[] {
  const out: string[] = [];
  const walk = (s: unknown, v: unknown, path: string, depth: number): void => {
    if (depth > MAX_DEPTH || !isObject(s)) return;
    if (typeof s.$ref === 'string') {
      const name = definitionName(s.$ref);
      if (name !== undefined) walk(definitions[name], v, path, depth + 1);
      return;
    }
    if (Array.isArray(s.allOf)) for (const sub of s.allOf) walk(sub, v, path, depth + 1);
    if (Array.isArray(v)) {
      if (s.items !== undefined && !Array.isArray(s.items)) v.forEach((x, i) => walk(s.items, x, `${path}[${i}]`, depth + 1));
      return;
    }
    if (!isObject(v)) return;
    const props = isObject(s.properties) ? s.properties : undefined;
    for (const [k, x] of Object.entries(v)) {
      if (props && k in props) walk(props[k], x, `${path}.${k}`, depth + 1);
      else if (isObject(s.additionalProperties)) walk(s.additionalProperties, x, `${path}.${k}`, depth + 1);
      else if (props && s.additionalProperties === undefined && !Array.isArray(s.allOf)) out.push(`${path}.${k}`);
    }
  };
  walk(schema, value, where, 0);
  return out;
}
