import { randomBytes, randomInt } from 'node:crypto';

/** How a generated secret is spelled: `openssl rand -base64 20` is { bytes: 20, encoding: base64 }. */
export type SecretEncoding = 'base64' | 'base64url' | 'hex' | 'alnum';
export const SECRET_ENCODINGS: SecretEncoding[] = ['base64', 'base64url', 'hex', 'alnum'];

export interface GenerateSpec {
  /** Random bytes the secret carries (its strength: 20 bytes are 160 bits). */
  bytes: number;
  encoding: SecretEncoding;
}

export const MAX_GENERATED_BYTES = 512;

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Characters an alnum secret needs to carry at least `bytes` random bytes (log2(62) bits each). */
export function alnumLength(bytes: number): number {
  return Math.ceil((bytes * 8) / Math.log2(ALNUM.length));
}

/**
 * A fresh random secret. base64/base64url/hex encode `bytes` random bytes
 * (base64 with its padding, as openssl prints it); alnum draws letters and
 * digits uniformly (crypto.randomInt), enough of them to carry as much
 * randomness as `bytes` bytes: 20 bytes give 27 characters.
 */
export function generateSecret(g: GenerateSpec): string {
  switch (g.encoding) {
    case 'base64':
      return randomBytes(g.bytes).toString('base64');
    case 'base64url':
      return randomBytes(g.bytes).toString('base64url');
    case 'hex':
      return randomBytes(g.bytes).toString('hex');
    case 'alnum': {
      let s = '';
      for (let i = alnumLength(g.bytes); i > 0; i--) s += ALNUM[randomInt(ALNUM.length)];
      return s;
    }
  }
}
