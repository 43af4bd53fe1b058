export { renderTemplate, renderValue, evalCondition, lookupPath, sourceVariable } from './render.js';
export type { TemplateContext, TemplateOrigin } from './render.js';
export { HELPER_NAMES, quoteString, toToml } from './helpers.js';
