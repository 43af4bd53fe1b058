import { BerthError } from '../util/errors.js';
import { Secret, isSecret } from '../secrets/secret.js';
import { fileKey, type FileFact } from '../facts/queries.js';
import { checkProvided, ensureServerCert, type SelfSignedSpec } from '../pki/material.js';
import { describeCert, parseCerts } from '../pki/x509.js';
import { withSelfSignedDefaults } from '../spec/tls.js';
import type { Module, PlannedChange } from '../types.js';
import { applyFile, fileFacts, planFile } from './file.js';
import type { Ownership } from './common.js';

export interface CertificateArgs {
  /** Where the certificate (PEM) goes on the host; mode 0644. */
  cert: string;
  /** Where its private key goes; mode 0600. */
  key: string;
  owner?: string;
  group?: string;
  /** The name clients use: the certificate's CN and first subjectAltName. */
  hostname: string;
  /** Made and renewed on the controller, signed by the CA berth keeps there (tls.selfsigned). */
  selfsigned?: Partial<SelfSignedSpec>;
  /** From the repository: `cert` a file path, `key` a secret (tls.provided). */
  provided?: { cert: string; key: string | Secret; renew_before?: number };
  /** provided: the CA the certificate must chain up to (tls.ca_cert). */
  ca_cert?: string;
}

interface Material {
  cert: string;
  key: Secret;
}

function describe(pem: string | Buffer | undefined): string | undefined {
  if (pem === undefined) return undefined;
  try {
    return describeCert(parseCerts(pem)[0]!);
  } catch {
    return '(not a certificate)';
  }
}

/**
 * A TLS server certificate and its key on the host. Selfsigned: made (and
 * renewed when due) on the controller before any host is contacted, signed
 * by the CA whose key never leaves the controller. Provided: the repository's
 * files, checked to belong together and to name `hostname`. Either way the
 * plan compares known contents: the key is a sensitive file (0600), and a
 * renewal shows as the certificate file's change, old and new described.
 */
export const certificateModule: Module<CertificateArgs> = {
  name: 'certificate',
  schema: 'certificate',
  check(a, ctx) {
    if ((a.selfsigned === undefined) === (a.provided === undefined)) {
      throw new BerthError('certificate needs exactly one of selfsigned or provided', { pos: ctx.pos });
    }
    if (a.provided && !isSecret(a.provided.key)) {
      throw new BerthError('provided.key must be a secret ({ secret_file: path } or { secret_env: NAME }), not text in the spec', { pos: ctx.pos });
    }
  },
  prepare(a, ctx): Material {
    if (a.selfsigned) {
      const m = ensureServerCert(ctx.store, withSelfSignedDefaults(a.selfsigned), a.hostname);
      return { cert: m.cert, key: m.key };
    }
    const p = a.provided!;
    const cert = ctx.readSourceFile(p.cert);
    const key = p.key as Secret;
    const r = checkProvided(cert, key.reveal(), { hostname: a.hostname, caPem: a.ca_cert ? ctx.readSourceFile(a.ca_cert) : undefined, renewBefore: p.renew_before ?? 30 });
    if (r.errors.length) throw new BerthError(`${p.cert}: ${r.errors.join('; ')}`, { pos: ctx.pos });
    return { cert: cert.toString('utf8'), key };
  },
  facts: (a) => [...fileFacts(a.cert, { owner: a.owner, group: a.group }), ...fileFacts(a.key, { owner: a.owner, group: a.group })],
  plan(a, state, ctx): PlannedChange[] {
    const m = ctx.prepared as Material;
    const own: Ownership = { owner: a.owner ?? 'root', group: a.group ?? 'root' };
    const cur = state.get<FileFact>(fileKey(a.cert));
    const before = cur?.exists && cur.type === 'file' && cur.content !== undefined ? describe(Buffer.from(cur.content, 'base64')) : undefined;
    const certChanges = planFile(a.cert, m.cert, { ...own, mode: '0644' }, state, ctx).map((c) => {
      if (!c.attrs.some((x) => x.name === 'content')) return c;
      // a PEM diff says nothing a reader can check: say what the certificate is, before and after
      const { diff: _d, ...rest } = c;
      return { ...rest, attrs: [...c.attrs, { name: 'certificate', before, after: describe(m.cert) }] };
    });
    return [...certChanges, ...planFile(a.key, m.key, { ...own, mode: '0600' }, state, ctx, { sensitive: true })];
  },
  apply: applyFile,
};
