// The bench's own pure parts (bench/lib): statistics, what it reads from GNU
// time, ansible-playbook and sshd, the tables and the verdict on the targets,
// the inventories it writes and the snapshot comparison. Fixed inputs only:
// the bench itself is not run here.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ansibleInventory, berthInventory } from '../../bench/lib/inventory.js';
import { limits, renderResults, type ResultsData } from '../../bench/lib/report.js';
import { compareSnapshots, snapshot } from '../../bench/lib/snapshot.js';
import {
  checkRecap,
  costTable,
  countAccepted,
  countInvocations,
  fmtSeconds,
  fmtWall,
  median,
  minMax,
  parseGnuTime,
  ratio,
  targets,
  timeTable,
  type Cell,
} from '../../bench/lib/stats.js';

const sample = (wallMs: number, more: Partial<Cell['samples'][number]> = {}) => ({ wallMs, cpuMs: 500, maxRssKb: 90 * 1024, hostCpuMs: 2000, ...more });

describe('bench statistics', () => {
  it('median, range and ratio', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
    expect(minMax([5, 2, 9])).toEqual([2, 9]);
    expect(ratio([30, 10, 20], [2, 1, 3])).toBe(10);
    expect(ratio([1], [])).toBeNaN();
    expect(fmtSeconds(843)).toBe('0.84 s');
    expect(fmtSeconds(12_340)).toBe('12.3 s');
    expect(fmtSeconds(65_000)).toBe('1:05 min');
    expect(fmtWall([800, 843, 910])).toBe('0.84 s (0.80–0.91)');
  });

  it('reads GNU time -v', () => {
    const t = parseGnuTime(
      '\tCommand being timed: "node x"\n\tUser time (seconds): 0.52\n\tSystem time (seconds): 0.09\n\tMaximum resident set size (kbytes): 91416\n\tExit status: 0\n',
    );
    expect(t).toEqual({ maxRssKb: 91416, userS: 0.52, sysS: 0.09 });
    expect(() => parseGnuTime('nothing')).toThrow(/Maximum resident set size/);
  });

  it('judges an Ansible run by its recap', () => {
    const out = [
      'PLAY RECAP *********************************************************************',
      'bbench1                    : ok=17   changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0',
      'bbench2                    : ok=8    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0',
      '',
    ].join('\n');
    expect(checkRecap(out, ['bbench1', 'bbench2'], false)).toBeUndefined();
    expect(checkRecap(out, ['bbench1', 'bbench2'], true)).toBe('bbench2: changed=2 on a converged host');
    expect(checkRecap(out, ['bbench1', 'bbench3'], false)).toBe('bbench3 is missing from the PLAY RECAP');
    expect(checkRecap(out.replace('failed=0    skipped=0    rescued=0    ignored=0\nbbench2', 'failed=1    skipped=0    rescued=0    ignored=0\nbbench2'), ['bbench1'], false)).toBe(
      'bbench1: failed=1 unreachable=0',
    );
    expect(checkRecap('fatal: no recap', ['bbench1'], false)).toBe('bbench1 is missing from the PLAY RECAP');
  });

  it('counts ssh/sftp invocations per address and sshd logins', () => {
    const log = [
      '-C -o ControlMaster=auto -o User="root" 127.0.0.161 /bin/sh -c \'python3\'',
      '-o ControlPersist=60s 127.0.0.162 /bin/sh',
      '-b - -C -o User="root" [127.0.0.161]',
      '',
    ].join('\n');
    expect([...countInvocations(log)]).toEqual([
      ['127.0.0.161', 2],
      ['127.0.0.162', 1],
    ]);
    const journal = 'Server listening on 127.0.0.161 port 22.\nAccepted publickey for root from 127.0.0.1 port 4242 ssh2: ED25519 SHA256:x\nAccepted publickey for root from 127.0.0.1 port 4243 ssh2: ED25519 SHA256:x\nDisconnected from user root\n';
    expect(countAccepted(journal)).toBe(2);
  });

  it('tables and targets from fixed cells', () => {
    const cells: Cell[] = [
      { scenario: 'noop-plan', hosts: 20, tool: 'berth', samples: [sample(1200), sample(1300), sample(1400)], counts: { connections: Array(20).fill(1), roundTrips: Array(20).fill(1) } },
      { scenario: 'noop-plan', hosts: 20, tool: 'ansible', samples: [sample(20_000), sample(26_000), sample(30_000)], counts: { connections: Array(20).fill(1), roundTrips: [...Array(19).fill(105), 149] } },
      { scenario: 'cold-apply', hosts: 20, tool: 'berth', samples: [sample(9000)] },
      { scenario: 'cold-apply', hosts: 20, tool: 'ansible', samples: [sample(40_000)] },
      { scenario: 'noop-plan', hosts: 50, tool: 'berth', samples: [sample(2500, { maxRssKb: 120 * 1024 })] },
    ];
    const t = timeTable(cells);
    expect(t).toContain('| no-op plan / --check --diff | 20 | 1.30 s (1.20–1.40) | 26.0 s (20.0–30.0) | 20× | 3 + 3 |');
    expect(t).toContain('| no-op plan / --check --diff | 50 | 2.50 s (2.50–2.50) | not run | n/a | 1 |');
    expect(t.indexOf('cold apply')).toBeLessThan(t.indexOf('no-op plan'));
    const c = costTable(cells);
    expect(c).toContain('| no-op plan / --check --diff | 20 | Ansible | 1 | 105–149 | 0.50 s | 90 MB | 100 ms |');
    const v = targets(cells);
    expect(v.map((x) => [x.measured, x.met])).toEqual([
      ['20×', true],
      ['1.30 s', true],
      ['4.4×', false],
      ['1 (most on any host)', true],
      ['90 MB (highest berth run)', true],
      ['2.50 s', true],
    ]);
    expect(targets([]).every((x) => x.met === undefined)).toBe(true);
  });
});

