package main

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"mailwall/internal/benchmsg"
	"mailwall/internal/config"
	"mailwall/internal/cputime"
	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/gcfloor"
	"mailwall/internal/labtest"
	"mailwall/internal/lists"
	"mailwall/internal/metrics"
	"mailwall/internal/milter"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// allListEntries are bench/milter -all's allow and block entries, none
// matching the benchmark's mail: the list stage reads them for every
// message.
type allListEntries []lists.Entry

func (allListEntries) ListsVersion(context.Context) (int64, error) { return 1, nil }
func (e allListEntries) ListEntries(context.Context) ([]lists.Entry, error) {
	return e, nil
}

// allMilterFilter is serve's milter filter with everything on, as
// bench/milter -all runs it: the phishing rules, the DNS blocklists
// (zen.bl.test*3, bl2.bl.test, dbl.bl.test*2, none listing the mail;
// answers cached), the classifier's starter model, reputation on a
// SQLite store, allow and block lists, metrics, the recorder and the
// info log line (to io.Discard). It returns the filter and the
// message's header fields and body as Postfix passes them.
func allMilterFilter(b *testing.B) (*milterFilter, [][2]string, []byte) {
	ctx := context.Background()
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := dkim.PublicKeyRecord(key)
	dns := labtest.Serve(b,
		labtest.Zone(b, "test"),
		labtest.Zone(b, "example.test",
			`@ IN TXT "v=spf1 ip4:198.51.100.10 -all"`, `mail IN A 198.51.100.10`, `www IN A 198.51.100.80`,
			`_dmarc IN TXT "v=DMARC1; p=reject"`, dkim.ZoneRecord("sel", "example.test", pub)),
		labtest.Zone(b, "100.51.198.in-addr.arpa", `10 IN PTR mail.example.test.`),
		labtest.Zone(b, "zen.bl.test"), labtest.Zone(b, "bl2.bl.test"), labtest.Zone(b, "dbl.bl.test"),
	)
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})

	cfg := config.Default()
	cfg.Hostname = "mx.rcpt.test"
	cfg.Log.Level = "info"
	cfg.Checks.DMARCPSL = true
	cfg.Checks.Phish.Enabled = true
	cfg.Checks.Classifier.Enabled = true
	cfg.Checks.Reputation.Enabled = true
	cfg.DNSBL.IPSites = []string{"zen.bl.test*3", "bl2.bl.test"}
	cfg.DNSBL.DomainSites = []string{"dbl.bl.test*2"}
	cfg.DNSBL.Action = "none"
	log := newLogger(cfg, io.Discard)

	st, err := store.Open(ctx, "sqlite", filepath.Join(b.TempDir(), "mailwall.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	met := metrics.New()
	rec := st.NewRecorder(log, cfg.Store.Queue, met.StoreErrors)
	b.Cleanup(rec.Close)
	rep := reputation.New(st, reputationConfig(cfg), log)
	rep.Model = st
	rep.Start()
	b.Cleanup(func() { rep.Close(ctx) })
	lc := lists.NewCache(allListEntries{
		{List: lists.Allow, Kind: lists.IP, Value: "192.0.2.0/24"}, {List: lists.Allow, Kind: lists.Domain, Value: "partner-bench.test"},
		{List: lists.Block, Kind: lists.Domain, Value: "blocked-bench.test"}, {List: lists.Block, Kind: lists.Sender, Value: "spammer@blocked-bench.test"},
	}, log)
	if err := lc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	rules, err := newMilterRules(cfg, res, st)
	if err != nil {
		b.Fatal(err)
	}
	rules.pipe.Lists = lc
	setReputation(rules.pipe.Analyzers, rep)
	f := &milterFilter{pipe: rules.pipe, log: log, timeout: rules.timeout, node: rules.node, rec: rec, metrics: met,
		noReply: rules.noReply, limits: milterHeaderLimits(cfg.Milter), rep: rep}

	// bench/milter's small message (its -all link), signed.
	m := benchmsg.Header + benchmsg.Body(2<<10, true)
	signer := &dkim.Signer{Domain: "example.test", Selector: "sel", Key: key}
	sig, err := signer.Sign(strings.NewReader(m))
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(strings.NewReader(sig + m))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		b.Fatal(err)
	}
	var header [][2]string
	for _, fl := range fields {
		// As Postfix passes a field: the value after the colon, folds
		// as LF.
		header = append(header, [2]string{fl.Name, strings.ReplaceAll(fl.Value(), "\r\n", "\n")})
	}
	rest, _ := io.ReadAll(br)
	// The benchmark is honest only if the message is judged whole.
	env := verdict.Envelope{ClientIP: netip.MustParseAddr("198.51.100.10"), ClientName: "mail.example.test", Helo: "mail.example.test",
		MailFrom: "sender@example.test", Rcpts: []string{"rcpt@rcpt.test"}}
	r, _, err := rules.pipe.CheckMessage(ctx, env, strings.NewReader(sig+m))
	if err != nil || r.Action != verdict.Accept || r.SPF.Result != "pass" || r.DMARC.Result != "pass" || verdict.DKIMSummary(r.DKIM) != "pass:example.test" ||
		len(r.Analyses) != 4 {
		b.Fatalf("%v: action %s spf %s dkim %s dmarc %s, %d analyzers; reasons %v", err, r.Action, r.SPF.Result, verdict.DKIMSummary(r.DKIM), r.DMARC.Result, len(r.Analyses), r.Reasons)
	}
	return f, header, rest
}

