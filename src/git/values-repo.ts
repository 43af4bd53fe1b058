// Another git repository berth edits (the cluster's Helm values, where dex's
// static clients live), through simple-git, from a cache on the controller:
// a bare repository per remote under $BERTH_CACHE_DIR/git/<hash of the URL>
// (default ~/.cache/berth, outside the spec checkout so that CI mode's
// clean-tree rule and the recorded "dirty" flag are not disturbed by it).
//
// No working tree: files are read with `git ls-tree`/`git cat-file` at a
// fetched commit, and a commit is made with plumbing (a temporary index,
// `commit-tree`) on exactly the commit the plan was made from, then pushed
// with --force-with-lease naming that commit: a branch that moved meanwhile
// is never overwritten, the push is rejected instead (see PushOutcome).

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { simpleGit, type SimpleGit, type SimpleGitOptions } from 'simple-git';
import { registerSecret, redact } from '../secrets/secret.js';
import { BerthError } from '../util/errors.js';

export interface RepoLocation {
  /** What git is given (a local path made absolute; credentials kept). */
  url: string;
  /** What berth shows: the URL without a password or token. */
  display: string;
}

/**
 * A repository as the spec names it: a URL (ssh://, https://, file://...),
 * scp-like `user@host:path`, or a local path (relative to the spec root).
 * Credentials in an https URL are registered as secrets and never shown.
 */
export function repoLocation(repo: string, root: string): RepoLocation {
  const r = repo.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r)) {
    try {
      const u = new URL(r);
      if (u.password) registerSecret(decodeURIComponent(u.password));
      const web = u.protocol === 'http:' || u.protocol === 'https:';
      // a token is often written as the user name of an https URL
      if (web && u.username && !u.password) registerSecret(decodeURIComponent(u.username));
      if (!u.username && !u.password) return { url: r, display: r };
      const shown = new URL(r);
      shown.password = '';
      if (web) shown.username = '';
      return { url: r, display: shown.toString().replace(/\/$/, r.endsWith('/') ? '/' : '') };
    } catch {
      return { url: r, display: r };
    }
  }
  // scp-like: a colon before the first slash
  if (/^[^/]*:/.test(r)) return { url: r, display: r };
  return { url: resolve(root, r), display: r };
}

/** Where berth keeps its caches on the controller. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BERTH_CACHE_DIR) return resolve(env.BERTH_CACHE_DIR);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'berth');
}

export function cacheDirFor(loc: RepoLocation, env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), 'git', createHash('sha256').update(loc.url).digest('hex').slice(0, 16));
}

// ---------------------------------------------------------------- git's environment

// simple-git refuses variables that make git run other programs unless told
// they are wanted: the ones the operator set themselves (an ssh command, an
// askpass helper, config files) are theirs and pass; an editor or a pager
// berth never needs is dropped. So are the variables that point git at
// another repository (berth run from a git hook has GIT_DIR set): every
// command here is about the cache.
const DROPPED = new Set([
  'editor',
  'git_editor',
  'git_sequence_editor',
  'pager',
  'git_pager',
  'git_external_diff',
  'git_dir',
  'git_work_tree',
  'git_index_file',
  'git_object_directory',
  'git_alternate_object_directories',
  'git_common_dir',
  'git_namespace',
  'git_prefix',
]);
const ALLOW: Record<string, keyof NonNullable<SimpleGitOptions['unsafe']>> = {
  git_ssh: 'allowUnsafeSshCommand',
  git_ssh_command: 'allowUnsafeSshCommand',
  git_askpass: 'allowUnsafeAskPass',
  ssh_askpass: 'allowUnsafeAskPass',
  git_config: 'allowUnsafeConfigPaths',
  git_config_global: 'allowUnsafeConfigPaths',
  git_config_system: 'allowUnsafeConfigPaths',
  git_exec_path: 'allowUnsafeConfigPaths',
  prefix: 'allowUnsafeConfigPaths',
  git_config_count: 'allowUnsafeConfigEnvCount',
  git_proxy_command: 'allowUnsafeGitProxy',
  git_template_dir: 'allowUnsafeTemplateDir',
};

function gitEnv(extra: Record<string, string> = {}): { env: Record<string, string>; unsafe: NonNullable<SimpleGitOptions['unsafe']> } {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !DROPPED.has(k.toLowerCase())) env[k] = v;
  // never wait for a password or a host-key question: there is no one to answer
  env.GIT_TERMINAL_PROMPT = '0';
  if (!env.GIT_SSH_COMMAND && !env.GIT_SSH) env.GIT_SSH_COMMAND = 'ssh -o BatchMode=yes';
  Object.assign(env, extra);
  const unsafe: NonNullable<SimpleGitOptions['unsafe']> = {};
  for (const k of Object.keys(env)) {
    const allow = ALLOW[k.toLowerCase()];
    if (allow) (unsafe as Record<string, boolean>)[allow] = true;
  }
  return { env, unsafe };
}

// ---------------------------------------------------------------- the cache

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier operation on the same cache directory (hosts of one run share it). */
function serialized<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(dir) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  queues.set(
    dir,
    next.catch(() => undefined),
  );
  return next;
}

