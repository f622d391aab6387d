#!/usr/bin/env bash
# Restart the peers' OpenDKIM (../shared/peers/start.sh) with ubmutex.so
# preloaded, so that it survives concurrent connections (see ubmutex.c).
# Run after start.sh; stop.sh stops it.
set -euo pipefail
PEERS=${PEERS:-/tmp/peers}
R=$PEERS/run
L=$PEERS/log
here=$(cd "$(dirname "$0")" && pwd)
conf=$PEERS/opendkim/opendkim.conf
[ -f "$conf" ] || { echo "opendkim-threadsafe.sh: $conf missing: run ../shared/peers/start.sh first" >&2; exit 1; }

gcc -O2 -shared -fPIC -o "$PEERS/opendkim/ubmutex.so" "$here/ubmutex.c" -ldl -lpthread
if [ -f "$R/opendkim.pid" ] && kill -0 "$(cat "$R/opendkim.pid")" 2>/dev/null; then
  kill "$(cat "$R/opendkim.pid")"
  for _ in $(seq 100); do kill -0 "$(cat "$R/opendkim.pid")" 2>/dev/null || break; sleep 0.1; done
fi
LD_PRELOAD="$PEERS/opendkim/ubmutex.so" nohup opendkim -f -x "$conf" >>"$L/opendkim.out" 2>&1 &
echo $! > "$R/opendkim.pid"
for _ in $(seq 300); do ss -Hlnt "sport = :8891" | grep -q . && break; sleep 0.1; done
ss -Hlnt "sport = :8891" | grep -q . || { echo "opendkim-threadsafe.sh: opendkim did not listen on 8891" >&2; exit 1; }
grep -q ubmutex "/proc/$(cat "$R/opendkim.pid")/maps" || { echo "opendkim-threadsafe.sh: ubmutex.so not loaded" >&2; exit 1; }
echo "opendkim restarted with ubmutex.so (pid $(cat "$R/opendkim.pid"))"
