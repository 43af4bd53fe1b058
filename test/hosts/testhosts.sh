#!/usr/bin/env bash
# testhosts.sh - N real, SSH-reachable Debian 12 (bookworm) hosts on one machine,
# for berth's end-to-end tests (adapted from the workplace recipe; owned here).
#
# Each host is a systemd-nspawn container that boots real systemd as PID 1
# (`--boot`), shares this machine's network namespace, and runs sshd listening
# ONLY on its own loopback address 127.0.0.(10+i). Its root filesystem is an
# overlay: a shared, read-only, cached base (built once with mmdebstrap) plus a
# per-host upper directory, so a host starts in ~0.5 s and is reset by wiping
# its upper directory.
#
#   testhosts.sh build [--force]   build (or reuse) the cached rootfs + SSH key
#   testhosts.sh up N              start hosts 1..N (fresh), wait for SSH, print inventory
#   testhosts.sh down [--purge]    stop every host this script started (by PID)
#   testhosts.sh reset I [I...]    stop host(s) I, wipe their state, start them again
#   testhosts.sh reset all         same, for every host that is up
#   testhosts.sh status            list hosts and whether they are running
#   testhosts.sh inventory         print the inventory of the running hosts again
#   testhosts.sh ssh I [CMD...]    ssh to host I as root
#   testhosts.sh exec I CMD...     run CMD in host I via nsenter (works when sshd is broken)
#
# Host i (1-based): machine name testhost<i>, address 127.0.0.(10+i), user root,
# key $TESTHOSTS_CACHE/id_ed25519. Files written by `up` under $TESTHOSTS_STATE:
#   inventory.tsv   name<TAB>address<TAB>port<TAB>user<TAB>keyfile
#   inventory.json  same as JSON
#   ssh_config      `ssh -F $TESTHOSTS_STATE/ssh_config testhost1`
#   known_hosts     host keys (all hosts share the base image's host keys)
#   hosts/<name>/upper        the host's writable layer (inspect files from outside)
#   hosts/<name>/console.log  the host's boot console
#
# Environment:
#   TESTHOSTS_CACHE   where the rootfs tarball, extracted base and key live
#                     (default /var/cache/berth-testhosts; shared by every
#                     set of hosts, so `build` takes a lock on it)
#   TESTHOSTS_STATE   per-run state (default /tmp/berth-testhosts)
#   TESTHOSTS_MIRROR  Debian mirror (default: the first bookworm URI in this
#                     machine's own apt sources)
#   TESTHOSTS_BOOT_TIMEOUT  seconds to wait for SSH per host (default 90)
#   TESTHOSTS_PRIVATE_NET   indices of hosts that get their own network
#                     namespace (only `lo`), e.g. "3 4". Such a host has
#                     CAP_NET_ADMIN, so docker/containerd can run containers in
#                     it, and docker.service is enabled; it cannot reach the
#                     package mirrors. Its SSH port is forwarded from
#                     127.0.0.(10+i):22 on this machine by a socat process
#                     (one nsenter+socat per connection).
#   TESTHOSTS_ADDR_OFFSET   host i listens on 127.0.0.(offset+i) (default 10)
#   TESTHOSTS_PREFIX        machine names <prefix><i> (default testhost); two
#                     sets of hosts (say, the demo and the tests) run side by
#                     side with different prefixes, offsets and state dirs
#   TESTHOSTS_STOP=kill     stop hosts with SIGKILL instead of a clean poweroff
#   TESTHOSTS_CGROUP=hybrid keep nspawn's default cgroup layout (see start_host)
#   TESTHOSTS_NSPAWN_ARGS   extra systemd-nspawn arguments (word-split)
#
# Network safety: nothing here listens anywhere but 127.0.0.0/8. sshd gets an
# explicit `ListenAddress 127.0.0.(10+i)`, and a drop-in on ssh.service refuses
# to start sshd if its effective config (`sshd -T`) would listen on any
# non-loopback address (e.g. if a test rewrites sshd_config without the
# Include of sshd_config.d). Timers that would reach the network (apt-daily,
# timesyncd) are masked in the image.
#
# Containers inside a host: /var/lib/containerd and /var/lib/docker are per-host
# bind mounts on the real disk (an overlayfs root cannot hold overlay snapshots),
# the host gets a writable cgroup2 tree (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1) and
# the keyring and bpf syscalls that runc needs. A shared-network host has no
# CAP_NET_ADMIN, so runc there only runs containers without their own network
# namespace (`ctr run --net-host --cpu-shares 0 ...`); on a TESTHOSTS_PRIVATE_NET
# host `docker run --network none|host` and docker-compose work.
#
# Needs root. Tested on Debian 12 with systemd 252 where PID 1 is NOT systemd
# and cgroups are the hybrid v1+v2 layout (this workplace's machines).

