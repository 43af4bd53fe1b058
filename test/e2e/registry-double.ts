// A real OCI registry standing in for Harbor's /v2 (issue 5): Debian's
// docker-registry (distribution v2) on a test host's own 127.0.0.N:443, with
// TLS from a CA the test makes with openssl, holding tiny images the test
// builds offline (an OCI layout: layer tarball, config, manifest, index) and
// pushes with skopeo under Harbor-like project paths (proxy.docker.io/library/…).
// No vitest import: plain helpers.

import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { TestHosts } from '../hosts/testhosts.js';

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

/** A one-file ustar archive (the image's only layer). */
function tarOneFile(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, 'ascii');
  put(name, 0, 100);
  put('0000644\0', 100, 8);
  put('0000000\0', 108, 8);
  put('0000000\0', 116, 8);
  put(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
  put('00000000000\0', 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad, Buffer.alloc(1024)]);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * An OCI image layout with one tiny image per `refs` entry (the layout's ref
 * names), each holding /hello.txt with its own text. Returns the directory.
 */
export function ociLayout(refs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-e2e-oci-'));
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const blob = (b: Buffer) => {
    const d = sha(b);
    writeFileSync(join(blobs, d), b);
    return { digest: `sha256:${d}`, size: b.length };
  };
  const manifests = refs.map((ref) => {
    const tar = tarOneFile('hello.txt', Buffer.from(`hello from ${ref}, served through the cache\n`));
    const layer = blob(gzipSync(tar, { level: 9 }));
    const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${sha(tar)}`] } })));
    const manifest = blob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
        }),
      ),
    );
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref } };
  });
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return dir;
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

/** Starts docker-registry as a transient unit and waits (bounded) until /v2/ answers over TLS. */
export async function startRegistry(th: TestHosts, host: number, o: RegistryOptions): Promise<void> {
  const dir = `/etc/${o.unit}`;
  const [ip, port] = o.addr.split(':');
  const config = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: /var/lib/${o.unit}`,
    'http:',
    `  addr: ${o.addr}`,
    '  tls:',
    `    certificate: ${dir}/server.crt`,
    `    key: ${dir}/server.key`,
    '',
  ].join('\n');
  await sh(th, host, `mkdir -p ${dir} && cat > ${dir}/config.yml`, config);
  await sh(th, host, `cat > ${dir}/server.crt`, readFileSync(o.cert, 'utf8'));
  await sh(th, host, `umask 077 && cat > ${dir}/server.key`, readFileSync(o.key, 'utf8'));
  await sh(th, host, `cat > ${dir}/ca.crt`, readFileSync(o.caCert, 'utf8'));
  await sh(th, host, `systemd-run --unit=${o.unit} --collect /usr/bin/docker-registry serve ${dir}/config.yml`);
  await sh(
    th,
    host,
    `for i in $(seq 1 50); do curl -fsS -o /dev/null --cacert ${dir}/ca.crt --resolve ${o.hostname}:${port}:${ip} https://${o.hostname}:${port}/v2/ && exit 0; sleep 0.2; done; echo "registry ${o.unit} did not answer" >&2; journalctl -u ${o.unit} --no-pager | tail -20 >&2; exit 1`,
  );
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
