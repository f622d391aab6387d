package policyd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/lists"
	"mailwall/internal/spf"
)

// TestRecordRefusals: every refusal the server answers reaches the
// record hook once per request, with the check that decided, the SMTP
// reply Postfix makes of it and the request's facts; answers that let
// the mail on are not recorded.
func TestRecordRefusals(t *testing.T) {
	g, err := greylist.New(greylist.Config{}, greylist.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	srv := New(&spf.Checker{Resolver: labResolver(t)}, Options{}, 100, quiet)
	srv.SetGreylist(g)
	srv.SetLists(listCache(t, lists.Entry{List: lists.Block, Kind: lists.IP, Value: "127.0.0.9"},
		lists.Entry{List: lists.Allow, Kind: lists.IP, Value: "127.0.0.5"}))
	var (
		mu  sync.Mutex
		got []Decision
	)
	srv.SetRecord(func(d Decision) { mu.Lock(); got = append(got, d); mu.Unlock() })
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := dial(t, "tcp", ln.Addr().String())

	for _, tc := range []struct {
		name, req, stage, action, reply string
	}{
		{"SPF fail", greyRequest("127.0.0.3", "unknown", "alice@example.test", "carol@rcpt.test", "i1", "queue_id=\n"), "spf", "reject",
			"550 5.7.23 <carol@rcpt.test>: Recipient address rejected: Message rejected due to: SPF fail - not authorized."},
		{"block list", greyRequest("127.0.0.9", "unknown", "x@other.test", "carol@rcpt.test", "i2", ""), "lists", "reject",
			"550 5.7.1 <carol@rcpt.test>: Recipient address rejected: sender is on this site's block list"},
		{"greylisted", greyRequest("127.0.0.2", "unknown", "alice@example.test", "dave@rcpt.test", "i3", "queue_id=4XyZ1\n"), "greylist", "tempfail",
			"450 4.7.1 <dave@rcpt.test>: Recipient address rejected: Greylisted, see RFC 6647"},
		{"allowed: not recorded", greyRequest("127.0.0.5", "unknown", "alice@example.test", "erin@rcpt.test", "i4", ""), "", "", ""},
	} {
		mu.Lock()
		before := len(got)
		mu.Unlock()
		line := c.ask(t, tc.req)
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
		if tc.stage == "" {
			// Records are made after the answer, in request order: once
			// the next refusal is recorded, this one would have been.
			c.ask(t, greyRequest("127.0.0.9", "unknown", "x@other.test", "carol@rcpt.test", tc.name, ""))
			waitFor(t, func() bool { return count() > before })
			mu.Lock()
			rec := got[before:]
			got = got[:before]
			mu.Unlock()
			if len(rec) != 1 || rec[0].Stage != "lists" {
				t.Errorf("%s (%s): recorded %+v", tc.name, line, rec)
			}
			continue
		}
		waitFor(t, func() bool { return count() > before })
		mu.Lock()
		rec := got[before:]
		mu.Unlock()
		if len(rec) != 1 {
			t.Fatalf("%s (%s): %d records", tc.name, line, len(rec))
		}
		d := rec[0]
		if d.Stage != tc.stage || d.Action != tc.action || !strings.HasPrefix(d.Reply, tc.reply) || d.ProtocolState != "RCPT" ||
			d.Answer != strings.TrimPrefix(line, "action=") || d.At.IsZero() || d.ClientName != "unknown" {
			t.Errorf("%s (%s): recorded %+v", tc.name, line, d)
		}
		if tc.stage == "spf" && (d.SPF.Result != spf.Fail || d.Sender != "alice@example.test" || d.Recipient != "carol@rcpt.test" || d.ClientIP != "127.0.0.3") {
			t.Errorf("SPF refusal without its outcome or envelope: %+v", d)
		}
		if tc.stage == "greylist" && d.QueueID != "4XyZ1" {
			t.Errorf("greylisting's queue ID: %q", d.QueueID)
		}
	}
	srv.SetRecord(nil)
	c.ask(t, greyRequest("127.0.0.9", "unknown", "x@other.test", "carol@rcpt.test", "i5", ""))
	c.ask(t, greyRequest("127.0.0.9", "unknown", "x@other.test", "carol@rcpt.test", "i6", ""))
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Errorf("recorded after SetRecord(nil): %d records", len(got))
	}
}

// TestPostfixReply: the reply Postfix builds from an answer, by
// smtpd_check.c's check_table_result, for each protocol state.
func TestPostfixReply(t *testing.T) {
	for _, tc := range []struct {
		state, text string
		act         Action
		want        string
	}{
		{"RCPT", "550 5.7.23 Message rejected", Reject, "550 5.7.23 <r@rcpt.test>: Recipient address rejected: Message rejected"},
		{"RCPT", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.test", Reject,
			"554 5.7.1 <r@rcpt.test>: Recipient address rejected: Service unavailable; Client host [192.0.2.1] blocked using bl.test"},
		{"RCPT", "4.7.24 SPF temperror", Defer, "450 4.7.24 <r@rcpt.test>: Recipient address rejected: SPF temperror"},
		{"RCPT", "try later", Defer, "450 4.7.1 <r@rcpt.test>: Recipient address rejected: try later"},
		{"CONNECT", "550 5.7.1 go away", Reject, "550 5.7.1 <mail.example.test[192.0.2.1]>: Client host rejected: go away"},
		{"EHLO", "550 5.7.1 no", Reject, "550 5.7.1 <helo.example.test>: Helo command rejected: no"},
		{"MAIL", "550 5.7.1 no", Reject, "550 5.7.1 <s@example.test>: Sender address rejected: no"},
		{"END-OF-MESSAGE", "550 5.7.1 no", Reject, "550 5.7.1 <r@rcpt.test>: Data command rejected: no"},
	} {
		req := Request{"protocol_state": tc.state, "recipient": "r@rcpt.test", "sender": "s@example.test", "helo_name": "helo.example.test",
			"client_name": "mail.example.test", "client_address": "192.0.2.1"}
		if got := PostfixReply(req, Response{Action: tc.act, Text: tc.text}); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.state, tc.text, got, tc.want)
		}
	}
}

// BenchmarkRequestRefusedRecorded: a refusal by the block list (no DNS),
// without a record hook and with one that takes the decision as the
// store's recorder would (queued, written elsewhere): what recording
// adds to a refusal.
func BenchmarkRequestRefusedRecorded(b *testing.B) {
	for _, recorded := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[recorded], func(b *testing.B) {
			// The block list answers before any DNS.
			srv := New(&spf.Checker{Resolver: dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(b)}}, dnsx.CacheOptions{})}, Options{}, 100, quiet)
			c := lists.NewCache(memLists{{List: lists.Block, Kind: lists.IP, Value: "127.0.0.9"}}, quiet)
			if err := c.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			srv.SetLists(c)
			queue := make(chan Decision, 1024)
			if recorded {
				srv.SetRecord(func(d Decision) {
					select {
					case queue <- d:
					default:
					}
				})
				go func() {
					for range queue {
					}
				}()
			}
			ln, err := Listen("inet:127.0.0.1:0", 0)
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Shutdown(context.Background())
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				fmt.Fprintf(conn, "%s\n\n", greyRequest("127.0.0.9", "unknown", "x@other.test", "carol@rcpt.test", fmt.Sprint(i), ""))
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "action=550 5.7.1") {
					b.Fatalf("%q %v", line, err)
				}
				r.ReadString('\n')
			}
		})
	}
}
