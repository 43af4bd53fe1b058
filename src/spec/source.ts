import { existsSync, realpathSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { BerthError } from '../util/errors.js';
import { BERTH_HOME } from './schemas.js';
import { displayPath } from './yamlfile.js';
import type { SourcePos } from '../types.js';

/**
 * A template or file named by a task: the role's templates/ (or files/)
 * directory first, then the spec root. It must stay inside the repository
 * (or berth's own roles): `../../etc/shadow` and links out are refused.
 */
export function findSource(root: string, roleDir: string | undefined, kind: 'templates' | 'files', src: string, pos: SourcePos, maxBytes = 64 * 1024 * 1024): string {
  const candidates = [...(roleDir ? [join(roleDir, kind, src)] : []), resolve(root, src)];
  const abs = candidates.find((c) => existsSync(c));
  if (!abs) {
    throw new BerthError(`${kind === 'templates' ? 'template' : 'file'} not found: ${src}`, {
      pos,
      hint: roleDir ? `looked in ${displayPath(join(roleDir, kind), root)} and the spec root` : 'paths are relative to the spec root',
    });
  }
  const real = realpathSync(abs);
  const allowed = [realpathSync(root), realpathSync(BERTH_HOME)].some((r) => real === r || real.startsWith(r + sep));
  if (!allowed) throw new BerthError(`${src} resolves outside the spec repository (${real})`, { pos, hint: 'templates and files must live in the repository' });
  if (!statSync(real).isFile()) throw new BerthError(`${src} is not a regular file`, { pos });
  const size = statSync(real).size;
  if (size > maxBytes) {
    throw new BerthError(
      kind === 'templates' ? `template ${src} is ${size} bytes; templates must be under ${maxBytes >> 20} MiB` : `${src} is ${size} bytes; files over ${maxBytes >> 20} MiB go through the copy module, which streams them`,
      { pos },
    );
  }
  return real;
}
