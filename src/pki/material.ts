// The TLS material berth keeps on the controller, and the decision when to
// make it anew. Runs before any host is contacted, so the plan then only
// has to compare known file contents with the hosts' files:
//
//   - a self-signed CA (pki/<ca>/ca.key never leaves the controller; ca.crt
//     is what the nodes trust, through tls.ca_cert);
//   - a server certificate per hostname, signed by that CA, renewed when it
//     expires within renew_before days or no longer matches the spec (names,
//     key type, CA);
//   - checks of a provided certificate and key.

import type { X509Certificate } from 'node:crypto';
import { Secret } from '../secrets/secret.js';
import type { ControllerStore } from '../secrets/store.js';
import { BerthError } from '../util/errors.js';
import { caCertificate, generateKey, serverCertificate } from './openssl.js';
import {
  canonicalSans,
  commonName,
  daysLeft,
  isoDay,
  issuedBy,
  keyMatches,
  keyTypeOf,
  notAfter,
  parseCerts,
  parseKey,
  sameSans,
  sansChange,
  sansOf,
  type KeyType,
} from './x509.js';

export interface CaSpec {
  /** The CA's subject CN; also names its directory in the store. */
  name: string;
  key_type: KeyType;
  days: number;
}

/** tls.selfsigned, with berth's defaults filled in. */
export interface SelfSignedSpec {
  ca: CaSpec;
  key_type: KeyType;
  days: number;
  renew_before: number;
  extra_names: string[];
  ips: string[];
}

export interface CaMaterial {
  name: string;
  cert: string;
  key: Secret;
  /** The store item of the certificate (public). */
  certItem: string;
  dir: string;
}

export interface ServerMaterial {
  cert: string;
  key: Secret;
  ca: CaMaterial;
}

/** "Harbor Cache CA" → "harbor-cache-ca": the CA's directory in the store. */
export function caSlug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'ca';
}

function parseOne(pem: Buffer | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return parseCerts(pem)[0];
  } catch {
    return undefined;
  }
}

function expiryProblem(c: X509Certificate, renewBefore: number, now: Date): string | undefined {
  const left = daysLeft(c, now);
  if (left <= 0) return `it expired on ${isoDay(notAfter(c))}`;
  if (left <= renewBefore) return `it expires on ${isoDay(notAfter(c))}, within renew_before (${renewBefore} days)`;
  return undefined;
}

/** A stored certificate and key, parsed, or why they cannot be used. */
function storedPair(certPem: Buffer, keyPem: Buffer): { c: X509Certificate; key: ReturnType<typeof parseKey> } | string {
  const c = parseOne(certPem);
  if (!c) return 'the stored certificate does not parse';
  try {
    return { c, key: parseKey(keyPem.toString('utf8')) };
  } catch {
    return 'the stored key does not parse';
  }
}

function caProblem(certPem: Buffer | undefined, keyPem: Buffer | undefined, spec: CaSpec, renewBefore: number, now: Date): string | undefined {
  if (!certPem || !keyPem) return undefined;
  const pair = storedPair(certPem, keyPem);
  if (typeof pair === 'string') return pair;
  const { c, key } = pair;
  if (!c.ca) return 'the stored certificate is not a CA';
  if (!keyMatches(c, key)) return 'the stored key does not match the stored certificate';
  if (commonName(c) !== spec.name) return `its name changed ("${commonName(c) ?? ''}" → "${spec.name}")`;
  if (keyTypeOf(c.publicKey) !== spec.key_type) return `its key type changed (${keyTypeOf(c.publicKey)} → ${spec.key_type})`;
  return expiryProblem(c, renewBefore, now);
}

/**
 * The CA of `spec`, made (or made anew, when the stored one expires within
 * `renewBefore` days or no longer matches the spec) in the controller store.
 */
export function ensureCa(store: ControllerStore, spec: CaSpec, renewBefore: number, now = new Date()): CaMaterial {
  const dir = `pki/${caSlug(spec.name)}`;
  const certItem = `${dir}/ca.crt`;
  const keyItem = `${dir}/ca.key`;
  const current = () => {
    const cert = store.read(certItem);
    const key = store.read(keyItem);
    const had = cert !== undefined && key !== undefined;
    return { cert, key, had, problem: had ? caProblem(cert, key, spec, renewBefore, now) : undefined };
  };
  const done = (cert: Buffer | string, key: Buffer | string): CaMaterial => ({ name: spec.name, cert: cert.toString('utf8'), key: new Secret(key.toString('utf8')), certItem, dir });
  // the usual case, without the lock: the stored CA is fine
  const seen = current();
  if (seen.had && !seen.problem) return done(seen.cert!, seen.key!);
  return store.locked(() => {
    const { cert, key, had, problem } = current();
    if (had && !problem) return done(cert!, key!);
    const k = generateKey(spec.key_type);
    const c = caCertificate(k, spec.name, spec.days);
    store.write(keyItem, k);
    store.write(certItem, c);
    const what = `CA "${spec.name}" (${spec.key_type}, ${spec.days} days) in ${store.where(`${dir}/`)}; its key never goes to a host`;
    store.note(had ? `generated a new ${what}, because ${problem}: nodes trust it once node_trust is applied` : `generated the ${what}`);
    return done(c, k);
  });
}

