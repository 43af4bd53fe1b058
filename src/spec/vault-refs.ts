// Spec values that name vault entries:
//   { vault: harbor.admin_password }
//   { vault: oidc.client_secret, generate: { bytes: 20, encoding: base64 } }
// The vault is opened (decrypted once) before any host's program is built,
// and only when the spec names an entry. A missing entry with `generate` is
// made once, stored in the vault file before any host is contacted, and read
// back on every later run; in CI mode it is an error instead (see README).

import { existsSync } from 'node:fs';
import { Secret } from '../secrets/secret.js';
import { generateSecret, MAX_GENERATED_BYTES, SECRET_ENCODINGS, type GenerateSpec, type SecretEncoding } from '../secrets/generate.js';
import { ENTRY_HINT, Vault, isEntryName, vaultPaths, type Identities, type VaultPaths } from '../secrets/vault.js';
import { BerthError, isBerthError } from '../util/errors.js';
import type { SourcePos } from '../types.js';
import type { Spec } from './model.js';
import type { MergedVars } from './vars.js';
import type { KeyPath } from './yamlfile.js';

export interface GeneratedEntry {
  entry: string;
  bytes: number;
  encoding: SecretEncoding;
  pos?: SourcePos;
}

/** What resolving `{ vault: … }` values needs; on Spec.secrets once opened. */
export interface SpecSecrets {
  paths: VaultPaths;
  /** Opened when the spec names any vault entry. */
  vault?: Vault;
  /** CI mode: a missing generated entry is an error, never made. */
  ci: boolean;
  /** A dry run (validate): a missing generated entry is made for this run only, never stored. */
  dry?: boolean;
  /** Entries generated while building programs (not yet saved if vault.changed is non-empty). */
  generated: GeneratedEntry[];
}

/** True for `{ vault: … }` and `{ vault: …, generate: … }`; with any other key it is plain data. */
export function isVaultRef(v: unknown): v is { vault: unknown; generate?: unknown } {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Secret) return false;
  const keys = Object.keys(v);
  return keys.includes('vault') && keys.every((k) => k === 'vault' || k === 'generate');
}

function anyVaultRef(v: unknown, depth = 0): boolean {
  if (depth > 64 || v === null || typeof v !== 'object' || v instanceof Secret) return false;
  if (isVaultRef(v)) return true;
  return Object.values(v).some((x) => anyVaultRef(x, depth + 1));
}

function allLayers(spec: Spec) {
  return [
    ...[...spec.inventory.hosts.values()].flatMap((h) => h.layers),
    ...spec.plays.flatMap((p) => [...p.vars, ...p.roles.flatMap((r) => [...r.role.defaults, ...r.params])]),
    ...spec.extraVars,
  ];
}

/** Whether any variable layer of the spec names a vault entry. */
export function specNamesVault(spec: Spec): boolean {
  return allLayers(spec).some((l) => anyVaultRef(l.values));
}

/** Whether any variable layer sets `tls.mode: selfsigned` (its keys then live in the vault, if there is one). */
export function specWantsSelfSigned(spec: Spec): boolean {
  return allLayers(spec).some((l) => (l.values.tls as { mode?: unknown } | undefined)?.mode === 'selfsigned');
}

export interface OpenSpecVaultOptions {
  ci?: boolean;
  dry?: boolean;
  identities?: () => Identities;
  /** Open the vault even when no spec value names an entry (for controller-side material kept in it). */
  always?: boolean;
}

/** Opens the inventory's vault if the spec names an entry (or `always`); sets spec.secrets. */
export async function openSpecVault(spec: Spec, opts: OpenSpecVaultOptions = {}): Promise<SpecSecrets> {
  const paths = vaultPaths(spec.inventory.dir, spec.root);
  const secrets: SpecSecrets = { paths, ci: opts.ci === true, dry: opts.dry === true, generated: [] };
  // self-signed TLS keeps its keys in the vault when the inventory has one (vault.recipients)
  const pki = existsSync(paths.recipients) && specWantsSelfSigned(spec);
  if (opts.always || pki || specNamesVault(spec)) secrets.vault = await Vault.open(paths, { identities: opts.identities });
  spec.secrets = secrets;
  return secrets;
}