describe('bench inventories', () => {
  const hosts = [
    { name: 'bbench1', address: '127.0.0.161' },
    { name: 'bbench2', address: '127.0.0.162' },
  ];
  const access = { keyFile: '/k/id', knownHosts: '/s/known_hosts' };

  it('berth: host 1 is the cache VM, every host a node', () => {
    const { hostsYml, allYml } = berthInventory(hosts, access);
    expect(parse(hostsYml)).toEqual({
      all: { children: { cache: { hosts: { bbench1: { berth_host: '127.0.0.161' } } }, nodes: { hosts: { bbench1: { berth_host: '127.0.0.161' }, bbench2: { berth_host: '127.0.0.162' } } } } },
    });
    expect(parse(allYml)).toMatchObject({ berth_user: 'root', berth_key_file: '/k/id', berth_known_hosts: '/s/known_hosts' });
  });

  it('Ansible: the same groups, key and known_hosts', () => {
    const ini = ansibleInventory(hosts, access);
    expect(ini).toContain('[cache]\nbbench1 ansible_host=127.0.0.161\n\n[nodes]\nbbench1 ansible_host=127.0.0.161\nbbench2 ansible_host=127.0.0.162\n');
    expect(ini).toContain('ansible_ssh_private_key_file=/k/id');
    expect(ini).toContain('-o UserKnownHostsFile=/s/known_hosts');
    expect(ini).toContain('StrictHostKeyChecking=yes');
  });
});

