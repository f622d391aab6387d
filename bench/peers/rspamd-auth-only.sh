#!/usr/bin/env bash
# Restart the peers' rspamd (../shared/peers/start.sh) doing only what
# mailwall's milter is measured doing: SPF, DKIM and DMARC, with an
# Authentication-Results header. Every other module is switched off in
# local.d, the C modules are cut to dkim, and a settings rule lets only the
# three groups' symbols run (rspamd.lua's header and MIME rules register
# symbols outside any module). Run after start.sh; stop.sh stops it.
set -euo pipefail
PEERS=${PEERS:-/tmp/peers}
RC=$PEERS/rspamd/conf
R=$PEERS/run
L=$PEERS/log
[ -d "$RC/local.d" ] || { echo "rspamd-auth-only.sh: $RC missing: run ../shared/peers/start.sh first" >&2; exit 1; }

keep=" dkim spf dmarc milter_headers "
for f in /etc/rspamd/modules.d/*.conf; do
  m=$(basename "$f" .conf)
  case "$keep" in *" $m "*) continue ;; esac
  echo 'enabled = false;' > "$RC/local.d/$m.conf"
done
# override.d replaces local.d's options; start.sh's DNS settings go with it.
cat > "$RC/override.d/options.inc" <<'EOC'
filters = "dkim";
dns { nameserver = ["127.0.0.1:5353"]; timeout = 1s; retransmits = 2; }
EOC
# Authentication-Results for every message, as mailwall and OpenDKIM add
# it: milter_headers skips local and authenticated senders by default, and
# the lab's mail comes from 127.0.0.1.
cat > "$RC/local.d/milter_headers.conf" <<'EOC'
use = ["authentication-results"];
skip_local = false;
skip_authenticated = false;
EOC
cat > "$RC/local.d/settings.conf" <<'EOC'
auth_only {
  priority = high;
  ip = ["0.0.0.0/0", "::/0"];
  apply {
    groups_enabled = ["dkim", "spf", "dmarc"];
    # The postfilter that writes Authentication-Results is in no group.
    symbols_enabled = ["MILTER_HEADERS"];
  }
}
EOC
NAME=rspamd-auth-only.sh
. "$(dirname "$0")/rspamd-restart.inc.sh"
echo "rspamd restarted with SPF, DKIM and DMARC only (pid $(cat "$R/rspamd.pid"))"
