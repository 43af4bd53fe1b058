import { packageInfo, packageKey, type PackageFact } from '../facts/queries.js';
import { shq } from '../util/shell.js';
import type { Module, PlannedChange } from '../types.js';
import { run } from './common.js';

export interface AptArgs {
  name: string | string[];
  state?: 'present' | 'absent';
  /** Run apt-get update before installing (only when something is to be installed). */
  update_cache?: boolean;
  install_recommends?: boolean;
}

type Payload = { install: string[]; remove: string[]; update: boolean; recommends: boolean };

const names = (a: AptArgs) => (Array.isArray(a.name) ? a.name : [a.name]);

export const aptModule: Module<AptArgs> = {
  name: 'apt',
  schema: 'apt',
  secretArgs: [],
  batchable: true,
  facts: (a) => names(a).map(packageInfo),
  plan(a, state): PlannedChange[] {
    const want = a.state ?? 'present';
    const pick = names(a).filter((n) => (state.get<PackageFact>(packageKey(n))?.installed === true) !== (want === 'present'));
    if (!pick.length) return [];
    for (const n of pick) state.set(packageKey(n), want === 'present' ? { installed: true, version: '' } : { installed: false });
    const payload: Payload = {
      install: want === 'present' ? pick : [],
      remove: want === 'absent' ? pick : [],
      update: a.update_cache === true && want === 'present',
      recommends: a.install_recommends === true,
    };
    return [{ resource: `packages ${pick.join(' ')}`, action: want === 'present' ? 'create' : 'delete', attrs: [{ name: 'packages', after: pick.join(' ') }], payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const env = 'DEBIAN_FRONTEND=noninteractive';
    const lock = '-o DPkg::Lock::Timeout=300';
    const cmds = ['set -e'];
    if (p.update) cmds.push(`${env} apt-get ${lock} update -q`);
    if (p.install.length) cmds.push(`${env} apt-get ${lock} install -y -q ${p.recommends ? '' : '--no-install-recommends '}-- ${p.install.map(shq).join(' ')}`);
    if (p.remove.length) cmds.push(`${env} apt-get ${lock} remove -y -q -- ${p.remove.map(shq).join(' ')}`);
    await run(ctx, change.resource, cmds.join('\n'));
  },
};
