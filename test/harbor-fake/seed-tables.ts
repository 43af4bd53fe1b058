/**
 * The seed tables of SPEC-SKETCH as group_vars YAML: four registry
 * endpoints, their four proxy-cache projects, one private project and dex's
 * OIDC settings. The unit and e2e suites of the harbor_api role both start
 * from it; each names the environment variables its two secrets come from.
 */
export function seedTables(secretEnv: { gcr: string; dex: string }): string {
  return `registries:
  docker_hub: { type: docker-hub, url: "https://hub.docker.com" }
  gcr.io:
    type: docker-registry
    url: https://gcr.io
    credential: { access_key: _json_key, access_secret: { secret_env: ${secretEnv.gcr} } }
  k8s.gcr.io: { type: docker-registry, url: "https://k8s.gcr.io" }
  quay.io: { type: docker-registry, url: "https://quay.io" }
projects:
  proxy.docker.io: { public: true, quota: -1, proxy: docker_hub, mirrors: docker.io }
  proxy.gcr.io: { public: true, quota: -1, proxy: gcr.io, mirrors: gcr.io }
  proxy.k8s.gcr.io: { public: true, quota: -1, proxy: k8s.gcr.io, mirrors: k8s.gcr.io }
  proxy.quay.io: { public: true, quota: -1, proxy: quay.io, mirrors: quay.io }
  number-crunch: { public: false }
oidc:
  provider_name: dex
  endpoint: https://dex.example.com
  client_id: harbor-cache-oidc-dex
  client_secret: { secret_env: ${secretEnv.dex} }
  groups_claim: groups
  admin_group: cluster_admins
  scope: [openid, profile, email, groups, offline_access]
  verify_cert: true
  auto_onboard: false
`;
}

/**
 * What Harbor holds once the seed tables are applied, in the spec's terms
 * (Harbor's own `library` project included). `secrets`: the values of the two
 * secrets, for a view that can see them (the fake's records); without it the
 * view is the API's, which never returns them.
 */
export function seededHarbor(secrets?: { gcr: string; dex: string }) {
  return {
    registries: {
      docker_hub: { type: 'docker-hub', url: 'https://hub.docker.com' },
      'gcr.io': { type: 'docker-registry', url: 'https://gcr.io', key: '_json_key', ...(secrets ? { secret: secrets.gcr } : {}) },
      'k8s.gcr.io': { type: 'docker-registry', url: 'https://k8s.gcr.io' },
      'quay.io': { type: 'docker-registry', url: 'https://quay.io' },
    },
    projects: {
      library: { public: true, quota: -1 },
      'proxy.docker.io': { public: true, proxy: 'docker_hub', quota: -1 },
      'proxy.gcr.io': { public: true, proxy: 'gcr.io', quota: -1 },
      'proxy.k8s.gcr.io': { public: true, proxy: 'k8s.gcr.io', quota: -1 },
      'proxy.quay.io': { public: true, proxy: 'quay.io', quota: -1 },
      'number-crunch': { public: false, quota: -1 },
    },
    config: {
      auth_mode: 'oidc_auth',
      oidc_name: 'dex',
      oidc_endpoint: 'https://dex.example.com',
      oidc_client_id: 'harbor-cache-oidc-dex',
      ...(secrets ? { oidc_client_secret: secrets.dex } : {}),
      oidc_groups_claim: 'groups',
      oidc_admin_group: 'cluster_admins',
      oidc_scope: 'openid,profile,email,groups,offline_access',
      oidc_verify_cert: true,
      oidc_auto_onboard: false,
      self_registration: false,
      project_creation_restriction: 'adminonly',
    },
  };
}

/** The plan of the seed tables against an empty Harbor, as `<action> <resource>`. */
export const SEED_PLAN = [
  'create harbor registry docker_hub',
  'create harbor registry gcr.io',
  'create harbor registry k8s.gcr.io',
  'create harbor registry quay.io',
  'create harbor project proxy.docker.io',
  'create harbor project proxy.gcr.io',
  'create harbor project proxy.k8s.gcr.io',
  'create harbor project proxy.quay.io',
  'create harbor project number-crunch',
  'update harbor configuration system',
  'update harbor configuration oidc',
];
