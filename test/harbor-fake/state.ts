// In-memory Harbor: the records the fake serves, and the hooks tests use to
// put Harbor into states the API alone cannot reach (repositories in a
// project, users other than admin, an unreachable upstream, ...).

export const DEFAULT_HARBOR_VERSION = 'v2.12.4';

/** Registry types ("adapters") of Harbor v2.12. */
export const REGISTRY_TYPES = [
  'ali-acr',
  'aws-ecr',
  'azure-acr',
  'docker-hub',
  'docker-registry',
  'dtr',
  'github-ghcr',
  'gitlab',
  'google-gcr',
  'harbor',
  'huawei-SWR',
  'jfrog-artifactory',
  'quay',
  'tencent-tcr',
  'volcengine-cr',
] as const;

/** Registry types v2.12 accepts behind a proxy-cache project. */
export const PROXY_CACHE_TYPES = ['docker-hub', 'harbor', 'azure-acr', 'aws-ecr', 'google-gcr', 'quay', 'docker-registry', 'github-ghcr', 'jfrog-artifactory'] as const;

/**
 * The proxy-cache types of a Harbor version: v2.14 dropped quay
 * ("bad request: unsupported registry type quay", goharbor/harbor-helm#2262).
 */
export function proxyCacheTypesOf(version: string): readonly string[] {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  const newer = m !== null && (Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= 14));
  return newer ? PROXY_CACHE_TYPES.filter((t) => t !== 'quay') : PROXY_CACHE_TYPES;
}

export const HEALTH_COMPONENTS = ['core', 'database', 'jobservice', 'portal', 'redis', 'registry', 'registryctl'] as const;

export type AuthMode = 'db_auth' | 'ldap_auth' | 'uaa_auth' | 'http_auth' | 'oidc_auth';
export const AUTH_MODES: readonly AuthMode[] = ['db_auth', 'ldap_auth', 'uaa_auth', 'http_auth', 'oidc_auth'];

export interface Credential {
  type: string;
  access_key: string;
  access_secret: string;
}

export interface RegistryRecord {
  id: number;
  name: string;
  url: string;
  type: string;
  insecure: boolean;
  description: string;
  credential: Credential;
  status: 'healthy' | 'unhealthy';
  creation_time: string;
  update_time: string;
}

export interface CveAllowlist {
  id: number;
  project_id: number;
  items: Array<{ cve_id: string }>;
  expires_at: number | null;
  creation_time: string;
  update_time: string;
}

export interface ProjectRecord {
  project_id: number;
  name: string;
  owner_id: number;
  /** 0: not a proxy-cache project. */
  registry_id: number;
  metadata: Record<string, string>;
  cve_allowlist: CveAllowlist;
  repositories: string[];
  creation_time: string;
  update_time: string;
}

export interface QuotaRecord {
  id: number;
  reference: 'project';
  reference_id: string;
  hard: Record<string, number>;
  used: Record<string, number>;
  creation_time: string;
  update_time: string;
}

export interface RetentionRecord {
  id: number;
  project_id: number;
  days: number;
}

export interface UserRecord {
  user_id: number;
  username: string;
  password: string;
  sysadmin_flag: boolean;
  email: string;
  realname: string;
  comment: string;
  creation_time: string;
  update_time: string;
}

export type ConfigValue = string | number | boolean;

export type SequenceKind = 'registry' | 'project' | 'quota' | 'retention' | 'user' | 'allowlist';

/** Harbor's password-type settings: stored, accepted by PUT, never returned by GET. */
export const SECRET_CONFIG_KEYS = new Set(['oidc_client_secret', 'ldap_search_password', 'uaa_client_secret']);

