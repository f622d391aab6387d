package web

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/dmarc"
	"mailwall/internal/lists"
	"mailwall/internal/store"
)

// w2Verdict stores one verdict and returns its ID.
func w2Verdict(t *testing.T, s *testSite, v store.Verdict) int64 {
	t.Helper()
	if v.At.IsZero() {
		v.At = s.now.Add(-time.Minute)
	}
	vs := []store.Verdict{v}
	if err := s.st.InsertVerdicts(context.Background(), vs); err != nil {
		t.Fatal(err)
	}
	return vs[0].ID
}

// w2Token logs c in and returns the session's CSRF token, as the
// verdict's page carries it in every action form.
func w2Token(t *testing.T, s *testSite, c *http.Client, id int64) string {
	t.Helper()
	s.login(t, c)
	code, body, _ := fetch(t, c, "GET", fmt.Sprintf("%s/verdicts/%d", s.URL, id), nil)
	m := csrfField.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil || !strings.Contains(body, `id="actions"`) {
		t.Fatalf("verdict %d page: %d, no action forms:\n%s", id, code, body)
	}
	return m[1]
}

func TestVerdictActionsNeedToken(t *testing.T) {
	s := newSite(t)
	id := w2Verdict(t, s, store.Verdict{Node: "mx1", QueueID: "4F2A91C3D", ClientIP: "192.0.2.7", MailFrom: "a@bank.test", FromDomain: "bank.test",
		HeaderFrom: "a@bank.test", Action: "quarantine", Stage: "score"})
	c := s.client()
	token := w2Token(t, s, c, id)
	posts := []struct {
		path string
		form url.Values
	}{
		{"/verdicts/%d/list", url.Values{"list": {"allow"}, "target": {"domain:bank.test"}}},
		{"/verdicts/%d/learn", url.Values{"class": {"spam"}}},
		{"/verdicts/%d/queue", url.Values{"op": {"delete"}}},
		{"/lists", url.Values{"list": {"block"}, "kind": {"domain"}, "value": {"evil.test"}}},
	}
	for _, p := range posts {
		path := p.path
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, id)
		}
		// No token; a wrong token; the right token from another site.
		for name, tc := range map[string]struct {
			token, origin string
		}{"no token": {"", ""}, "forged token": {"forged", ""}, "other site": {token, "http://evil.example"}} {
			form := url.Values{}
			for k, v := range p.form {
				form[k] = v
			}
			if tc.token != "" {
				form.Set("csrf", tc.token)
			}
			req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s, %s: %d, want 403", path, name, resp.StatusCode)
			}
		}
	}
	es, err := s.st.ListEntries(context.Background())
	if err != nil || len(es) != 0 {
		t.Errorf("refused posts changed the lists: %+v %v", es, err)
	}
	if fb, err := s.st.VerdictFeedback(context.Background(), id); err != nil || fb.Feedback != "" {
		t.Errorf("refused post set feedback: %+v %v", fb, err)
	}
}

