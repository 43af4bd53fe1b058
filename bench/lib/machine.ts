// What the bench ran on, and how busy the machine was meanwhile.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

function cmd(file: string, args: string[]): string {
  try {
    // ssh -V prints to stderr
    return execFileSync('sh', ['-c', '"$0" "$@" 2>&1', file, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    return `${err.stdout ?? ''}${err.stderr ?? ''}`.trim() || 'n/a';
  }
}

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'n/a';
  } catch {
    return 'n/a';
  }
}

export function loadavg(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

/** Busy CPU time of the whole machine so far (all cores), ms. */
export function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 10; // USER_HZ = 100
}

export function describeMachine(repo: string): string[] {
  const c = cpus();
  const ansible = cmd('ansible-playbook', ['--version']).split('\n');
  return [
    `CPU: ${c[0]?.model ?? 'n/a'}, ${c.length} cores`,
    `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `OS: ${osName()}, kernel ${release()}`,
    `Node.js ${process.version}; ${ansible[0] ?? 'ansible n/a'} (${(ansible.find((l) => l.includes('python version')) ?? '').trim().replace(/\s*\(.*$/, '')}); ${cmd('ssh', ['-V'])}`,
    `berth ${cmd('git', ['-C', repo, 'describe', '--always', '--dirty'])}`,
  ];
}