export interface FileAt {
  kind: 'file';
  /** The blob's object id and git mode (100644, 100755). */
  blob: string;
  mode: string;
  text: string;
}

export type PathAt = FileAt | { kind: 'absent' } | { kind: 'not-a-file'; type: string };

export type PushOutcome = { ok: true } | { ok: false; rejected: string };

/** Counts what a gathering cost (remote calls: ls-remote, fetch). */
export interface RequestStats {
  requests: number;
}

const FETCH_TIMEOUT_MS = 120_000;

export class ValuesRepo {
  private constructor(
    readonly loc: RepoLocation,
    readonly dir: string,
  ) {}

  /** The cache of `loc`, made (a bare repository) when missing. */
  static async open(loc: RepoLocation): Promise<ValuesRepo> {
    const dir = cacheDirFor(loc);
    const repo = new ValuesRepo(loc, dir);
    await serialized(dir, async () => {
      if (existsSync(join(dir, 'HEAD'))) return;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      await repo.git().raw(['init', '--quiet', '--bare']);
      await repo.git().raw(['config', 'gc.auto', '0']);
    });
    return repo;
  }

  private git(extraEnv: Record<string, string> = {}, timeoutMs = 30_000): SimpleGit {
    const { env, unsafe } = gitEnv(extraEnv);
    return simpleGit({ baseDir: this.dir, timeout: { block: timeoutMs }, config: ['gc.auto=0', 'maintenance.auto=false'], unsafe }).env(env);
  }

