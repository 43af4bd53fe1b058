import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { Module, PlannedChange } from '../types.js';

export interface WaitForArgs {
  url: string;
  timeout?: number;
  interval?: number;
  harbor_health?: boolean;
  insecure?: boolean;
}

interface Payload extends Required<Omit<WaitForArgs, 'insecure'>> {
  insecure: boolean;
}

interface HarborHealth {
  status?: string;
  components?: { name?: string; status?: string; error?: string }[];
}

/** What is unhealthy in a Harbor /health answer ("" when all is healthy). */
export function unhealthyComponents(body: string): string {
  let h: HarborHealth;
  try {
    h = JSON.parse(body) as HarborHealth;
  } catch {
    return `not a health answer: ${body.slice(0, 80)}`;
  }
  const bad = (h.components ?? []).filter((c) => c.status !== 'healthy').map((c) => `${c.name ?? '?'} (${c.status ?? 'no status'}${c.error ? `: ${c.error}` : ''})`);
  if (bad.length) return bad.join(', ');
  return h.status === 'healthy' ? '' : `overall status ${h.status ?? 'missing'}`;
}

/**
 * Waits, from the host, until an HTTP endpoint answers healthy. It changes
 * nothing, so it always runs: use it as a handler (listen: restart harbor),
 * where it runs only when the service was (re)started.
 */
export const waitForModule: Module<WaitForArgs> = {
  name: 'wait_for',
  schema: 'wait_for',
  secretArgs: [],
  check(a) {
    try {
      new URL(a.url);
    } catch {
      throw new BerthError(`url: ${JSON.stringify(a.url)} is not a valid URL`, { hint: 'check the host name and that the port is 1-65535' });
    }
  },
  facts: () => [],
  plan(a): PlannedChange[] {
    const payload: Payload = { url: a.url, timeout: a.timeout ?? 300, interval: a.interval ?? 2, harbor_health: a.harbor_health ?? false, insecure: a.insecure ?? false };
    return [{ resource: `wait for ${a.url}`, action: 'run', attrs: [{ name: 'timeout', after: `${payload.timeout}s` }], payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const deadline = Date.now() + p.timeout * 1000;
    let last = 'no answer yet';
    for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
      const r = await ctx.transport.exec(`curl -sS ${p.insecure ? '-k ' : ''}--max-time ${Math.min(10, p.interval + 5)} -w '\\n%{http_code}' -- ${shq(p.url)}`, {
        become: false,
      });
      const lines = r.stdout.split('\n');
      const status = lines.pop() ?? '';
      const body = lines.join('\n');
      if (r.code === 0 && status.startsWith('2')) {
        const bad = p.harbor_health ? unhealthyComponents(body) : '';
        if (!bad) return;
        last = `unhealthy: ${bad}`;
      } else {
        last = r.code === 0 ? `HTTP ${status}` : r.stderr.trim().split('\n').pop() ?? `curl exit ${r.code}`;
      }
      await new Promise((res) => setTimeout(res, p.interval * 1000));
    }
    throw new BerthError(`${p.url} was not healthy after ${p.timeout}s: ${last}`, { host: ctx.host });
  },
};
