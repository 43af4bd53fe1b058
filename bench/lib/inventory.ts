// The two inventories of the same hosts: host 1 is the cache VM and every host
// is a node. Pure: text in, text out.

export interface BenchHost {
  name: string;
  address: string;
}

export interface Access {
  keyFile: string;
  knownHosts: string;
}

/** berth: inventories/bench/hosts.yml and group_vars/all.yml. */
export function berthInventory(hosts: readonly BenchHost[], access: Access): { hostsYml: string; allYml: string } {
  if (!hosts.length) throw new Error('no hosts');
  const line = (h: BenchHost) => `        ${h.name}: { berth_host: ${h.address} }`;
  const hostsYml = ['all:', '  children:', '    cache:', '      hosts:', line(hosts[0]!), '    nodes:', '      hosts:', ...hosts.map(line), ''].join('\n');
  const allYml = [
    'berth_user: root',
    `berth_key_file: ${access.keyFile}`,
    `berth_known_hosts: ${access.knownHosts}`,
    'berth_connect_timeout: 30',
    '',
  ].join('\n');
  return { hostsYml, allYml };
}

/** Ansible: an INI inventory with the same groups, key and known_hosts file. */
export function ansibleInventory(hosts: readonly BenchHost[], access: Access): string {
  if (!hosts.length) throw new Error('no hosts');
  const line = (h: BenchHost) => `${h.name} ansible_host=${h.address}`;
  return [
    '[cache]',
    line(hosts[0]!),
    '',
    '[nodes]',
    ...hosts.map(line),
    '',
    '[all:vars]',
    'ansible_user=root',
    `ansible_ssh_private_key_file=${access.keyFile}`,
    `ansible_ssh_common_args='-o UserKnownHostsFile=${access.knownHosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ConnectTimeout=30'`,
    '',
  ].join('\n');
}
