import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import type { TestProjectInlineConfiguration } from 'vitest/config';

const E2E_TIMEOUT_MS = 300_000;

const unit: TestProjectInlineConfiguration = {
  test: {
    name: 'unit',
    include: ['test/unit/**/*.test.ts'],
    environment: 'node',
    // some unit tests run real openssl, git and age: 5 s is too tight on a busy 2-core machine
    testTimeout: 20_000,
    // vitest's default is cores - 1: a single worker on these 2-core machines
    maxWorkers: Math.max(2, availableParallelism()),
  },
};

// The bad-input corpus (test/bad-inputs/cases): each case runs the built CLI,
// ~0.4 s of CPU each, but needs no hosts. A project of its own, so that
// `--project unit` stays quick.
const badInputs: TestProjectInlineConfiguration = {
  test: {
    name: 'bad-inputs',
    include: ['test/bad-inputs/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 240_000,
    // runs beside the unit tests (same group): vitest wants one maxWorkers per group
    maxWorkers: Math.max(2, availableParallelism()),
    // the cases run concurrently within the file; one per core
    maxConcurrency: Math.max(2, availableParallelism()),
  },
};

const e2e: TestProjectInlineConfiguration = {
  test: {
    name: 'e2e',
    include: ['test/e2e/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/e2e/global-setup.ts'],
    // The files share one set of real hosts: one file at a time.
    fileParallelism: false,
    testTimeout: E2E_TIMEOUT_MS,
    hookTimeout: E2E_TIMEOUT_MS,
    // After the unit tests: the hosts and the e2e files want both cores.
    sequence: { groupOrder: 1 },
  },
};

// BERTH_SKIP_E2E=1 drops the e2e project as a whole (the reporter says so in
// the closing lines); otherwise missing root/nspawn fails the run.
const skipE2E = process.env.BERTH_SKIP_E2E === '1';

export default defineConfig({
  test: {
    projects: skipE2E ? [unit, badInputs] : [unit, badInputs, e2e],
    reporters: ['default', './test/summary-reporter.ts'],
    // globalSetup's teardown stops the hosts (a few seconds for 6).
    teardownTimeout: 120_000,
  },
});