function serverProblem(certPem: Buffer | undefined, keyPem: Buffer | undefined, ca: CaMaterial, spec: SelfSignedSpec, hostname: string, now: Date): string | undefined {
  if (!certPem || !keyPem) return undefined;
  const pair = storedPair(certPem, keyPem);
  if (typeof pair === 'string') return pair;
  const { c, key } = pair;
  if (!keyMatches(c, key)) return 'the stored key does not match the stored certificate';
  const caCert = parseOne(Buffer.from(ca.cert))!;
  if (!issuedBy(c, caCert)) return `it was not signed by the current CA "${ca.name}"`;
  const want = wantedSans(spec, hostname);
  const have = sansOf(c);
  if (!sameSans(have, want)) return `its names changed (${sansChange(have, want)})`;
  if (keyTypeOf(c.publicKey) !== spec.key_type) return `its key type changed (${keyTypeOf(c.publicKey)} → ${spec.key_type})`;
  return expiryProblem(c, spec.renew_before, now);
}

/** The subjectAltNames a server certificate for `hostname` carries: the hostname, the extra names, the IPs. */
export function wantedSans(spec: SelfSignedSpec, hostname: string) {
  return canonicalSans({ dns: [hostname, ...spec.extra_names], ips: spec.ips });
}

/**
 * The server certificate and key for `hostname`, signed by the CA of `spec`:
 * made in the controller store when there is none, and made anew when the
 * stored one expires within renew_before days, names other hosts or IPs than
 * the spec, has another key type or was signed by another CA.
 */
export function ensureServerCert(store: ControllerStore, spec: SelfSignedSpec, hostname: string, now = new Date()): ServerMaterial {
  if (spec.days <= spec.renew_before) {
    throw new BerthError(`tls.selfsigned.days (${spec.days}) must be more than renew_before (${spec.renew_before})`, { hint: 'else every new certificate would be due for renewal at once' });
  }
  const ca = ensureCa(store, spec.ca, spec.renew_before, now);
  const dir = `${ca.dir}/servers`;
  const certItem = `${dir}/${hostname}.crt`;
  const keyItem = `${dir}/${hostname}.key`;
  const current = () => {
    const cert = store.read(certItem);
    const key = store.read(keyItem);
    const had = cert !== undefined && key !== undefined;
    return { cert, key, had, problem: had ? serverProblem(cert, key, ca, spec, hostname, now) : undefined };
  };
  const done = (cert: Buffer | string, key: Buffer | string): ServerMaterial => ({ cert: cert.toString('utf8'), key: new Secret(key.toString('utf8')), ca });
  const seen = current();
  if (seen.had && !seen.problem) return done(seen.cert!, seen.key!);
  return store.locked(() => {
    const { cert, key, had, problem } = current();
    if (had && !problem) return done(cert!, key!);
    const sans = wantedSans(spec, hostname);
    const k = generateKey(spec.key_type);
    const c = serverCertificate({ cert: ca.cert, key: ca.key.reveal() }, k, { commonName: hostname, dns: sans.dns, ips: sans.ips, days: spec.days, keyType: spec.key_type });
    store.write(keyItem, k);
    store.write(certItem, c);
    const what = `server certificate for ${hostname} (${spec.key_type}, ${spec.days} days, names ${[...sans.dns, ...sans.ips].join(' ')}, signed by "${ca.name}") in ${store.where(`${dir}/`)}`;
    store.note(had ? `renewed the ${what}, because ${problem}` : `generated the ${what}`);
    return done(c, k);
  });
}

export interface ProvidedCheck {
  /** Reasons the pair cannot be used (each one a sentence part). */
  errors: string[];
  /** Reasons to act soon (expiry within renew_before). */
  warnings: string[];
}

/**
 * Checks a provided certificate (leaf first, then any intermediates) and key:
 * they match, the certificate covers `hostname`, the chain holds together and
 * ends at `caPem` when one is given, and it has not expired.
 */
export function checkProvided(certPem: Buffer, keyPem: string, opts: { hostname?: string; caPem?: Buffer; renewBefore: number; now?: Date }): ProvidedCheck {
  const out: ProvidedCheck = { errors: [], warnings: [] };
  let chain: X509Certificate[];
  try {
    chain = parseCerts(certPem);
  } catch (e) {
    out.errors.push(`the certificate file holds ${(e as Error).message.startsWith('no PEM') ? 'no PEM certificate' : 'a certificate that does not parse'}`);
    return out;
  }
  const leaf = chain[0]!;
  try {
    if (!keyMatches(leaf, parseKey(keyPem))) out.errors.push('the key does not belong to the certificate');
  } catch (e) {
    out.errors.push(`the key is ${(e as Error).message}`);
  }
  if (opts.hostname && !leaf.checkHost(opts.hostname)) {
    const s = sansOf(leaf);
    out.errors.push(`the certificate is not valid for ${opts.hostname} (it names ${[...s.dns, ...s.ips].join(', ') || 'no subjectAltName'})`);
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!issuedBy(chain[i]!, chain[i + 1]!)) out.errors.push(`certificate ${i + 1} of the file was not signed by certificate ${i + 2}`);
  }
  if (opts.caPem) {
    const ca = parseOne(opts.caPem);
    const last = chain[chain.length - 1]!;
    if (!ca) out.errors.push('tls.ca_cert holds no certificate that parses');
    else if (last.fingerprint256 !== ca.fingerprint256 && !issuedBy(last, ca)) out.errors.push(`the certificate was not issued by the CA in tls.ca_cert (${ca.subject.replace(/\n/g, ', ')})`);
  }
  const now = opts.now ?? new Date();
  const problem = expiryProblem(leaf, opts.renewBefore, now);
  if (problem && daysLeft(leaf, now) <= 0) out.errors.push(`the certificate: ${problem}`);
  else if (problem) out.warnings.push(`the provided certificate for ${opts.hostname ?? commonName(leaf) ?? 'the cache'}: ${problem}; replace tls.provided.cert and .key`);
  return out;
}
