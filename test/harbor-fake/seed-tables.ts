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
