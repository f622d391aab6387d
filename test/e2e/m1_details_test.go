package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/store"
)

// TestM1DetailsAsAdded: a real Postfix with mailwall's milter delivers
// a message a rule scores; the verdict's details, which the store keeps
// short where the row's columns rebuild them (its stages' results, its
// hits' rules, X-Mailwall-Verdict and X-Mailwall-Score), read back as
// the headers the message really got and the rules the row lists, and
// the short forms were the ones written.
func TestM1DetailsAsAdded(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-m1-")
	dnsAddr, _ := startLabDNS(t, bin)
	milterPort, smtpPort := freePort(t), freePort(t)
	dbPath := filepath.Join(root, "mailwall.db")
	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(milterConfig(dnsAddr, milterPort)+fmt.Sprintf("store:\n  dsn: %q\nweb:\n  listen: \"\"\n", dbPath)), 0o644)
	startProcess(t, "milter listening", bin, "serve", "--config", cfg)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:127.0.0.1:%d\nmilter_default_action = tempfail\nmilter_protocol = 6\n", milterPort))

	msgID := fmt.Sprintf("m1-%d@example.test", time.Now().UnixNano())
	msg := "From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nReply-To: billing@elsewhere.example.org\r\n" +
		"Subject: m1 details\r\nMessage-ID: <" + msgID + ">\r\n\r\nHello Bob.\r\n"
	if err := sendMessage(fmt.Sprintf("127.0.0.1:%d", smtpPort), "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := delivered(t, filepath.Join(root, "mail", "inbox"), "m1 details")
	hdr, err := textproto.NewReader(bufio.NewReader(strings.NewReader(got))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("delivered header: %v", err)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var vs []store.Verdict
	for range 100 { // the recorder writes in the background
		if vs, _ = st.Verdicts(ctx, store.VerdictFilter{Source: "milter", MessageID: msgID}); len(vs) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(vs) != 1 {
		t.Fatalf("%d verdicts with Message-ID %s, want 1", len(vs), msgID)
	}
	v := vs[0]
	// The headers kept are those added, their values on one line.
	names := map[string]bool{}
	for _, h := range v.Details.Headers {
		names[h.Name] = true
		values := hdr.Values(h.Name)
		if len(values) == 0 || strings.Join(strings.Fields(values[0]), " ") != h.Value {
			t.Errorf("%s kept as %q, added as %q", h.Name, h.Value, values)
		}
	}
	for _, name := range []string{"Authentication-Results", "X-Mailwall-Verdict", "X-Mailwall-Score"} {
		if !names[name] {
			t.Errorf("no %s kept: %+v", name, v.Details.Headers)
		}
	}
	// The hits are the rules listed, in order.
	if len(v.Details.Hits) == 0 || len(v.Details.Hits) != len(v.Rules) {
		t.Fatalf("hits %+v, rules %q", v.Details.Hits, v.Rules)
	}
	for i, h := range v.Details.Hits {
		if r := h.Rule + "=" + strconv.Itoa(h.Weight); r != v.Rules[i] || h.Detail == "" {
			t.Errorf("hit %d is %+v, rule %q", i, h, v.Rules[i])
		}
	}
	stages := map[string]string{}
	for _, s := range v.Details.Stages {
		stages[s.Stage] = s.Result
	}
	if stages["spf"] != v.SPF || stages["dmarc"] != v.DMARC || stages["iprev"] != v.IPRev || v.SPF == "" {
		t.Errorf("stages %+v; row spf %q dmarc %q iprev %q", v.Details.Stages, v.SPF, v.DMARC, v.IPRev)
	}
	// What was written: the short forms.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var details string
	if err := db.QueryRowContext(ctx, `SELECT details FROM verdicts WHERE id = $1`, v.ID).Scan(&details); err != nil {
		t.Fatal(err)
	}
	for _, item := range []string{"\x1eV", "\x1eR\x1e", "\x1eh", "\x1eTs"} {
		if !strings.Contains(details, item) {
			t.Errorf("details written without %q: %q", item, details)
		}
	}
}
