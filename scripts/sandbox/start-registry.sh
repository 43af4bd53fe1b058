#!/bin/sh
# A stand-in for Harbor's /v2 on a sandbox host: Debian's docker-registry
# (distribution v2; its packaged service stays masked) as a transient unit,
# with TLS, listening only on the address given. Run on the host as root:
#   start-registry.sh <unit> <ip:port> <hostname>
# It expects /etc/<unit>/server.crt, server.key and ca.crt, and waits (at
# most 10 s) until https://<hostname>:<port>/v2/ answers.
set -eu
unit=$1 addr=$2 name=$3
ip=${addr%:*} port=${addr##*:}
case "$ip" in 127.*) ;; *) echo "start-registry: refusing to listen on $ip (loopback only)" >&2; exit 1 ;; esac
dir=/etc/$unit
cat > "$dir/config.yml" <<CONF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: /var/lib/$unit
http:
  addr: $addr
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
CONF
systemd-run --unit="$unit" --collect /usr/bin/docker-registry serve "$dir/config.yml" >/dev/null
i=0
while [ $i -lt 50 ]; do
  if curl -fsS -o /dev/null --cacert "$dir/ca.crt" --resolve "$name:$port:$ip" "https://$name:$port/v2/"; then exit 0; fi
  i=$((i + 1))
  sleep 0.2
done
echo "start-registry: $unit did not answer on $addr" >&2
journalctl -u "$unit" --no-pager | tail -20 >&2
exit 1
