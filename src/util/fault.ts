// A test hook, inert unless BERTH_TEST_KILL_AT is set: the fault-injection
// tests (test/e2e/faults.test.ts) use it to SIGKILL berth at an exact point of
// an apply, which no timing-based kill from outside can hit reliably.
//
//   BERTH_TEST_KILL_AT=<point>   points: locked, planned, journaled,
//                                change:<n> (before the host's n-th change),
//                                upload:<n> (half-way through sending the n-th
//                                change's data), applied, recorded
//
// With several hosts the first one to reach the point kills the process.
// Nothing else reads the variable, and berth behaves exactly the same when it
// is unset.

const KILL_AT = process.env.BERTH_TEST_KILL_AT;

/** SIGKILLs this process when `point` is the one BERTH_TEST_KILL_AT names. */
export function faultPoint(point: string): void {
  if (KILL_AT !== undefined && KILL_AT === point) process.kill(process.pid, 'SIGKILL');
}

/** True when BERTH_TEST_KILL_AT names `point` (for points that must prepare the kill, like upload:<n>). */
export function faultArmed(point: string): boolean {
  return KILL_AT !== undefined && KILL_AT === point;
}

/** SIGKILLs this process (only ever called once faultArmed said yes). */
export function faultKill(): void {
  if (KILL_AT !== undefined) process.kill(process.pid, 'SIGKILL');
}
