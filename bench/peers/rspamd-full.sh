#!/usr/bin/env bash
# Restart the peers' rspamd (../shared/peers/start.sh) in its default full
# configuration, the one a fresh install runs (every module of
# /etc/rspamd/modules.d and the rules of rspamd.lua: RBLs and SURBL,
# phishing, fuzzy, Bayes and neural on redis, MIME, header and URL rules,
# multimap, reputation...), undoing rspamd-auth-only.sh if it ran. Only
# what the lab needs is changed: its DNS is the lab's nsd (so no lookup
# leaves loopback: an RBL, SURBL, fuzzy server or map on the Internet is
# a name nsd refuses, and the module counts it as an error), lab mail from
# 127.0.0.1 is not skipped as local, and milter_headers writes
# Authentication-Results for it, as bench/milter checks. Run after
# start.sh; stop.sh stops it.
set -euo pipefail
PEERS=${PEERS:-/tmp/peers}
RC=$PEERS/rspamd/conf
R=$PEERS/run
L=$PEERS/log
[ -d "$RC/local.d" ] || { echo "rspamd-full.sh: $RC missing: run ../shared/peers/start.sh first" >&2; exit 1; }

# rspamd-auth-only.sh's switches, if any.
for f in "$RC"/local.d/*.conf; do
  [ "$(cat "$f")" = 'enabled = false;' ] && rm -f "$f"
done
rm -f "$RC/override.d/options.inc" "$RC/local.d/settings.conf"
# start.sh's DNS; no address counts as local (lab mail is from 127.0.0.1).
cat > "$RC/local.d/options.inc" <<'EOC'
dns { nameserver = ["127.0.0.1:5353"]; timeout = 1s; retransmits = 2; }
local_addrs = ["192.0.2.255/32"];
EOC
for m in dkim spf dmarc; do
  printf 'check_local = true;\ncheck_authed = true;\n' > "$RC/local.d/$m.conf"
done
cat > "$RC/local.d/milter_headers.conf" <<'EOC'
use = ["authentication-results", "x-spamd-result"];
skip_local = false;
skip_authenticated = false;
EOC
NAME=rspamd-full.sh
. "$(dirname "$0")/rspamd-restart.inc.sh"
echo "rspamd restarted in its default full configuration, DNS on the lab (pid $(cat "$R/rspamd.pid"))"
