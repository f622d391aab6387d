#!/usr/bin/env bash
# Restart the peers' nsd (../shared/peers/start.sh) without response rate
# limiting. nsd limits each source to 200 answers a second by default
# (rrl-ratelimit), and every peer queries from 127.0.0.1: OpenDMARC's glibc
# resolver and pyspf cache nothing, so under load their queries were
# dropped and they waited out 2 to 5 s timeouts. A benchmark of the peers
# must not measure the lab DNS's rate limit. Run after start.sh.
set -euo pipefail
PEERS=${PEERS:-/tmp/peers}
R=$PEERS/run
L=$PEERS/log
conf=$PEERS/dns/nsd.conf
[ -f "$conf" ] || { echo "nsd-no-rrl.sh: $conf missing: run ../shared/peers/start.sh first" >&2; exit 1; }

if ! grep -q "rrl-ratelimit: 0" "$conf"; then
  sed -i 's/^server:$/server:\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0/' "$conf"
fi
nsd-checkconf "$conf"
if [ -f "$R/nsd.pid" ] && kill -0 "$(cat "$R/nsd.pid")" 2>/dev/null; then
  kill "$(cat "$R/nsd.pid")"
  for _ in $(seq 100); do kill -0 "$(cat "$R/nsd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
nohup nsd -d -c "$conf" >>"$L/nsd.out" 2>&1 &
echo $! > "$R/nsd.pid"
for _ in $(seq 100); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p 5353 example.test TXT 2>/dev/null | grep -q spf1 && break
  sleep 0.1
done
dig +short +time=1 +tries=1 @127.0.0.2 example.test TXT | grep -q spf1 || { echo "nsd-no-rrl.sh: nsd does not answer" >&2; exit 1; }
echo "nsd restarted without rate limiting (pid $(cat "$R/nsd.pid"))"
