// Listening sockets on this machine (`ss -lntupH`) and which test host owns
// them, for the network-safety checks: every server a host runs must listen
// on 127.0.0.0/8 only.
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import type { Listener } from './context.js';

export async function listListeners(): Promise<Listener[]> {
  const r = await execa('ss', ['-lntupH'], { timeout: 30_000, stdin: 'ignore' });
  return parseSs(r.stdout);
}

export function parseSs(out: string): Listener[] {
  const result: Listener[] = [];
  for (const line of out.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const [proto, , , , local] = cols;
    if (!proto || !local) continue;
    const pids = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    result.push({ proto, local, pids: [...new Set(pids)] });
  }
  return result;
}

/** The address part of `ss`'s local column: `[::1]:22`, `127.0.0.1%lo:53`, `*:68`. */
export function listenHost(local: string): string {
  const colon = local.lastIndexOf(':');
  let host = colon >= 0 ? local.slice(0, colon) : local;
  host = host.replace(/%[^\]]*$/, '');
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host;
}

export function isLoopback(local: string): boolean {
  const host = listenHost(local);
  return /^127\./.test(host) || host === '::1' || /^::ffff:127\./i.test(host);
}

/** `proto local`, a stable key to compare listener sets. */
export function listenerKey(l: Listener): string {
  return `${l.proto} ${l.local}`;
}

/**
 * The machine name of the test host a process runs in, or undefined: walks up
 * the parent chain (bounded) to a systemd-nspawn started for `<prefix>N`.
 */
export function owningHost(pid: number, prefix: string): string | undefined {
  const re = new RegExp(`^--machine=(${prefix}\\d+)$`);
  let cur = pid;
  for (let depth = 0; depth < 64 && cur > 1; depth++) {
    let argv: string[];
    let status: string;
    try {
      argv = readFileSync(`/proc/${cur}/cmdline`, 'utf8').split('\0');
      status = readFileSync(`/proc/${cur}/status`, 'utf8');
    } catch {
      return undefined; // the process exited meanwhile
    }
    if (argv[0]?.endsWith('systemd-nspawn')) {
      for (const a of argv) {
        const m = re.exec(a);
        if (m) return m[1];
      }
      return undefined;
    }
    const ppid = /^PPid:\s+(\d+)/m.exec(status);
    cur = ppid ? Number(ppid[1]) : 0;
  }
  return undefined;
}
