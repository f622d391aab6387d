// Package corpus runs the receive pipeline, with its default actions and
// score thresholds, over the messages of testdata/corpus: phishing in
// Japanese and English, brand mail, newsletters, list mail with ARC and
// personal mail, each with the action expected. It prints precision and
// recall (go test -v ./test/corpus).
package corpus

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"mailwall/internal/analysis"
	"mailwall/internal/arc"
	"mailwall/internal/classify"
	"mailwall/internal/config"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/lab"
	"mailwall/internal/phish"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

const dir = "../../testdata/corpus"

// entry is one message of messages.yaml.
type entry struct {
	File     string  `yaml:"file"`
	Class    string  `yaml:"class"`  // phish or ham
	Expect   string  `yaml:"expect"` // the action expected
	Host     string  `yaml:"host"`   // the sending host, from lab.yaml
	MailFrom *string `yaml:"mail_from"`
	Sign     *bool   `yaml:"sign"` // default: signed when the From domain has a key
	Via      string  `yaml:"via"`  // a list host that receives, changes, seals and resends it
	Note     string  `yaml:"note"`
}

// localBrands are the admin's own additions to the brand list: a bank and
// a shop of the lab, so that their real mail and their imitations both
// appear in the corpus.
var localBrands = []phish.Brand{
	{Name: "minatobank", Domains: []string{"minatobank.test"}, Words: []string{"みなと銀行"}},
	{Name: "shoplet", Domains: []string{"shoplet.test"}, Words: []string{"ショップレット"}},
}

// knownDomains have written to this MX before: the store has them from
// weeks ago, so only the others are first seen.
var knownDomains = []string{"example.test", "shoplet.test", "minatobank.test", "smalljp.test", "lists.example.test", "forwarder.test",
	"devhub.test", "opsmon.test", "edmail.test", "freemail.test", "esp-mailer.test", "quarantine-corp.test"}

type world struct {
	file    *lab.File
	signers map[string]*dkim.Signer
	res     dnsx.Resolver
}

// host is a lab host's address and domain.
func (w *world) host(fqdn string) (netip.Addr, string) {
	d, h, ok := w.file.Host(fqdn)
	if !ok {
		return netip.Addr{}, ""
	}
	return netip.MustParseAddr(h.IP), d.Name
}

func setUp(t *testing.T) *world {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := lab.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	srv, signers, err := f.StartDNS(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{srv.Addr()}, Timeout: 2 * time.Second}, dnsx.CacheOptions{})
	return &world{file: f, signers: signers, res: res}
}