set -euo pipefail

CACHE=${TESTHOSTS_CACHE:-/var/cache/berth-testhosts}
STATE=${TESTHOSTS_STATE:-/tmp/berth-testhosts}
BOOT_TIMEOUT=${TESTHOSTS_BOOT_TIMEOUT:-90}
SUITE=bookworm
ADDR_OFFSET=${TESTHOSTS_ADDR_OFFSET:-10}   # host i -> 127.0.0.(ADDR_OFFSET+i)
MAX_HOSTS=200
NAME_PREFIX=${TESTHOSTS_PREFIX:-testhost}
CG_PARENT=testhosts       # cgroup directory that holds one child per host

# Packages on top of mmdebstrap's minbase. containerd pulls in runc;
# skopeo pulls in containers-common (/etc/containers/registries.conf).
# docker.io + docker-compose (v1; bookworm has no `docker compose` v2 plugin)
# are installed but docker is disabled: only private-network hosts enable it
# (see TESTHOSTS_PRIVATE_NET), because containers need CAP_NET_ADMIN.
PACKAGES=(
  systemd systemd-sysv dbus libpam-systemd
  openssh-server sudo openssl ca-certificates iproute2 procps
  less curl python3 direnv
  containerd skopeo docker-registry
  docker.io docker-compose
)

BASE=$CACHE/rootfs          # extracted base: overlay lower dir
TARBALL=$CACHE/rootfs.tar   # cached mmdebstrap output (customised)
KEY=$CACHE/id_ed25519       # root's SSH key for every host

# The mirror this machine's apt already uses (deb822 or one-line sources).
default_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { printf '[testhosts] ERROR: no Debian mirror in apt sources; set TESTHOSTS_MIRROR\n' >&2; exit 1; }
  echo "$uri"
}
MIRROR=${TESTHOSTS_MIRROR:-}   # resolved by cmd_build: only a build needs it

log() { printf '[testhosts] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

name_of() { echo "$NAME_PREFIX$1"; }
addr_of() { echo "127.0.0.$((ADDR_OFFSET + $1))"; }
hdir_of() { echo "$STATE/hosts/$(name_of "$1")"; }

SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o ConnectTimeout=2)

# --------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------

