// The openssl CLI, as a user checks a certificate: the unit and e2e tests of
// the certs role read what berth made with it, not with berth's own code.

import { execFileSync } from 'node:child_process';

export function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString('utf8');
}

/** The subjectAltName extension on one line ("DNS:a, IP Address:…"). */
export function sanText(certPem: string): string {
  return openssl(['x509', '-noout', '-ext', 'subjectAltName'], certPem).split('\n').slice(1).join(' ').trim();
}

/** The public key of a certificate and of a private key, as openssl prints them: equal when they belong together. */
export function pubOfCert(certPem: string): string {
  return openssl(['x509', '-noout', '-pubkey'], certPem);
}
export function pubOfKey(keyPem: string): string {
  return openssl(['pkey', '-pubout'], keyPem);
}

/** `openssl x509 -checkend`: true when the certificate is still valid `seconds` from now. */
export function validFor(certPem: string, seconds: number): boolean {
  try {
    openssl(['x509', '-noout', '-checkend', String(seconds)], certPem);
    return true;
  } catch {
    return false;
  }
}
