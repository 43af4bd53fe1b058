import type { Module, PlannedChange } from '../types.js';
import {
  PROJECT_LIST_KEY,
  REGISTRY_LIST_KEY,
  baseFacts,
  endpointOf,
  freshList,
  harborFact,
  listQuery,
  projectKey,
  reachability,
  registryKey,
  type ApiArgs,
  type ProjectFact,
  type RegistryFact,
} from '../harbor/api.js';
import { harborProjectModule } from './harbor_project.js';
import { harborRegistryModule } from './harbor_registry.js';

export interface PruneArgs {
  api: ApiArgs;
  kind: 'project' | 'registry';
  /** What the spec manages (kept). */
  managed: string[];
  /** Kept too, although the spec does not manage them (Harbor's `library`). */
  keep?: string[];
}

/**
 * Deletes the projects (or registry endpoints) Harbor has and the spec does
 * not: the harbor_api role runs it only with harbor_api.prune, projects
 * before registries (Harbor refuses, 412, to delete a registry a project
 * uses). Each deletion is its own change, applied by harbor_project /
 * harbor_registry (a project that still holds repositories fails with a
 * clear 412 message).
 */
export const harborPruneModule: Module<PruneArgs> = {
  name: 'harbor_prune',
  schema: 'harbor_prune',
  check(a, ctx) {
    endpointOf(a.api, ctx);
  },
  facts(a, ctx) {
    return [...baseFacts(a.api, ctx), listQuery(a.api, ctx, a.kind)];
  },
  plan(a, state, ctx): PlannedChange[] {
    const view = reachability(a.api, state, ctx);
    const listed = harborFact<string[]>(state, a.kind === 'project' ? PROJECT_LIST_KEY : REGISTRY_LIST_KEY, view, freshList(a.kind));
    const keep = new Set([...a.managed, ...(a.keep ?? [])]);
    const out: PlannedChange[] = [];
    for (const name of listed) {
      if (keep.has(name)) continue;
      if (a.kind === 'project') {
        // an earlier task of this plan may have deleted it already
        const cur = state.get<ProjectFact>(projectKey(name));
        if (cur && 'exists' in cur && !cur.exists) continue;
        state.set(projectKey(name), { exists: false });
        out.push({ resource: `harbor project ${name}`, action: 'delete', attrs: [{ name: 'prune', after: 'not in the spec' }], payload: { op: 'delete', api: a.api, name } });
      } else {
        const cur = state.get<RegistryFact>(registryKey(name));
        if (cur && 'exists' in cur && !cur.exists) continue;
        state.set(registryKey(name), { exists: false });
        out.push({ resource: `harbor registry ${name}`, action: 'delete', attrs: [{ name: 'prune', after: 'not in the spec' }], payload: { op: 'delete', api: a.api, name } });
      }
    }
    return out;
  },
  async apply(change, ctx) {
    // the same deletion as `state: absent` of the resource's own module
    const mod = change.resource.startsWith('harbor project ') ? harborProjectModule : harborRegistryModule;
    return mod.apply(change, ctx);
  },
};
