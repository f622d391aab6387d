# Sourced by rspamd-full.sh and rspamd-auth-only.sh once they have written
# their configuration: restarts the peers' rspamd on it and waits for its
# ports. Needs PEERS, RC, R, L and NAME (the calling script, for errors).
chown -R _rspamd:_rspamd "$PEERS/rspamd"

if [ -f "$R/rspamd.pid" ] && kill -0 "$(cat "$R/rspamd.pid")" 2>/dev/null; then
  kill "$(cat "$R/rspamd.pid")"
  for _ in $(seq 100); do kill -0 "$(cat "$R/rspamd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
rspamadm --var=LOCAL_CONFDIR="$RC" --var=DBDIR="$PEERS/rspamd/db" \
  --var=RUNDIR="$PEERS/rspamd/run" --var=LOGDIR="$L" configtest -q -c /etc/rspamd/rspamd.conf
nohup rspamd -f -c /etc/rspamd/rspamd.conf -u _rspamd -g _rspamd \
  --var=LOCAL_CONFDIR="$RC" --var=DBDIR="$PEERS/rspamd/db" \
  --var=RUNDIR="$PEERS/rspamd/run" --var=LOGDIR="$L" \
  >>"$L/rspamd.out" 2>&1 &
echo $! > "$R/rspamd.pid"
for port in 11333 11332; do
  for _ in $(seq 600); do ss -Hlnt "sport = :$port" | grep -q . && break; sleep 0.1; done
  ss -Hlnt "sport = :$port" | grep -q . || { echo "$NAME: rspamd did not listen on $port" >&2; exit 1; }
done
