// Reading certificates and keys (pure, no openssl process): what a plan and
// the renewal checks need to know about a PEM — its names, its expiry, its
// key, who issued it. Node's X509Certificate does the parsing.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

export const KEY_TYPES = ['rsa-2048', 'rsa-3072', 'rsa-4096', 'ecdsa-p256', 'ecdsa-p384'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM file, leaf first (as servers send them); throws when there is none or one does not parse. */
export function parseCerts(pem: string | Buffer): X509Certificate[] {
  const text = typeof pem === 'string' ? pem : pem.toString('utf8');
  const blocks = text.match(PEM_CERT) ?? [];
  if (!blocks.length) throw new Error('no PEM certificate in it');
  return blocks.map((b) => new X509Certificate(b));
}

/** A private key from PEM; throws with a short reason when it is not one. */
export function parseKey(pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    throw new Error('not a PEM private key (or it is encrypted: berth needs it without a passphrase)');
  }
}

/** "rsa-4096", "ecdsa-p256", ... of a certificate's or key's public part (undefined for other kinds). */
export function keyTypeOf(k: KeyObject): KeyType | string {
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'rsa') return `rsa-${d.modulusLength}`;
  if (k.asymmetricKeyType === 'ec') {
    const curve = { prime256v1: 'p256', secp384r1: 'p384' }[String(d.namedCurve)] ?? String(d.namedCurve);
    return `ecdsa-${curve}`;
  }
  return String(k.asymmetricKeyType);
}

/** An IP address in one spelling, so "::1" and "0:0:0:0:0:0:0:1" compare equal. */
export function normalizeIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // an embedded IPv4 tail (::ffff:10.0.0.1) is two groups
  const v4 = (parts: string[]) => {
    const last = parts[parts.length - 1];
    if (last && last.includes('.')) {
      const b = last.split('.').map(Number);
      parts.splice(parts.length - 1, 1, ((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16));
    }
  };
  if (tail === undefined) v4(h);
  else v4(t);
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16)).join(':');
}

export interface SubjectAltNames {
  dns: string[];
  ips: string[];
}

export function sansOf(c: X509Certificate): SubjectAltNames {
  const out: SubjectAltNames = { dns: [], ips: [] };
  for (const part of (c.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) out.dns.push(part.slice(4).toLowerCase());
    else if (part.startsWith('IP Address:')) out.ips.push(normalizeIp(part.slice(11)));
  }
  return out;
}

/** The names a certificate should carry, in one canonical order: DNS names, then IPs, each sorted and unique. */
export function canonicalSans(s: SubjectAltNames): SubjectAltNames {
  return { dns: [...new Set(s.dns.map((d) => d.toLowerCase()))].sort(), ips: [...new Set(s.ips.map(normalizeIp))].sort() };
}

export function sameSans(a: SubjectAltNames, b: SubjectAltNames): boolean {
  const x = canonicalSans(a);
  const y = canonicalSans(b);
  return x.dns.join(',') === y.dns.join(',') && x.ips.join(',') === y.ips.join(',');
}

/** What changed between two sets of names: "+a, -b". */
export function sansChange(from: SubjectAltNames, to: SubjectAltNames): string {
  const f = canonicalSans(from);
  const t = canonicalSans(to);
  const all = (s: SubjectAltNames) => [...s.dns, ...s.ips];
  const added = all(t).filter((n) => !all(f).includes(n));
  const removed = all(f).filter((n) => !all(t).includes(n));
  return [...added.map((n) => `+${n}`), ...removed.map((n) => `-${n}`)].join(', ');
}

export function notAfter(c: X509Certificate): Date {
  return new Date(c.validTo);
}

/** The common name of a certificate's subject, if it has one. */
export function commonName(c: X509Certificate): string | undefined {
  return /(?:^|\n)CN=([^\n]*)/.exec(c.subject)?.[1];
}

/** True when `cert` was issued and signed by `issuer`. */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

export function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

export const isoDay = (d: Date) => d.toISOString().slice(0, 10);

/** One line for a plan: "CN=…, DNS a, b, IP c, not after 2027-03-01, serial 1A2B3C4D…". */
export function describeCert(c: X509Certificate): string {
  const s = sansOf(c);
  const names = [...s.dns, ...s.ips].join(' ');
  const cn = commonName(c);
  return `${cn ? `CN=${cn}, ` : ''}${names ? `names ${names}, ` : ''}${keyTypeOf(c.publicKey)}, not after ${isoDay(notAfter(c))}, serial ${c.serialNumber.slice(0, 12)}`;
}

/** Days from `now` until the certificate expires (negative once it has). */
export function daysLeft(c: X509Certificate, now: Date): number {
  return (notAfter(c).getTime() - now.getTime()) / 86_400_000;
}
