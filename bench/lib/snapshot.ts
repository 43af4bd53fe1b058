// What a tool left on a host: every entry of the host's writable overlay layer
// (so everything it created or changed since the host was reset to bare), with
// type, mode, owner and content hash. Two snapshots of the same host, one after
// each tool, must be equal but for the entries listed in IGNORED.

import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface Entry {
  path: string;
  /** file, dir, link, whiteout (a deletion in the overlay), other */
  type: string;
  mode: string;
  owner: string;
  /** sha256 of a file (normalised, see NORMALISE), or a link's target. */
  content?: string;
}

/** Entries that differ between any two boots or tools for reasons that are not the desired state. */
export const IGNORED: { pattern: RegExp; why: string }[] = [
  { pattern: /^\/etc\/machine-id$/, why: 'a new id at every boot' },
  { pattern: /^\/etc\/resolv\.conf$/, why: 'copied from the controller at every boot' },
  { pattern: /^\/var\/log(\/|$)/, why: 'logs (journal, wtmp)' },
  { pattern: /^\/var\/tmp\/systemd-private-/, why: 'per-boot private tmp of services' },
  { pattern: /^\/var\/lib\/berth(\/|$)/, why: "berth's state record (what it applied; Ansible keeps none)" },
  { pattern: /^\/root\/\.ansible(\/|$)/, why: "Ansible's remote temp directory" },
  { pattern: /^\/var\/lib\/systemd\/(linger|timers|catalog)(\/|$)/, why: 'systemd bookkeeping' },
];

/** /etc/shadow's third field is the day of the last password change: equal unless the runs straddle midnight. */
const NORMALISE: { pattern: RegExp; apply(text: string): string }[] = [
  {
    pattern: /^\/etc\/shadow-?$/,
    apply: (t) =>
      t
        .split('\n')
        .map((l) => l.replace(/^([^:]*:[^:]*:)[0-9]*:/, '$1(day):'))
        .join('\n'),
  },
];

export function ignored(path: string): boolean {
  return IGNORED.some((i) => i.pattern.test(path));
}

/** Walks an overlay upper directory; paths in the result are as seen inside the host. */
export function snapshot(upper: string): Entry[] {
  const out: Entry[] = [];
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const abs = join(dir, name);
      const path = `${rel}/${name}`;
      if (ignored(path)) continue;
      const st = lstatSync(abs);
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      const owner = `${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        const children = readdirSync(abs);
        // a directory the overlay copied up only to hold ignored entries (/root for /root/.ansible)
        if (children.length && children.every((c) => ignored(`${path}/${c}`))) continue;
        out.push({ path, type: 'dir', mode, owner });
        walk(abs, path);
      } else if (st.isSymbolicLink()) {
        out.push({ path, type: 'link', mode, owner, content: readlinkSync(abs) });
      } else if (st.isFile()) {
        let data = readFileSync(abs);
        const norm = NORMALISE.find((n) => n.pattern.test(path));
        if (norm) data = Buffer.from(norm.apply(data.toString('utf8')), 'utf8');
        out.push({ path, type: 'file', mode, owner, content: createHash('sha256').update(data).digest('hex') });
      } else if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ path, type: 'whiteout', mode, owner });
      } else {
        out.push({ path, type: 'other', mode, owner });
      }
    }
  };
  walk(upper, '');
  return out;
}

const describe = (e: Entry) => `${e.type} ${e.mode} ${e.owner}${e.content ? ` ${e.type === 'link' ? '-> ' : 'sha256:'}${e.type === 'link' ? e.content : e.content.slice(0, 12)}` : ''}`;

/** The differences between two snapshots, one line each (empty: the same). */
export function compareSnapshots(a: readonly Entry[], b: readonly Entry[], names: [string, string] = ['a', 'b']): string[] {
  const ma = new Map(a.map((e) => [e.path, e]));
  const mb = new Map(b.map((e) => [e.path, e]));
  const paths = [...new Set([...ma.keys(), ...mb.keys()])].sort();
  const diffs: string[] = [];
  for (const p of paths) {
    const x = ma.get(p);
    const y = mb.get(p);
    if (!x) diffs.push(`${p}: only after ${names[1]} (${describe(y!)})`);
    else if (!y) diffs.push(`${p}: only after ${names[0]} (${describe(x)})`);
    else if (describe(x) !== describe(y)) diffs.push(`${p}: ${names[0]} ${describe(x)}, ${names[1]} ${describe(y)}`);
  }
  return diffs;
}
