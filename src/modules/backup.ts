// A host's file kept on the controller, and put back on a rebuilt host:
// Traefik's acme.json (ACME account and certificates), which must survive a
// disaster rebuild, else every rebuild re-issues certificates and runs into
// the CA's rate limits. The controller copy is read before any host is
// contacted, so both plans are exact: `backup` when the host's sha256
// differs from the copy's, `restore` when the host has no file and the
// controller has one. The content is never shown.

import { createHash } from 'node:crypto';
import { fileKey, fileStat, type FileFact } from '../facts/queries.js';
import { shq } from '../util/shell.js';
import { BerthError } from '../util/errors.js';
import { controllerStore } from '../secrets/store.js';
import type { Module, PlannedChange } from '../types.js';
import { run } from './common.js';
import { applyFile, fileFacts, ownershipOf, planFile } from './file.js';

export interface BackupArgs {
  path: string;
  /** The item in the controller store, e.g. acme/<hostname>/acme.json. */
  item: string;
}

export interface RestoreArgs extends BackupArgs {
  owner?: string;
  group?: string;
  mode?: string | number;
  /** When the controller has no copy: warn (default) in the plan, or say nothing. */
  missing?: 'warn' | 'ignore';
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface BackupPrepared {
  sha?: string;
  where: string;
}

interface BackupPayload {
  path: string;
  item: string;
}

export const backupModule: Module<BackupArgs> = {
  name: 'backup',
  schema: 'backup',
  prepare(a, ctx): BackupPrepared {
    const copy = ctx.store.read(a.item);
    return { sha: copy ? sha256(copy) : undefined, where: ctx.store.where(a.item) };
  },
  facts: (a) => [fileStat(a.path)],
  plan(a, state, ctx): PlannedChange[] {
    const p = ctx.prepared as BackupPrepared;
    const cur = state.get<FileFact>(fileKey(a.path));
    if (!cur?.exists) return [];
    if (cur.type !== 'file') throw new BerthError(`${a.path} on ${ctx.host} is a ${cur.type}, not a regular file`, { pos: ctx.pos });
    if (cur.sha256 === p.sha) return [];
    const payload: BackupPayload = { path: a.path, item: a.item };
    return [
      {
        resource: `backup ${a.path}`,
        action: p.sha ? 'update' : 'create',
        attrs: [
          { name: 'to', after: `${p.where} on the controller` },
          { name: 'content', before: p.sha ? '(sensitive)' : undefined, after: '(sensitive)' },
        ],
        sensitive: true,
        payload,
      },
    ];
  },
  async apply(change, ctx) {
    const p = change.payload as BackupPayload;
    const out = await run(ctx, change.resource, `set -e\nbase64 -w0 -- ${shq(p.path)}`);
    // written 0600, atomically, into the store on this machine
    controllerStore(ctx.root).write(p.item, Buffer.from(out.trim(), 'base64'));
  },
};

interface RestorePrepared {
  content?: Buffer;
  where: string;
}

export const restoreModule: Module<RestoreArgs> = {
  name: 'restore',
  schema: 'restore',
  check: (a) => void ownershipOf(a),
  prepare(a, ctx): RestorePrepared {
    return { content: ctx.store.read(a.item), where: ctx.store.where(a.item) };
  },
  facts: (a) => fileFacts(a.path, ownershipOf(a)),
  plan(a, state, ctx): PlannedChange[] {
    const p = ctx.prepared as RestorePrepared;
    const cur = state.get<FileFact>(fileKey(a.path));
    // the host's own file is newer than any copy: the backup task keeps the controller's up to date
    if (cur?.exists) return [];
    if (!p.content) {
      if ((a.missing ?? 'warn') === 'warn') ctx.warn?.(`${ctx.host}: nothing to restore to ${a.path}: the controller has no copy in ${p.where} (a first deployment; else the host starts without it)`);
      return [];
    }
    return planFile(a.path, p.content, ownershipOf(a), state, ctx, { sensitive: true }).map((c) => ({
      ...c,
      attrs: [{ name: 'from', after: `${p.where} on the controller` }, ...c.attrs],
      sensitive: true,
    }));
  },
  apply: applyFile,
};
