// The shapes that cross berth's module boundaries (see DESIGN in README):
//   Spec ──render──▶ Task ──facts──▶ FactQuery ──plan (pure)──▶ Change ──apply──▶ Transport
// Anything here may be serialised into a saved plan, so secrets only ever
// travel as `Secret` values (which serialise as "(sensitive)").

import type { Readable } from 'node:stream';
import type { Secret } from './secrets/secret.js';
import type { ControllerStore } from './secrets/store.js';

/** Where a value came from, for one-line errors: file:line:col. */
export interface SourcePos {
  file: string;
  line?: number;
  col?: number;
}

// ---------------------------------------------------------------- transport

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Bytes for the command's standard input (binary-safe); a stream is piped (large uploads). */
  stdin?: string | Buffer | Readable;
  /** Run as root (via `sudo -n` when the login user is not root). Default: the host's `berth_become`. */
  become?: boolean;
  /** Abort after this many milliseconds. */
  timeoutMs?: number;
}

/** A long-running command whose standard input stays open (used for the host lock). */
export interface Session {
  /** Lines the command printed so far are delivered here. */
  onLine(cb: (line: string) => void): void;
  /** Resolves with the exit code when the command ends. */
  done: Promise<number>;
  /** Closes stdin (the command sees EOF). */
  end(): void;
}

export interface TransportStats {
  connections: number;
  /** Commands sent (each is one round trip on an open connection). */
  roundTrips: number;
}

export interface Transport {
  readonly host: string;
  /** Runs a POSIX sh script on the host. Never throws for a non-zero exit: look at `code`. */
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a script and keeps it running until `end()`. */
  session(script: string, opts?: ExecOptions): Promise<Session>;
  close(): Promise<void>;
  readonly stats: TransportStats;
}

// ---------------------------------------------------------------- facts

/**
 * A fact is a shell command plus a pure parser. All of a host's queries go out
 * as one script (one round trip) and come back as one delimited stream.
 * `key` names the resource the fact describes (e.g. "file:/etc/hosts"); two
 * tasks that ask for the same key share one query.
 */
export interface FactQuery<T = unknown> {
  key: string;
  /** POSIX sh; its stdout (and exit code) go to `parse`. Run as root when the host uses become. */
  command: string;
  parse(stdout: string, code: number): T;
  /**
   * Optional: queries of one kind that a single command can answer together.
   * gatherFacts then runs one command for all queries that share `group.id`
   * (a few processes on the host instead of a few per query). The values must
   * be exactly what `command` and `parse` give for each query on its own.
   */
  group?: FactGroup<T>;
}

export interface FactGroup<T = unknown> {
  /** Queries with the same id are merged. */
  id: string;
  /** This query's argument (its path, name, ...). */
  arg: string;
  /** One command that answers every argument. */
  command(args: string[]): string;
  /** One value per argument, in the order of `args`. */
  parse(stdout: string, code: number, args: string[]): T[];
}

/**
 * A fact the controller reads itself instead of asking the host: an HTTP API
 * (Harbor's) rather than a shell command. Its queries run concurrently with
 * the host's single round trip, and their values are planned on and
 * fingerprinted like any other fact, so a saved plan is refused when they
 * drifted.
 */
export interface ControllerFactQuery<T = unknown> {
  key: string;
  /** Where the value comes from (e.g. an API endpoint): two queries for one key must name the same source. */
  source: string;
  fetch(ctx: ControllerFetchContext): Promise<T>;
}

export interface ControllerFetchContext {
  /** Runs `compute` once per gathering for `key` (a list read once serves every query that needs it). */
  memo<V>(key: string, compute: () => Promise<V>): Promise<V>;
  /** Counts what the gathering cost (HTTP requests, ...). */
  stats: { requests: number };
}

/** What a module may ask for: a host query (one round trip) or a controller query (concurrent with it). */
export type AnyFactQuery = FactQuery | ControllerFactQuery;

export function isControllerQuery(q: AnyFactQuery): q is ControllerFactQuery {
  return typeof (q as ControllerFactQuery).fetch === 'function';
}

export type Facts = Map<string, unknown>;

// ---------------------------------------------------------------- plan

export type Action = 'create' | 'update' | 'delete' | 'run';

/** One attribute's before/after, already safe to print. */
export interface AttrChange {
  name: string;
  before?: unknown;
  after?: unknown;
}

/**
 * One planned change. Everything but `payload` is display-safe and goes into
 * saved plans and `--json`; `payload` is what `apply` needs (it may hold
 * Secrets) and is never serialised.
 */
export interface Change {
  /** Stable within a plan: `<host>#<n>`. */
  id: string;
  host: string;
  play: string;
  role?: string;
  task: string;
  module: string;
  /** Human name of the managed thing: "file /etc/harbor/harbor.yml", "user harbor". */
  resource: string;
  action: Action;
  attrs: AttrChange[];
  /** Unified diff of file content, secrets masked. */
  diff?: string;
  /** True when the change involves secret values (their content is masked). */
  sensitive?: boolean;
  /** Handler names this change notifies. */
  notify?: string[];
  /** For handler changes: the changes (ids) that notified it. */
  notifiedBy?: string[];
  tags: string[];
  payload?: unknown;
}