ensure_host_tools() {
  local missing=()
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v socat >/dev/null || missing+=(socat)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # --no-install-recommends: systemd-container recommends libnss-mymachines,
    # which would add 'mymachines' to this machine's /etc/nsswitch.conf.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Runs inside mmdebstrap's customize hook, with $1 = the new root directory.
# Everything here is part of the recipe hash, so editing it rebuilds the cache.
customize_rootfs() {
  local root=$1
  # root logs in with the harness key only
  install -d -m 700 "$root/root/.ssh"
  install -m 600 "$KEY.pub" "$root/root/.ssh/authorized_keys"
  cat > "$root/etc/ssh/sshd_config.d/00-testhosts.conf" <<'EOF'
# testhosts: root by key only, fast logins. The per-host ListenAddress is in
# 10-listen.conf, written into each host's upper layer at start.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
  # Safety net: never let sshd listen on a non-loopback address (the hosts
  # share this machine's network namespace).
  cat > "$root/usr/local/sbin/testhosts-sshd-loopback-check" <<'EOF'
#!/bin/sh
# testhosts: fail if sshd's effective config would listen on a non-loopback address
/usr/sbin/sshd -T | awk '$1 == "listenaddress" && $2 !~ /^127\./ {
  print "testhosts: refusing to start sshd on non-loopback address " $2; bad = 1 } END { exit bad }'
EOF
  chmod 755 "$root/usr/local/sbin/testhosts-sshd-loopback-check"
  install -d "$root/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=/usr/local/sbin/testhosts-sshd-loopback-check\n' \
    > "$root/etc/systemd/system/ssh.service.d/10-testhosts-loopback-only.conf"
  # No network-reaching timers, no periodic disk jobs, no console getty.
  local u
  for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
           e2scrub_reap.service fstrim.timer systemd-timesyncd.service console-getty.service \
           getty@tty1.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
  done
  # Journal in memory only: less I/O into the overlay, faster boot.
  install -d "$root/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' > "$root/etc/systemd/journald.conf.d/testhosts.conf"
  ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
  # docker-registry (distribution v2, the stand-in for Harbor's /v2 in the node
  # tests): its packaged service would listen on every address of this
  # machine's network namespace. Masked; tests start it on 127.0.0.N themselves.
  ln -sf /dev/null "$root/etc/systemd/system/docker-registry.service"
  # docker: off by default (start_host enables it on private-network hosts).
  # No default bridge / iptables: nothing gets a non-loopback address unless a
  # test creates a network itself.
  rm -f "$root/etc/systemd/system/multi-user.target.wants/docker.service" \
        "$root/etc/systemd/system/sockets.target.wants/docker.socket"
  install -d "$root/etc/docker"
  printf '{\n  "bridge": "none",\n  "iptables": false,\n  "ip6tables": false\n}\n' > "$root/etc/docker/daemon.json"
  : > "$root/etc/machine-id"         # nspawn supplies one per boot
  echo localhost > "$root/etc/hostname"
  echo 'LANG=C.UTF-8' > "$root/etc/default/locale"   # else pam_env complains at every login
  echo "testhosts image built $(date -u +%FT%TZ)" > "$root/etc/testhosts-release"
}

recipe_hash() {
  # the key is baked into the image, so a new key means a new image
  { printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[@]}"; declare -f customize_rootfs; cat "$KEY.pub"; } | sha256sum | cut -c1-16
}

# True if any systemd-nspawn on this machine (from any state dir or prefix)
# runs on the extracted base: replacing it would pull the root from under it.
base_in_use() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    { tr '\0' ' ' < "$f"; } 2>/dev/null | grep -q -- "^systemd-nspawn .*--directory=$BASE " && return 0
  done
  return 1
}

cmd_build() {
  need_root
  local force=0; [ "${1:-}" = --force ] && force=1
  ensure_host_tools
  [ -n "$MIRROR" ] || MIRROR=$(default_mirror)
  mkdir -p "$CACHE"
  # The cache is shared by every set of hosts (tests, demo, other shells):
  # two concurrent builds would write the same tarball. fd 9 is closed again
  # below so that the hosts `up` starts next do not inherit (and hold) it.
  exec 9> "$CACHE/.build.lock"
  flock -w 900 9 || die "another build has held $CACHE/.build.lock for 15 min"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C testhosts -f "$KEY"
  local hash; hash=$(recipe_hash)
  if [ $force = 1 ] || [ ! -f "$TARBALL" ] || [ "$(cat "$TARBALL.recipe" 2>/dev/null)" != "$hash" ]; then
    local t0; t0=$(now)
    log "building $SUITE rootfs with mmdebstrap (recipe $hash) ..."
    export TESTHOSTS_SELF; TESTHOSTS_SELF=$(readlink -f "$0")
    export TESTHOSTS_CACHE=$CACHE
    rm -f "$TARBALL.tmp"
    mmdebstrap --variant=minbase --mode=root --format=tar \
      --include="$(IFS=,; echo "${PACKAGES[*]}")" \
      --customize-hook='bash "$TESTHOSTS_SELF" _customize "$1"' \
      "$SUITE" "$TARBALL.tmp" "$MIRROR" > "$CACHE/build.log" 2>&1 \
      || { tail -20 "$CACHE/build.log" >&2; die "mmdebstrap failed (log: $CACHE/build.log)"; }
    mv "$TARBALL.tmp" "$TARBALL"
    echo "$hash" > "$TARBALL.recipe"
    log "rootfs tarball built in $(elapsed "$t0") s: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
  else
    log "rootfs tarball is cached: $TARBALL (recipe $hash)"
  fi
  if [ ! -d "$BASE" ] || [ "$(cat "$BASE.recipe" 2>/dev/null)" != "$hash" ]; then
    base_in_use && die "hosts are running on the old base $BASE; stop them ('down') first"
    local t0; t0=$(now)
    rm -rf "$BASE" "$BASE.tmp"; mkdir -p "$BASE.tmp"
    tar -C "$BASE.tmp" --numeric-owner -xf "$TARBALL"
    mv "$BASE.tmp" "$BASE"
    echo "$hash" > "$BASE.recipe"
    log "base extracted in $(elapsed "$t0") s: $BASE"
  fi
  exec 9>&-
}

