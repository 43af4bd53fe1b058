// The controller-side store: material berth makes or keeps on the machine it
// runs on, never on a host unless a task puts it there — the self-signed CA
// and server certificates (pki/), ACME state backed up from the cache VM
// (acme/). Callers only see the ControllerStore interface; where an item
// lives depends on the spec (see specStore):
//   - an inventory with a vault (vault.recipients): the private keys of pki/
//     are vault entries (berth.pki.…, encrypted, committed with vault.age),
//     their certificates public files in inventories/<env>/pki/ (committed
//     too), so any clone with an identity has the same CA and certificates;
//   - otherwise, and always for acme/: the directory `.berth/` under the
//     spec root (mode 0700, files 0600, ignored by git through its own
//     .gitignore).

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { BerthError } from '../util/errors.js';

export interface ControllerStore {
  /** Where an item (or, for a name ending in "/", a directory of items) is kept, as shown to the user. */
  where(name: string): string;
  /** An item's bytes, or undefined when the store has none. */
  read(name: string): Buffer | undefined;
  /** Writes an item atomically (temporary file + rename), readable by the controller's user only. */
  write(name: string, data: Buffer | string): void;
  /**
   * The item as a file, relative to the spec root, for variables that name a
   * file (tls.ca_cert). Only for public items such as a CA certificate.
   */
  fileFor(name: string): string;
  /** Runs `fn` holding the store's lock, so two berth runs never generate the same material at once. */
  locked<T>(fn: () => T): T;
  /** Records something the store did that the user should hear about ("generated …"). */
  note(message: string): void;
  /** The notes recorded since the last call. */
  drainNotes(): string[];
}

/** `a/b-c/d.pem`: lower-case segments, no `..`, no absolute paths. */
const NAME = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;

export const STORE_DIR = '.berth';
const LOCK_WAIT_MS = 60_000;
/** A lock older than this is left over from a run that died. */
const STALE_LOCK_MS = 10 * 60_000;

class FileStore implements ControllerStore {
  private readonly dir: string;
  private notes: string[] = [];

  constructor(private readonly root: string) {
    this.dir = join(root, STORE_DIR);
  }

  where(name: string): string {
    return `${STORE_DIR}/${name}`;
  }

  private path(name: string): string {
    if (!NAME.test(name) || name.split('/').some((s) => s === '.' || s === '..')) throw new Error(`internal: bad store item name ${JSON.stringify(name)}`);
    return join(this.dir, name);
  }

  private ensureDir(d: string): void {
    if (!existsSync(this.dir)) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      // ignored by git whether or not the spec's own .gitignore names it
      writeFileSync(join(this.dir, '.gitignore'), '# berth keeps generated keys and backups here: never commit them\n*\n', { mode: 0o600 });
    }
    mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  read(name: string): Buffer | undefined {
    const p = this.path(name);
    try {
      return readFileSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new BerthError(`cannot read ${relative(this.root, p)}: ${(e as Error).message}`);
    }
  }

  write(name: string, data: Buffer | string): void {
    const p = this.path(name);
    this.ensureDir(dirname(p));
    const tmp = join(dirname(p), `.${name.split('/').pop()}.${process.pid}.tmp`);
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, p);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new BerthError(`cannot write ${relative(this.root, p)}: ${(e as Error).message}`);
    }
  }

  fileFor(name: string): string {
    return relative(this.root, this.path(name));
  }

  locked<T>(fn: () => T): T {
    this.ensureDir(this.dir);
    const lock = join(this.dir, '.lock');
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx', 0o600));
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let age = 0;
        try {
          age = Date.now() - statSync(lock).mtimeMs;
        } catch {
          continue;
        }
        if (age > STALE_LOCK_MS) {
          rmSync(lock, { force: true });
          continue;
        }
        if (Date.now() > deadline) {
          throw new BerthError(`${STORE_DIR}/.lock is held by another berth run`, { hint: `wait for it to finish, or remove ${join(this.dir, '.lock')} if no berth is running` });
        }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }

  note(message: string): void {
    this.notes.push(message);
  }

  drainNotes(): string[] {
    // the same note can come from every host that shares the material
    const out = [...new Set(this.notes)];
    this.notes = [];
    return out;
  }
}

const stores = new Map<string, ControllerStore>();

/** The controller store of the spec repository at `root`. */
export function controllerStore(root: string): ControllerStore {
  const r = resolve(root);
  let s = stores.get(r);
  if (!s) {
    s = new FileStore(r);
    stores.set(r, s);
  }
  return s;
}
