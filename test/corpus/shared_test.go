package corpus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"mailwall/internal/dkim"
	"mailwall/internal/phish"
)

// sharedCorpus is the development corpus beside the repository (real
// phishing, spam and ham; see its README): read in place, never copied
// into the project.
func sharedCorpus(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MAILWALL_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	if _, err := os.Stat(filepath.Join(dir, "split.tsv")); err != nil {
		t.Skipf("no shared corpus at %s (set MAILWALL_CORPUS)", dir)
	}
	return dir
}

// sharedMessage is one message of the shared corpus with its envelope.
type sharedMessage struct {
	id, class, split, path string
	ip                     netip.Addr
}

func sharedMessages(t *testing.T, dir string) []sharedMessage {
	t.Helper()
	read := func(name string) [][]string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]string
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if i > 0 {
				rows = append(rows, strings.Split(strings.TrimRight(line, "\r"), "\t"))
			}
		}
		return rows
	}
	split := map[string]string{}
	for _, r := range read("split.tsv") {
		split[r[0]] = r[2]
	}
	var out []sharedMessage
	for _, r := range read("labels.tsv") {
		// id class source path sha256 sender ip helo
		ip, _ := netip.ParseAddr(r[6])
		out = append(out, sharedMessage{id: r[0], class: r[1], split: split[r[0]], path: filepath.Join(dir, r[1], r[0]+".eml"), ip: ip})
	}
	return out
}

// sharedTally counts one class's outcomes.
type sharedTally struct {
	n, malformed, malformedPot, flagged, flaggedWithout, held int
	kinds                                                     map[string]int
	rules                                                     map[string]int // messages each rule fired on
}

// TestSharedCorpusFromMalformed runs the content rules (authentication
// weights 0, no DNS: the corpus's messages are too old for it) over the
// shared corpus and prints, per split and class, how many messages
// from_malformed fires on and how many are flagged (score at or over
// the tag threshold, 30) with the rule and without it, how many held
// (60), and how many each rule fired on. Tune on train;
// the validate figures are the ones to quote. It asserts that
// from_malformed fires on no ham and that no more ham is flagged or held
// than sharedHamBefore records.
//
//	go test -v -run TestSharedCorpusFromMalformed ./test/corpus
func TestSharedCorpusFromMalformed(t *testing.T) {
	dir := sharedCorpus(t)
	msgs := sharedMessages(t, dir)
	weights := map[string]int{}
	for rule := range phish.DefaultWeights() {
		if strings.HasPrefix(rule, "auth_") {
			weights[rule] = 0
		}
	}
	c, err := phish.New(phish.DefaultBrands(), weights)
	if err != nil {
		t.Fatal(err)
	}
	const tag, hold = 30, 60
	// MAILWALL_CORPUS_DUMP=FILE writes each message's score and rules,
	// to compare two versions of the rules (on train).
	var dump *os.File
	if name := os.Getenv("MAILWALL_CORPUS_DUMP"); name != "" {
		if dump, err = os.Create(name); err != nil {
			t.Fatal(err)
		}
		defer dump.Close()
	}
	for _, split := range []string{"train", "validate"} {
		tallies := map[string]*sharedTally{}
		for _, m := range msgs {
			if m.split != split {
				continue
			}
			data, err := os.ReadFile(m.path)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(bytes.NewReader(data))
			fields, err := dkim.ReadHeader(br)
			if err != nil {
				t.Logf("%s: header: %v", m.id, err)
				continue
			}
			var body bytes.Buffer
			br.WriteTo(&body)
			potMalformed := false
			if m.class == "phish" && potAddr.Match(data[:len(data)-body.Len()]) {
				r := c.Check(context.Background(), phish.Input{Fields: fields, Body: body.Bytes(), ClientIP: m.ip, Rcpts: sharedRcpts})
				potMalformed = slices.ContainsFunc(r.Hits, func(h phish.Hit) bool { return h.Rule == phish.FromMalformed })
				head := potFix(data[:len(data)-body.Len()])
				if fields, err = dkim.ReadHeader(bufio.NewReader(bytes.NewReader(head))); err != nil {
					t.Fatal(err)
				}
			}
			r := c.Check(context.Background(), phish.Input{Fields: fields, Body: body.Bytes(), ClientIP: m.ip, Rcpts: sharedRcpts})
			tl := tallies[m.class]
			if tl == nil {
				tl = &sharedTally{kinds: map[string]int{}, rules: map[string]int{}}
				tallies[m.class] = tl
			}
			tl.n++
			if dump != nil {
				var why []string
				for _, h := range r.Hits {
					why = append(why, h.Rule+": "+h.Detail)
				}
				fmt.Fprintf(dump, "%s\t%s\t%s\t%d\t%s\t%s\n", split, m.class, m.id, r.Score, strings.Join(r.Rules(), " "), strings.Join(why, " | "))
			}
			for _, h := range r.Hits {
				tl.rules[h.Rule]++
			}
			without := r.Score
			hit := false
			for _, h := range r.Hits {
				if h.Rule != phish.FromMalformed {
					continue
				}
				hit = true
				without -= h.Weight
				tl.malformed++
				if m.class == "ham" {
					t.Errorf("from_malformed on ham %s: %s", m.id, h.Detail)
				}
				if testing.Verbose() && os.Getenv("MAILWALL_CORPUS_SHOW") != "" {
					t.Logf("%s %s: %s", m.class, m.id, h.Detail)
				}
			}
			if potMalformed && !hit {
				tl.malformedPot++
			}
			if r.From != nil {
				for _, k := range r.From.Malformed {
					tl.kinds[sharedKind(k)]++
				}
			}
			if r.Score >= tag {
				tl.flagged++
				if m.class == "ham" && split == "train" && testing.Verbose() && os.Getenv("MAILWALL_CORPUS_SHOW") != "" {
					for _, h := range r.Hits {
						t.Logf("  ham %s: %s: %s", m.id, h.Rule, h.Detail)
					}
				}
			}
			if without >= tag {
				tl.flaggedWithout++
			}
			if r.Score >= hold {
				tl.held++
				if m.class == "ham" {
					t.Logf("ham %s held: score %d, %v", m.id, r.Score, r.Rules())
				}
			}
		}
		if ham, before := tallies["ham"], sharedHamBefore[split]; ham != nil && (ham.flagged > before[0] || ham.held > before[1]) {
			t.Errorf("%s: %d ham flagged and %d held, before %d and %d", split, ham.flagged, ham.held, before[0], before[1])
		}
		for _, class := range []string{"phish", "spam", "ham"} {
			tl := tallies[class]
			if tl == nil {
				continue
			}
			msg := fmt.Sprintf("%-8s %-5s %4d messages: from_malformed %3d (%4.1f%%; %d more counting phishing@pot), flagged %3d (%4.1f%%) [without from_malformed %3d (%4.1f%%)], held %d",
				split, class, tl.n, tl.malformed, pct(tl.malformed, tl.n), tl.malformedPot, tl.flagged, pct(tl.flagged, tl.n), tl.flaggedWithout, pct(tl.flaggedWithout, tl.n), tl.held)
			t.Log(msg)
			var fired []string
			for k, n := range tl.rules {
				fired = append(fired, fmt.Sprintf("%s %d", k, n))
			}
			sort.Strings(fired)
			t.Logf("         rules: %s", strings.Join(fired, ", "))
			var kinds []string
			for k, n := range tl.kinds {
				kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
			}
			sort.Strings(kinds)
			if len(kinds) > 0 {
				t.Logf("         From faults: %s", strings.Join(kinds, "; "))
			}
		}
	}
}

