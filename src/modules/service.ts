import { fileKey, fileStat, unitInfo, unitKey, type FileFact, type UnitFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { Action, AttrChange, Module, PlannedChange } from '../types.js';
import { run } from './common.js';

export interface ServiceArgs {
  name: string;
  state?: 'started' | 'stopped' | 'restarted' | 'reloaded';
  enabled?: boolean;
  /** Force a `systemctl daemon-reload` first (berth already does it when this plan changed a unit file). */
  daemon_reload?: boolean;
}

type Payload = { unit: string; daemonReload: boolean; verbs: string[] };

const unitName = (n: string) => (/\.[a-z]+$/.test(n) ? n : `${n}.service`);
const UNIT_DIRS = ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

export const serviceModule: Module<ServiceArgs> = {
  name: 'service',
  schema: 'service',
  secretArgs: [],
  batchable: true,
  facts: (a) => [unitInfo(unitName(a.name)), ...UNIT_DIRS.map((d) => fileStat(`${d}/${unitName(a.name)}`))],
  plan(a, state, ctx): PlannedChange[] {
    const unit = unitName(a.name);
    const cur = state.get<UnitFact>(unitKey(unit)) ?? { load: 'not-found', active: 'inactive', enabled: '' };
    const fileInRun = UNIT_DIRS.some((d) => state.get<FileFact>(fileKey(`${d}/${unit}`))?.exists);
    if (cur.load !== 'loaded' && !fileInRun) {
      throw new BerthError(`unit ${unit} is not installed on ${ctx.host} and no earlier task installs it`, {
        pos: ctx.pos,
        hint: `install the package that ships it, or write /etc/systemd/system/${unit} in an earlier task`,
      });
    }
    const reload = a.daemon_reload === true || state.get<boolean>('systemd:daemon-reload') === true;
    const attrs: AttrChange[] = [];
    const verbs: string[] = [];
    let action: Action = 'update';
    let active = cur.active;
    if (a.state === 'started' && cur.active !== 'active') {
      verbs.push('start');
      attrs.push({ name: 'active', before: cur.active, after: 'active' });
      active = 'active';
    } else if (a.state === 'stopped' && cur.active === 'active') {
      verbs.push('stop');
      attrs.push({ name: 'active', before: cur.active, after: 'inactive' });
      active = 'inactive';
    } else if (a.state === 'restarted' || a.state === 'reloaded') {
      verbs.push(a.state === 'restarted' ? 'restart' : 'reload');
      attrs.push({ name: 'state', after: a.state });
      action = 'run';
      active = 'active';
    }
    let enabled = cur.enabled;
    if (a.enabled === true && cur.enabled !== 'enabled') {
      verbs.push('enable');
      attrs.push({ name: 'enabled', before: cur.enabled || 'disabled', after: 'enabled' });
      enabled = 'enabled';
    } else if (a.enabled === false && cur.enabled === 'enabled') {
      verbs.push('disable');
      attrs.push({ name: 'enabled', before: 'enabled', after: 'disabled' });
      enabled = 'disabled';
    }
    if (!verbs.length && !reload) return [];
    if (reload) {
      attrs.unshift({ name: 'daemon-reload', after: true });
      state.set('systemd:daemon-reload', false);
    }
    state.set(unitKey(unit), { load: 'loaded', active, enabled } satisfies UnitFact);
    return [{ resource: `service ${unit}`, action, attrs, payload: { unit, daemonReload: reload, verbs } satisfies Payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const cmds = ['set -e'];
    if (p.daemonReload) cmds.push('systemctl daemon-reload');
    for (const v of p.verbs) cmds.push(`systemctl ${v} -- ${shq(p.unit)}`);
    await run(ctx, change.resource, cmds.join('\n'));
  },
};
