// One small interface, two ways to reach a host: `openTransport` picks the
// transport for a host's connection settings (from its inventory variables).

import type { Transport } from '../types.js';
import { LocalTransport } from './local.js';
import { SshTransport } from './ssh.js';

export interface ConnectionSpec {
  /** Inventory name of the host. */
  host: string;
  kind: 'ssh' | 'local';
  address: string;
  port: number;
  user: string;
  keyFile?: string;
  knownHostsFile: string;
  hostKeyPolicy: 'strict' | 'accept-new';
  become: boolean;
  /** TCP connect + SSH handshake + login; default 10 s. */
  connectTimeoutMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A transport for one host. SSH connects lazily, on the first command; `close()` it at the end of the run. */
export function openTransport(conn: ConnectionSpec): Transport {
  if (conn.kind === 'local') return new LocalTransport(conn.host, { become: conn.become });
  return new SshTransport({
    host: conn.host,
    address: conn.address,
    port: conn.port,
    user: conn.user,
    keyFile: conn.keyFile,
    knownHostsFile: conn.knownHostsFile,
    hostKeyPolicy: conn.hostKeyPolicy,
    become: conn.become,
    connectTimeoutMs: conn.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  });
}

export { SshTransport, type SshOptions } from './ssh.js';
export { LocalTransport, type LocalOptions } from './local.js';
export type { TransportSession } from './common.js';
export { checkHostKey, appendHostKey, type HostKeyStatus } from './knownhosts.js';
