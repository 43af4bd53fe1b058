import { fileKey, groupInfo, groupKey, uidKey, userByUid, userInfo, userKey, type GroupFact, type UserFact } from '../facts/queries.js';
import { BerthError } from '../util/errors.js';
import { shq } from '../util/shell.js';
import type { AttrChange, FactQuery, Module, PlannedChange } from '../types.js';
import { run } from './common.js';

export interface UserArgs {
  name: string;
  uid?: number;
  /** Primary group (must exist or be created by an earlier task); default: a group named like the user. */
  group?: string;
  /** Supplementary groups: exactly these, or added to the current ones with append: true. */
  groups?: string[];
  append?: boolean;
  home?: string;
  shell?: string;
  system?: boolean;
  create_home?: boolean;
  state?: 'present' | 'absent';
  /** Change the uid of an existing user (files keep the old uid). */
  force?: boolean;
}

type Payload = { argv: string[] };

export const userModule: Module<UserArgs> = {
  name: 'user',
  schema: 'user',
  secretArgs: [],
  batchable: true,
  facts(a) {
    const q: FactQuery[] = [userInfo(a.name), groupInfo(a.group ?? a.name)];
    if (a.uid !== undefined) q.push(userByUid(a.uid));
    for (const g of a.groups ?? []) q.push(groupInfo(g));
    return q;
  },
  plan(a, state, ctx): PlannedChange[] {
    const cur = state.get<UserFact>(userKey(a.name)) ?? { exists: false };
    const resource = `user ${a.name}`;
    if (a.state === 'absent') {
      if (!cur.exists) return [];
      state.set(userKey(a.name), { exists: false });
      return [{ resource, action: 'delete', attrs: [{ name: 'uid', before: cur.uid }], payload: { argv: ['userdel', '--', a.name] } satisfies Payload }];
    }
    if (a.uid !== undefined && !(cur.exists && cur.uid === a.uid)) {
      const holder = state.get<{ name?: string }>(uidKey(a.uid));
      if (holder?.name && holder.name !== a.name) {
        throw new BerthError(`uid ${a.uid} is already used by user "${holder.name}" on ${ctx.host}`, { pos: ctx.pos, hint: 'choose another uid, or remove or renumber that user' });
      }
    }
    for (const g of [...(a.group ? [a.group] : []), ...(a.groups ?? [])]) {
      if (!state.get<GroupFact>(groupKey(g))?.exists) {
        throw new BerthError(`group "${g}" does not exist on ${ctx.host} and no earlier task creates it`, { pos: ctx.pos, hint: 'add a group task before this user' });
      }
    }
    const home = a.home ?? (cur.exists ? cur.home : `/home/${a.name}`);
    const shell = a.shell ?? (cur.exists ? cur.shell : '/bin/sh');
    const primary = a.group ?? (cur.exists ? cur.group : a.name);
    if (!cur.exists) {
      const ownGroupExists = state.get<GroupFact>(groupKey(primary))?.exists === true;
      const argv = ['useradd'];
      if (a.uid !== undefined) argv.push('-u', String(a.uid));
      if (a.group || ownGroupExists) argv.push('-g', primary);
      else argv.push('-U');
      if (a.groups?.length) argv.push('-G', a.groups.join(','));
      argv.push('-d', home, '-s', shell);
      argv.push(a.create_home === false ? '-M' : '-m');
      if (a.system) argv.push('-r');
      argv.push('--', a.name);
      const attrs: AttrChange[] = [];
      if (a.uid !== undefined) attrs.push({ name: 'uid', after: a.uid });
      attrs.push({ name: 'group', after: primary }, { name: 'home', after: home }, { name: 'shell', after: shell });
      if (a.groups?.length) attrs.push({ name: 'groups', after: a.groups.join(',') });
      state.set(userKey(a.name), { exists: true, name: a.name, uid: a.uid ?? -1, gid: -1, group: primary, groups: [...(a.groups ?? [])].sort(), home, shell });
      if (!ownGroupExists && !a.group) state.set(groupKey(primary), { exists: true, name: primary, gid: -1, members: [] });
      if (a.uid !== undefined) state.set(uidKey(a.uid), { name: a.name });
      if (a.create_home !== false && !state.get<{ exists: boolean }>(fileKey(home))?.exists) {
        state.set(fileKey(home), { exists: true, type: 'directory', mode: '0700', owner: a.name, group: primary, uid: a.uid ?? -1, gid: -1, size: 0 });
      }
      return [{ resource, action: 'create', attrs, payload: { argv } satisfies Payload }];
    }
    const attrs: AttrChange[] = [];
    const argv = ['usermod'];
    if (a.uid !== undefined && cur.uid !== a.uid) {
      if (!a.force) {
        throw new BerthError(`user "${a.name}" exists on ${ctx.host} with uid ${cur.uid}, the spec wants ${a.uid}`, {
          pos: ctx.pos,
          hint: `set force: true to renumber it with usermod (then chown its files), or remove the user first (userdel ${a.name})`,
        });
      }
      argv.push('-u', String(a.uid));
      attrs.push({ name: 'uid', before: cur.uid, after: a.uid });
    }
    if (a.group && cur.group !== a.group) {
      argv.push('-g', a.group);
      attrs.push({ name: 'group', before: cur.group, after: a.group });
    }
    if (a.groups) {
      const want = a.append ? [...new Set([...cur.groups, ...a.groups])].sort() : [...new Set(a.groups)].sort();
      if (want.join(',') !== cur.groups.join(',')) {
        argv.push('-G', want.join(','));
        attrs.push({ name: 'groups', before: cur.groups.join(','), after: want.join(',') });
      }
    }
    if (a.home && cur.home !== a.home) {
      argv.push('-d', a.home);
      attrs.push({ name: 'home', before: cur.home, after: a.home });
    }
    if (a.shell && cur.shell !== a.shell) {
      argv.push('-s', a.shell);
      attrs.push({ name: 'shell', before: cur.shell, after: a.shell });
    }
    if (!attrs.length) return [];
    argv.push('--', a.name);
    state.set(userKey(a.name), { ...cur, uid: a.uid ?? cur.uid, group: primary, home, shell, groups: a.groups ? [...new Set(a.append ? [...cur.groups, ...a.groups] : a.groups)].sort() : cur.groups });
    if (a.uid !== undefined) state.set(uidKey(a.uid), { name: a.name });
    return [{ resource, action: 'update', attrs, payload: { argv } satisfies Payload }];
  },
  async apply(change, ctx) {
    await run(ctx, change.resource, (change.payload as Payload).argv.map(shq).join(' '));
  },
};
