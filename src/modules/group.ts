import { gidKey, groupByGid, groupInfo, groupKey, type GroupFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { FactQuery, Module, PlannedChange } from '../types.js';
import { run } from './common.js';

export interface GroupArgs {
  name: string;
  gid?: number;
  system?: boolean;
  state?: 'present' | 'absent';
  /** Change the gid of an existing group (files keep the old gid). */
  force?: boolean;
}

type Payload = { op: 'add' | 'mod' | 'del'; name: string; gid?: number; system?: boolean };

export const groupModule: Module<GroupArgs> = {
  name: 'group',
  schema: 'group',
  secretArgs: [],
  batchable: true,
  facts: (a) => [groupInfo(a.name), ...(a.gid !== undefined ? [groupByGid(a.gid)] : [])] as FactQuery[],
  plan(a, state, ctx): PlannedChange[] {
    const cur = state.get<GroupFact>(groupKey(a.name)) ?? { exists: false };
    const resource = `group ${a.name}`;
    if (a.state === 'absent') {
      if (!cur.exists) return [];
      state.set(groupKey(a.name), { exists: false });
      return [{ resource, action: 'delete', attrs: [{ name: 'gid', before: cur.gid }], payload: { op: 'del', name: a.name } satisfies Payload }];
    }
    if (a.gid !== undefined && !(cur.exists && cur.gid === a.gid)) {
      const holder = state.get<{ name?: string }>(gidKey(a.gid));
      if (holder?.name && holder.name !== a.name) {
        throw new BerthError(`gid ${a.gid} is already used by group "${holder.name}" on ${ctx.host}`, { pos: ctx.pos, hint: 'choose another gid or rename that group' });
      }
    }
    if (!cur.exists) {
      state.set(groupKey(a.name), { exists: true, name: a.name, gid: a.gid ?? -1, members: [] });
      if (a.gid !== undefined) state.set(gidKey(a.gid), { name: a.name });
      return [{ resource, action: 'create', attrs: a.gid !== undefined ? [{ name: 'gid', after: a.gid }] : [], payload: { op: 'add', name: a.name, gid: a.gid, system: a.system } satisfies Payload }];
    }
    if (a.gid === undefined || cur.gid === a.gid) return [];
    if (!a.force) {
      throw new BerthError(`group "${a.name}" exists on ${ctx.host} with gid ${cur.gid}, the spec wants ${a.gid}`, {
        pos: ctx.pos,
        hint: 'set force: true to change it with groupmod (files keep the old gid), or change the spec',
      });
    }
    state.set(groupKey(a.name), { ...cur, gid: a.gid });
    state.set(gidKey(a.gid), { name: a.name });
    return [{ resource, action: 'update', attrs: [{ name: 'gid', before: cur.gid, after: a.gid }], payload: { op: 'mod', name: a.name, gid: a.gid } satisfies Payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    const gid = p.gid !== undefined ? ` -g ${p.gid}` : '';
    const cmd = p.op === 'add' ? `groupadd${gid}${p.system ? ' -r' : ''} -- ${shq(p.name)}` : p.op === 'mod' ? `groupmod${gid} -- ${shq(p.name)}` : `groupdel -- ${shq(p.name)}`;
    await run(ctx, change.resource, cmd);
  },
};
