export interface SpecRevision {
  /** HEAD commit of the spec repository, if it is one. */
  commit?: string;
  branch?: string;
  /** Uncommitted changes in the working tree. */
  dirty?: boolean;
}

/** Which commit of the spec is being applied (recorded on every host). */
export async function specRevision(root: string): Promise<SpecRevision> {
  try {
    // loaded here, not at startup: only this asks git anything
    const { simpleGit } = await import('simple-git');
    const git = simpleGit({ baseDir: root, timeout: { block: 10_000 } });
    if (!(await git.checkIsRepo())) return {};
    const commit = (await git.revparse(['HEAD'])).trim();
    const status = await git.status();
    return { commit, branch: status.current ?? undefined, dirty: !status.isClean() };
  } catch {
    return {};
  }
}
