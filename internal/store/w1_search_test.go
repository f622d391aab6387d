package store

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// searchSet is a day's decisions of several kinds: a message, a policy
// server refusal and a HELO refusal from the same client, and others.
func searchSet(t0 time.Time) []Verdict {
	msg := testVerdict(t0.Add(2*time.Minute), "bank.test", "192.0.2.1", "reject")
	msg.Source, msg.QueueID, msg.ClientName = "milter", "4XyZ1abc", "mx.sender.example"
	msg.MailFrom, msg.HeaderFrom, msg.MessageID = "Alice@bank.test", "alice@bank.test", "abc.123@bank.test"
	msg.Subject, msg.Size, msg.Reply = "Your invoice 100% due_now", 2048, "550 5.7.1 Message rejected"
	msg.Rules = []string{"brand_from_domain=45", "url_ip=20"}
	msg.Details = Details{
		Stages:  []StageResult{{Stage: "dmarc", Result: "fail", Reason: "p=reject, no aligned identifier"}},
		Hits:    []Hit{{Rule: "brand_from_domain", Weight: 45, Detail: "From domain bank.test looks like bank.example"}},
		Headers: []Header{{Name: "X-Mailwall-Verdict", Value: "fail"}},
	}
	policy := Verdict{At: t0.Add(time.Minute), Node: "mx1.test", Source: "policy", ClientIP: "192.0.2.1", ClientName: "mx.sender.example",
		Helo: "mx.sender.example", MailFrom: "alice@bank.test", Rcpts: []string{"bob@rcpt.test"}, Action: "reject", Stage: "spf", Verdict: "fail",
		SPF: "fail", Reply: "550 5.7.23 Message rejected due to: SPF fail", Reasons: []string{"spf: fail"}}
	helo := Verdict{At: t0, Node: "mx1.test", Source: "helo", ClientIP: "192.0.2.1", ClientName: "mx.sender.example", Helo: "desctrl.com",
		Action: "reject", Stage: "helo", Verdict: "fail", Reply: "554 5.7.1 <desctrl.com>: Helo command rejected: Access denied",
		Reasons: []string{"helo: helo_access: REJECT"}}
	other := testVerdict(t0.Add(3*time.Minute), "shop.test", "2001:db8::1", "accept")
	other.Source, other.QueueID, other.MessageID, other.Subject = "milter", "5ABCDEF", "zz@shop.test", SubjectHash("Weekly   news")
	other.Rcpts, other.ClientName = []string{"carol@example.org"}, "mail.shop.test"
	late := Verdict{At: t0.Add(3 * time.Hour), Node: "mx1.test", Source: "policy", ClientIP: "192.0.2.1", MailFrom: "alice@bank.test",
		Action: "tempfail", Stage: "greylist", Reply: "450 4.7.1 greylisted"}
	return []Verdict{helo, policy, msg, other, late}
}

