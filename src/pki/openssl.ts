// Key and certificate generation on the controller, with the openssl command
// line (OpenSSL 1.1.1 or 3.x). Keys only ever exist in a private temporary
// directory (0700) for the moment openssl needs them as files; the caller
// keeps them in the controller store.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../util/errors.js';
import type { KeyType } from './x509.js';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new BerthError('openssl not found on the controller', { hint: 'berth makes the self-signed CA and certificates with it: install it (apt-get install openssl)' });
    }
    const detail = (err.stderr?.toString('utf8') ?? err.message).trim().split('\n').slice(-2).join(' | ');
    throw new BerthError(`openssl ${args[0]} failed: ${detail}`);
  }
}

function inTemp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'berth-pki-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const put = (dir: string, name: string, text: string) => writeFileSync(join(dir, name), text, { mode: 0o600 });
const get = (dir: string, name: string) => readFileSync(join(dir, name), 'utf8');

/** A new private key (PKCS#8 PEM). */
export function generateKey(type: KeyType): string {
  return inTemp((dir) => {
    const [alg, size] = type.split('-') as [string, string];
    const opts = alg === 'rsa' ? ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${size}`] : ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${size === 'p384' ? 'P-384' : 'P-256'}`, '-pkeyopt', 'ec_param_enc:named_curve'];
    openssl(['genpkey', ...opts, '-out', 'key.pem'], dir);
    return get(dir, 'key.pem');
  });
}

/** A random positive serial number, as openssl's -set_serial takes it. */
const serial = () => `0x${(randomBytes(16)[0]! & 0x7f).toString(16).padStart(2, '0')}${randomBytes(15).toString('hex')}`;

/** A self-signed CA certificate for `key`: CA:TRUE, pathlen 0, may sign certificates and CRLs only. */
export function caCertificate(key: string, name: string, days: number): string {
  return inTemp((dir) => {
    put(dir, 'ca.key', key);
    put(
      dir,
      'ca.cnf',
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        'x509_extensions = v3_ca',
        '[dn]',
        `CN = ${name}`,
        '[v3_ca]',
        'basicConstraints = critical, CA:TRUE, pathlen:0',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid:always',
        '',
      ].join('\n'),
    );
    openssl(['req', '-x509', '-new', '-config', 'ca.cnf', '-key', 'ca.key', '-sha256', '-days', String(days), '-set_serial', serial(), '-out', 'ca.crt'], dir);
    return get(dir, 'ca.crt');
  });
}

export interface ServerRequest {
  /** The subject CN (left out when longer than X.509's 64 characters; the SANs are what clients check). */
  commonName: string;
  dns: string[];
  ips: string[];
  days: number;
  keyType: KeyType;
}

/** A TLS server certificate for `key`, signed by the CA: serverAuth, with the given subjectAltNames. */
export function serverCertificate(ca: { cert: string; key: string }, key: string, req: ServerRequest): string {
  return inTemp((dir) => {
    put(dir, 'ca.crt', ca.cert);
    put(dir, 'ca.key', ca.key);
    put(dir, 'server.key', key);
    const cn = req.commonName.length <= 64 ? [`CN = ${req.commonName}`] : [];
    put(dir, 'req.cnf', ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', ...(cn.length ? cn : ['O = berth']), ''].join('\n'));
    const san = [...req.dns.map((d) => `DNS:${d}`), ...req.ips.map((i) => `IP:${i}`)].join(', ');
    put(
      dir,
      'ext.cnf',
      [
        '[v3_server]',
        'basicConstraints = critical, CA:FALSE',
        // RSA keys may also encipher (TLS 1.2 RSA key exchange); ECDSA keys only sign
        `keyUsage = critical, digitalSignature${req.keyType.startsWith('rsa') ? ', keyEncipherment' : ''}`,
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${san}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid, issuer',
        '',
      ].join('\n'),
    );
    openssl(['req', '-new', '-config', 'req.cnf', '-key', 'server.key', '-out', 'server.csr'], dir);
    openssl(
      ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial(), '-sha256', '-days', String(req.days), '-extfile', 'ext.cnf', '-extensions', 'v3_server', '-out', 'server.crt'],
      dir,
    );
    return get(dir, 'server.crt');
  });
}