// pipeline is the MX's: the defaults, plus the admin's brands, one
// trusted list and a store with a month of history.
func (w *world) pipeline(t *testing.T, now time.Time) *verdict.Checker {
	t.Helper()
	c := verdict.New(w.res, "mx.rcpt.test")
	var err error
	if c.S25R, err = conncheck.NewS25R(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	c.TrustedSealers = []string{"lists.example.test"}
	p, err := phish.New(append(phish.DefaultBrands(), localBrands...), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Analyzers = []analysis.Analyzer{p}
	if cc := config.Default().Checks.Classifier; cc.Enabled {
		// The classifier as the defaults have it: the starter model.
		m, err := classify.LoadFile(context.Background(), cc.Model, cc.Kind)
		if err != nil {
			t.Fatal(err)
		}
		c.Analyzers = append(c.Analyzers, &classify.Analyzer{C: m, Threshold: cc.Threshold, Weight: cc.Weight,
			StrongThreshold: cc.StrongThreshold, StrongWeight: cc.StrongWeight, StarterWeight: cc.StarterWeight})
	}
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "mailwall.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, d := range knownDomains {
		if _, _, err := st.SeenDomain(ctx, d, now.AddDate(0, 0, -20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCreated(ctx, now.AddDate(0, 0, -30)); err != nil {
		t.Fatal(err)
	}
	p.History, p.Warmup = st, 7*24*time.Hour
	p.Now = func() time.Time { return now }
	return c
}

func readMessage(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n", "\r\n")
}

// fromAddress is the From address, encoded display names and all.
func fromAddress(t *testing.T, msg string) string {
	t.Helper()
	fields, err := dkim.ReadHeader(bufio.NewReader(strings.NewReader(msg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if strings.EqualFold(f.Name, "From") {
			v := strings.TrimSpace(f.Value())
			if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
				return v[i+1 : j]
			}
			return strings.Fields(v)[0]
		}
	}
	t.Fatal("no From")
	return ""
}

// throughList does what a mailing list does: receive (with its own
// checks), tag the Subject, add a footer, sign as itself and seal ARC.
func (w *world) throughList(t *testing.T, list string, env verdict.Envelope, msg string) (verdict.Envelope, string) {
	t.Helper()
	ip, domain := w.host(list)
	if !ip.IsValid() {
		t.Fatalf("list host %s not in lab.yaml", list)
	}
	checker := verdict.New(w.res, list)
	r, _, err := checker.CheckMessage(context.Background(), env, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	ar := ""
	for _, h := range r.Headers {
		if h.Name == "Authentication-Results" {
			ar = "Authentication-Results:" + h.Value + "\r\n"
		}
	}
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	head = strings.Replace(head, "Subject: ", "Subject: [users] ", 1)
	changed := ar + head + "\r\nList-Id: <users." + domain + ">\r\n\r\n" + body + "-- \r\nusers mailing list\r\n"
	signer := w.signers[domain]
	sig, err := signer.Sign(strings.NewReader(changed))
	if err != nil {
		t.Fatal(err)
	}
	changed = sig + changed
	sealer := &arc.Sealer{Domain: domain, Selector: signer.Selector, Key: signer.Key, AuthServID: list}
	fields, err := dkim.ReadHeader(bufio.NewReader(strings.NewReader(changed)))
	if err != nil {
		t.Fatal(err)
	}
	set, err := sealer.Seal(changed, r.ARC.Result, arc.ResultsFor(fields, list))
	if err != nil {
		t.Fatal(err)
	}
	next := verdict.Envelope{ClientIP: ip, Helo: list, MailFrom: "users-bounces@" + domain, Rcpts: env.Rcpts}
	return next, set.Header() + changed
}

func TestCorpus(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(dir, "messages.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Messages []entry `yaml:"messages"`
	}
	if err := yaml.Unmarshal(data, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Messages) < 40 {
		t.Fatalf("%d messages in the corpus, want at least 40", len(manifest.Messages))
	}
	w := setUp(t)
	now := time.Now()
	mx := w.pipeline(t, now)
	var tp, fp, fn, tn int
	for _, e := range manifest.Messages {
		t.Run(strings.TrimSuffix(e.File, ".eml"), func(t *testing.T) {
			msg := readMessage(t, e.File)
			ip, _ := w.host(e.Host)
			if !ip.IsValid() {
				t.Fatalf("host %s not in lab.yaml", e.Host)
			}
			from := fromAddress(t, msg)
			env := verdict.Envelope{ClientIP: ip, Helo: e.Host, MailFrom: from, Rcpts: []string{"taro@rcpt.test"}}
			if e.MailFrom != nil {
				env.MailFrom = *e.MailFrom
			}
			fromDomain := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:])
			if s := w.signers[fromDomain]; s != nil && (e.Sign == nil || *e.Sign) {
				sig, err := s.Sign(strings.NewReader(msg))
				if err != nil {
					t.Fatal(err)
				}
				msg = sig + msg
			}
			if e.Via != "" {
				env, msg = w.throughList(t, e.Via, env, msg)
			}
			r, _, err := mx.CheckMessage(context.Background(), env, strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			score, rules := r.Score(), strings.Join(r.Rules(), " ")
			caught := r.Action != verdict.Accept
			switch {
			case e.Class == "phish" && caught:
				tp++
			case e.Class == "phish":
				fn++
			case caught:
				fp++
			default:
				tn++
			}
			t.Logf("%-10s %3d  spf=%s dkim=%s dmarc=%s arc=%s  %s", r.Action, score, r.SPF.Result, dkimResults(r.DKIM), r.DMARC.Result, r.ARC.Result, rules)
			if e.Class == "ham" && (r.Action == verdict.Quarantine || r.Action == verdict.Reject) {
				t.Errorf("legitimate message %s: %s (%s)", r.Action, e.Note, strings.Join(r.Reasons, "; "))
			}
			if string(r.Action) != e.Expect {
				t.Errorf("%s, want %s: %s\nreasons: %s", r.Action, e.Expect, e.Note, strings.Join(r.Reasons, "; "))
			}
		})
	}
	precision := float64(tp) / float64(max(tp+fp, 1))
	recall := float64(tp) / float64(max(tp+fn, 1))
	msg := fmt.Sprintf("corpus: %d messages (%d phishing, %d legitimate): precision %.3f, recall %.3f (caught = any action but accept; tp %d fp %d fn %d tn %d)",
		tp+fp+fn+tn, tp+fn, fp+tn, precision, recall, tp, fp, fn, tn)
	t.Log(msg)
	fmt.Println(msg)
}

func dkimResults(rs []dkim.Result) string {
	if len(rs) == 0 {
		return "none"
	}
	var parts []string
	for _, r := range rs {
		parts = append(parts, string(r.Status)+"("+r.Domain+")")
	}
	return strings.Join(parts, ",")
}
