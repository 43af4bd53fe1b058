// A real OCI registry standing in for Harbor's /v2 (issue 5): Debian's
// docker-registry (distribution v2) on a test host's own 127.0.0.N:443, with
// TLS from a CA the test makes with openssl, holding tiny images the test
// builds offline (an OCI layout: layer tarball, config, manifest, index) and
// pushes with skopeo under Harbor-like project paths (proxy.docker.io/library/…).
// The image builder and the registry's start script are the demo's too
// (scripts/sandbox/). No vitest import: plain helpers.

import { execa } from 'execa';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeOciLayout } from '../../scripts/sandbox/tiny-image.mjs';
import type { TestHosts } from '../hosts/testhosts.js';

const START_REGISTRY = fileURLToPath(new URL('../../scripts/sandbox/start-registry.sh', import.meta.url));

// ---------------------------------------------------------------- certificates

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await execa('openssl', args, { cwd, reject: false, stdin: 'ignore', timeout: 60_000 });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** A fresh CA (RSA 2048, 30 days) in a new temporary directory. */
export async function makeCa(name: string): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-e2e-pki-'));
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', `/CN=${name}`], dir);
  return { dir, caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key') };
}

/** A server certificate for `names` signed by the CA: paths of its cert and key. */
export async function serverCert(pki: Pki, base: string, names: string[]): Promise<{ cert: string; key: string }> {
  const ext = join(pki.dir, `${base}.ext`);
  writeFileSync(ext, `subjectAltName=${names.map((n) => (/^\d+\./.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0]}`], pki.dir);
  await openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${base}.crt`, '-days', '30', '-extfile', ext], pki.dir);
  return { cert: join(pki.dir, `${base}.crt`), key: join(pki.dir, `${base}.key`) };
}

// ---------------------------------------------------------------- an OCI layout, built offline

/** An OCI image layout in a new temporary directory, one tiny image per ref name. */
export function ociLayout(refs: string[]): string {
  return writeOciLayout(mkdtempSync(join(tmpdir(), 'berth-e2e-oci-')), refs);
}

// ---------------------------------------------------------------- the registry on a test host

export interface RegistryOptions {
  /** systemd unit name on the host. */
  unit: string;
  /** The address:port it listens on (the host's own address). */
  addr: string;
  /** The host name clients use (in the certificate; mapped in /etc/hosts). */
  hostname: string;
  cert: string;
  key: string;
  caCert: string;
}

async function sh(th: TestHosts, host: number, cmd: string, input?: string): Promise<string> {
  const r = await th.ssh(host, cmd, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`on ${th.name(host)}: \`${cmd.slice(0, 200)}\` exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Copies a directory of the controller into `dest` on a host (tar over ssh, base64: the input is text). */
export async function copyDir(th: TestHosts, host: number, src: string, dest: string): Promise<void> {
  const tar = await execa('tar', ['-C', src, '-cf', '-', '.'], { encoding: 'buffer', stdin: 'ignore', timeout: 60_000 });
  await sh(th, host, `mkdir -p ${dest} && base64 -d | tar -x -C ${dest}`, Buffer.from(tar.stdout).toString('base64'));
}

/** Starts docker-registry as a transient unit (scripts/sandbox/start-registry.sh) and waits until /v2/ answers. */
export async function startRegistry(th: TestHosts, host: number, o: RegistryOptions): Promise<void> {
  const dir = `/etc/${o.unit}`;
  await sh(th, host, `mkdir -p ${dir} && cat > ${dir}/server.crt`, readFileSync(o.cert, 'utf8'));
  await sh(th, host, `umask 077 && cat > ${dir}/server.key`, readFileSync(o.key, 'utf8'));
  await sh(th, host, `cat > ${dir}/ca.crt`, readFileSync(o.caCert, 'utf8'));
  await sh(th, host, `sh -s ${o.unit} ${o.addr} ${o.hostname}`, readFileSync(START_REGISTRY, 'utf8'));
}

/** Pushes `layoutRef` of the OCI layout at `layoutDir` (on the host) to docker://<hostname:port>/<repo>. */
export async function push(th: TestHosts, host: number, o: RegistryOptions, layoutDir: string, layoutRef: string, repo: string): Promise<void> {
  const port = o.addr.split(':')[1];
  const certDir = `/tmp/${o.unit}-certs`;
  await sh(th, host, `mkdir -p ${certDir} && cp /etc/${o.unit}/ca.crt ${certDir}/ca.crt && skopeo copy --dest-cert-dir ${certDir} oci:${layoutDir}:${layoutRef} docker://${o.hostname}:${port}/${repo}`);
}

/** The registry's access log: one line per request ("GET /v2/… HTTP/1.1" status … "user agent"). */
export async function accessLog(th: TestHosts, host: number, unit: string): Promise<string[]> {
  const out = await sh(th, host, `journalctl -u ${unit} -o cat --no-pager`);
  return out.split('\n').filter((l) => /^\S+ - - \[/.test(l));
}
