// The user and group queries against this machine's own accounts: every user
// and group as `getent`/`id` report them one by one.

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { gatherFacts } from '../../src/facts/batch.js';
import { gidKey, groupByGid, uidKey, userByUid, userInfo, userKey } from '../../src/facts/queries.js';
import { LocalTransport } from '../../src/transport/local.js';

const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

describe('user and group facts', () => {
  it('report every local user with its primary and supplementary groups, as id -gn and id -Gn do', async () => {
    const users = sh('getent passwd | cut -d: -f1,3').trim().split('\n').map((l) => l.split(':') as [string, string]);
    expect(users.length).toBeGreaterThan(3);
    const facts = await gatherFacts(new LocalTransport('h'), [...users.map(([u]) => userInfo(u)), userInfo('no-such-user-berth'), ...users.map(([, uid]) => userByUid(Number(uid))), userByUid(64999)]);
    for (const [u, uid] of users) {
      const primary = sh(`id -gn -- ${u} 2>/dev/null || true`).trim();
      const others = sh(`id -Gn -- ${u} 2>/dev/null || true`).trim().split(/\s+/).filter((g) => g && g !== primary).sort();
      expect({ u, fact: facts.get(userKey(u)) }).toMatchObject({ u, fact: { exists: true, name: u, uid: Number(uid), group: primary, groups: others } });
      const byUid = facts.get(uidKey(Number(uid))) as { name?: string };
      expect(byUid.name).toBe(sh(`getent passwd ${uid} | cut -d: -f1`).trim());
    }
    expect(facts.get(userKey('no-such-user-berth'))).toEqual({ exists: false });
    expect(facts.get(uidKey(64999))).toEqual({});
  });

  it('name the group of a gid, and nothing for a free one', async () => {
    const facts = await gatherFacts(new LocalTransport('h'), [groupByGid(0), groupByGid(64999)]);
    expect(facts.get(gidKey(0))).toEqual({ name: sh('getent group 0 | cut -d: -f1').trim() });
    expect(facts.get(gidKey(64999))).toEqual({});
  });
});
