import type { FactQuery, Transport } from '../types.js';
import { BerthError } from '../util/errors.js';
import { redact } from '../secrets/secret.js';
import type { SpecRevision } from '../git/spec-repo.js';

/** What every host keeps about the applies it received (no secrets: display values only). */
export interface StateRecord {
  format: 'berth-state/1';
  last: RunRecord;
  /** Earlier runs, newest first (at most HISTORY). */
  history: RunRecord[];
  /**
   * Handlers that a change of a failed apply notified but that never ran
   * (the apply stopped first). The next plan runs them, as if notified again.
   */
  pending_handlers?: PendingHandler[];
  /**
   * Values applied changes asked the host to keep (PlannedChange.remember),
   * by key: e.g. keyed hashes (HMAC) of the write-only secrets berth last
   * sent to Harbor, so a plan can tell whether the spec's secret changed.
   * Never a secret itself.
   */
  remembered?: Record<string, string>;
}

export interface PendingHandler {
  play: string;
  handler: string;
  /** When the apply that left it pending ran. */
  since: string;
}

export interface RunRecord {
  at: string;
  berth: string;
  spec: SpecRevision;
  inventory: string;
  playbook: string;
  /** incomplete: written before the first change; a run that ends replaces it (one that died does not). */
  status: 'ok' | 'failed' | 'incomplete';
  changes: { resource: string; action: string; task: string; status: 'done' | 'failed' | 'skipped' }[];
  error?: string;
}

const HISTORY = 20;
export const STATE_KEY = 'berth:state';

// root keeps its record in /var/lib/berth; a login without root in its own state dir
const STATE_DIR = 'if [ "$(id -u)" = 0 ]; then d=/var/lib/berth; else d="${XDG_STATE_HOME:-$HOME/.local/state}/berth"; fi';

/** Reads the host's state record along with the other facts (same round trip). */
export function stateRecordQuery(): FactQuery<StateRecord | undefined> {
  return {
    key: STATE_KEY,
    command: `${STATE_DIR}; cat "$d/state.json" 2>/dev/null || true`,
    parse(out) {
      if (!out.trim()) return undefined;
      try {
        const v = JSON.parse(out) as StateRecord;
        return v.format === 'berth-state/1' ? v : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

export function nextRecord(
  prev: StateRecord | undefined,
  run: RunRecord,
  pending: PendingHandler[] = [],
  remember: Record<string, string | null> = {},
): StateRecord {
  const history = prev ? [prev.last, ...prev.history].slice(0, HISTORY) : [];
  const remembered: Record<string, string> = { ...(prev?.remembered ?? {}) };
  for (const [k, v] of Object.entries(remember)) {
    if (v === null) delete remembered[k];
    else remembered[k] = v;
  }
  return {
    format: 'berth-state/1',
    last: run,
    history,
    ...(pending.length ? { pending_handlers: pending } : {}),
    ...(Object.keys(remembered).length ? { remembered: sortedObject(remembered) } : {}),
  };
}

function sortedObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

export const REMEMBERED_KEY = 'berth:remembered';

/**
 * The `remembered` part of the state record, as a fact a module can plan on
 * (and that is fingerprinted: a saved plan is refused when another apply
 * changed it since). Same round trip as every other host fact.
 */
export function rememberedQuery(): FactQuery<Record<string, string>> {
  return {
    key: REMEMBERED_KEY,
    command: `${STATE_DIR}; cat "$d/state.json" 2>/dev/null || true`,
    parse(out) {
      if (!out.trim()) return {};
      try {
        const v = JSON.parse(out) as Partial<StateRecord>;
        return v.format === 'berth-state/1' && v.remembered && typeof v.remembered === 'object' ? v.remembered : {};
      } catch {
        return {};
      }
    },
  };
}

/** Writes the record atomically, mode 0600, readable only by its owner. */
export async function writeStateRecord(t: Transport, become: boolean, rec: StateRecord): Promise<void> {
  const body = redact(JSON.stringify(rec, null, 2)) + '\n';
  const script = [
    'set -e',
    "trap '' PIPE",
    STATE_DIR,
    'mkdir -p -m 0700 "$d"',
    't=$(mktemp -p "$d" .state.json.XXXXXX)',
    'trap \'rm -f "$t"\' EXIT',
    'trap \'rm -f "$t"; exit 129\' HUP INT TERM',
    'cat > "$t"',
    'chmod 0600 "$t"',
    'mv -f "$t" "$d/state.json"',
    'trap - EXIT HUP INT TERM',
  ].join('\n');
  const r = await t.exec(script, { stdin: body, become });
  if (r.code !== 0) throw new BerthError(`could not write the state record: ${r.stderr.trim() || r.stdout.trim()}`, { host: t.host });
}