# --------------------------------------------------------------------------
# cgroups: nspawn (with --keep-unit, needed when PID 1 is not systemd) puts the
# container under the cgroup it was started in, as <cg>/payload and
# <cg>/supervisor. Started from the root cgroup, two containers would share
# /payload and their systemds would fight over /payload/system.slice/... (a
# `systemctl stop ssh` in one host would kill the other host's sshd). So each
# host's nspawn is first moved into its own cgroup, in the name=systemd and
# unified hierarchies, and (for measuring) its own memory cgroup.
# --------------------------------------------------------------------------

host_has_systemd() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm)" = systemd ]; }

# Prints the directories (one per hierarchy) of this host's cgroup.
host_cgroups() {
  local name=$1 line hier path mnt
  while IFS= read -r line; do
    hier=${line#*:}; hier=${hier%%:*}; path=${line#*:*:}
    case $hier in
      name=systemd) mnt=/sys/fs/cgroup/systemd ;;
      memory)       mnt=/sys/fs/cgroup/memory ;;
      "")           if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then mnt=/sys/fs/cgroup/unified
                    else mnt=/sys/fs/cgroup; fi ;;
      *) continue ;;
    esac
    [ -f "$mnt/cgroup.procs" ] || continue
    path=${path%/}
    # strip our own per-host suffix if we are already inside one
    path=${path%/$CG_PARENT/*}
    echo "$mnt$path/$CG_PARENT/$name"
  done < /proc/self/cgroup
}

enter_host_cgroups() {   # moves the calling shell ($BASHPID) into host $1's cgroups
  local d
  for d in $(host_cgroups "$1"); do
    mkdir -p "$d" && echo "$BASHPID" > "$d/cgroup.procs" || log "warning: could not enter cgroup $d"
  done
}

remove_host_cgroups() {
  local d
  for d in $(host_cgroups "$1"); do
    [ -d "$d" ] || continue
    # depth-first rmdir of the (now empty) tree nspawn and the host's systemd left
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    rmdir "$(dirname "$d")" 2>/dev/null || true   # the testhosts/ parent, once empty
  done
}

host_mem_bytes() {  # RSS+cache charged to host $1 (v1 memory cgroup), or empty
  local d
  for d in $(host_cgroups "$1"); do
    case $d in /sys/fs/cgroup/memory/*) [ -f "$d/memory.usage_in_bytes" ] && cat "$d/memory.usage_in_bytes";; esac
  done
}

# --------------------------------------------------------------------------
# hosts
# --------------------------------------------------------------------------

# PID of host $1's systemd-nspawn if it is running (checked against the
# recorded PID *and* its command line, so a recycled PID is never touched).
host_pid() {
  local f; f=$(hdir_of "$1")/pid
  [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] || return 1
  { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "--machine=$(name_of "$1") " || return 1
  echo "$pid"
}

started_indices() {  # indices of hosts that have a state dir
  local d
  for d in "$STATE"/hosts/"$NAME_PREFIX"*; do
    [ -d "$d" ] && echo "${d##*/"$NAME_PREFIX"}"
  done | sort -n
}


