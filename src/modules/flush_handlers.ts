import type { Module } from '../types.js';

/**
 * Runs the handlers notified so far, here rather than at the end of the play
 * (Ansible's `meta: flush_handlers`): e.g. Harbor's prepare must run before
 * the service is started. The planner acts on it; it has nothing of its own.
 */
export const flushHandlersModule: Module<Record<string, never>> = {
  name: 'flush_handlers',
  schema: 'flush_handlers',
  secretArgs: [],
  facts: () => [],
  plan: () => [],
  async apply() {
    // nothing: the planner put the handlers' changes in its place
  },
};
