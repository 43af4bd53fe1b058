// The Harbor fake for tests: see README.md in this folder.
export { startHarborFake, assertLoopbackHost, API_BASE } from './server.js';
export type { HarborFake, HarborFakeOptions, Violation, ViolationKind, RequestLogEntry, FaultSpec, FaultAction, FaultHandle, RouteScope, CorruptionSpec } from './server.js';
export {
  HARBOR_SWAGGER,
  HarborContract,
  contractUnavailableNotice,
  defaultContractAttempts,
  loadHarborContract,
  loadHarborContractWithReport,
  rawGitHubUrl,
} from './contract.js';
export type { ContractAttempt, ContractSource, LoadContractOptions } from './contract.js';
export { HarborState, DEFAULT_HARBOR_VERSION, PROXY_CACHE_TYPES, REGISTRY_TYPES, proxyCacheTypesOf } from './state.js';
export { UNDOCUMENTED_HARBOR_STATUSES } from './handlers.js';