start_host() {   # start_host I [private]
  local i=$1 private=${2:-} name addr hdir
  is_private_net "$i" && private=private
  name=$(name_of "$i"); addr=$(addr_of "$i"); hdir=$(hdir_of "$i")
  if host_pid "$i" >/dev/null; then log "$name already running"; return 0; fi
  # fresh writable layer every start
  rm -rf "$hdir"; mkdir -p "$hdir/upper/etc/ssh/sshd_config.d" "$hdir/containerd" "$hdir/docker"
  echo "ListenAddress $addr" > "$hdir/upper/etc/ssh/sshd_config.d/10-listen.conf"
  echo "$name" > "$hdir/upper/etc/hostname"
  printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$addr" "$name" > "$hdir/upper/etc/hosts"
  local netargs=()
  if [ "$private" = private ]; then
    netargs=(--private-network)
    install -d "$hdir/upper/etc/systemd/system/multi-user.target.wants"
    ln -s /lib/systemd/system/docker.service "$hdir/upper/etc/systemd/system/multi-user.target.wants/docker.service"
    touch "$hdir/private-net"
  fi
  (
    host_has_systemd || enter_host_cgroups "$name"
    # Give the container a writable, namespaced cgroup2 tree (the default on
    # this machine's hybrid layout is read-only v1 controllers, where runc
    # fails with "mkdir /sys/fs/cgroup/cpuset/default: read-only file system").
    # TESTHOSTS_CGROUP=hybrid keeps nspawn's default.
    [ "${TESTHOSTS_CGROUP:-unified}" = unified ] && export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    local extra=(--keep-unit)
    host_has_systemd && extra=()   # with systemd as PID 1, nspawn makes its own scope
    # --register=no: no systemd-machined here. No --private-network: the host
    # shares this machine's network namespace and sshd binds 127.0.0.x only.
    # --console=read-only: the boot console goes to console.log.
    exec setsid systemd-nspawn --quiet --boot --register=no "${extra[@]}" \
      --machine="$name" --hostname="$name" \
      --directory="$BASE" --overlay="$BASE:$hdir/upper:/" \
      --console=read-only --setenv=SYSTEMD_COLORS=0 \
      --bind="$hdir/containerd:/var/lib/containerd" --bind="$hdir/docker:/var/lib/docker" \
      --system-call-filter='@keyring bpf' \
      "${netargs[@]}" ${TESTHOSTS_NSPAWN_ARGS:-} \
      --resolv-conf=copy-host --timezone=off \
      > "$hdir/console.log" 2>&1 < /dev/null
  ) &
  local pid=$! n=0
  echo "$pid" > "$hdir/pid"
  # wait until the subshell has exec'd nspawn (host_pid matches its command line)
  until host_pid "$i" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "$name: systemd-nspawn exited at once: $(cat "$hdir/console.log" 2>/dev/null)"
    [ $n -lt 100 ] || die "$name: systemd-nspawn did not start"
    sleep 0.02; n=$((n+1))
  done
  [ -f "$hdir/private-net" ] && start_forwarder "$i"
  return 0
}

is_private_net() { local j; for j in ${TESTHOSTS_PRIVATE_NET:-}; do [ "$j" = "$1" ] && return 0; done; return 1; }

# A private-network host's sshd listens on 127.0.0.(10+i):22 inside its own
# network namespace; socat listens on the same address in this machine's
# namespace and, per connection, enters the host's namespace (nsenter -n) to
# connect to it. Loopback only on both sides.
start_forwarder() {
  local i=$1 addr hdir pid init n=0
  addr=$(addr_of "$i"); hdir=$(hdir_of "$i"); pid=$(host_pid "$i")
  until init=$(cut -d' ' -f1 "/proc/$pid/task/$pid/children" 2>/dev/null) && [ -n "$init" ]; do
    [ $n -lt 250 ] || die "$(name_of "$i"): container init did not appear"; sleep 0.02; n=$((n+1))
  done
  setsid socat "TCP-LISTEN:22,bind=$addr,reuseaddr,fork" \
    "EXEC:nsenter -t $init -n socat STDIO TCP\:$addr\:22" > "$hdir/forwarder.log" 2>&1 < /dev/null &
  echo $! > "$hdir/forwarder.pid"
}

