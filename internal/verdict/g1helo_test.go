package verdict

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/lists"
)

// TestHeloAllowListedClient: a HELO table's REJECT and the HELO syntax
// rule do not apply to a client the allow list names by address or
// network (Postfix's check_client_access before check_helo_access), in
// CheckHeloClient (the milter's HELO) and in the pipeline's connection
// stage; a sender domain's allow entry, a recipient's, an expired
// client entry or an unknown address do not exempt.
func TestHeloAllowListedClient(t *testing.T) {
	c, _ := world(t)
	withLists(t, c,
		lists.Entry{List: lists.Allow, Kind: lists.IP, Value: "198.51.100.0/24", Note: "partner relays"},
		lists.Entry{List: lists.Allow, Kind: lists.IP, Value: "203.0.113.7/32", Expires: time.Now().Add(-time.Hour)},
		lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "desctrl.com"},
		lists.Entry{List: lists.Allow, Kind: lists.Rcpt, Value: "postmaster@rcpt.test"},
	)
	for _, tc := range []struct {
		name, ip, helo string
		want           Action
	}{
		{"allowed network, table REJECT", "198.51.100.20", "mail.desctrl.com", Accept},
		{"allowed network, invalid HELO", "198.51.100.20", "bad_helo!", Accept},
		{"other client, table REJECT", "192.0.2.10", "mail.desctrl.com", Reject},
		{"other client, invalid HELO", "192.0.2.10", "bad_helo!", Reject},
		{"expired entry", "203.0.113.7", "mail.desctrl.com", Reject},
		{"unknown address", "", "mail.desctrl.com", Reject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ip netip.Addr
			if tc.ip != "" {
				ip = netip.MustParseAddr(tc.ip)
			}
			act, reply, why := c.CheckHeloClient(ip, tc.helo)
			if act != tc.want {
				t.Errorf("CheckHeloClient(%s, %q) = %s %q (%s), want %s", tc.ip, tc.helo, act, reply, why, tc.want)
			}
			if tc.want == Accept && (reply != "" || why != "") {
				t.Errorf("accepted with reply %q, reason %q", reply, why)
			}
		})
	}

	t.Run("connection stage", func(t *testing.T) {
		env := Envelope{ClientIP: netip.MustParseAddr("198.51.100.20"), Helo: "mail.desctrl.com", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
		r := check(t, c, env, msg)
		if r.Helo != "pass" || r.Stage == "helo" || r.Action == Reject {
			t.Errorf("allowed client: helo %s, action %s stage %s %q", r.Helo, r.Action, r.Stage, r.Reasons)
		}
		env.ClientIP = netip.MustParseAddr("192.0.2.10")
		r = check(t, c, env, msg)
		if r.Helo != "fail" || r.Action != Reject || r.Stage != "helo" || !strings.Contains(r.Reply, "Helo command rejected") {
			t.Errorf("other client: helo %s, action %s stage %s reply %q", r.Helo, r.Action, r.Stage, r.Reply)
		}
	})
}