func TestVerdictSearch(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		vs := searchSet(t0)
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		helo, policy, msg, other, late := vs[0].ID, vs[1].ID, vs[2].ID, vs[3].ID, vs[4].ID
		for _, c := range []struct {
			name string
			f    VerdictFilter
			want []int64 // newest first
		}{
			{"queue ID", VerdictFilter{QueueID: "4XyZ1abc"}, []int64{msg}},
			{"queue ID is exact", VerdictFilter{QueueID: "4xyz1abc"}, nil},
			{"Message-ID", VerdictFilter{MessageID: "abc.123@bank.test"}, []int64{msg}},
			{"Message-ID in brackets", VerdictFilter{MessageID: " <abc.123@bank.test> "}, []int64{msg}},
			{"envelope sender, any case", VerdictFilter{MailFrom: "alice@bank.test"}, []int64{late, msg, policy}},
			{"envelope sender in another case", VerdictFilter{MailFrom: "ALICE@bank.test"}, []int64{late, msg, policy}},
			{"envelope sender domain", VerdictFilter{MailFrom: "BANK.test"}, []int64{late, msg, policy}},
			{"recipient", VerdictFilter{Rcpt: "BOB@rcpt.test"}, []int64{policy}},
			{"recipient substring", VerdictFilter{Rcpt: "example.org"}, []int64{other}},
			{"header From", VerdictFilter{HeaderFrom: "<alice@bank.test>"}, []int64{msg}},
			{"Subject substring, any case", VerdictFilter{Subject: "INVOICE"}, []int64{msg}},
			{"Subject: % is a character", VerdictFilter{Subject: "100% due_"}, []int64{msg}},
			{"Subject: % is not a wildcard", VerdictFilter{Subject: "1%due"}, nil},
			{"Subject: _ is not a wildcard", VerdictFilter{Subject: "due now"}, nil},
			{"hashed Subject by the whole Subject", VerdictFilter{Subject: "Weekly news"}, []int64{other}},
			{"hashed Subject not by a part", VerdictFilter{Subject: "Weekly"}, nil},
			{"client IP", VerdictFilter{Client: "192.0.2.1"}, []int64{late, msg, policy, helo}},
			{"client IPv6 in another spelling", VerdictFilter{Client: "2001:DB8:0::1"}, []int64{other}},
			{"client name", VerdictFilter{Client: "mx.sender.example"}, []int64{msg, policy, helo}},
			{"client name's domain", VerdictFilter{Client: "sender.example."}, []int64{msg, policy, helo}},
			{"client name is not a substring", VerdictFilter{Client: "ender.example"}, nil},
			{"action", VerdictFilter{Action: "tempfail"}, []int64{late}},
			{"source", VerdictFilter{Source: "helo"}, []int64{helo}},
			{"source policy and action", VerdictFilter{Source: "policy", Action: "reject"}, []int64{policy}},
			{"rule by name", VerdictFilter{Rule: "url_ip"}, []int64{msg}},
			{"rule is a whole name", VerdictFilter{Rule: "url"}, nil},
			{"time range", VerdictFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []int64{msg, policy}},
			{"keys together", VerdictFilter{Client: "192.0.2.1", Source: "milter"}, []int64{msg}},
			{"SQL in a value is a value", VerdictFilter{QueueID: "x' OR '1'='1"}, nil},
			{"paging", VerdictFilter{Client: "192.0.2.1", BeforeID: msg}, []int64{policy, helo}},
			{"limit", VerdictFilter{Client: "192.0.2.1", Limit: 1}, []int64{late}},
		} {
			got, err := s.Verdicts(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			var ids []int64
			for _, v := range got {
				ids = append(ids, v.ID)
			}
			if !slices.Equal(ids, c.want) {
				t.Errorf("%s: %+v found %v, want %v", c.name, c.f, ids, c.want)
			}
		}
		got, err := s.Verdict(ctx, msg)
		if err != nil || got == nil {
			t.Fatalf("verdict %d: %v", msg, err)
		}
		if got.Source != "milter" || got.HeaderFrom != "alice@bank.test" || got.Size != 2048 || got.Reply != "550 5.7.1 Message rejected" ||
			len(got.Details.Hits) != 1 || got.Details.Hits[0].Weight != 45 || !strings.Contains(got.Details.Hits[0].Detail, "looks like") ||
			got.Details.Stages[0].Reason != "p=reject, no aligned identifier" || got.Details.Headers[0].Name != "X-Mailwall-Verdict" {
			t.Errorf("round trip of the new fields: %+v", got)
		}
		// Joined: the message shows the HELO and policy refusals of its
		// client before it, not the greylisting three hours later.
		rel, err := s.Related(ctx, got, time.Hour, 20)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, v := range rel {
			ids = append(ids, v.ID)
		}
		if !slices.Equal(ids, []int64{helo, policy}) {
			t.Errorf("related to the message: %v, want %v", ids, []int64{helo, policy})
		}
		p, _ := s.Verdict(ctx, policy)
		rel, _ = s.Related(ctx, p, time.Hour, 20)
		ids = ids[:0]
		for _, v := range rel {
			ids = append(ids, v.ID)
		}
		if !slices.Equal(ids, []int64{helo, msg}) {
			t.Errorf("related to the policy refusal: %v, want %v", ids, []int64{helo, msg})
		}
	})
}

