import type { Module } from '../types.js';
import { aptModule } from './apt.js';
import { backupModule, restoreModule } from './backup.js';
import { certificateModule } from './certificate.js';
import { commandModule } from './command.js';
import { copyModule } from './copy.js';
import { dexStaticClientModule } from './dex_static_client.js';
import { directoryModule } from './directory.js';
import { fileModule } from './file.js';
import { flushHandlersModule } from './flush_handlers.js';
import { getUrlModule } from './get_url.js';
import { groupModule } from './group.js';
import { harborConfigModule } from './harbor_config.js';
import { harborProjectModule } from './harbor_project.js';
import { harborPruneModule } from './harbor_prune.js';
import { harborRegistryModule } from './harbor_registry.js';
import { preflightModule } from './preflight.js';
import { serviceModule } from './service.js';
import { templateModule } from './template.js';
import { userModule } from './user.js';
import { waitForModule } from './wait_for.js';
import { registryCaModule } from './registry_ca.js';
import { containerdHostsModule } from './containerd_hosts.js';
import { containerdConfigModule } from './containerd_config.js';
import { containersMirrorsModule } from './containers_mirrors.js';
import { dockerMirrorModule } from './docker_mirror.js';

// Each module's arguments are validated by schemas/modules/<schema>.json before its plan step.
const MODULES: Module<never>[] = [
  preflightModule,
  groupModule,
  userModule,
  directoryModule,
  fileModule,
  templateModule,
  copyModule,
  getUrlModule,
  commandModule,
  serviceModule,
  aptModule,
  waitForModule,
  flushHandlersModule,
  harborRegistryModule,
  harborProjectModule,
  harborPruneModule,
  harborConfigModule,
  certificateModule,
  backupModule,
  restoreModule,
  // cluster nodes (roles node_trust, node_mirror)
  registryCaModule,
  containerdHostsModule,
  containerdConfigModule,
  containersMirrorsModule,
  dockerMirrorModule,
  dexStaticClientModule,
] as unknown as Module<never>[];

const byName = new Map(MODULES.map((m) => [m.name, m as unknown as Module]));

export function getModule(name: string): Module | undefined {
  return byName.get(name);
}

export function moduleNames(): string[] {
  return [...byName.keys()].sort();
}