/** Settings of a fresh v2.12 install (the ones GET /configurations returns, plus the secrets). */
export function defaultConfiguration(): Map<string, ConfigValue> {
  return new Map<string, ConfigValue>([
    ['auth_mode', 'db_auth'],
    ['primary_auth_mode', false],
    ['self_registration', false],
    ['project_creation_restriction', 'everyone'],
    ['read_only', false],
    ['token_expiration', 30],
    ['robot_token_duration', 30],
    ['robot_name_prefix', 'robot$'],
    ['notification_enable', true],
    ['quota_per_project_enable', true],
    ['storage_per_project', -1],
    ['session_timeout', 60],
    ['audit_log_forward_endpoint', ''],
    ['skip_audit_log_database', false],
    ['scanner_skip_update_pulltime', false],
    ['banner_message', ''],
    ['oidc_name', ''],
    ['oidc_endpoint', ''],
    ['oidc_client_id', ''],
    ['oidc_client_secret', ''],
    ['oidc_groups_claim', ''],
    ['oidc_admin_group', ''],
    ['oidc_group_filter', ''],
    ['oidc_scope', ''],
    ['oidc_user_claim', ''],
    ['oidc_verify_cert', true],
    ['oidc_auto_onboard', false],
    ['oidc_extra_redirect_parms', '{}'],
    ['ldap_url', ''],
    ['ldap_base_dn', ''],
    ['ldap_filter', ''],
    ['ldap_scope', 2],
    ['ldap_search_dn', ''],
    ['ldap_search_password', ''],
    ['ldap_timeout', 5],
    ['ldap_uid', 'cn'],
    ['ldap_verify_cert', true],
    ['ldap_group_base_dn', ''],
    ['ldap_group_search_filter', ''],
    ['ldap_group_attribute_name', ''],
    ['ldap_group_search_scope', 2],
    ['ldap_group_admin_dn', ''],
    ['ldap_group_membership_attribute', 'memberof'],
    ['ldap_group_attach_parallel', false],
    ['uaa_endpoint', ''],
    ['uaa_client_id', ''],
    ['uaa_client_secret', ''],
    ['uaa_verify_cert', true],
    ['http_authproxy_endpoint', ''],
    ['http_authproxy_tokenreview_endpoint', ''],
    ['http_authproxy_admin_groups', ''],
    ['http_authproxy_admin_usernames', ''],
    ['http_authproxy_verify_cert', true],
    ['http_authproxy_skip_search', false],
    ['http_authproxy_server_certificate', ''],
  ]);
}

export interface HealthOverride {
  status: 'healthy' | 'unhealthy';
  error?: string;
}

export interface PingResult {
  ok: boolean;
  /** Shown in the 400 answer when !ok. */
  message?: string;
}

function normalizeUrlKey(url: string): string {
  return url.trim().replace(/\/+$/, '').toLowerCase();
}

export interface StateOptions {
  adminPassword: string;
  version?: string;
  /** Harbor creates the public `library` project at install; default true. */
  seedLibrary?: boolean;
}

export class HarborState {
  harborVersion: string;
  adminPassword: string;
  readonly registries = new Map<number, RegistryRecord>();
  readonly projects = new Map<number, ProjectRecord>();
  readonly quotas = new Map<number, QuotaRecord>();
  readonly retentions = new Map<number, RetentionRecord>();
  readonly users = new Map<number, UserRecord>();
  readonly configuration = defaultConfiguration();
  /** CONFIG_OVERWRITE_JSON mode: every setting read-only, PUT /configurations answers 403. */
  configurationReadOnly = false;
  readonly componentHealth = new Map<string, HealthOverride>();
  /** Upstream registries the fake "pings" (key: URL without trailing slash, lower case). */
  private readonly upstreams = new Map<string, PingResult>();
  /** Default ping result of an upstream that was not configured. */
  upstreamDefault: PingResult = { ok: true };
  private readonly oidcEndpoints = new Map<string, PingResult>();
  oidcDefault: PingResult = { ok: true };
  // user ids 1 (admin) and 2 (anonymous) exist in every Harbor.
  private readonly seq: Record<SequenceKind, number> = { registry: 0, project: 0, quota: 0, retention: 0, user: 2, allowlist: 0 };
  /** Clock used for creation/update times; replace for deterministic output. */
  now: () => Date = () => new Date();

  constructor(options: StateOptions) {
    this.adminPassword = options.adminPassword;
    this.harborVersion = options.version ?? DEFAULT_HARBOR_VERSION;
    const t = this.timestamp();
    this.users.set(1, {
      user_id: 1,
      username: 'admin',
      password: options.adminPassword,
      sysadmin_flag: true,
      email: 'admin@example.com',
      realname: 'system admin',
      comment: 'admin user',
      creation_time: t,
      update_time: t,
    });
    if (options.seedLibrary ?? true) this.createProject({ name: 'library', ownerId: 1, metadata: { public: 'true' }, storageLimit: -1 });
  }

  timestamp(): string {
    return this.now().toISOString();
  }

  nextId(kind: SequenceKind): number {
    this.seq[kind] += 1;
    return this.seq[kind];
  }

  // ------------------------------------------------------------ hooks for tests

  /** Makes creating/updating/pinging a registry with this URL fail (or succeed again). */
  setUpstreamHealth(url: string, ok: boolean, message?: string): void {
    this.upstreams.set(normalizeUrlKey(url), message === undefined ? { ok } : { ok, message });
  }

  upstreamPing(url: string): PingResult {
    return this.upstreams.get(normalizeUrlKey(url)) ?? this.upstreamDefault;
  }

  /** Result of POST /system/oidc/ping for this endpoint URL. */
  setOidcPing(url: string, ok: boolean, message?: string): void {
    this.oidcEndpoints.set(normalizeUrlKey(url), message === undefined ? { ok } : { ok, message });
  }

  oidcPing(url: string): PingResult {
    return this.oidcEndpoints.get(normalizeUrlKey(url)) ?? this.oidcDefault;
  }

