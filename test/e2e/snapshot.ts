// What a cache VM looks like, as data: every file and directory under the
// paths berth manages (type, mode, owner, sha256), and the harbor account.
// Two hosts built from one spec compare equal, except the contents berth
// leaves to others on purpose (prepare's fresh internal secrets).
import type { HostRef, TestHosts } from '../hosts/testhosts.js';

export type Entry = { type: string; mode: string; uid: number; gid: number; size?: number; sha256?: string; target?: string } | null;
export type Snapshot = Record<string, Entry | string>;

const INSTALL = '/opt/harbor';

const SNAPSHOT_PY = String.raw`
import hashlib, json, os, stat, subprocess, sys
out = {}
def add(p):
    st = os.lstat(p)
    kind = 'dir' if stat.S_ISDIR(st.st_mode) else 'link' if stat.S_ISLNK(st.st_mode) else 'file' if stat.S_ISREG(st.st_mode) else 'other'
    e = {'type': kind, 'mode': oct(st.st_mode & 0o7777), 'uid': st.st_uid, 'gid': st.st_gid}
    if kind == 'file':
        with open(p, 'rb') as f:
            e['sha256'] = hashlib.sha256(f.read()).hexdigest()
        e['size'] = st.st_size
    if kind == 'link':
        e['target'] = os.readlink(p)
    out[p] = e
for r in sys.argv[1:]:
    if not os.path.lexists(r):
        out[r] = None
        continue
    add(r)
    if stat.S_ISDIR(os.lstat(r).st_mode):
        for d, dirs, files in os.walk(r):
            for n in dirs + files:
                add(os.path.join(d, n))
for db, name in (('passwd', 'harbor'), ('group', 'harbor')):
    r = subprocess.run(['getent', db, name], capture_output=True, text=True)
    out[db + ':' + name] = r.stdout.strip()
print(json.dumps(out, sort_keys=True))
`;

export const SNAPSHOT_ROOTS = [
  INSTALL,
  '/data',
  '/etc/systemd/system/harbor.service',
  '/etc/systemd/system/multi-user.target.wants/harbor.service',
  '/var/cache/berth/harbor',
];

/** direnv's record of each .envrc content it was allowed to load: a host that lived through edits keeps the old ones. */
export const DIRENV_ALLOW = `${INSTALL}/.local/share/direnv/allow/`;

export async function cacheVmSnapshot(th: TestHosts, ref: HostRef): Promise<Snapshot> {
  const r = await th.ssh(ref, `python3 - ${SNAPSHOT_ROOTS.join(' ')}`, { input: SNAPSHOT_PY });
  if (r.code !== 0) throw new Error(`snapshot of ${th.name(ref)} failed (exit ${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as Snapshot;
}

/** The snapshot without the contents of `generated` files (owner and mode stay) and without the paths `drop` names. */
export function comparableSnapshot(s: Snapshot, generated: Set<string>, drop: (path: string) => boolean = () => false): Snapshot {
  const out: Snapshot = {};
  for (const [p, e] of Object.entries(s)) {
    if (drop(p)) continue;
    if (e && typeof e === 'object' && generated.has(p)) {
      const { sha256: _s, size: _z, ...rest } = e;
      out[p] = rest;
    } else out[p] = e;
  }
  return out;
}