// A client chooses the HELO, the addresses, the Message-ID and Subject:
// what is stored of them is bounded, and a newline cannot split the
// stored reasons.
func TestVerdictBounds(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		long := strings.Repeat("é", 5000) // 10,000 octets
		v := Verdict{At: time.Unix(1_800_000_000, 0), Source: "milter", ClientIP: "192.0.2.7", Helo: long, MailFrom: long + "@x.test",
			HeaderFrom: long, MessageID: long, Subject: "line one\r\nX-Injected: yes" + long, Reply: long, Action: "accept",
			Reasons: []string{"a\nb", long}, Rules: []string{"two words=3"}}
		for range 500 {
			v.Rcpts = append(v.Rcpts, "r@x.test")
			v.Details.Hits = append(v.Details.Hits, Hit{Rule: "r", Weight: 1, Detail: long})
			v.Details.Headers = append(v.Details.Headers, Header{Name: "X-A", Value: long})
		}
		vs := []Verdict{v}
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		got, err := s.Verdict(ctx, vs[0].ID)
		if err != nil || got == nil {
			t.Fatal(err)
		}
		for name, f := range map[string]string{"helo": got.Helo, "mail_from": got.MailFrom, "header_from": got.HeaderFrom,
			"message_id": got.MessageID, "subject": got.Subject, "reply": got.Reply} {
			if len(f) > maxText || !utf8.ValidString(f) {
				t.Errorf("%s: %d octets, valid UTF-8 %v", name, len(f), utf8.ValidString(f))
			}
		}
		if strings.ContainsAny(got.Subject, "\r\n") || !strings.HasPrefix(got.Subject, "line one  X-Injected") {
			t.Errorf("subject: %.40q", got.Subject)
		}
		if len(got.Reasons) != 2 || got.Reasons[0] != "a b" {
			t.Errorf("reasons: %d %.20q", len(got.Reasons), got.Reasons)
		}
		if len(got.Rcpts) != maxRcpts || len(got.Details.Hits) != maxRules || len(got.Details.Headers) != maxHeaders {
			t.Errorf("lists: %d rcpts, %d hits, %d headers", len(got.Rcpts), len(got.Details.Hits), len(got.Details.Headers))
		}
		if len(got.Rules) != 1 || got.Rules[0] != "two_words=3" {
			t.Errorf("rules: %q", got.Rules)
		}
		var n int
		s.db.QueryRow(`SELECT LENGTH(details) FROM verdicts WHERE id = $1`, got.ID).Scan(&n)
		if n > 200<<10 {
			t.Errorf("details: %d characters", n)
		}
		if len(v.Helo) != 10000 || len(v.Details.Hits) != 500 {
			t.Error("bounding changed the caller's verdict")
		}
	})
}

// TestVerdictSearchUsesIndexes: on SQLite, the exact keys are looked up
// through their indexes, not by reading the table (PostgreSQL's planner
// picks by table size, so a small test table says nothing there).
func TestVerdictSearchUsesIndexes(t *testing.T) {
	s, err := Open(context.Background(), "sqlite", t.TempDir()+"/m.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		f     VerdictFilter
		index string
	}{
		{VerdictFilter{QueueID: "4XyZ1"}, "verdicts_queue_id"},
		{VerdictFilter{MessageID: "a@b.test"}, "verdicts_message_id"},
		{VerdictFilter{Client: "192.0.2.1"}, "verdicts_client_ip"},
		{VerdictFilter{ClientIP: "192.0.2.1", Since: time.Unix(1, 0)}, "verdicts_client_ip"},
		{VerdictFilter{MailFrom: "a@b.test"}, "verdicts_mail_from"},
		// A substring search scans the ids since then, found by time.
		{VerdictFilter{Since: time.Unix(1, 0), Subject: "x"}, "USING COVERING INDEX verdicts_at"},
	} {
		plan := s.w1Plan(t, c.f)
		if !strings.Contains(plan, c.index) {
			t.Errorf("%+v: plan %q does not use %s", c.f, plan, c.index)
		}
	}
}

