// The CA of a registry host (the Harbor cache) where each installed container
// runtime looks for it: containerd's, containers-image's and Docker's
// certs.d/<host>/ca.crt. The system trust store is the file module's job
// (node_trust's first task); these copies make the runtimes trust the cache
// even where they do not read the system store, and containerd's hosts.toml
// names containerd's copy as its `ca`.

import { fileFacts, planFile } from './file.js';
import { dirFacts, applyTagged, nodeFacts, planDir, runtimesOf, tag } from './node_common.js';
import { checkHarborHost } from '../node/mirrors.js';
import { BerthError } from '../util/errors.js';
import type { Module, PlannedChange } from '../types.js';

export interface RegistryCaArgs {
  /** The registry's host name, as in its certificate. */
  host: string;
  /** The CA certificate (PEM) in the spec repository. */
  src: string;
}

export const CERTS_DIRS = {
  containerd: '/etc/containerd/certs.d',
  containers: '/etc/containers/certs.d',
  docker: '/etc/docker/certs.d',
} as const;

/** Where each runtime reads the CA of `host`. */
export function caPaths(host: string): Record<keyof typeof CERTS_DIRS, string> {
  return {
    containerd: `${CERTS_DIRS.containerd}/${host}/ca.crt`,
    containers: `${CERTS_DIRS.containers}/${host}/ca.crt`,
    docker: `${CERTS_DIRS.docker}/${host}/ca.crt`,
  };
}

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

export const registryCaModule: Module<RegistryCaArgs> = {
  name: 'registry_ca',
  schema: 'registry_ca',
  check(a, ctx) {
    checkHarborHost(a.host, ctx.locateArg?.(['host']) ?? ctx.pos);
    const pem = ctx.readSourceFile(a.src).toString('utf8');
    if (!PEM.test(pem)) {
      throw new BerthError(`${a.src} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, { pos: ctx.locateArg?.(['src']) ?? ctx.pos, hint: 'tls.ca_cert names the CA certificate, in PEM' });
    }
  },
  facts: (a) => {
    const paths = Object.values(caPaths(a.host));
    return [...nodeFacts(), ...paths.flatMap((p) => [...dirFacts(p.slice(0, p.lastIndexOf('/'))), ...fileFacts(p, {})])];
  },
  plan(a, state, ctx): PlannedChange[] {
    const f = runtimesOf(state, ctx);
    if (f.os.family !== 'debian') {
      throw new BerthError(`${ctx.host} runs ${f.os.id || 'an unknown OS'} (${f.os.family} family); node_trust supports Debian and Ubuntu nodes (update-ca-certificates)`, {
        pos: ctx.pos,
        hint: 'run node_trust on Debian-family nodes only (e.g. a group for them)',
      });
    }
    const paths = caPaths(a.host);
    const want: (keyof typeof CERTS_DIRS)[] = [];
    if (f.containerd) want.push('containerd');
    if (f.containersImage) want.push('containers');
    if (f.docker) want.push('docker');
    const pem = ctx.readSourceFile(a.src);
    const out: PlannedChange[] = [];
    for (const rt of want) {
      const p = paths[rt];
      out.push(...planDir(p.slice(0, p.lastIndexOf('/')), state, ctx));
      out.push(...tag('file', planFile(p, pem, { mode: '0644' }, state, ctx)));
    }
    return out;
  },
  apply: applyTagged,
};
