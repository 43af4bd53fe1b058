#!/bin/sh
# Builds a stand-in for Harbor's offline installer tarball:
#   make-harbor-installer.sh OUT.tgz [VERSION]
# Its prepare does what Harbor's does to the files berth cares about: reads
# harbor.yml, writes docker-compose.yml and common/config/*/env with fresh
# internal secrets (mode 0600, uid 10000), and counts its runs in prepare.runs.
set -eu
out=$1
version=${2:-v2.12.4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
h=$work/harbor
mkdir -p "$h"
cat > "$h/prepare" <<'PREP'
#!/bin/sh
# stand-in for Harbor's prepare (see scripts/sandbox/make-harbor-installer.sh)
set -eu
cd "$(dirname "$0")"
[ -f harbor.yml ] || { echo "prepare: harbor.yml not found" >&2; exit 1; }
port=$(awk '/^http:/ { f = 1; next } f && $1 == "port:" { print $2; exit }' harbor.yml)
data=$(awk '$1 == "data_volume:" { print $2; exit }' harbor.yml)
cat > docker-compose.yml <<COMPOSE
services:
  log:
    image: goharbor/harbor-log:VERSION
    restart: always
    ports: ["127.0.0.1:1514:10514"]
    networks: [harbor]
  registry:
    image: goharbor/registry-photon:VERSION
    restart: always
    volumes: ["$data/registry:/storage:z"]
    networks: [harbor]
  core:
    image: goharbor/harbor-core:VERSION
    restart: always
    env_file: [./common/config/core/env]
    networks: [harbor]
  portal:
    image: goharbor/harbor-portal:VERSION
    restart: always
    networks: [harbor]
  proxy:
    image: goharbor/nginx-photon:VERSION
    restart: always
    ports: ["$port:8080"]
    networks: [harbor]
networks:
  harbor:
    external: false
COMPOSE
for c in core registryctl db jobservice; do
  mkdir -p "common/config/$c"
  printf 'SECRET=%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "common/config/$c/env"
  chmod 0600 "common/config/$c/env"
  chown 10000:10000 "common/config/$c/env" 2>/dev/null || true
done
echo "$(date -u +%FT%TZ)" >> prepare.runs
PREP
sed -i "s/VERSION/$version/g" "$h/prepare"
chmod 0755 "$h/prepare"
printf '# stand-in for harbor.yml.tmpl\nhostname: reg.mydomain.com\n' > "$h/harbor.yml.tmpl"
printf '#!/bin/sh\necho "stand-in: berth runs prepare and compose itself"\n' > "$h/install.sh"
chmod 0755 "$h/install.sh"
echo "stand-in LICENSE" > "$h/LICENSE"
echo "stand-in images of Harbor $version" | gzip -n > "$h/harbor.$version.tar.gz"
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - harbor | gzip -n > "$out"
sha256sum "$out" | cut -d' ' -f1
