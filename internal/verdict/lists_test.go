package verdict

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/lists"
)

type listSource []lists.Entry

func (l listSource) ListsVersion(context.Context) (int64, error)        { return 1, nil }
func (l listSource) ListEntries(context.Context) ([]lists.Entry, error) { return l, nil }

func withLists(t *testing.T, c *Checker, entries ...lists.Entry) {
	t.Helper()
	c.Lists = lists.NewCache(listSource(entries), slog.New(slog.DiscardHandler))
	if err := c.Lists.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestListsDecide: an allow entry for an authenticated From domain
// accepts a message the score would quarantine, with the headers and
// the hit among the reasons; the same From spoofed (DMARC fail) is not
// allowed, under p=reject and under p=none; an allowed client network
// accepts even a DMARC failure, reported as local_policy; a block entry
// rejects in 5.7.1.
func TestListsDecide(t *testing.T) {
	c, _ := world(t)
	c.Analyzers = []analysis.Analyzer{&fixed{name: "junk", hits: []analysis.Hit{{Rule: "junk", Weight: 70, Detail: "looks bad"}}}}
	withLists(t, c,
		lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "example.test", Note: "partner"},
		lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "desctrl.test"},
		lists.Entry{List: lists.Allow, Kind: lists.IP, Value: "198.51.100.0/24"},
		lists.Entry{List: lists.Block, Kind: lists.Sender, Value: "pest@example.test"},
	)
	good := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
	r := check(t, c, good, msg)
	if r.Action != Accept || r.Stage != "lists" || r.Verdict != "pass" || r.DMARC.Result != "pass" {
		t.Errorf("allowed, DMARC pass: action %s stage %s verdict %s dmarc %s %q", r.Action, r.Stage, r.Verdict, r.DMARC.Result, r.Reasons)
	}
	if !slices.ContainsFunc(r.Reasons, func(s string) bool {
		return strings.HasPrefix(s, "lists: allow domain example.test matches ") && strings.HasSuffix(s, "alice@example.test (partner)")
	}) ||
		!slices.Contains(r.Reasons, "lists: quarantine (stage score) set aside") {
		t.Errorf("reasons %q", r.Reasons)
	}
	if ar := header(r, "Authentication-Results"); !strings.Contains(ar, "dmarc=pass") || header(r, "X-Mailwall-Score") != " 70 (junk=70)" {
		t.Errorf("headers %+v", r.Headers)
	}

	// The spoof: the same From from a host SPF does not allow.
	spoof := good
	spoof.ClientIP = netip.MustParseAddr("192.0.2.99")
	r = check(t, c, spoof, msg)
	if r.Action != Reject || r.Stage != "dmarc" || !slices.ContainsFunc(r.Reasons, func(s string) bool {
		return strings.HasPrefix(s, "lists: not applied, not authenticated: allow domain example.test")
	}) {
		t.Errorf("spoofed allowed From (p=reject): action %s stage %s %q", r.Action, r.Stage, r.Reasons)
	}
	// Under p=none DMARC decides nothing: the score still does.
	spoofNone := Envelope{ClientIP: netip.MustParseAddr("192.0.2.99"), Helo: "x.test", MailFrom: "a@desctrl.test", Rcpts: []string{"bob@rcpt.test"}}
	r = check(t, c, spoofNone, strings.Replace(msg, "alice@example.test", "ceo@desctrl.test", 1))
	if r.Action != Quarantine || r.Stage != "score" || r.DMARC.Result != "fail" {
		t.Errorf("spoofed allowed From (p=none): action %s stage %s dmarc %s %q", r.Action, r.Stage, r.DMARC.Result, r.Reasons)
	}

	// An allowed envelope sender that passes SPF does not carry a From
	// of another domain that fails DMARC.
	withLists(t, c, lists.Entry{List: lists.Allow, Kind: lists.Sender, Value: "alice@example.test"})
	r = check(t, c, good, strings.Replace(msg, "alice@example.test", "ceo@desctrl.test", 1))
	if r.Action != Quarantine || r.Stage != "score" || r.DMARC.Result != "fail" ||
		!slices.Contains(r.Reasons, "lists: not applied, not authenticated: allow sender alice@example.test matches MAIL FROM alice@example.test") {
		t.Errorf("allowed MAIL FROM, From failing DMARC: action %s stage %s dmarc %s %q", r.Action, r.Stage, r.DMARC.Result, r.Reasons)
	}
	// Alone with its own From it is allowed.
	if r = check(t, c, good, msg); r.Action != Accept || r.Stage != "lists" {
		t.Errorf("allowed MAIL FROM: action %s stage %s %q", r.Action, r.Stage, r.Reasons)
	}
	withLists(t, c,
		lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "example.test", Note: "partner"},
		lists.Entry{List: lists.Allow, Kind: lists.IP, Value: "198.51.100.0/24"},
		lists.Entry{List: lists.Block, Kind: lists.Sender, Value: "pest@example.test"},
	)

	// An allowed network: a DMARC failure is accepted as local policy.
	relay := spoof
	relay.ClientIP = netip.MustParseAddr("198.51.100.5")
	r = check(t, c, relay, msg)
	if r.Action != Accept || r.Stage != "lists" || !slices.Contains(r.DMARC.Row.Reasons, "local_policy") {
		t.Errorf("allowed client: action %s stage %s row %+v %q", r.Action, r.Stage, r.DMARC.Row.Reasons, r.Reasons)
	}

	// A blocked sender, authenticated or not.
	blocked := good
	blocked.MailFrom = "pest@example.test"
	r = check(t, c, blocked, msg)
	if r.Action != Reject || r.Stage != "lists" || r.Reply != ListReply || !slices.Contains(r.Reasons, "lists: block sender pest@example.test matches MAIL FROM pest@example.test") {
		t.Errorf("blocked: action %s stage %s reply %q %q", r.Action, r.Stage, r.Reply, r.Reasons)
	}
	if !slices.Contains(r.Reasons, "lists: not applied, blocked: allow domain example.test matches MAIL FROM pest@example.test (partner)") {
		t.Errorf("the allow a block beat is not shown: %q", r.Reasons)
	}

	// Postmaster wants everything, a blocked sender's mail too.
	withLists(t, c, lists.Entry{List: lists.Block, Kind: lists.Sender, Value: "pest@example.test"},
		lists.Entry{List: lists.Allow, Kind: lists.Rcpt, Value: "postmaster@rcpt.test"})
	blocked.Rcpts = []string{"postmaster@rcpt.test"}
	if r = check(t, c, blocked, msg); r.Action != Accept || r.Stage != "lists" {
		t.Errorf("blocked sender to postmaster: action %s stage %s %q", r.Action, r.Stage, r.Reasons)
	}
}
