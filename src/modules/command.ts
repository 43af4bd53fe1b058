import { fileKey, fileStat, guardKey, guardResult, type FileFact } from '../facts/queries.js';
import { Secret, display, reveal } from '../secrets/secret.js';
import { shq } from '../util/shell.js';
import { BerthError } from '../util/errors.js';
import type { FactQuery, Module, PlannedChange } from '../types.js';
import { run } from './common.js';

export interface CommandArgs {
  /** A shell command line (sh -c). */
  cmd?: string | Secret;
  /** Or an argument vector, run without a shell. */
  argv?: (string | Secret)[];
  /** Skip when this path exists (also when an earlier task of this plan creates it). */
  creates?: string;
  /** Skip unless this path exists. */
  removes?: string;
  /** Skip when this read-only check exits 0 (checked when facts are gathered). */
  unless?: string;
  /** Skip unless this read-only check exits 0. */
  onlyif?: string;
  chdir?: string;
  /** Run as this user (via runuser) instead of root. */
  user?: string;
  env?: Record<string, string | Secret>;
}

/** `input`: the script itself, when it holds a secret (it is then sent on stdin, see wrap). */
type Payload = { script: string; input?: Secret };

function commandLine(a: CommandArgs): string | Secret {
  const parts: (string | Secret)[] = a.argv ? a.argv.map((x) => (x instanceof Secret ? new Secret(shq(x.reveal()), x.display) : shq(x))) : [a.cmd!];
  const join = (f: (x: string | Secret) => string) => parts.map(f).join(' ');
  const real = join(reveal);
  const shown = join(display);
  return real === shown ? real : new Secret(real, shown);
}

/**
 * The script to run. A command line on the host is readable by every local
 * user (ps, /proc/<pid>/cmdline) while it runs, so a script that holds a
 * secret is not put on one: the host runs `eval "$(cat)"` and the script
 * arrives on stdin (shell builtins such as printf and echo then keep the
 * secret inside the shell; an external program given it as an argument
 * shows it, so pass secrets to those through env: instead).
 */
function wrap(a: CommandArgs, line: string | Secret): Payload {
  const build = (l: string, envShow: (v: string | Secret) => string) => {
    let s = l;
    const env = Object.entries(a.env ?? {}).map(([k, v]) => `export ${k}=${shq(envShow(v))}`);
    if (env.length) s = `${env.join('\n')}\n${s}`;
    if (a.chdir) s = `cd ${shq(a.chdir)} || exit 1\n${s}`;
    return s;
  };
  const asUser = (s: string) => (a.user ? `exec runuser -u ${shq(a.user)} -- sh -c ${shq(s)}` : s);
  const real = build(reveal(line), reveal);
  const shown = build(display(line), display);
  if (real === shown) return { script: asUser(real) };
  return { script: asUser('eval "$(cat)"'), input: new Secret(real, shown) };
}

export const commandModule: Module<CommandArgs> = {
  name: 'command',
  schema: 'command',
  secretArgs: ['cmd', 'argv', 'env'],
  batchable: true,
  facts(a) {
    const q: FactQuery[] = [];
    if (a.creates) q.push(fileStat(a.creates));
    if (a.removes) q.push(fileStat(a.removes));
    if (a.unless) q.push(guardResult(a.unless));
    if (a.onlyif) q.push(guardResult(a.onlyif));
    return q;
  },
  plan(a, state, ctx): PlannedChange[] {
    if ((a.cmd === undefined) === (a.argv === undefined)) {
      throw new BerthError('command needs exactly one of cmd or argv', { pos: ctx.pos });
    }
    if (a.creates && state.get<FileFact>(fileKey(a.creates))?.exists) return [];
    if (a.removes && !state.get<FileFact>(fileKey(a.removes))?.exists) return [];
    if (a.unless && state.get<{ code: number }>(guardKey(a.unless))?.code === 0) return [];
    if (a.onlyif && state.get<{ code: number }>(guardKey(a.onlyif))?.code !== 0) return [];
    const line = commandLine(a);
    if (a.creates) state.set(fileKey(a.creates), { exists: true, type: 'file', mode: '0644', owner: ctx.runAs, group: ctx.runAs, uid: -1, gid: -1, size: 0 });
    if (a.removes) state.set(fileKey(a.removes), { exists: false });
    const attrs = [{ name: 'cmd', after: display(line) }];
    if (a.user) attrs.push({ name: 'user', after: a.user });
    if (a.chdir) attrs.push({ name: 'chdir', after: a.chdir });
    return [{ resource: `command ${truncate(display(line))}`, action: 'run', attrs, sensitive: line instanceof Secret || undefined, payload: wrap(a, line) satisfies Payload }];
  },
  async apply(change, ctx) {
    const p = change.payload as Payload;
    await run(ctx, change.resource, p.script, p.input?.reveal());
  },
};

function truncate(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > 60 ? one.slice(0, 57) + '...' : one;
}