// allMilterMessage passes one message through f as the milter server
// does, the reply's work after it included; it fails b unless the
// message is accepted with spf, dkim and dmarc passing.
func allMilterMessage(b *testing.B, f *milterFilter, header [][2]string, body []byte) {
	allMilterReply(b, f, header, body)()
	f.Close()
}

// allMilterReply is allMilterMessage up to the reply: it returns the
// work after it (f.after), not done, and leaves the connection open.
func allMilterReply(b *testing.B, f *milterFilter, header [][2]string, body []byte) func() {
	var m milter.Macros
	var mod milter.Modifier // nothing negotiated: the changes are dropped
	f.Connect(milter.Conn{Hostname: "mail.example.test", Family: "4", Addr: netip.MustParseAddr("198.51.100.10"), Port: 25}, &m)
	f.Helo("mail.example.test", &m)
	f.MailFrom("<sender@example.test>", nil, &m)
	f.RcptTo("<rcpt@rcpt.test>", nil, &m)
	for _, h := range header {
		f.Header(h[0], h[1])
	}
	f.EndOfHeaders(&m)
	f.Body(body)
	if r := f.EndOfMessage(&m, &mod); r != milter.Continue {
		b.Fatalf("end of message: %v", r)
	}
	after := f.after
	if after == nil {
		b.Fatal("no work after the reply")
	}
	f.after = nil
	return after
}

// BenchmarkMilterAllAfterReply is BenchmarkMilterAll's work after the
// reply alone (afterwards: metrics, the recorder's queue, reputation's
// evidence, the log line), on one message's verdict again and again.
// thread-cpu-ns/op is the CPU time of the caller's thread, what the
// milter's connection spends (the recorder writes on its own
// goroutine, whose allocations B/op counts too).
func BenchmarkMilterAllAfterReply(b *testing.B) {
	defer gcfloor.Start(gcHeapFloor).Stop() // as serve runs
	f, header, body := allMilterFilter(b)
	for range 100 {
		allMilterMessage(b, f, header, body)
	}
	after := allMilterReply(b, f, header, body)
	defer f.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	t0 := cputime.Thread()
	for b.Loop() {
		after()
	}
	b.ReportMetric(float64(cputime.Thread()-t0)/float64(b.N), "thread-cpu-ns/op")
}

// BenchmarkMilterAll is one small message through serve's milter filter
// with everything on (allMilterFilter), the protocol around it left out:
// the checks, the analyzers and the work after the reply (metrics, the
// recorder's queue, reputation's evidence, the log line). cpu-ns/op is
// the process's CPU time a message, the recorder's and reputation's
// writers and the GC included.
func BenchmarkMilterAll(b *testing.B) {
	defer gcfloor.Start(gcHeapFloor).Stop() // as serve runs
	f, header, body := allMilterFilter(b)
	for range 100 { // warm the DNS cache and the reputation cache
		allMilterMessage(b, f, header, body)
	}
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu0, gc0, gcCPU0 := cputime.Process(), ms.NumGC, allGCCPU()
	b.ResetTimer()
	for b.Loop() {
		allMilterMessage(b, f, header, body)
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gc0)*1000/float64(b.N), "gcs/1000msgs")
	b.ReportMetric((allGCCPU()-gcCPU0)*1e9/float64(b.N), "gc-cpu-ns/op")
}

// allGCCPU is the runtime's estimate of the CPU time the GC took so far,
// in seconds.
func allGCCPU() float64 {
	s := []rtmetrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	rtmetrics.Read(s)
	return s[0].Value.Float64()
}