// ---------------------------------------------------------------- modules

export interface ModuleContext {
  host: string;
  /** Absolute path of the spec repository root (templates/src are confined to it). */
  root: string;
  /** Directory of the role the task belongs to, if any. */
  roleDir?: string;
  /** Where the task was written, for errors. */
  pos: SourcePos;
  /** The user commands run as on the host ("root" with become). */
  runAs: string;
  /** Renders a template file (role templates/ first, then the spec root) with the task's variables. */
  renderTemplateFile(src: string): string | Secret;
  /** Reads a file (role files/ first, then the spec root), confined to the spec repository. */
  readSourceFile(src: string): Buffer;
  /** The absolute path of such a file, for modules that stream it (large uploads). */
  sourceFilePath(src: string): string;
  /** A warning shown with the plan (set by the planner; a no-op elsewhere). */
  warn?(message: string): void;
  /**
   * Where the value of an argument was written: for an argument templated
   * from one variable (`"{{ item.value.proxy }}"`), the variable's own line
   * in group_vars; otherwise the argument in the task. For errors a module
   * finds while planning.
   */
  locateArg?(path: (string | number)[]): SourcePos;
  /** What the module's `prepare` step returned for this task (controller-side material the plan compares with the host). */
  prepared?: unknown;
}

/** What a module's `prepare` step may use: the controller store (generated material, backups). */
export interface PrepareContext extends ModuleContext {
  store: ControllerStore;
}

export interface SimState {
  /** The value a fact query returned, or what an earlier planned change will make it. */
  get<T>(key: string): T | undefined;
  /** True when `key` was gathered (or set by an earlier planned change). */
  has(key: string): boolean;
  /** Records what a planned change will make `key` be (later tasks see it). */
  set(key: string, value: unknown): void;
  /** The value the fact query returned, ignoring planned changes (undefined when not gathered). */
  gathered<T>(key: string): T | undefined;
}

export interface ModuleApplyContext extends ModuleContext {
  transport: Transport;
  become: boolean;
}

export interface PlannedChange {
  resource: string;
  action: Action;
  attrs: AttrChange[];
  diff?: string;
  sensitive?: boolean;
  payload?: unknown;
}

/** What an apply step may hand back. */
export interface ApplyOutcome {
  /**
   * Display-safe values the host's state record keeps (null forgets a key);
   * the `remembered` fact (apply/record.ts) reads them back at the next plan.
   * For what cannot be read where it lives: a keyed hash of a write-only
   * secret berth sent to Harbor.
   */
  remember?: Record<string, string | null>;
}

export interface Module<A = Record<string, unknown>> {
  name: string;
  /** JSON Schema file name under schemas/modules/ (without .json). */
  schema: string;
  /**
   * The arguments that may hold a secret (file content, a command line...).
   * A secret anywhere else (a path, a user name) is refused before any host
   * is contacted: it would be shown in the plan, and the module expects a
   * string there. Undefined: not checked.
   */
  secretArgs?: readonly string[];
  /** Optional checks that need no host (templates render, source files exist); run before any host is contacted. */
  check?(args: A, ctx: ModuleContext): void;
  /**
   * Optional controller-side work, done once per task before any host is
   * contacted: generating missing material in the controller store, reading
   * a backup from it. Its result reaches `plan` and `apply` as `ctx.prepared`,
   * so the plan stays a pure function of what is known before the facts.
   */
  prepare?(args: A, ctx: PrepareContext): unknown;
  /** Fact queries the plan step will read (host queries go out in one round trip; controller queries run beside it). */
  facts(args: A, ctx: ModuleContext): AnyFactQuery[];
  /** Pure: from args and (simulated) state to changes; records its effect in `state`. */
  plan(args: A, state: SimState, ctx: ModuleContext): PlannedChange[];
  /** Carries out one planned change on the host. Throws BerthError on failure. */
  apply(change: PlannedChange, ctx: ModuleApplyContext): Promise<void | ApplyOutcome>;
  /**
   * apply() sends its commands only through modules/common.ts `run` (no
   * streamed input, no reading of their output): then consecutive changes go
   * to the host in one round trip (apply/batch.ts).
   */
  batchable?: boolean;
  /**
   * For a resource outside the hosts that tasks of several hosts may name
   * (dex's client in another repository): its identity, a digest of what this
   * task wants it to be (secrets hashed, never shown) and a display-safe
   * summary of that. Tasks with one identity must want the same, else each
   * apply would undo the other host's and no plan would ever be empty: berth
   * refuses that before any host is contacted (plan/shared.ts).
   */
  shared?(args: A, ctx: ModuleContext): SharedResource | undefined;
}

export interface SharedResource {
  /** What the resource is, as shown ("dex static client harbor in <repo> main:values.yaml"). */
  id: string;
  /** Equal for tasks that want the same (a hash where a secret is part of it). */
  wants: string;
  /** The wanted state, display-safe ("name …, redirectURIs …"). */
  show: string;
  /** How to give each host its own, for the refusal. */
  hint: string;
}

export type { Secret };
