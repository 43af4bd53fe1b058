// preflight: the host against Harbor's minimums and the commands the cache VM
// needs, checked when facts are gathered; below them a plan-time error (or a
// warning), never a half-applied host.

import { describe, expect, it } from 'vitest';
import { planHost } from '../../src/plan/planner.js';
import { berthError, factsFor, programOf } from './helpers.js';

const TASK = `
  - name: docker engine and compose are present
    preflight:
      commands: [docker]
      checks: ["/usr/bin/docker compose version"]
      hint: "install Docker Engine with the compose plugin"
      on_failure: fail
`;

describe('preflight', () => {
  it('runs each check as a read-only command in the facts round trip', () => {
    const p = programOf(TASK);
    expect(p.queries).toHaveLength(1);
    expect(p.queries[0]!.command).toContain('if ( /usr/bin/docker compose version\n) </dev/null >/dev/null 2>&1; then echo yes; else echo no; fi');
    // nproc, memory, path, free disk, one line per command, one per check
    expect(p.queries[0]!.parse('4\n8192\n/\n209715200\nyes\nno\n', 0)).toMatchObject({ commands: { docker: true }, checks: { '/usr/bin/docker compose version': false } });
  });

  it('a failed check is a plan-time error naming it and the remedy; a passing one plans nothing', () => {
    const p = programOf(TASK);
    const key = p.queries[0]!.key;
    const fact = (ok: boolean) => ({ cpus: 4, memoryMb: 8192, diskFreeGb: 200, diskPath: '/', commands: { docker: true }, checks: { '/usr/bin/docker compose version': ok } });
    expect(planHost(p, factsFor(p, { [key]: fact(true) })).changes).toEqual([]);
    expect(berthError(() => planHost(p, factsFor(p, { [key]: fact(false) }))).format()).toBe(
      'playbooks/site.yml:4:7: preflight on h1: failed check(s): `/usr/bin/docker compose version` (install Docker Engine with the compose plugin) (fix the host, or set on_failure: warn to go on anyway)',
    );
  });
});