  /** A git failure as one line, the URL shown without credentials. */
  private failure(what: string, e: unknown): BerthError {
    const raw = (e as Error)?.message ?? String(e);
    const lines = raw
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('hint:'));
    const detail = (lines.find((l) => /^(fatal|error|remote):/.test(l)) ?? lines[0] ?? 'no output').split(this.loc.url).join(this.loc.display);
    return new BerthError(redact(`${this.loc.display}: ${what} failed: ${detail}`), {
      hint: 'check oidc.dex_values.repo, and that this machine can reach it without a prompt (an ssh-agent, or GIT_SSH_COMMAND)',
      cause: e,
    });
  }

  /**
   * The commit each branch points at on the remote (null: no such branch),
   * fetched into the cache when it lacks it. A converged plan costs one
   * ls-remote.
   */
  async tips(branches: string[], stats?: RequestStats): Promise<Map<string, string | null>> {
    return serialized(this.dir, async () => {
      const refs = branches.map((b) => `refs/heads/${b}`);
      let listing: string;
      try {
        if (stats) stats.requests++;
        listing = await this.git({}, FETCH_TIMEOUT_MS).raw(['ls-remote', '--', this.loc.url, ...refs]);
      } catch (e) {
        throw this.failure('git ls-remote', e);
      }
      const remote = new Map<string, string>();
      for (const line of listing.split('\n')) {
        const [sha, ref] = line.split('\t');
        if (sha && ref) remote.set(ref.trim(), sha.trim());
      }
      const out = new Map<string, string | null>();
      const missing: string[] = [];
      for (const [i, b] of branches.entries()) {
        const sha = remote.get(refs[i]!);
        out.set(b, sha ?? null);
        if (sha && !(await this.hasCommit(sha))) missing.push(b);
        else if (sha) await this.git().raw(['update-ref', `refs/berth/heads/${b}`, sha]);
      }
      if (missing.length) {
        try {
          if (stats) stats.requests++;
          await this.git({}, FETCH_TIMEOUT_MS).raw(['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--', this.loc.url, ...missing.map((b) => `+refs/heads/${b}:refs/berth/heads/${b}`)]);
        } catch (e) {
          throw this.failure('git fetch', e);
        }
        // the branch may have moved between the two calls: what was fetched is the tip
        for (const b of missing) out.set(b, (await this.git().raw(['rev-parse', '--verify', `refs/berth/heads/${b}^{commit}`])).trim());
      }
      return out;
    });
  }

  private async hasCommit(sha: string): Promise<boolean> {
    try {
      await this.git().raw(['cat-file', '-e', `${sha}^{commit}`]);
      return true;
    } catch {
      return false;
    }
  }

  /** What `path` is at `commit`. The text is checked to round-trip to the same bytes (UTF-8). */
  async read(commit: string, path: string): Promise<PathAt> {
    const entry = (await this.git().raw(['ls-tree', '-z', commit, '--', path])).split('\0').find((e) => e.endsWith(`\t${path}`));
    if (!entry) return { kind: 'absent' };
    const [mode, type, blob] = entry.slice(0, entry.indexOf('\t')).split(' ');
    if (type !== 'blob' || !/^1006[0-7]{2}$/.test(mode ?? '')) return { kind: 'not-a-file', type: type === 'blob' ? 'symbolic link' : (type ?? '?') };
    const text = await this.git().raw(['cat-file', 'blob', blob!]);
    if (objectId(Buffer.from(text, 'utf8'), blob!.length) !== blob) {
      throw new BerthError(`${this.loc.display}: ${path} is not UTF-8 text`, { hint: 'berth edits YAML written in UTF-8' });
    }
    return { kind: 'file', blob: blob!, mode: mode!, text };
  }

  /** A new commit on `base` that changes only `path` (to `text`, keeping its mode). Nothing is pushed. */
  async commitFile(base: string, path: string, mode: string, text: string, message: string[]): Promise<string> {
    const tmp = join(this.dir, `berth-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      // the content holds the client secret: 0600, in the 0700 cache, removed at once
      writeFileSync(`${tmp}.blob`, text, { mode: 0o600 });
      const blob = (await this.git().raw(['hash-object', '-w', '--no-filters', '--', `${tmp}.blob`])).trim();
      const idx = this.git({ GIT_INDEX_FILE: `${tmp}.index` });
      await idx.raw(['read-tree', base]);
      await idx.raw(['update-index', '--add', '--cacheinfo', `${mode},${blob},${path}`]);
      const tree = (await idx.raw(['write-tree'])).trim();
      const id = await this.identity();
      const args = ['commit-tree', tree, '-p', base, ...message.flatMap((m) => ['-m', redact(m)])];
      return (await this.git(id).raw(args)).trim();
    } catch (e) {
      if (e instanceof BerthError) throw e;
      throw this.failure('making the commit', e);
    } finally {
      rmSync(`${tmp}.blob`, { force: true });
      rmSync(`${tmp}.index`, { force: true });
    }
  }

  /** The operator's git identity, else "berth <berth@localhost>" (GIT_AUTHOR_* and GIT_COMMITTER_* win). */
  private async identity(): Promise<Record<string, string>> {
    const get = async (key: string) => {
      try {
        return (await this.git().raw(['config', '--get', key])).trim();
      } catch {
        return '';
      }
    };
    const name = (await get('user.name')) || 'berth';
    const email = (await get('user.email')) || 'berth@localhost';
    const out: Record<string, string> = {};
    if (!process.env.GIT_AUTHOR_NAME) out.GIT_AUTHOR_NAME = name;
    if (!process.env.GIT_AUTHOR_EMAIL) out.GIT_AUTHOR_EMAIL = email;
    if (!process.env.GIT_COMMITTER_NAME) out.GIT_COMMITTER_NAME = name;
    if (!process.env.GIT_COMMITTER_EMAIL) out.GIT_COMMITTER_EMAIL = email;
    return out;
  }

  /**
   * Pushes `commit` to `branch` only if the remote branch is still at
   * `expected` (null: it must not exist yet). A branch that moved is a
   * rejection (`ok: false`), not an error: seen before the push (stale info,
   * non-fast-forward) or lost by the remote's own check while pushing
   * (failed to update ref). A remote that refuses the push for another
   * reason (a protected branch, a hook) is an error.
   */
  async push(commit: string, branch: string, expected: string | null): Promise<PushOutcome> {
    return serialized(this.dir, async () => {
      try {
        await this.git({}, FETCH_TIMEOUT_MS).raw(['push', '--porcelain', `--force-with-lease=refs/heads/${branch}:${expected ?? ''}`, '--', this.loc.url, `${commit}:refs/heads/${branch}`]);
        return { ok: true };
      } catch (e) {
        const msg = (e as Error)?.message ?? '';
        const rejected = /^!\t[^\t]*\t\[rejected\] \(([^)]*)\)/m.exec(msg);
        if (rejected) return { ok: false, rejected: rejected[1]! };
        const refused = /\[remote rejected\] \(([^)]*)\)/.exec(msg);
        // the remote's own compare-and-swap lost: the branch moved after git read it (a push in between)
        if (refused && /failed to update ref|cannot lock ref|failed to lock|incorrect old value/i.test(refused[1]!)) return { ok: false, rejected: refused[1]! };
        if (refused) throw new BerthError(`${this.loc.display}: the push to ${branch} was refused by the remote (${refused[1]})`, { hint: 'a protected branch takes its changes through a review branch: set oidc.dex_values.review_branch' });
        throw this.failure(`git push to ${branch}`, e);
      }
    });
  }
}

/** git's object id of a blob (sha1, or sha256 in a repository that uses it). */
function objectId(content: Buffer, hexLength: number): string {
  return createHash(hexLength === 64 ? 'sha256' : 'sha1')
    .update(`blob ${content.length}\0`)
    .update(content)
    .digest('hex');
}