stop_forwarder() {
  local f pid; f=$(hdir_of "$1")/forwarder.pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "bind=$(addr_of "$1"),"; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

wait_ssh() {  # waits until `ssh root@addr true` works for host $1
  local i=$1 addr deadline
  addr=$(addr_of "$i"); deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
  until ssh "${SSH_OPTS[@]}" -i "$KEY" "root@$addr" true 2>/dev/null; do
    if ! host_pid "$i" >/dev/null; then
      log "$(name_of "$i") died while booting; console:"; tail -20 "$(hdir_of "$i")/console.log" >&2; return 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { log "$(name_of "$i"): no SSH after ${BOOT_TIMEOUT}s"; return 1; }
    sleep 0.1
  done
}

# Stops host $1: SIGTERM to nspawn makes it power the container off cleanly
# (systemd runs its shutdown); with TESTHOSTS_STOP=kill (or after 20 s) the
# container's init gets SIGKILL instead, which tears down the whole PID
# namespace at once. Liveness is checked with host_pid (command line), not
# kill -0: nspawn's parent may be an init that reaps zombies late.
stop_host() {
  local i=$1 pid name init
  name=$(name_of "$i")
  stop_forwarder "$i"
  pid=$(host_pid "$i") || { remove_host_cgroups "$name"; return 0; }
  init=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | cut -d' ' -f1)
  if [ "${TESTHOSTS_STOP:-poweroff}" = kill ] && [ -n "$init" ]; then
    kill -KILL "$init" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  local n=0
  while host_pid "$i" >/dev/null && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done
  if host_pid "$i" >/dev/null; then
    log "$name did not stop in 20 s; killing it"
    [ -n "$init" ] && kill -KILL "$init" 2>/dev/null || true
    sleep 0.5
    kill -KILL "$pid" 2>/dev/null || true
    n=0
    while host_pid "$i" >/dev/null; do
      [ $n -lt 200 ] || { log "$name: nspawn $pid survived SIGKILL for 10 s; leaving it"; return 1; }
      sleep 0.05; n=$((n+1))
    done
  fi
  remove_host_cgroups "$name"
}

write_inventory() {
  local i name addr first=1
  mkdir -p "$STATE"
  : > "$STATE/inventory.tsv"; : > "$STATE/ssh_config"
  {
    echo '{"hosts": ['
    for i in $(started_indices); do
      host_pid "$i" >/dev/null || continue
      name=$(name_of "$i"); addr=$(addr_of "$i")
      printf '%s\t%s\t22\troot\t%s\n' "$name" "$addr" "$KEY" >> "$STATE/inventory.tsv"
      printf 'Host %s\n  HostName %s\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n\n' \
        "$name" "$addr" "$KEY" "$STATE/known_hosts" >> "$STATE/ssh_config"
      [ $first = 1 ] || echo ','
      printf '  {"name": "%s", "address": "%s", "port": 22, "user": "root", "keyFile": "%s"}' "$name" "$addr" "$KEY"
      first=0
    done
    printf '\n]}\n'
  } > "$STATE/inventory.json"
  # every host has the base image's host keys
  local k
  : > "$STATE/known_hosts"
  for k in "$BASE"/etc/ssh/ssh_host_*_key.pub; do
    printf '127.0.0.*,%s* %s\n' "$NAME_PREFIX" "$(cut -d' ' -f1,2 "$k")" >> "$STATE/known_hosts"
  done
}

print_inventory() {
  printf '# name\taddress\tport\tuser\tkey\n'
  cat "$STATE/inventory.tsv"
  printf '# ssh -F %s <name>   |   %s\n' "$STATE/ssh_config" "$STATE/inventory.json"
}

# All hosts' systemds share root's inotify quota (fs.inotify.max_user_instances,
# 128 by default). With ~10+ hosts it runs out and user@0.service (started by
# pam_systemd at each SSH login) fails with "Too many open files", leaving the
# host 'degraded'. Raise it (runtime only; it is not persisted).
ensure_sysctls() {
  local cur; cur=$(cat /proc/sys/fs/inotify/max_user_instances)
  if [ "$cur" -lt 8192 ]; then
    log "raising fs.inotify.max_user_instances $cur -> 8192"
    echo 8192 > /proc/sys/fs/inotify/max_user_instances
  fi
}