describe('bench snapshots', () => {
  it('find what differs between two hosts, but not what is ignored', () => {
    const base = mkdtempSync(join(tmpdir(), 'berth-bench-snap-'));
    try {
      const make = (name: string, mode: string, extra: (d: string) => void) => {
        const d = join(base, name);
        mkdirSync(join(d, 'etc/app'), { recursive: true });
        writeFileSync(join(d, 'etc/app/a.conf'), 'same\n');
        writeFileSync(join(d, 'etc/app/b.conf'), `mode ${mode}\n`, { mode: 0o644 });
        writeFileSync(join(d, 'etc/machine-id'), `${name}\n`);
        writeFileSync(join(d, 'etc/shadow'), `root:*:${name === 'x' ? 19000 : 19001}:0:99999:7:::\n`);
        mkdirSync(join(d, 'root/.ansible/tmp'), { recursive: true });
        symlinkSync('/etc/app/a.conf', join(d, 'etc/link'));
        extra(d);
        return snapshot(d);
      };
      const x = make('x', '1', () => undefined);
      const y = make('y', '1', () => undefined);
      expect(compareSnapshots(x, y)).toEqual([]);
      expect(x.map((e) => e.path)).not.toContain('/root');
      const z = make('z', '2', (d) => writeFileSync(join(d, 'etc/app/extra'), ''));
      expect(compareSnapshots(x, z, ['berth', 'Ansible'])).toEqual([
        expect.stringMatching(/^\/etc\/app\/b\.conf: berth file 0644 \d+:\d+ sha256:\w{12}, Ansible file 0644 \d+:\d+ sha256:\w{12}$/),
        expect.stringMatching(/^\/etc\/app\/extra: only after Ansible \(file 0644/),
      ]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('bench report', () => {
  it('writes the machine, the load, the tables, the targets and what limits each tool', () => {
    const d: ResultsData = {
      started: '2026-01-01T00:00:00Z',
      options: { sizes: [20], runs: 1, coldRuns: 1, scale: 0, strategy: 'free', countColdUpTo: 5 },
      machine: ['CPU: test, 2 cores'],
      loads: [{ what: 'no-op plan, 20 host(s)', load: '0.10 0.20 0.30', foreignCpuShare: 0.02 }],
      selftest: ['same files'],
      cells: [
        { scenario: 'noop-plan', hosts: 20, tool: 'berth', samples: [sample(1200, { hostCpuMs: 20 * 70 })] },
        { scenario: 'noop-plan', hosts: 20, tool: 'ansible', samples: [sample(30_000, { hostCpuMs: 20 * 7000 })] },
        { scenario: 'cold-apply', hosts: 20, tool: 'berth', samples: [sample(9000, { hostCpuMs: 20 * 1800 })] },
        { scenario: 'cold-apply', hosts: 20, tool: 'ansible', samples: [sample(60_000, { hostCpuMs: 20 * 9000 })] },
      ],
      floor: [[20, [sample(600, { hostCpuMs: 20 * 45 })]]],
      caCostMs: 1500,
    };
    const md = renderResults(d);
    expect(md).not.toContain('Other processes used');
    expect(renderResults({ ...d, loads: [...d.loads, { ...d.loads[0]!, foreignCpuShare: 0.4 }] })).toContain("> Other processes used 2 %–40 % of the machine's CPU");
    expect(md).toContain('- CPU: test, 2 cores');
    expect(md).toContain('| no-op plan, 20 host(s) | 0.10 0.20 0.30 | 2 % |');
    expect(md).toContain('| no-op plan / --check --diff | 20 | 1.20 s (1.20–1.20) | 30.0 s (30.0–30.0) | 25× | 1 + 1 |');
    expect(md).toContain('| cold apply, 20 hosts: ≥ 5× faster than Ansible | 6.7× | yes |');
    const l = limits(d);
    expect(l[0]).toBe('The floor on 20 host(s): 0.60 s for 20 parallel `ssh root@host true` (OpenSSH, curve25519; 45 ms of host CPU per login: sshd, PAM, the systemd session); berth\'s no-op plan: 1.20 s, 2.0× that.');
    const line = (part: string) => l.find((x) => x.includes(part)) ?? `no line with ${part}`;
    expect(line('Host CPU per host')).toContain('berth 70 ms (one login, one fact script), Ansible\'s --check 7000 ms');
    // 500 ms controller + 20 × 70 ms hosts; 500 ms + 20 × 7000 ms
    expect(line('CPU a no-op plan')).toContain('berth 1.90 s, Ansible 2:21 min. On 2 idle cores neither can take less than that divided by 2: berth ≥ 0.95 s, Ansible ≥ 1:10 min');
    expect(line('update-ca-certificates')).toContain('costs 1500 ms of host CPU by itself; berth\'s whole cold apply used 1800 ms per host, Ansible\'s 9000 ms');
    expect(line('update-ca-certificates')).toContain('more than about 6.0×');
  });
});
