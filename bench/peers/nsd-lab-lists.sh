#!/usr/bin/env bash
# Add a blocklist zone, bl.test, to the peers' nsd (../shared/peers/start.sh)
# and restart it: bench/milter -all points mailwall's dnsbl at
# zen.bl.test, bl2.bl.test (IP lists) and dbl.bl.test (a domain list),
# which list a few test entries (RFC 5782 §5's 127.0.0.2, test.dbl.bl.test)
# and nothing the benchmark sends: every lookup is an NXDOMAIN with the
# zone's SOA, cached for its minimum as a real list's answer is. Loopback
# only; no real list is asked. Idempotent; run after start.sh (and
# nsd-no-rrl.sh, which it keeps).
set -euo pipefail
PEERS=${PEERS:-/tmp/peers}
R=$PEERS/run
L=$PEERS/log
conf=$PEERS/dns/nsd.conf
[ -f "$conf" ] || { echo "nsd-lab-lists.sh: $conf missing: run ../shared/peers/start.sh first" >&2; exit 1; }

cat > "$PEERS/dns/bl.test.zone" <<'EOZ'
$ORIGIN bl.test.
$TTL 300
@        IN SOA ns1.example.test. hostmaster.example.test. ( 1 3600 600 86400 300 )
@        IN NS  ns1.example.test.
2.0.0.127.zen     IN A   127.0.0.2
2.0.0.127.zen     IN TXT "RFC 5782 test point"
2.0.0.127.bl2     IN A   127.0.0.2
test.dbl          IN A   127.0.1.2
listed-bench.dbl  IN A   127.0.1.2
EOZ
if ! grep -q "name: bl.test" "$conf"; then
  printf 'zone:\n  name: bl.test\n  zonefile: bl.test.zone\n' >> "$conf"
fi
nsd-checkconf "$conf"
if [ -f "$R/nsd.pid" ] && kill -0 "$(cat "$R/nsd.pid")" 2>/dev/null; then
  kill "$(cat "$R/nsd.pid")"
  for _ in $(seq 100); do kill -0 "$(cat "$R/nsd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
nohup nsd -d -c "$conf" >>"$L/nsd.out" 2>&1 &
echo $! > "$R/nsd.pid"
for _ in $(seq 100); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p 5353 2.0.0.127.zen.bl.test A 2>/dev/null | grep -q 127.0.0.2 && break
  sleep 0.1
done
dig +short +time=1 +tries=1 @127.0.0.1 -p 5353 2.0.0.127.zen.bl.test A | grep -q 127.0.0.2 || { echo "nsd-lab-lists.sh: nsd does not answer for bl.test" >&2; exit 1; }
echo "nsd restarted with the lab blocklist zone bl.test (pid $(cat "$R/nsd.pid"))"
