#!/bin/sh
# A stand-in for the docker client on a sandbox host, where no Docker engine
# can run: it records every call and acts out what Harbor's compose project
# would do, so berth's cache VM roles can be shown and tested end to end.
#   - every call: its arguments as one line in /var/log/docker-double.log
#   - docker load -i FILE: FILE must exist
#   - docker compose ... up -d: serves Harbor's GET /api/v2.0/health on
#     $DOUBLE_ADDR (this host's own 127.0.0.N, from /etc/docker-double.conf)
#     and the http port of docker-compose.yml; `down` stops it
#   - /etc/docker-double.unhealthy names a component to report unhealthy
#   - up -d also plays Traefik with ACME: when the override's traefik_certs
#     volume (a host directory) has no acme.json, it "obtains" a certificate
#     and writes a stand-in acme.json there (mode 0600, random bytes), as
#     Traefik does some time after it starts
# Installed as /usr/bin/docker (and docker-compose) by the demo and the tests.
log=/var/log/docker-double.log
printf '%s\n' "$*" >> "$log"
conf=/etc/docker-double.conf
[ -f "$conf" ] && . "$conf"
addr=${DOUBLE_ADDR:?docker double: set DOUBLE_ADDR in /etc/docker-double.conf}

case "$(basename "$0")" in docker-compose) set -- compose "$@" ;; esac

serve() {
  port=$(sed -n 's/.*"\([0-9][0-9]*\):8080".*/\1/p' docker-compose.yml 2>/dev/null | head -1)
  [ -n "$port" ] || port=8080
  pid=/run/docker-double-health.pid
  if [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then return 0; fi
  cat > /run/docker-double-health.py <<'PY'
import http.server, json, os, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        names = ["core", "database", "jobservice", "portal", "redis", "registry", "registryctl"]
        bad = open("/etc/docker-double.unhealthy").read().strip() if os.path.exists("/etc/docker-double.unhealthy") else ""
        comps = [{"name": n, "status": "unhealthy" if n == bad else "healthy"} for n in names]
        body = json.dumps({"status": "unhealthy" if bad else "healthy", "components": comps}).encode()
        code = 200 if self.path == "/api/v2.0/health" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Health).serve_forever()
PY
  setsid python3 /run/docker-double-health.py "$addr" "$port" > /dev/null 2>&1 < /dev/null &
  echo $! > "$pid"
}

traefik_acme() {
  f=docker-compose.override.yml
  [ -f "$f" ] && grep -q 'acme.storage=/certs/acme.json' "$f" || return 0
  dir=$(sed -n 's/^ *device: *//p' "$f" | head -1)
  [ -n "$dir" ] && [ -d "$dir" ] && [ ! -e "$dir/acme.json" ] || return 0
  domain=$(sed -n 's/.*Host(`\([^`]*\)`).*/\1/p' "$f" | head -1)
  (
    umask 077
    printf '{"acme":{"Account":{"Email":"%s","PrivateKey":"%s"},"Certificates":[{"domain":{"main":"%s"},"certificate":"%s","key":"%s","Store":"default"}]}}\n' \
      "${EMAIL:-}" "$(head -c 48 /dev/urandom | base64 -w0)" "$domain" "$(head -c 96 /dev/urandom | base64 -w0)" "$(head -c 48 /dev/urandom | base64 -w0)" > "$dir/.acme.json.new"
    mv "$dir/.acme.json.new" "$dir/acme.json"
  )
}

stop() {
  pid=/run/docker-double-health.pid
  [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
  rm -f "$pid"
}

case "$1" in
  load)
    [ "$2" = -i ] && [ -f "$3" ] || { echo "docker double: load needs -i FILE" >&2; exit 1; }
    echo "Loaded image: goharbor/harbor-core:stand-in" ;;
  compose)
    case " $* " in
      *" version "*) echo "Docker Compose version v2 (berth sandbox double)" ;;
      *" up "*) serve; traefik_acme ;;
      *" down"*) stop ;;
    esac ;;
  version|--version) echo "Docker version 20.10 (berth sandbox double)" ;;
esac
exit 0
