// What a cluster node runs to pull images: containerd (version, config.toml
// version, whether its CRI plugin is on), CRI-O and the tools that share its
// containers-image configuration (skopeo, podman, buildah), Docker, the OS
// family, and the runtime endpoint kubelet is configured with. One query, one
// pure parser; the node modules and `berth onboard` read it.

import { parseToml, getPath } from '../toml/edit.js';
import type { FactQuery } from '../types.js';

export const RUNTIMES_KEY = 'node:runtimes';
export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';

export type OsFamily = 'debian' | 'rhel' | 'suse' | 'alpine' | 'arch' | 'other';

export interface ContainerdConfigInfo {
  exists: boolean;
  /** The file's `version` (absent: 1 for containerd 1.x). */
  version?: number;
  /** `disabled_plugins` turns the CRI plugin off (Docker's own containerd ships so). */
  criDisabled: boolean;
  /** The CRI registry `config_path` the file sets, if any. */
  configPath?: string;
  /** The file is not valid TOML. */
  error?: string;
}

export interface RuntimesFact {
  os: { id: string; like: string[]; version: string; family: OsFamily };
  /** Commands found on the PATH, by name → path. */
  commands: Record<string, string>;
  containerd?: { version: string; major: number; active: boolean; config: ContainerdConfigInfo };
  crio?: { version: string; active: boolean };
  docker?: { version: string; active: boolean };
  /** containers-image configuration (CRI-O, skopeo, podman, buildah read /etc/containers/registries.conf[.d]). */
  containersImage?: { tools: string[]; registriesConf: boolean };
  /** kubelet's --container-runtime-endpoint / containerRuntimeEndpoint, when kubelet is configured. */
  kubeletEndpoint?: string;
}

const COMMANDS = ['containerd', 'ctr', 'crictl', 'crio', 'dockerd', 'docker', 'skopeo', 'podman', 'buildah'];

export function runtimesFact(): FactQuery<RuntimesFact> {
  return {
    key: RUNTIMES_KEY,
    command: [
      `if [ -r /etc/os-release ]; then ( . /etc/os-release; printf 'os|%s|%s|%s\\n' "\${ID:-}" "\${ID_LIKE:-}" "\${VERSION_ID:-}" ); fi`,
      `for c in ${COMMANDS.join(' ')}; do p=$(command -v "$c" 2>/dev/null) && printf 'cmd|%s|%s\\n' "$c" "$p"; done`,
      `if command -v containerd >/dev/null 2>&1; then printf 'version|containerd|%s\\n' "$(containerd --version 2>/dev/null | head -n1)"; fi`,
      `if command -v crio >/dev/null 2>&1; then printf 'version|crio|%s\\n' "$(crio --version 2>/dev/null | head -n1)"; fi`,
      `if command -v dockerd >/dev/null 2>&1; then printf 'version|docker|%s\\n' "$(dockerd --version 2>/dev/null | head -n1)"; fi`,
      `for u in containerd crio docker; do printf 'active|%s|%s\\n' "$u" "$(systemctl is-active "$u.service" 2>/dev/null)"; done`,
      `if [ -f ${CONTAINERD_CONFIG} ]; then printf 'containerd-config|%s\\n' "$(base64 -w0 ${CONTAINERD_CONFIG})"; fi`,
      `if [ -e /etc/containers/registries.conf ]; then echo 'registries-conf|yes'; fi`,
      `if [ -f /var/lib/kubelet/kubeadm-flags.env ]; then sed -n 's/.*--container-runtime-endpoint[= ]\\([^ "]*\\).*/kubelet|\\1/p' /var/lib/kubelet/kubeadm-flags.env | head -n1; fi`,
      `if [ -f /var/lib/kubelet/config.yaml ]; then sed -n 's/^containerRuntimeEndpoint:[ ]*["]\\{0,1\\}\\([^" ]*\\).*/kubelet|\\1/p' /var/lib/kubelet/config.yaml | head -n1; fi`,
    ].join('\n'),
    parse: parseRuntimes,
  };
}

function family(id: string, like: string[]): OsFamily {
  const all = [id, ...like];
  if (all.some((x) => x === 'debian' || x === 'ubuntu')) return 'debian';
  if (all.some((x) => ['rhel', 'fedora', 'centos', 'rocky', 'almalinux', 'amzn'].includes(x))) return 'rhel';
  if (all.some((x) => x.startsWith('suse') || x.startsWith('opensuse') || x === 'sles')) return 'suse';
  if (id === 'alpine') return 'alpine';
  if (id === 'arch' || like.includes('arch')) return 'arch';
  return 'other';
}

/** "containerd github.com/containerd/containerd v1.7.2 …" → "1.7.2". */
export function versionIn(s: string): string {
  return /\bv?(\d+\.\d+(?:\.\d+)?(?:[-~+][0-9A-Za-z.~+-]*)?)/.exec(s)?.[1] ?? '';
}

/** What containerd's config.toml says about the things berth cares for. */
export function readContainerdConfig(text: string | undefined): ContainerdConfigInfo {
  if (text === undefined) return { exists: false, criDisabled: false };
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (e) {
    return { exists: true, criDisabled: false, error: (e as Error).message };
  }
  const version = typeof doc.version === 'number' ? doc.version : undefined;
  const disabled = Array.isArray(doc.disabled_plugins) ? doc.disabled_plugins.map(String) : [];
  const criDisabled = disabled.some((p) => ['cri', 'io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime'].includes(p));
  const table = registryTable(version ?? 1);
  const cp = table ? getPath(doc, [...table, 'config_path']) : undefined;
  return { exists: true, version, criDisabled, ...(typeof cp === 'string' ? { configPath: cp } : {}) };
}

