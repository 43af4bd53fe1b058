import { simpleGit, type SimpleGit } from 'simple-git';
import { BerthError } from '../util/errors.js';

export interface SpecRevision {
  /** HEAD commit of the spec repository, if it is one. */
  commit?: string;
  branch?: string;
  /** Uncommitted changes in the working tree. */
  dirty?: boolean;
}

function gitAt(root: string): SimpleGit {
  return simpleGit({ baseDir: root, timeout: { block: 10_000 } });
}

/** Which commit of the spec is being applied (recorded on every host). */
export async function specRevision(root: string): Promise<SpecRevision> {
  try {
    const git = gitAt(root);
    if (!(await git.checkIsRepo())) return {};
    const commit = (await git.revparse(['HEAD'])).trim();
    const status = await git.status();
    return { commit, branch: status.current ?? undefined, dirty: !status.isClean() };
  } catch {
    return {};
  }
}

export const DEFAULT_CI_BRANCH = 'main';

/**
 * CI mode's guard before an apply: the spec must be a git checkout with no
 * uncommitted change (untracked files count, unless git ignores them), and
 * its HEAD must be on `branch`: contained in origin/<branch> or in the local
 * <branch>. A detached HEAD (how CI checks out) is fine when it is on it.
 */
export async function checkCiRevision(root: string, branch: string): Promise<SpecRevision> {
  const refuse = (why: string, hint?: string) => new BerthError(`CI mode: refusing to apply: ${why}`, { hint });
  const git = gitAt(root);
  let isRepo = false;
  try {
    isRepo = await git.checkIsRepo();
  } catch {
    isRepo = false;
  }
  if (!isRepo) throw refuse('the spec is not a git checkout, so there is no commit to apply', 'run it in a clone of the spec repository');
  let commit: string;
  try {
    commit = (await git.revparse(['HEAD'])).trim();
  } catch {
    throw refuse('the spec repository has no commit yet');
  }
  const status = await git.status();
  if (!status.isClean()) {
    const files = status.files.map((f) => f.path);
    const shown = files.slice(0, 3).join(', ') + (files.length > 3 ? ` and ${files.length - 3} more` : '');
    throw refuse(`the spec has uncommitted changes (${shown})`, 'CI applies only what is committed; commit or remove them, and keep plan files outside the checkout or in .gitignore');
  }
  const refs = [`refs/remotes/origin/${branch}`, `refs/heads/${branch}`];
  const known = (await git.raw(['for-each-ref', '--format=%(refname)', ...refs])).split('\n').filter(Boolean);
  if (!known.length) throw refuse(`branch ${branch} is not in this clone`, `fetch it first: git fetch origin ${branch}`);
  const containing = (await git.raw(['for-each-ref', '--contains', commit, '--format=%(refname)', ...refs])).split('\n').filter(Boolean);
  if (!containing.length) {
    throw refuse(`commit ${commit.slice(0, 12)} is not on branch ${branch}`, `CI applies what was merged to ${branch}; another branch is set with --ci-branch or BERTH_CI_BRANCH`);
  }
  return { commit, branch: status.current ?? undefined, dirty: false };
}