  /** GET /health reports this component (one of HEALTH_COMPONENTS, or a new one) as given. */
  setComponentHealth(name: string, status: 'healthy' | 'unhealthy', error?: string): void {
    this.componentHealth.set(name, error === undefined ? { status } : { status, error });
  }

  /** Adds a local user; from then on auth_mode can no longer change. */
  addUser(user: { username: string; password?: string; sysadmin?: boolean; email?: string }): UserRecord {
    for (const u of this.users.values()) if (u.username === user.username) throw new Error(`user ${user.username} exists`);
    const t = this.timestamp();
    const rec: UserRecord = {
      user_id: this.nextId('user'),
      username: user.username,
      password: user.password ?? 'Harbor12345',
      sysadmin_flag: user.sysadmin ?? false,
      email: user.email ?? `${user.username}@example.com`,
      realname: user.username,
      comment: '',
      creation_time: t,
      update_time: t,
    };
    this.users.set(rec.user_id, rec);
    return rec;
  }

  /** Users other than admin (Harbor's rule for changing auth_mode counts these). */
  otherUserCount(): number {
    let n = 0;
    for (const u of this.users.values()) if (u.user_id !== 1) n++;
    return n;
  }

  /** Pushes a repository into a project (by name or id): DELETE on it then answers 412. */
  addRepository(project: string | number, repository: string): void {
    const p = this.findProject(project);
    if (!p) throw new Error(`no project ${project}`);
    if (!p.repositories.includes(repository)) p.repositories.push(repository);
  }

  removeRepositories(project: string | number): void {
    const p = this.findProject(project);
    if (p) p.repositories.length = 0;
  }

  /** Sets a project's used storage (bytes) as seen in its quota. */
  setStorageUsed(project: string | number, bytes: number): void {
    const p = this.findProject(project);
    const q = p ? this.quotaOfProject(p.project_id) : undefined;
    if (!q) throw new Error(`no quota for project ${project}`);
    q.used.storage = bytes;
  }

  // ------------------------------------------------------------ lookups

  findProject(key: string | number): ProjectRecord | undefined {
    if (typeof key === 'number') return this.projects.get(key);
    for (const p of this.projects.values()) if (p.name === key) return p;
    return undefined;
  }

  findRegistryByName(name: string): RegistryRecord | undefined {
    for (const r of this.registries.values()) if (r.name === name) return r;
    return undefined;
  }

  quotaOfProject(projectId: number): QuotaRecord | undefined {
    for (const q of this.quotas.values()) if (q.reference === 'project' && q.reference_id === String(projectId)) return q;
    return undefined;
  }

  projectsUsingRegistry(registryId: number): ProjectRecord[] {
    return [...this.projects.values()].filter((p) => p.registry_id === registryId);
  }

  userByName(name: string): UserRecord | undefined {
    for (const u of this.users.values()) if (u.username === name) return u;
    return undefined;
  }

  // ------------------------------------------------------------ mutations shared with the handlers

  createProject(p: {
    name: string;
    ownerId: number;
    metadata: Record<string, string>;
    registryId?: number;
    storageLimit?: number;
    allowlist?: Array<{ cve_id: string }>;
    allowlistExpiresAt?: number | null;
  }): ProjectRecord {
    const t = this.timestamp();
    const id = this.nextId('project');
    const rec: ProjectRecord = {
      project_id: id,
      name: p.name,
      owner_id: p.ownerId,
      registry_id: p.registryId ?? 0,
      metadata: { ...p.metadata },
      cve_allowlist: {
        id: this.nextId('allowlist'),
        project_id: id,
        items: [...(p.allowlist ?? [])],
        expires_at: p.allowlistExpiresAt ?? null,
        creation_time: t,
        update_time: t,
      },
      repositories: [],
      creation_time: t,
      update_time: t,
    };
    this.projects.set(id, rec);
    if (p.storageLimit !== undefined) {
      const q: QuotaRecord = {
        id: this.nextId('quota'),
        reference: 'project',
        reference_id: String(id),
        hard: { storage: p.storageLimit },
        used: { storage: 0 },
        creation_time: t,
        update_time: t,
      };
      this.quotas.set(q.id, q);
    }
    if (rec.registry_id > 0) {
      // Harbor gives every proxy-cache project a "7 days since last pull" retention policy.
      const r: RetentionRecord = { id: this.nextId('retention'), project_id: id, days: 7 };
      this.retentions.set(r.id, r);
      rec.metadata.retention_id = String(r.id);
    }
    return rec;
  }

  deleteProject(id: number): void {
    const q = this.quotaOfProject(id);
    if (q) this.quotas.delete(q.id);
    for (const r of [...this.retentions.values()]) if (r.project_id === id) this.retentions.delete(r.id);
    this.projects.delete(id);
  }
}
