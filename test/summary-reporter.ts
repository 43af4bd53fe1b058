// Prints one plain closing line, `tests: N passed, N failed[, N skipped]`, after
// vitest's own summary. CI reads that line, so it must stay the run's last.
import type { SerializedError } from 'vitest';
import type { Reporter, TestModule, TestRunEndReason, Vitest } from 'vitest/node';

const skipE2E = (): boolean => process.env.BERTH_SKIP_E2E === '1';

export default class SummaryReporter implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
    // vitest.config.ts drops the e2e project then, so no global setup says it
    if (skipE2E()) vitest.logger.error(`\n${'#'.repeat(72)}\n#  BERTH_SKIP_E2E=1: the end-to-end tests against real hosts will NOT run.\n${'#'.repeat(72)}\n`);
  }

  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
    reason: TestRunEndReason,
  ): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let failedHere = 0;
      for (const t of mod.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      // A file that failed to load, or whose beforeAll threw, has no failed
      // test of its own: count the file once so the line never says 0 failed.
      if (failedHere === 0 && mod.state() === 'failed') failedHere = 1;
      failed += failedHere;
    }
    failed += unhandledErrors.length;
    // e.g. the e2e global setup threw: no test ran, yet the run failed
    if (reason !== 'passed' && failed === 0) failed = 1;
    const notes: string[] = [];
    if (skipE2E()) notes.push('NOTE: BERTH_SKIP_E2E=1, the e2e tests did not run');
    const line = `tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
    const out = [...notes, line].join('\n');
    if (this.vitest) this.vitest.logger.log(out);
    else process.stdout.write(`${out}\n`);
  }
}
