// The `tls` variable, resolved like secrets are: when a host's variables are
// put together, before any host is contacted. It is checked against
// schemas/tls.json, berth's defaults are filled in, and:
//
//   selfsigned  the CA is made in the controller store if there is none (or
//               it is due), and tls.ca_cert points at its certificate there,
//               so node_trust and the node mirrors read the CA from the one
//               variable they already know;
//   provided    the certificate and key are checked (they match, cover
//               harbor.hostname, chain up to tls.ca_cert, have not expired).

import { readFileSync } from 'node:fs';
import { isSecret, mapSecrets, type Secret } from '../secrets/secret.js';
import type { ControllerStore } from '../secrets/store.js';
import { checkProvided, ensureCa, type SelfSignedSpec } from '../pki/material.js';
import { BerthError } from '../util/errors.js';
import { schemaValidator, validateOrThrow } from './schemas.js';
import { findSource } from './source.js';
import type { MergedVars } from './vars.js';
import type { KeyPath } from './yamlfile.js';
import type { SourcePos } from '../types.js';

export interface ProvidedSpec {
  cert: string;
  key: Secret;
  renew_before: number;
}

export interface TlsVars {
  mode: 'acme' | 'selfsigned' | 'provided' | 'none';
  ca_cert?: string;
  selfsigned?: SelfSignedSpec;
  provided?: ProvidedSpec;
  [k: string]: unknown;
}

export const SELFSIGNED_DEFAULTS: SelfSignedSpec = {
  ca: { name: 'berth CA', key_type: 'rsa-4096', days: 3650 },
  key_type: 'ecdsa-p256',
  days: 825,
  renew_before: 30,
  extra_names: [],
  ips: [],
};

/** tls.selfsigned with berth's defaults for what it leaves out. */
export function withSelfSignedDefaults(s: Partial<SelfSignedSpec> | undefined): SelfSignedSpec {
  const d = structuredClone(SELFSIGNED_DEFAULTS);
  return { ...d, ...(s ?? {}), ca: { ...d.ca, ...(s?.ca ?? {}) } };
}

/** Checks `tls` in `vars` (in place: defaults filled, tls.ca_cert set in selfsigned mode). */
export function resolveTls(vars: MergedVars, root: string, store: ControllerStore): void {
  const raw = vars.values.tls;
  if (raw === undefined) return;
  const at = (p: KeyPath) => vars.locate(['tls', ...p]);
  validateOrThrow(
    schemaValidator('tls.json'),
    mapSecrets(raw, (s) => s.display),
    { locate: (p) => vars.locate(p), locateKey: (p) => vars.locate(p, true) },
    { basePath: ['tls'], what: 'tls' },
  );
  const tls = raw as TlsVars;
  if (tls.mode === 'selfsigned') {
    const s = withSelfSignedDefaults(tls.selfsigned);
    tls.selfsigned = s;
    if (s.days <= s.renew_before) {
      throw new BerthError(`renew_before (${s.renew_before}) must be less than days (${s.days})`, {
        pos: at(['selfsigned', 'renew_before']) ?? at(['selfsigned', 'days']) ?? at([]),
        keyPath: 'tls.selfsigned.renew_before',
        hint: 'else every new server certificate would be due for renewal at once',
      });
    }
    if (tls.ca_cert !== undefined) {
      throw new BerthError('in selfsigned mode berth makes the CA and sets tls.ca_cert itself', {
        pos: at(['ca_cert']),
        keyPath: 'tls.ca_cert',
        hint: `remove it: the nodes will trust the CA berth keeps in ${store.where('pki/')}`,
      });
    }
    const ca = withPos(() => ensureCa(store, s.ca, s.renew_before), at(['mode']) ?? at([]));
    tls.ca_cert = store.fileFor(ca.certItem);
  } else if (tls.mode === 'provided') {
    const p = tls.provided!;
    p.renew_before ??= 30;
    if (!isSecret(p.key)) {
      throw new BerthError('the private key must be a secret, not text in the spec', {
        pos: at(['provided', 'key']),
        keyPath: 'tls.provided.key',
        hint: 'e.g. key: { secret_file: secrets/harbor.key } (kept out of git)',
      });
    }
    const certPos = at(['provided', 'cert']) ?? at([]) ?? { file: 'tls' };
    const cert = readFileSync(findSource(root, undefined, 'files', p.cert, certPos));
    const caPem = tls.ca_cert ? readFileSync(findSource(root, undefined, 'files', tls.ca_cert, at(['ca_cert']) ?? certPos)) : undefined;
    const hostname = (vars.values.harbor as { hostname?: unknown } | undefined)?.hostname;
    const r = checkProvided(cert, p.key.reveal(), { hostname: typeof hostname === 'string' ? hostname : undefined, caPem, renewBefore: p.renew_before });
    if (r.errors.length) {
      throw new BerthError(`${p.cert}: ${r.errors.join('; ')}`, { pos: certPos, keyPath: 'tls.provided.cert', hint: 'provide a certificate and key that belong together and name harbor.hostname' });
    }
    for (const w of r.warnings) store.note(`warning: ${w}`);
  }
}

/** Runs `fn`, giving a BerthError without a position (the store's CI-mode refusal) the position of `pos`. */
export function withPos<T>(fn: () => T, pos: SourcePos | undefined): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof BerthError && !e.pos && pos) throw new BerthError(e.message, { pos, hint: e.hint, keyPath: e.keyPath });
    throw e;
  }
}
