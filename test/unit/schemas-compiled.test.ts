// The validators `npm run build` writes as code (scripts/compile-schemas.mjs)
// must judge every value exactly as the validators Ajv compiles at run time:
// same verdict, same errors (with the schema parts the messages quote), same
// coerced values.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import standaloneModule from 'ajv/dist/standalone/index.js';
import { describe, expect, it } from 'vitest';
import { SCHEMA_DIR, loadCompiled, makeAjv, schemaFilesHash, schemaIds } from '../../src/spec/schemas.js';

const standaloneCode = ((standaloneModule as unknown as { default?: unknown }).default ?? standaloneModule) as (ajv: unknown, refs: Record<string, string>) => string;

/** Values of every shape, wrong in every way a spec can be. */
function probes(schema: { properties?: Record<string, unknown>; required?: string[] }): unknown[] {
  const shapes: unknown[] = [null, 0, -1, 1.5, 4294967295, '', 'x', '0644', '123', 'UPPER case', '/abs/path', 'relative', true, [], ['a'], [1, 'b'], {}, { k: 'v' }];
  const base: Record<string, unknown> = {};
  for (const r of schema.required ?? []) base[r] = 'name';
  const out: unknown[] = [null, 'text', [], {}, base, { ...base, unknown_key: 1 }];
  for (const key of Object.keys(schema.properties ?? {})) for (const v of shapes) out.push({ ...base, [key]: v });
  return out;
}

const summary = (errors: unknown) => JSON.parse(JSON.stringify(errors ?? null)) as unknown;

describe('compiled validators', () => {
  for (const coerce of [false, true]) {
    it(`judge like the run-time ones (${coerce ? 'coercing' : 'strict'})`, () => {
      const ids = schemaIds().filter((id) => !coerce || id.startsWith('modules/'));
      const names = Object.fromEntries(ids.map((id, i) => [`v${i}`, id]));
      const compiled = loadCompiled(`${standaloneCode(makeAjv(coerce, { source: true }), names)}\nexports.hash = 'h';`);
      const runtime = makeAjv(coerce);
      let checked = 0;
      ids.forEach((id, i) => {
        const file = join(SCHEMA_DIR, id);
        const schema = JSON.parse(readFileSync(file, 'utf8')) as { properties?: Record<string, unknown>; required?: string[] };
        const a = runtime.getSchema(id)!;
        const b = compiled[`v${i}`] as typeof a;
        for (const p of probes(schema)) {
          const x = structuredClone(p);
          const y = structuredClone(p);
          const ok = a(x);
          expect({ id, p, ok: b(y) }).toEqual({ id, p, ok });
          expect({ id, p, errors: summary(b.errors) }).toEqual({ id, p, errors: summary(a.errors) });
          expect(y).toEqual(x);
          checked++;
        }
      });
      expect(checked).toBeGreaterThan(200);
    });
  }

  it('are identified by the schema files and the Ajv version', () => {
    const h = schemaFilesHash();
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(schemaFilesHash()).toBe(h);
    expect(schemaIds()).toContain('modules/file.json');
  });
});
