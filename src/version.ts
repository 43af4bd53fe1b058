import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH_HOME } from './spec/schemas.js';

export const BERTH_VERSION: string = (JSON.parse(readFileSync(join(BERTH_HOME, 'package.json'), 'utf8')) as { version: string }).version;
