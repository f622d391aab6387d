package policyd

import (
	"strings"
	"testing"
)

// TestBlocklistZoneActions: a zone with its own action refuses (or
// defers) a client it lists whatever the sum and dnsbl.action say, with
// that zone in the reply; an allow list's zone, or a zone that does not
// list the client, takes no action of its own; a reject zone wins over a
// defer zone.
func TestBlocklistZoneActions(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Blocklists
		ip   string
		want string
		act  string
	}{
		{"reject zone, scoring only otherwise", Blocklists{Sites: blSites(t, "bl.example.test*1, secretkey.dq.example.test*1"), RejectThreshold: 5, Action: BlocklistNone,
			ZoneActions: map[string]BlocklistAction{"secretkey.dq.example.test": BlocklistReject}, ReplyNames: map[string]string{"secretkey.dq.example.test": "dq.example.test"}},
			"127.0.0.2", "action=554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using dq.example.test", "reject"},
		{"defer zone", Blocklists{Sites: blSites(t, "bl.example.test*1"), RejectThreshold: 5, ZoneActions: map[string]BlocklistAction{"bl.example.test": BlocklistDefer}},
			"127.0.0.2", "action=DEFER_IF_PERMIT 4.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.example.test", "defer"},
		{"reject wins over defer", Blocklists{Sites: blSites(t, "bl.example.test*1, secretkey.dq.example.test*1"), RejectThreshold: 5,
			ZoneActions: map[string]BlocklistAction{"bl.example.test": BlocklistDefer, "secretkey.dq.example.test": BlocklistReject}},
			"127.0.0.2", "action=554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using secretkey.dq.example.test", "reject"},
		{"not listed there", Blocklists{Sites: blSites(t, "bl.example.test*1"), RejectThreshold: 5, ZoneActions: map[string]BlocklistAction{"bl.example.test": BlocklistReject}},
			"127.0.0.5", "action=PREPEND Received-SPF: Pass", "none"},
		{"allow list zone", Blocklists{Sites: blSites(t, "wl.example.test*-1"), RejectThreshold: 5, ZoneActions: map[string]BlocklistAction{"wl.example.test": BlocklistReject}},
			"127.0.0.2", "action=PREPEND Received-SPF: Pass", "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			addr, observed := blServer(t, &b, nil)
			c := dial(t, "tcp", addr)
			if got := c.ask(t, blRequest(tc.ip, "unknown", "r1@rcpt.test", "1", "")); !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s, want %s...", got, tc.want)
			}
			if obs := observed(); len(obs) != 1 || obs[0].Action != tc.act {
				t.Errorf("observed %+v, want one check with action %s", obs, tc.act)
			}
		})
	}
}