func TestVerdictListActions(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	id := w2Verdict(t, s, store.Verdict{Node: "mx1", QueueID: "4F2A91C3D", ClientIP: "2001:db8:1:2::7", MailFrom: "bounce@mail.bank.test", FromDomain: "bank.test",
		HeaderFrom: "Alice@Bank.test", Action: "reject", Stage: "dmarc"})
	c := s.client()
	token := w2Token(t, s, c, id)
	_, body, _ := fetch(t, c, "GET", fmt.Sprintf("%s/verdicts/%d", s.URL, id), nil)
	for _, want := range []string{`value="sender:alice@bank.test"`, `value="domain:bank.test"`, `value="ip:2001:db8:1:2::7/128"`, `value="ip:2001:db8:1::/56"`} {
		if !strings.Contains(body, want) {
			t.Errorf("verdict page lacks the button %s", want)
		}
	}
	if strings.Contains(body, `id="act-queue"`) {
		t.Error("a rejected message offered for release")
	}
	for _, tc := range []struct {
		list, target, days string
		code               int
		want               *lists.Entry
	}{
		{"allow", "domain:bank.test", "", http.StatusOK, &lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "bank.test"}},
		{"block", "ip:2001:db8:1::/56", "7", http.StatusOK, &lists.Entry{List: lists.Block, Kind: lists.IP, Value: "2001:db8:1::/56", Expires: s.now.Add(7 * 24 * time.Hour)}},
		{"allow", "sender:alice@bank.test", "", http.StatusOK, &lists.Entry{List: lists.Allow, Kind: lists.Sender, Value: "alice@bank.test"}},
		// Only what the verdict names can be listed from its page.
		{"allow", "domain:other.test", "", http.StatusBadRequest, nil},
		{"allow", "ip:0.0.0.0/0", "", http.StatusBadRequest, nil},
		{"maybe", "domain:bank.test", "", http.StatusBadRequest, nil},
		{"block", "domain:bank.test", "-1", http.StatusBadRequest, nil},
	} {
		code, body, _ := fetch(t, c, "POST", fmt.Sprintf("%s/verdicts/%d/list", s.URL, id), url.Values{"csrf": {token}, "list": {tc.list}, "target": {tc.target}, "days": {tc.days}})
		if code != tc.code {
			t.Errorf("%s %s: %d, want %d\n%s", tc.list, tc.target, code, tc.code, body)
			continue
		}
		if tc.want == nil {
			continue
		}
		es, err := s.st.ListEntries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got *lists.Entry
		for i := range es {
			if es[i].List == tc.want.List && es[i].Kind == tc.want.Kind && es[i].Value == tc.want.Value {
				got = &es[i]
			}
		}
		if got == nil || !got.Expires.Equal(tc.want.Expires.Truncate(time.Second)) || got.Note != fmt.Sprintf("from verdict %d", id) {
			t.Errorf("%s %s: stored %+v, want %+v", tc.list, tc.target, got, tc.want)
		}
		if !strings.Contains(body, "added") {
			t.Errorf("%s %s: the page does not say it was added:\n%s", tc.list, tc.target, body)
		}
	}
}

// TestListTargets: what a verdict offers to list, by where it was
// decided.
func TestListTargets(t *testing.T) {
	for _, tc := range []struct {
		v    store.Verdict
		want string
	}{
		{store.Verdict{Source: "milter", ClientIP: "192.0.2.7", MailFrom: "b@mail.bank.test", HeaderFrom: "A@Bank.test", FromDomain: "bank.test"},
			"sender:a@bank.test domain:bank.test ip:192.0.2.7/32 ip:192.0.2.0/24"},
		// A refusal at RCPT knows only the envelope.
		{store.Verdict{Source: "policy", ClientIP: "::ffff:192.0.2.7", MailFrom: "b@mail.bank.test"},
			"sender:b@mail.bank.test domain:mail.bank.test ip:192.0.2.7/32 ip:192.0.2.0/24"},
		// A bounce refused at HELO: the client alone.
		{store.Verdict{Source: "helo", ClientIP: "2001:db8::1", Helo: "x"}, "ip:2001:db8::1/128 ip:2001:db8::/56"},
		{store.Verdict{Source: "helo", ClientIP: "unknown", MailFrom: "not an address"}, ""},
	} {
		var got []string
		for _, x := range listTargets(&tc.v) {
			got = append(got, string(x.Kind)+":"+x.Value)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: %q, want %q", tc.v, strings.Join(got, " "), tc.want)
		}
	}
}

