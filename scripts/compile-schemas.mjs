#!/usr/bin/env node
// Part of `npm run build`: writes the validators of schemas/ as code next to
// dist/spec/schemas.js (Ajv's standalone code), so that berth does not compile
// the schemas at every start. dist/spec/schemas.js uses them only while their
// hash matches the schema files and Ajv; see "compiled validators" there.

import { writeFileSync, renameSync } from 'node:fs';
import standaloneModule from 'ajv/dist/standalone/index.js';
import { compiledFile, makeAjv, schemaFilesHash, schemaIds } from '../dist/spec/schemas.js';

const standaloneCode = standaloneModule.default ?? standaloneModule;
const ids = schemaIds();
for (const coerce of [false, true]) {
  const ajv = makeAjv(coerce, { source: true });
  // with coercion only the module schemas are used (task arguments)
  const wanted = coerce ? ids.filter((id) => id.startsWith('modules/')) : ids;
  const names = Object.fromEntries(wanted.map((id, i) => [`v${i}`, id]));
  const code = standaloneCode(ajv, names);
  const footer = `\nexports.hash = ${JSON.stringify(schemaFilesHash())};\nexports.ids = ${JSON.stringify(Object.fromEntries(wanted.map((id, i) => [id, `v${i}`])))};\n`;
  const file = compiledFile(coerce);
  writeFileSync(`${file}.tmp`, code + footer);
  renameSync(`${file}.tmp`, file);
}
