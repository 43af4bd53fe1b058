// Which controller store a spec's material goes to (see store.ts):
//
//   pki/**.key   the vault, as entries under `berth.pki` (private keys)
//   pki/**       files in inventories/<env>/pki/ (certificates: public)
//   anything else, or every item when the inventory has no vault: `.berth/`
//
// With a vault, a fresh clone with an age identity has the same CA and
// server certificate as the laptop that made them: commit vault.age and
// inventories/<env>/pki/ together. CI mode never makes material (a CI
// runner's copy would be lost with it); it says where to make it instead.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { atomicWrite, type Vault, type VaultPaths } from './vault.js';
import { controllerStore, type ControllerStore } from './store.js';
import { BerthError } from '../util/errors.js';
import { displayPath } from '../spec/yamlfile.js';

export interface SpecStoreOptions {
  root: string;
  /** The inventory directory (absolute). */
  inventoryDir: string;
  /** The inventory's vault, when it has one and the spec opened it. */
  vault?: Vault;
  paths?: VaultPaths;
  /** CI mode: refuse to make pki material. */
  ci: boolean;
}

const isPki = (name: string) => name.startsWith('pki/');
const isKey = (name: string) => name.endsWith('.key');

class SpecStore implements ControllerStore {
  private readonly files: ControllerStore;

  constructor(private readonly o: SpecStoreOptions) {
    this.files = controllerStore(o.root);
  }

  private vaultPath(name: string): string[] {
    return ['berth', ...name.split('/')];
  }

  private repoFile(name: string): string {
    return join(this.o.inventoryDir, name);
  }

  /** Where `name` goes: the vault, a file of the inventory, or `.berth/`. */
  private place(name: string): 'vault' | 'repo' | 'files' {
    if (!this.o.vault || !isPki(name)) return 'files';
    return isKey(name) ? 'vault' : 'repo';
  }

  where(name: string): string {
    const shown = (n: string) => displayPath(this.repoFile(n), this.o.root);
    if (name.endsWith('/') && this.place(name) !== 'files') return `${shown(name)}/ (keys in ${this.o.paths!.shownFile})`;
    switch (this.place(name)) {
      case 'vault':
        return `${this.o.paths!.shownFile} (${this.vaultPath(name).join('.')})`;
      case 'repo':
        return shown(name);
      default:
        return this.files.where(name);
    }
  }

  read(name: string): Buffer | undefined {
    switch (this.place(name)) {
      case 'vault': {
        const v = this.o.vault!.getAt(this.vaultPath(name));
        return v === undefined ? undefined : Buffer.from(v, 'utf8');
      }
      case 'repo': {
        const p = this.repoFile(name);
        return existsSync(p) ? readFileSync(p) : undefined;
      }
      default:
        return this.files.read(name);
    }
  }

  write(name: string, data: Buffer | string): void {
    if (this.o.ci && isPki(name)) {
      const commit = this.o.vault ? `${this.o.paths!.shownFile} and ${displayPath(join(this.o.inventoryDir, 'pki'), this.o.root)}/` : 'the material';
      const dir = name.slice(0, name.lastIndexOf('/') + 1);
      throw new BerthError(`CI mode never makes TLS material, and ${this.where(dir)} holds none that is current`, {
        hint: `run berth plan outside CI and commit ${commit}`,
      });
    }
    const text = typeof data === 'string' ? data : data.toString('utf8');
    switch (this.place(name)) {
      case 'vault':
        // saved with the run's other vault changes, before any host is contacted
        this.o.vault!.setAt(this.vaultPath(name), text);
        return;
      case 'repo': {
        const p = this.repoFile(name);
        mkdirSync(dirname(p), { recursive: true });
        atomicWrite(p, text, 0o644);
        return;
      }
      default:
        this.files.write(name, data);
    }
  }

  fileFor(name: string): string {
    return this.place(name) === 'repo' ? displayPath(this.repoFile(name), this.o.root) : this.files.fileFor(name);
  }

  locked<T>(fn: () => T): T {
    // one lock for both: two runs never make the same material at once (the
    // vault's save also refuses a file that changed since it was read)
    return this.files.locked(fn);
  }

  note(message: string): void {
    this.files.note(message);
  }

  drainNotes(): string[] {
    return this.files.drainNotes();
  }
}

/** The store of a spec: its vault and inventory for pki/ when it has a vault, `.berth/` otherwise. */
export function specStore(o: SpecStoreOptions): ControllerStore {
  return new SpecStore(o);
}