// w1Plan is SQLite's query plan for f's query.
func (s *Store) w1Plan(t *testing.T, f VerdictFilter) string {
	t.Helper()
	where, args, limit := s.verdictWhere(f)
	rows, err := s.db.Query("EXPLAIN QUERY PLAN "+verdictQuery(where, limit), args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// BenchmarkVerdictSearch searches 100,000 verdicts on SQLite (a day of
// a busy MX host): by an exact key through its index, and by a Subject
// substring that matches nothing, over the last hour and over
// everything (the worst case: the whole table read).
func BenchmarkVerdictSearch(b *testing.B) {
	s := openBench(b, "sqlite")
	defer s.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const n = 100_000
	batch := make([]Verdict, 0, 1000)
	for i := range n {
		v := testVerdict(t0.Add(time.Duration(i)*864*time.Millisecond), fmt.Sprintf("d%d.test", i%5000), fmt.Sprintf("192.0.2.%d", i%250), "accept")
		v.QueueID, v.MessageID, v.Subject, v.DMARCRow = fmt.Sprintf("Q%08X", i), fmt.Sprintf("%d@d.test", i), fmt.Sprintf("Invoice %d for you", i), nil
		batch = append(batch, v)
		if len(batch) == cap(batch) {
			if err := s.InsertVerdicts(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	end := t0.Add(n * 864 * time.Millisecond)
	for _, c := range []struct {
		name string
		f    VerdictFilter
		want int
	}{
		{"queue_id", VerdictFilter{QueueID: fmt.Sprintf("Q%08X", n/2)}, 1},
		{"message_id", VerdictFilter{MessageID: fmt.Sprintf("%d@d.test", n/3)}, 1},
		{"subject_last_hour", VerdictFilter{Since: end.Add(-time.Hour), Subject: "no such words"}, 0},
		{"subject_all", VerdictFilter{Subject: "no such words"}, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				vs, err := s.Verdicts(ctx, c.f)
				if err != nil || len(vs) != c.want {
					b.Fatalf("%d verdicts, %v", len(vs), err)
				}
			}
		})
	}
}

// TestRecorderMemoryBound: verdicts a client made large are queued
// within the store's bounds, and past the recorder's memory bound (here
// 1 MB, the store down so that nothing drains) the next ones are lost
// and counted, not kept.
func TestRecorderMemoryBound(t *testing.T) {
	s, err := Open(context.Background(), "sqlite", t.TempDir()+"/gone.db")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var lost atomic.Int64
	r := s.newRecorder(slog.New(slog.DiscardHandler), 1000, func(n int) { lost.Add(int64(n)) }, time.Hour)
	r.maxBytes = 1 << 20
	big := strings.Repeat("x", 1<<20)
	for range 100 {
		v := testVerdict(time.Now(), "x.test", "192.0.2.1", "accept")
		v.Subject, v.Reasons = big, []string{big, big}
		for range 100 {
			v.Details.Hits = append(v.Details.Hits, Hit{Rule: "r", Detail: big})
		}
		r.Record(v)
		if n := r.bytes.Load(); n > r.maxBytes {
			t.Fatalf("%d bytes queued, over the bound", n)
		}
	}
	// About 100 KB each after bounding: some 10 fit in 1 MB.
	if got := lost.Load(); got < 80 || got == 100 {
		t.Errorf("%d of 100 lost, want most but not all", got)
	}
	r.Close()
}
