import type { Module } from '../types.js';
import { requireAbsolute } from './common.js';
import { applyFile, fileFacts, ownershipOf, planAbsent, planFile } from './file.js';

export interface TemplateArgs {
  /** A handlebars template: the role's templates/ first, then the spec root. */
  src: string;
  dest: string;
  owner?: string;
  group?: string;
  mode?: string | number;
  state?: 'present' | 'absent';
}

/** A file whose content is a handlebars template rendered with the task's variables. */
export const templateModule: Module<TemplateArgs> = {
  name: 'template',
  schema: 'template',
  secretArgs: [],
  batchable: true,
  check: (a, ctx) => {
    requireAbsolute(a.dest, ctx, 'dest');
    if (a.state !== 'absent') ctx.renderTemplateFile(a.src);
  },
  facts: (a) => fileFacts(a.dest, a.state === 'absent' ? {} : ownershipOf(a)),
  plan(a, state, ctx) {
    if (a.state === 'absent') return planAbsent(a.dest, state, ctx, 'file');
    return planFile(a.dest, ctx.renderTemplateFile(a.src), ownershipOf(a), state, ctx);
  },
  apply: applyFile,
};