func TestListsPage(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	c := s.client()
	s.login(t, c)
	_, body, _ := fetch(t, c, "GET", s.URL+"/lists", nil)
	token := csrfField.FindStringSubmatch(body)[1]
	for _, tc := range []struct {
		list, kind, value string
		code              int
	}{
		{"block", "domain", "Evil.Test.", http.StatusOK},
		{"allow", "ip", "192.0.2.0/24", http.StatusOK},
		{"allow", "rcpt", "<postmaster@rcpt.test>", http.StatusOK},
		{"allow", "ip", "not-an-ip", http.StatusBadRequest},
		{"allow", "color", "blue", http.StatusBadRequest},
		{"allow", "sender", "no-at-sign", http.StatusBadRequest},
	} {
		code, body, _ := fetch(t, c, "POST", s.URL+"/lists", url.Values{"csrf": {token}, "list": {tc.list}, "kind": {tc.kind}, "value": {tc.value}, "note": {"<b>partner</b>"}})
		if code != tc.code {
			t.Errorf("add %s %s %q: %d, want %d\n%s", tc.list, tc.kind, tc.value, code, tc.code, body)
		}
	}
	es, err := s.st.ListEntries(ctx)
	if err != nil || len(es) != 3 {
		t.Fatalf("%d entries, want 3: %+v %v", len(es), es, err)
	}
	_, body, _ = fetch(t, c, "GET", s.URL+"/lists", nil)
	for _, want := range []string{`data-list="block" data-kind="domain" data-value="evil.test"`, `data-value="192.0.2.0/24"`,
		`data-value="postmaster@rcpt.test"`, "&lt;b&gt;partner&lt;/b&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("lists page lacks %s", want)
		}
	}
	_, body, _ = fetch(t, c, "GET", s.URL+"/lists?q=evil", nil)
	if !strings.Contains(body, `data-value="evil.test"`) || strings.Contains(body, `data-value="192.0.2.0/24"`) {
		t.Error("lists filtered by q=evil")
	}
	var blockID int64
	for _, e := range es {
		if e.Value == "evil.test" {
			blockID = e.ID
		}
	}
	if code, _, _ := fetch(t, c, "POST", fmt.Sprintf("%s/lists/%d/remove", s.URL, blockID), url.Values{}); code != http.StatusForbidden {
		t.Errorf("remove without the token: %d", code)
	}
	code, body, _ := fetch(t, c, "POST", fmt.Sprintf("%s/lists/%d/remove", s.URL, blockID), url.Values{"csrf": {token}})
	if code != http.StatusOK || !strings.Contains(body, fmt.Sprintf("Entry %d removed.", blockID)) || strings.Contains(body, `data-value="evil.test"`) {
		t.Errorf("remove: %d\n%s", code, body)
	}
	if code, _, _ := fetch(t, c, "POST", fmt.Sprintf("%s/lists/%d/remove", s.URL, blockID), url.Values{"csrf": {token}}); code != http.StatusNotFound {
		t.Errorf("remove twice: %d", code)
	}
	if es, _ := s.st.ListEntries(ctx); len(es) != 2 {
		t.Errorf("%d entries after the remove, want 2", len(es))
	}
}

func TestValidQueueID(t *testing.T) {
	for id, ok := range map[string]bool{
		"4F2A91C3D":             true, // short form
		"3F1B2C0A1E":            true,
		"4dD1YL0bm2zJbk":        true, // long form
		"4XyZ1":                 false,
		"ALL":                   false,
		"deferred":              false,
		"-d":                    false,
		"4F2A91C3D ALL":         false,
		"4F2A91C3D;rm":          false,
		"../../etc/passwd":      false,
		"4f2a91c3d":             false, // lower-case hex is neither form
		"":                      false,
		"4dD1YL0bm2JbkQ":        false, // long-form letters, no 'z'
		strings.Repeat("A", 33): false,
	} {
		if got := ValidQueueID(id); got != ok {
			t.Errorf("ValidQueueID(%q) = %v, want %v", id, got, ok)
		}
	}
}

// w2FakePostsuper is a stand-in for sudo postsuper, and the postqueue
// beside it, that record their name and arguments, one a line; postsuper
// exits with code.
func w2FakePostsuper(t *testing.T, code int) (argv []string, log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "args")
	for name, exit := range map[string]int{"postsuper": code, "postqueue": 0} {
		script := fmt.Sprintf("#!/bin/sh\necho %s >> %s\nfor a in \"$@\"; do echo \"$a\" >> %s; done\necho '%s: x: said'\nexit %d\n", name, log, log, name, exit)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{filepath.Join(dir, "postsuper"), "-c", "/etc/postfix"}, log
}