/**
 * Saves what was set in the vault while programs were built (generated
 * entries, and anything else set through spec.secrets.vault): one write,
 * re-encrypted to every recipient. Returns the generated entries.
 */
export async function saveVault(secrets: SpecSecrets | undefined): Promise<GeneratedEntry[]> {
  if (!secrets?.vault) return [];
  if (secrets.vault.changed.length) await secrets.vault.save();
  return secrets.generated;
}

export function generatedNote(g: GeneratedEntry, shownFile: string, saved: boolean): string {
  const how = `${g.bytes} random bytes, ${g.encoding}`;
  return saved
    ? `generated vault entry ${g.entry} (${how}) and stored it in ${shownFile}: commit that file`
    : `vault entry ${g.entry} is missing and would be generated (${how}); berth plan or berth vault generate stores it in ${shownFile}`;
}

function parseGenerate(g: unknown, here: KeyPath, vars: MergedVars): GenerateSpec {
  const at = (k?: string) => vars.locate(k ? [...here, 'generate', k] : [...here, 'generate']);
  const hint = `e.g. generate: { bytes: 20, encoding: base64 }; encodings: ${SECRET_ENCODINGS.join(', ')}`;
  if (g === null || typeof g !== 'object' || Array.isArray(g)) throw new BerthError('generate must be a mapping', { pos: at(), hint });
  const o = g as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'bytes' && k !== 'encoding') throw new BerthError(`generate: unknown key "${k}"`, { pos: at(k), hint });
  const bytes = o.bytes;
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 1 || bytes > MAX_GENERATED_BYTES) {
    throw new BerthError(`generate.bytes must be a whole number from 1 to ${MAX_GENERATED_BYTES}, got ${JSON.stringify(bytes ?? null)}`, { pos: at(bytes === undefined ? undefined : 'bytes'), hint });
  }
  const encoding = o.encoding ?? 'base64';
  if (!SECRET_ENCODINGS.includes(encoding as SecretEncoding)) {
    throw new BerthError(`generate.encoding must be one of ${SECRET_ENCODINGS.join(', ')}, got ${JSON.stringify(encoding)}`, { pos: at('encoding') });
  }
  return { bytes, encoding: encoding as SecretEncoding };
}

/** The Secret a `{ vault: … }` value stands for (generated and stored in memory if it may be). */
export function resolveVaultRef(ref: { vault: unknown; generate?: unknown }, here: KeyPath, vars: MergedVars, secrets: SpecSecrets | undefined): Secret {
  const pos = vars.locate(here);
  if (!isEntryName(ref.vault)) {
    throw new BerthError(`vault entry name ${JSON.stringify(ref.vault)} is not valid`, { pos: vars.locate([...here, 'vault']), hint: ENTRY_HINT });
  }
  const entry = ref.vault;
  const gen = ref.generate === undefined ? undefined : parseGenerate(ref.generate, here, vars);
  if (!secrets?.vault) throw new BerthError(`vault entry ${entry}: the vault was not opened`, { pos, hint: 'internal: call openSpecVault before building programs' });
  const { vault, paths } = secrets;
  let value: string | undefined;
  try {
    value = vault.get(entry);
  } catch (e) {
    if (isBerthError(e)) throw new BerthError(e.message, { pos, hint: e.hint });
    throw e;
  }
  if (value === undefined) {
    if (!gen) {
      throw new BerthError(
        vault.exists ? `vault entry ${entry} not found in ${paths.shownFile}` : `vault entry ${entry}: ${paths.shownFile} does not exist`,
        { pos, hint: vault.exists ? `add it with: berth vault edit -i ${paths.shownInventory}` : `create it with: berth vault init -i ${paths.shownInventory}` },
      );
    }
    if (secrets.ci) {
      throw new BerthError(`vault entry ${entry} is missing, and CI mode never generates secrets`, {
        pos,
        hint: `run berth vault generate -i ${paths.shownInventory} outside CI and commit ${paths.shownFile}`,
      });
    }
    let created = true;
    if (secrets.dry) value = generateSecret(gen);
    else ({ value, created } = vault.ensure(entry, () => generateSecret(gen)));
    if (created && !secrets.generated.some((g) => g.entry === entry)) secrets.generated.push({ entry, bytes: gen.bytes, encoding: gen.encoding, pos });
  }
  return new Secret(value);
}
