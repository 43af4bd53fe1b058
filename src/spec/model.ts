import type { SourcePos } from '../types.js';
import type { MergedVars, VarLayer } from './vars.js';
import type { KeyPath, YamlFile } from './yamlfile.js';
import type { ControllerStore } from '../secrets/store.js';
import type { SpecSecrets } from './vault-refs.js';

export interface GroupSpec {
  name: string;
  parents: string[];
  children: string[];
  /** Hosts listed directly in this group. */
  hosts: string[];
  /** 0 for `all`, 1 for its children... (parents' vars lose to children's). */
  depth: number;
  layers: VarLayer[];
}

export interface HostSpec {
  name: string;
  /** Every group the host is in, `all` first, then by depth and name (the order their vars apply). */
  groups: string[];
  /** Inventory variable layers, lowest precedence first: group vars then host vars. */
  layers: VarLayer[];
  /** Those layers merged, with their source positions. */
  vars: MergedVars;
  pos: SourcePos;
}

export interface Inventory {
  dir: string;
  hosts: Map<string, HostSpec>;
  groups: Map<string, GroupSpec>;
}

/** A task or handler as written (arguments not yet templated). */
export interface TaskSpec {
  name: string;
  module: string;
  args: unknown;
  notify: string[];
  /** Handlers: extra names this handler answers to. */
  listen: string[];
  tags: string[];
  when?: string;
  loop?: unknown;
  /** Overrides the host's become for this task. */
  become?: boolean;
  file: YamlFile;
  /** Path of the task mapping inside `file`. */
  path: KeyPath;
  pos: SourcePos;
}

export interface RoleSpec {
  name: string;
  dir: string;
  defaults: VarLayer[];
  tasks: TaskSpec[];
  handlers: TaskSpec[];
  /** JSON Schema of the role's inputs (variables it reads), if the role ships one. */
  schema?: { value: object; pos: SourcePos };
}

export interface RoleRef {
  role: RoleSpec;
  params: VarLayer[];
  tags: string[];
  when?: string;
  pos: SourcePos;
}

export interface PlaySpec {
  name: string;
  hosts: string;
  /** Where `hosts:` was written. */
  hostsPos: SourcePos;
  roles: RoleRef[];
  tasks: TaskSpec[];
  handlers: TaskSpec[];
  vars: VarLayer[];
  tags: string[];
  become?: boolean;
  pos: SourcePos;
}

export interface Spec {
  root: string;
  inventory: Inventory;
  playbook: string;
  plays: PlaySpec[];
  extraVars: VarLayer[];
  /** The inventory's vault and how `{ vault: … }` values resolve (set by openSpecVault). */
  secrets?: SpecSecrets;
  /** Where controller-side material goes (set with the vault; `.berth/` when unset). */
  store?: ControllerStore;
}
