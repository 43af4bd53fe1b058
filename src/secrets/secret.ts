import { inspect } from 'node:util';

export const SENSITIVE = '(sensitive)';

/**
 * A value that renders into files and commands but prints as "(sensitive)"
 * everywhere else: plans, --json, saved plans, logs and error messages.
 *
 * `display` is what may be shown instead of the value. For a plain secret it
 * is "(sensitive)"; for a template rendered with secrets in it, it is the same
 * text with every secret replaced by "(sensitive)", so a diff can still show
 * the lines around it.
 */
export class Secret {
  readonly #value: string;
  readonly display: string;

  constructor(value: string, display: string = SENSITIVE) {
    this.#value = value;
    this.display = display;
    // A value derived from secrets (a rendered template, a quoted command) is
    // mostly ordinary text around them; its secrets are registered already, and
    // registering the whole text would scrub ordinary lines from every output.
    if (display === SENSITIVE) registerSecret(value);
  }

  /** The real value, for writing to a host. Never print it. */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return this.display;
  }

  toJSON(): string {
    return this.display;
  }

  [inspect.custom](): string {
    return this.display === SENSITIVE ? `Secret(${SENSITIVE})` : `Secret(${JSON.stringify(this.display)})`;
  }
}

export function isSecret(v: unknown): v is Secret {
  return v instanceof Secret;
}

/** The real value of a string or Secret. */
export function reveal(v: string | Secret): string {
  return v instanceof Secret ? v.reveal() : v;
}

/** What may be printed for a string or Secret. */
export function display(v: string | Secret): string {
  return v instanceof Secret ? v.display : v;
}

// Every secret value seen in this process, so that any text leaving berth can
// be scrubbed as a last line of defence (see redact()).
const known = new Set<string>();
/** Shorter values would scrub ordinary words; they are still never printed by design. */
const MIN_REDACT_LENGTH = 4;

export function registerSecret(value: string): void {
  if (value.length >= MIN_REDACT_LENGTH) known.add(value);
  // multi-line secrets (keys) are also scrubbed line by line
  if (value.includes('\n')) {
    for (const line of value.split('\n')) if (line.trim().length >= 8) known.add(line.trim());
  }
}

/** Replaces every known secret value in `text` with "(sensitive)". */
export function redact(text: string): string {
  if (known.size === 0 || text.length === 0) return text;
  let out = text;
  // longest first, so a secret containing another is replaced whole
  for (const s of [...known].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.split(s).join(SENSITIVE);
  }
  return out;
}

/** Deep-maps a value, replacing Secrets by fn(secret). Plain objects and arrays only. */
export function mapSecrets(v: unknown, fn: (s: Secret) => unknown): unknown {
  if (v instanceof Secret) return fn(v);
  if (Array.isArray(v)) return v.map((x) => mapSecrets(x, fn));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = mapSecrets(x, fn);
    return out;
  }
  return v;
}

/** True when a value contains a Secret anywhere. */
export function containsSecret(v: unknown): boolean {
  if (v instanceof Secret) return true;
  if (Array.isArray(v)) return v.some(containsSecret);
  if (v !== null && typeof v === 'object') return Object.values(v).some(containsSecret);
  return false;
}