cmd_up() {
  need_root
  local n=${1:-}; [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_HOSTS ] || die "usage: up N (1..$MAX_HOSTS)"
  # the last host must still be a 127.0.0.N address (N <= 254)
  [ $((ADDR_OFFSET + n)) -le 254 ] || die "up $n with TESTHOSTS_ADDR_OFFSET=$ADDR_OFFSET would go past 127.0.0.254"
  cmd_build   # a no-op (a hash check) when the cache is current
  ensure_sysctls
  mkdir -p "$STATE/hosts"
  local t0 i pids=() fail=0; t0=$(now)
  for i in $(seq 1 "$n"); do start_host "$i"; done
  for i in $(seq 1 "$n"); do wait_ssh "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || fail=1; done
  write_inventory
  [ $fail = 0 ] || die "some hosts did not come up (see $STATE/hosts/*/console.log)"
  log "$n host(s) up in $(elapsed "$t0") s"
  print_inventory
}

cmd_down() {
  need_root
  local i pids=()
  for i in $(started_indices); do stop_host "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || true; done
  [ "${1:-}" = --purge ] && rm -rf "$STATE/hosts"
  [ -d "$STATE" ] && write_inventory
  log "all hosts stopped"
}

cmd_reset() {
  need_root
  ensure_sysctls
  [ $# -ge 1 ] || die "usage: reset I [I...] | reset all"
  local list=("$@") i t0 pids=() fail=0; t0=$(now)
  if [ "$1" = all ]; then list=(); for i in $(started_indices); do host_pid "$i" >/dev/null && list+=("$i"); done; fi
  local priv=()   # a host keeps its network mode across a reset
  for i in "${list[@]}"; do [ -f "$(hdir_of "$i")/private-net" ] && priv+=("$i"); done
  for i in "${list[@]}"; do stop_host "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || true; done
  for i in "${list[@]}"; do
    if [[ " ${priv[*]} " == *" $i "* ]]; then start_host "$i" private; else start_host "$i"; fi
  done
  pids=(); for i in "${list[@]}"; do wait_ssh "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || fail=1; done
  write_inventory
  [ $fail = 0 ] || die "some hosts did not come back"
  log "reset ${list[*]} in $(elapsed "$t0") s"
}

cmd_status() {
  local i pid mem
  for i in $(started_indices); do
    if pid=$(host_pid "$i"); then
      mem=$(host_mem_bytes "$(name_of "$i")")
      printf '%s\t%s\trunning\tnspawn-pid=%s\tmem=%sMiB%s\n' "$(name_of "$i")" "$(addr_of "$i")" "$pid" "$(( ${mem:-0} / 1048576 ))" "$([ -f "$(hdir_of "$i")/private-net" ] && printf "\tprivate-net")"
    else
      printf '%s\t%s\tstopped\n' "$(name_of "$i")" "$(addr_of "$i")"
    fi
  done
}

cmd_ssh() {
  local i=${1:?usage: ssh I [CMD...]}; shift
  exec ssh "${SSH_OPTS[@]}" -i "$KEY" "root@$(addr_of "$i")" "$@"
}

cmd_exec() {
  local i=${1:?usage: exec I CMD...} pid init; shift
  pid=$(host_pid "$i") || die "$(name_of "$i") is not running"
  init=$(cut -d' ' -f1 "/proc/$pid/task/$pid/children")
  [ -n "$init" ] || die "$(name_of "$i") has no init process yet"
  exec nsenter -t "$init" -a "$@"
}

# Everything runs from main, called on the last line together with `exit`:
# bash reads a script as it runs it, so an edit to this file while a long
# build runs would otherwise make it execute whatever now sits at its offset.
main() {
case ${1:-} in
  build)     shift; cmd_build "$@" ;;
  up)        shift; cmd_up "$@" ;;
  down)      shift; cmd_down "$@" ;;
  reset)     shift; cmd_reset "$@" ;;
  status)    cmd_status ;;
  inventory) write_inventory; print_inventory ;;
  ssh)       shift; cmd_ssh "$@" ;;
  exec)      shift; cmd_exec "$@" ;;
  _customize) customize_rootfs "$2" ;;   # internal: mmdebstrap customize hook
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
}
main "$@"; exit $?