func TestVerdictQueue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		node    string // the verdict's MX host; default mx1, the dashboard's
		fail    bool
		none    bool
		queueID string
		op      string
		code    int
		args    string // what the command got; "" not run
		page    []string
	}{
		{name: "release", queueID: "4F2A91C3D", op: "release", code: http.StatusOK, args: "postsuper\n-c\n/etc/postfix\n-H\n4F2A91C3D\npostqueue\n-c\n/etc/postfix\n-i\n4F2A91C3D\n",
			page: []string{"Released from the hold queue: 4F2A91C3D", "postsuper: x: said", "Its delivery is asked for now (postqueue -i)."}},
		{name: "delete long ID", queueID: "4dD1YL0bm2zJbk", op: "delete", code: http.StatusOK, args: "postsuper\n-c\n/etc/postfix\n-d\n4dD1YL0bm2zJbk\n",
			page: []string{"Deleted from the queue: 4dD1YL0bm2zJbk"}},
		{name: "command fails", fail: true, queueID: "4F2A91C3D", op: "release", code: http.StatusBadGateway, args: "postsuper\n-c\n/etc/postfix\n-H\n4F2A91C3D\n",
			page: []string{"failed (exit status 1)", `<pre id="command">` + "%s -c /etc/postfix -H 4F2A91C3D</pre>", "run this as root on mx1"}},
		{name: "no command", none: true, queueID: "4F2A91C3D", op: "delete", code: http.StatusOK,
			page: []string{`<pre id="command">postsuper -d 4F2A91C3D</pre>`, "web.postsuper"}},
		{name: "another host's", node: "mx2", queueID: "4F2A91C3D", op: "delete", code: http.StatusOK,
			page: []string{"held on mx2, not on mx1", `<pre id="command">%s -c /etc/postfix -d 4F2A91C3D</pre>`}},
		{name: "bad op", queueID: "4F2A91C3D", op: "requeue", code: http.StatusBadRequest},
		{name: "ALL", queueID: "ALL", op: "delete", code: http.StatusBadRequest},
		{name: "option", queueID: "-d ALL", op: "delete", code: http.StatusBadRequest},
		{name: "shell", queueID: "4F2A91C3D;reboot", op: "release", code: http.StatusBadRequest},
		{name: "no queue ID", queueID: "", op: "release", code: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv, log := w2FakePostsuper(t, map[bool]int{false: 0, true: 1}[tc.fail])
			s := newSite(t, func(d *Dashboard) {
				if !tc.none {
					d.Postsuper = argv
				}
				d.Node = "mx1"
			})
			id := w2Verdict(t, s, store.Verdict{Node: cmp.Or(tc.node, "mx1"), QueueID: tc.queueID, ClientIP: "192.0.2.7", Action: "quarantine", Stage: "score"})
			c := s.client()
			token := w2Token(t, s, c, id)
			code, body, _ := fetch(t, c, "POST", fmt.Sprintf("%s/verdicts/%d/queue", s.URL, id), url.Values{"csrf": {token}, "op": {tc.op}})
			if code != tc.code {
				t.Errorf("%d, want %d\n%s", code, tc.code, body)
			}
			got, _ := os.ReadFile(log)
			if string(got) != tc.args {
				t.Errorf("the command got %q, want %q", got, tc.args)
			}
			for _, want := range tc.page {
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, argv[0])
				}
				if !strings.Contains(body, want) {
					t.Errorf("the page lacks %q:\n%s", want, body)
				}
			}
		})
	}
}