/** Where the CRI registry settings live, by config.toml version. */
export function registryTable(version: number): string[] | undefined {
  if (version === 2) return ['plugins', 'io.containerd.grpc.v1.cri', 'registry'];
  if (version === 3) return ['plugins', 'io.containerd.cri.v1.images', 'registry'];
  return undefined;
}

export function parseRuntimes(out: string): RuntimesFact {
  const f: RuntimesFact = { os: { id: '', like: [], version: '', family: 'other' }, commands: {} };
  const versions: Record<string, string> = {};
  const active: Record<string, boolean> = {};
  let config: string | undefined;
  let registriesConf = false;
  for (const line of out.split('\n')) {
    const [kind, a = '', b = '', c = ''] = line.split('|');
    if (kind === 'os') {
      const like = b.split(/\s+/).filter(Boolean);
      f.os = { id: a, like, version: c, family: family(a, like) };
    } else if (kind === 'cmd' && a) f.commands[a] = b;
    else if (kind === 'version') versions[a] = versionIn(b);
    else if (kind === 'active') active[a] = b.trim() === 'active';
    else if (kind === 'containerd-config') config = Buffer.from(a, 'base64').toString('utf8');
    else if (kind === 'registries-conf') registriesConf = true;
    else if (kind === 'kubelet' && a) f.kubeletEndpoint = a;
  }
  if (f.commands.containerd) {
    const version = versions.containerd ?? '';
    f.containerd = { version, major: Number(version.split('.')[0]) || 1, active: active.containerd === true, config: readContainerdConfig(config) };
  }
  if (f.commands.crio) f.crio = { version: versions.crio ?? '', active: active.crio === true };
  if (f.commands.dockerd) f.docker = { version: versions.docker ?? '', active: active.docker === true };
  const tools = ['crio', 'skopeo', 'podman', 'buildah'].filter((t) => f.commands[t]);
  if (tools.length || registriesConf) f.containersImage = { tools, registriesConf };
  return f;
}

// ---------------------------------------------------------------- which runtimes berth configures

export type RuntimeSetting = 'auto' | 'containerd' | 'crio' | 'docker';

export interface RuntimeSelection {
  containerd: boolean;
  /** containers-image: CRI-O and the tools that read registries.conf.d. */
  containers: boolean;
  docker: boolean;
}

export class RuntimeSelectionError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

const dockerEndpoint = (e?: string) => !!e && /cri-dockerd|dockershim/.test(e);

/**
 * The runtimes whose mirror configuration a node gets. `auto`: containerd when
 * its CRI plugin is on, containers-image when CRI-O or one of its tools is
 * there, and Docker only on a node that has no other CRI runtime (or whose
 * kubelet talks to cri-dockerd). A named runtime must be installed.
 */
export function selectRuntimes(setting: RuntimeSetting, f: RuntimesFact, host: string): RuntimeSelection {
  const cd = f.containerd;
  const criContainerd = !!cd && !cd.config.criDisabled && !dockerEndpoint(f.kubeletEndpoint);
  switch (setting) {
    case 'containerd':
      if (!cd) throw new RuntimeSelectionError(`nodes.runtime is containerd, but containerd is not installed on ${host}`, 'install containerd, or set nodes.runtime: auto');
      if (cd.config.criDisabled) {
        throw new RuntimeSelectionError(
          `nodes.runtime is containerd, but ${CONTAINERD_CONFIG} on ${host} disables its CRI plugin (disabled_plugins), as Docker's own containerd package ships it`,
          'kubelet cannot use this containerd: remove "cri" from disabled_plugins, or set nodes.runtime: docker',
        );
      }
      return { containerd: true, containers: false, docker: false };
    case 'crio':
      if (!f.containersImage) {
        throw new RuntimeSelectionError(`nodes.runtime is crio, but ${host} has neither CRI-O nor a containers-image tool (skopeo, podman, buildah)`, 'install cri-o, or set nodes.runtime: auto');
      }
      return { containerd: false, containers: true, docker: false };
    case 'docker':
      if (!f.docker) throw new RuntimeSelectionError(`nodes.runtime is docker, but Docker is not installed on ${host}`, 'set nodes.runtime: auto');
      return { containerd: false, containers: false, docker: true };
    default: {
      const containers = !!f.containersImage;
      const docker = !!f.docker && ((!criContainerd && !f.crio) || dockerEndpoint(f.kubeletEndpoint));
      const sel = { containerd: criContainerd, containers, docker };
      if (!sel.containerd && !sel.containers && !sel.docker) {
        throw new RuntimeSelectionError(`no container runtime found on ${host} (looked for containerd, CRI-O, skopeo/podman/buildah and Docker)`, 'install one, or name it in nodes.runtime');
      }
      return sel;
    }
  }
}

/** "containerd 1.6.20 (config version 2), containers-image (skopeo), Docker 20.10.24" */
export function describeRuntimes(f: RuntimesFact): string {
  const parts: string[] = [];
  if (f.containerd) {
    const c = f.containerd.config;
    const cfg = !c.exists ? 'no config.toml' : c.error ? 'config.toml invalid' : `config version ${c.version ?? 1}${c.criDisabled ? ', CRI disabled' : ''}`;
    parts.push(`containerd ${f.containerd.version} (${cfg})`);
  }
  if (f.crio) parts.push(`CRI-O ${f.crio.version}`);
  if (f.containersImage?.tools.filter((t) => t !== 'crio').length) parts.push(`containers-image (${f.containersImage.tools.filter((t) => t !== 'crio').join(', ')})`);
  if (f.docker) parts.push(`Docker ${f.docker.version}`);
  return parts.join(', ') || 'no container runtime';
}
