#!/usr/bin/env bash
# Proves the production install on a clean clone of the committed tree: `npm ci && npm run build && npm prune
# --omit=dev --omit=optional` leaves neither tsx nor TypeScript, and then `node bin/dispatcher.js start` (free ports,
# databases and a stream of its own) serves health, answers the quick start's first client commands with the admin key
# it prints, and exits 0 after draining on SIGTERM. Needs MariaDB and NATS as the tests do. Run by .ci/run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d -t dispatcher-production-XXXXXX)
tag="prod$(date +%s)$$"
say() { printf '[production-install] %s\n' "$*"; }
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  for db in prov anl cred; do mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS dispatcher_${tag}_${db}" 2>/dev/null || true; done
  if [ -d "$work/dispatcher/node_modules/@nats-io/jetstream" ]; then
    (cd "$work/dispatcher" && node --input-type=module -e '
      const { connect } = await import("@nats-io/transport-node");
      const { jetstreamManager } = await import("@nats-io/jetstream");
      const nc = await connect({ servers: "127.0.0.1:4222" });
      await (await jetstreamManager(nc)).streams.delete(process.argv[1]).catch(() => {});
      await nc.close();' "JOBS_${tag}" 2>/dev/null) || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "clean clone of $(git -C "$root" rev-parse --short HEAD)"
git clone -q --no-hardlinks "$root" "$work/dispatcher"
cd "$work/dispatcher"
say "npm ci"
npm ci --no-audit --no-fund
say "npm run build"
npm run build
say "npm prune --omit=dev --omit=optional"
npm prune --omit=dev --omit=optional --no-audit --no-fund
for pkg in tsx typescript prisma @bufbuild/buf; do
  if [ -e "node_modules/$pkg" ]; then echo "production install still has $pkg" >&2; exit 1; fi
done
test -f dist/cli.js

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
export DISPATCHER_MODE=development DISPATCHER_DATA_DIR="$work/data"
export DISPATCHER_SERVER_PORT=$(free_port) DISPATCHER_BRIDGE_PORT=$(free_port) DISPATCHER_CONSOLE_PORT=$(free_port) DISPATCHER_KM_PORT=$(free_port)
export DISPATCHER_KM_URL="127.0.0.1:$DISPATCHER_KM_PORT" DISPATCHER_CLIENT_ADDRESS="127.0.0.1:$DISPATCHER_SERVER_PORT"
export DISPATCHER_PROVISIONING_URL="mysql://root@127.0.0.1:3306/dispatcher_${tag}_prov"
export DISPATCHER_ANALYTICS_URL="mysql://root@127.0.0.1:3306/dispatcher_${tag}_anl"
export DISPATCHER_KM_DATABASE_URL="mysql://root@127.0.0.1:3306/dispatcher_${tag}_cred"
export DISPATCHER_MQ_JOBS_STREAM="JOBS_${tag}" DISPATCHER_MQ_SUBJECT_PREFIX="jobs_${tag}"
mkdir -p "$work/data"

say "node bin/dispatcher.js start (gRPC on $DISPATCHER_SERVER_PORT)"
node bin/dispatcher.js start >"$work/stdout.log" 2>"$work/stderr.log" &
pid=$!
for _ in $(seq 1 120); do
  node bin/dispatcher.js health --timeout 2000 >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stderr.log" >&2; echo "dispatcher exited before serving" >&2; exit 1; }
  sleep 1
done
node bin/dispatcher.js health --timeout 2000
token=$(sed -n 's/.*DISPATCHER_CLIENT_TOKEN=\([^[:space:]]*\).*/\1/p' "$work/stderr.log" | head -1)
[ -n "$token" ] || { echo "no admin key printed" >&2; exit 1; }
say "quick start: accounts list, users ls"
DISPATCHER_CLIENT_TOKEN="$token" node bin/dispatcher.js accounts list
DISPATCHER_CLIENT_TOKEN="$token" node bin/dispatcher.js users ls
say "SIGTERM"
kill -TERM "$pid"
set +e
wait "$pid"
code=$?
set -e
pid=""
[ "$code" -eq 0 ] || { tail -20 "$work/stderr.log" >&2; echo "dispatcher exited $code after SIGTERM" >&2; exit 1; }
say "ok: the production install serves, answers and drains to exit 0 without tsx or TypeScript"