func TestPostqueueFor(t *testing.T) {
	for prefix, want := range map[string]string{
		"sudo -n /usr/sbin/postsuper":         "/usr/sbin/postqueue",
		"/usr/sbin/postsuper -c /etc/postfix": "/usr/sbin/postqueue -c /etc/postfix",
		"postsuper":                           "postqueue",
		"/usr/local/bin/release-held":         "",
		"mailwall web postsuper":              "",
		"":                                    "",
	} {
		if got := strings.Join(postqueueFor(strings.Fields(prefix)), " "); got != want {
			t.Errorf("postqueueFor(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func TestHandCommand(t *testing.T) {
	for prefix, want := range map[string]string{
		"sudo -n /usr/sbin/postsuper":                "/usr/sbin/postsuper",
		"/usr/bin/sudo -n /usr/sbin/postsuper -c /x": "/usr/sbin/postsuper -c /x",
		"/usr/sbin/postsuper":                        "/usr/sbin/postsuper",
		"mailwall web postsuper":                     "postsuper",
		"":                                           "postsuper",
	} {
		if got := handCommand(strings.Fields(prefix)); got != want {
			t.Errorf("handCommand(%q) = %q, want %q", prefix, got, want)
		}
	}
}

// TestVerdictLearn clicks spam, spam again, not spam and forget on a
// verdict that kept its features: the store's model counts it once, the
// other class takes the first back, and the feedback column follows.
func TestVerdictLearn(t *testing.T) {
	var heard []string
	s := newSite(t, func(d *Dashboard) {
		d.Feedback = func(_ context.Context, v *store.Verdict, prev, class string) error {
			heard = append(heard, fmt.Sprintf("%d:%s>%s", v.ID, prev, class))
			return nil
		}
	})
	ctx := context.Background()
	raw := []byte("From: Prize <win@lottery.test>\r\nSubject: You won\r\nMessage-ID: <1@lottery.test>\r\n\r\nClaim your prize now at http://lottery.test/claim\r\n")
	fields, text := classify.ParseMessage(raw)
	msg := &classify.Message{Fields: fields, Body: text}
	v := classify.NewExtractor().Extract(msg)
	n := len(v.Hashes)
	kept := classify.Kept(classify.MessageKey(msg, nil), v)
	id := w2Verdict(t, s, store.Verdict{Node: "mx1", ClientIP: "192.0.2.7", Action: "accept", Stage: "score", Features: kept})
	plain := w2Verdict(t, s, store.Verdict{Node: "mx1", ClientIP: "192.0.2.8", Action: "accept", Stage: "score"})
	c := s.client()
	token := w2Token(t, s, c, id)
	counts := func() (junk, ham, sumJunk, sumHam int64) {
		st, err := s.st.ModelCounts(ctx, classify.SiteModel, 0, func(b classify.BucketCount) { sumJunk += b.Junk; sumHam += b.Ham })
		if err != nil {
			t.Fatal(err)
		}
		return st.Junk, st.Ham, sumJunk, sumHam
	}
	for _, step := range []struct {
		class, say, feedback string
		junk, ham            int64
	}{
		{"spam", "Learnt as spam.", "spam", 1, 0},
		{"spam", "Already learnt as spam: not counted twice.", "spam", 1, 0},
		{"ham", "Learnt as not spam; it had been learnt as spam, which was taken back.", "ham", 0, 1},
		{"", "Unlearnt: the model no longer counts this message as not spam.", "", 0, 0},
		{"", "Nothing to unlearn", "", 0, 0},
	} {
		code, body, _ := fetch(t, c, "POST", fmt.Sprintf("%s/verdicts/%d/learn", s.URL, id), url.Values{"csrf": {token}, "class": {step.class}})
		if code != http.StatusOK || !strings.Contains(body, step.say) {
			t.Errorf("%q: %d, want a page saying %q:\n%s", step.class, code, step.say, body)
		}
		junk, ham, sumJunk, sumHam := counts()
		if junk != step.junk || ham != step.ham || sumJunk != step.junk*int64(n) || sumHam != step.ham*int64(n) {
			t.Errorf("after %q: %d junk, %d ham messages, bucket sums %d, %d; want %d, %d of %d features", step.class, junk, ham, sumJunk, sumHam, step.junk, step.ham, n)
		}
		if fb, err := s.st.VerdictFeedback(ctx, id); err != nil || fb.Feedback != step.feedback {
			t.Errorf("after %q: feedback %+v %v, want %q", step.class, fb, err, step.feedback)
		}
		// The verdict's page says what was said, and offers to forget it.
		_, page, _ := fetch(t, c, "GET", fmt.Sprintf("%s/verdicts/%d", s.URL, id), nil)
		said := map[string]string{"spam": "said so far: spam", "ham": "said so far: not spam"}[step.feedback]
		if said != "" && (!strings.Contains(page, said) || !strings.Contains(page, `id="learn-forget"`)) ||
			said == "" && strings.Contains(page, `id="learn-forget"`) {
			t.Errorf("after %q: the verdict's page does not say %q", step.class, said)
		}
	}
	if want := fmt.Sprintf("%d:>spam %d:spam>spam %d:spam>ham %d:ham> %d:>", id, id, id, id, id); strings.Join(heard, " ") != want {
		t.Errorf("the feedback hook heard %q, want %q", strings.Join(heard, " "), want)
	}
	// A verdict without features: feedback kept, nothing learnt.
	code, body, _ := fetch(t, c, "POST", fmt.Sprintf("%s/verdicts/%d/learn", s.URL, plain), url.Values{"csrf": {token}, "class": {"spam"}})
	if code != http.StatusOK || !strings.Contains(body, "Not learnt: the classifier did not run") {
		t.Errorf("no features: %d\n%s", code, body)
	}
	if junk, _, _, _ := counts(); junk != 0 {
		t.Errorf("a verdict without features taught %d", junk)
	}
	if code, _, _ := fetch(t, c, "POST", fmt.Sprintf("%s/verdicts/%d/learn", s.URL, id), url.Values{"csrf": {token}, "class": {"phish!"}}); code != http.StatusBadRequest {
		t.Errorf("unknown class: %d", code)
	}
	// Features that do not read are refused, not learnt.
	bad := w2Verdict(t, s, store.Verdict{Node: "mx1", Action: "accept", Stage: "score", Features: []byte("mwf1short")})
	if code, _, _ := fetch(t, c, "POST", fmt.Sprintf("%s/verdicts/%d/learn", s.URL, bad), url.Values{"csrf": {token}, "class": {"spam"}}); code != http.StatusInternalServerError {
		t.Errorf("malformed features: %d", code)
	}
}

func TestResendDelivery(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	r := &store.ReportOut{PolicyDomain: "bank.test", Begin: s.now.Add(-48 * time.Hour), End: s.now.Add(-24 * time.Hour), ReportID: "r1", Filename: "f.xml.gz",
		Created: s.now.Add(-23 * time.Hour), GZ: []byte{1}}
	if _, err := s.st.SaveReport(ctx, r, []dmarc.URI{{URI: "mailto:rua@bank.test"}, {URI: "mailto:rua@other.test"}}); err != nil {
		t.Fatal(err)
	}
	due, err := s.st.DueDeliveries(ctx, time.Time{})
	if err != nil || len(due) != 2 {
		t.Fatalf("deliveries: %+v %v", due, err)
	}
	failed := due[0]
	failed.State, failed.LastError = store.Failed, "550 5.1.1 no such user"
	sent := due[1]
	sent.State, sent.SentAt = store.Sent, s.now
	for _, d := range []store.Delivery{failed, sent} {
		if err := s.st.FinishDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	c := s.client()
	s.login(t, c)
	_, body, _ := fetch(t, c, "GET", s.URL+"/deliveries", nil)
	token := csrfField.FindStringSubmatch(body)[1]
	if !strings.Contains(body, fmt.Sprintf(`data-id="%d"`, failed.ID)) || strings.Contains(body, fmt.Sprintf(`data-id="%d"`, sent.ID)) ||
		!strings.Contains(body, "550 5.1.1 no such user") || !strings.Contains(body, `<a href="/dmarc/bank.test">bank.test</a>`) {
		t.Errorf("failed deliveries page:\n%s", body)
	}
	if code, _, _ := fetch(t, c, "POST", fmt.Sprintf("%s/deliveries/%d/resend", s.URL, failed.ID), url.Values{}); code != http.StatusForbidden {
		t.Errorf("resend without the token: %d", code)
	}
	code, body, _ := fetch(t, c, "POST", fmt.Sprintf("%s/deliveries/%d/resend", s.URL, failed.ID), url.Values{"csrf": {token}})
	if code != http.StatusOK || !strings.Contains(body, "is queued again") {
		t.Errorf("resend: %d\n%s", code, body)
	}
	due, _ = s.st.DueDeliveries(ctx, s.now)
	if len(due) != 1 || due[0].ID != failed.ID || due[0].Attempts != 0 || due[0].LastError != "" {
		t.Errorf("due after resend: %+v", due)
	}
	// Only a failed delivery can be resent: not the sent one, nor the
	// same one twice.
	for _, id := range []int64{sent.ID, failed.ID} {
		if code, _, _ := fetch(t, c, "POST", fmt.Sprintf("%s/deliveries/%d/resend", s.URL, id), url.Values{"csrf": {token}}); code != http.StatusConflict {
			t.Errorf("resend %d: %d, want 409", id, code)
		}
	}
}