// sharedHamBefore is how much ham the content rules flag and hold (score
// 30 and 60) per split. It may only go down. Before issue 24 item 2's
// precision fixes (whole-token ordinary words, complete brand domains,
// url_text_mismatch only for real hosts and not through the sender's own
// or its mail service's redirector) it was train 21 and 11, validate 6
// and 5.
var sharedHamBefore = map[string][2]int{"train": {0, 0}, "validate": {0, 0}}

// sharedKind shortens a from_malformed reason to its kind, without the
// message's own text.
func sharedKind(s string) string {
	for _, k := range []string{"addresses", "no dot", "unquoted", "empty <>", "two @", "spaces inside", "no address", "text after", "unbalanced", "ends with a dot", "in the domain", "fields", "encoded word", "without <>", "RFC 5322", "longer than", "address literal", "no domain", "empty"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	return s
}

// phishing_pot wrote its own address, phishing@pot, over the victim's,
// in From too (the kit's "mail from yourself") and inside other
// addresses (VERP): a domain without a dot, a second @, that the
// collection made, not the phisher. Checked as pot.invalid
// (phishing=pot.invalid inside an address), and the difference counted
// apart.
var potAddr = regexp.MustCompile(`(?i)phish(?:ing)?@pot([@A-Za-z0-9]?)`)

// potFix rewrites phishing_pot's address in a header block.
func potFix(head []byte) []byte {
	return potAddr.ReplaceAllFunc(head, func(b []byte) []byte {
		if last := b[len(b)-1]; last == '@' || last != 't' && last != 'T' {
			return append([]byte("phishing=pot.invalid"), last)
		}
		return []byte("phishing@pot.invalid")
	})
}

// sharedRcpts is the recipient the corpus's messages were delivered to
// (its README): own_domain_impersonation looks at it.
var sharedRcpts = []string{"rcpt@rcpt.test"}

func pct(a, b int) float64 { return 100 * float64(a) / float64(max(b, 1)) }
