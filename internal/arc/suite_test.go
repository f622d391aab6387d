package arc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// The ValiMail ARC suite, read from ../shared/testdata/arc (see its
// SOURCE.md), or from testdata/arc when copied there.
func suitePath(t *testing.T, name string) string {
	for _, dir := range []string{filepath.Join("..", "..", "testdata", "arc"), filepath.Join("..", "..", "..", "shared", "testdata", "arc")} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("ARC suite file %s not found in testdata/arc or ../shared/testdata/arc", name)
	return ""
}

// scenario is one YAML document of the suite. Test names may repeat
// inside a document (the suite has such duplicates; YAML libraries that
// keep the last one lose the first): a node walk keeps both.
type scenario struct {
	description string
	tests       []suiteCase
	txt         map[string]string
	fields      map[string]*yaml.Node // the rest: privatekey, domain, sel, ...
}

type suiteCase struct {
	name   string
	fields map[string]*yaml.Node
}

func (c suiteCase) str(key string) string {
	if n := c.fields[key]; n != nil {
		return n.Value
	}
	return ""
}

func loadSuite(t *testing.T, name string) []scenario {
	data, err := os.ReadFile(suitePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []scenario
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		sc := scenario{txt: map[string]string{}, fields: map[string]*yaml.Node{}}
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, val := m.Content[i].Value, m.Content[i+1]
			switch key {
			case "description":
				sc.description = strings.TrimSpace(val.Value)
			case "tests":
				seen := map[string]int{}
				for j := 0; j+1 < len(val.Content); j += 2 {
					c := suiteCase{name: val.Content[j].Value, fields: map[string]*yaml.Node{}}
					if seen[c.name]++; seen[c.name] > 1 {
						c.name = fmt.Sprintf("%s#%d", c.name, seen[c.name])
					}
					tc := val.Content[j+1]
					for k := 0; k+1 < len(tc.Content); k += 2 {
						c.fields[tc.Content[k].Value] = tc.Content[k+1]
					}
					sc.tests = append(sc.tests, c)
				}
			case "txt-records":
				for j := 0; j+1 < len(val.Content); j += 2 {
					sc.txt[val.Content[j].Value] = val.Content[j+1].Value
				}
			default:
				sc.fields[key] = val
			}
		}
		out = append(out, sc)
	}
	return out
}

// serveTXT serves the scenario's TXT records from a lab DNS server, one
// zone per name.
func serveTXT(t *testing.T, txt map[string]string) dnsx.Resolver {
	var zones []*labdns.Zone
	for name, value := range txt {
		value = strings.ReplaceAll(value, "\n", "")
		var parts []string
		for len(value) > 0 {
			n := min(len(value), 255)
			parts = append(parts, `"`+strings.ReplaceAll(value[:n], `"`, `\"`)+`"`)
			value = value[n:]
		}
		zones = append(zones, labtest.Zone(t, name, "@ IN TXT "+strings.Join(parts, " ")))
	}
	s := labtest.Serve(t, zones...)
	return &dnsx.Client{Servers: []string{s.Addr()}, Timeout: 2 * time.Second}
}

// crlf turns the suite's message text into wire form.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// rfc8617Decides lists the validation cases whose expectation in the
// suite (written against draft 18) is blank or differs from RFC 8617; the
// RFC's result is asserted instead, with the reason.
var rfc8617Decides = map[string]struct {
	suite string // the suite's expectation, checked so the list stays true
	want  Result
	why   string
}{
	"cv_fail_i1_as_cv_fail": {"", Fail, "§5.2 step 2: the newest seal says cv=fail, so the chain fails"},
	"cv_fail_i2_as2_fail":   {"", Fail, "§5.2 step 2: the newest seal says cv=fail, so the chain fails"},
	"cv_fail_i2_as1_fail":   {"", Fail, "§5.2 step 3: the first seal must say cv=none"},
	"ams_fields_c_na": {"pass", Fail, "the suite's signer read a missing c= as relaxed/relaxed; §4.1.2 gives the AMS " +
		"the DKIM-Signature's semantics, whose default is simple/simple (RFC 6376 §3.5), and the signature does not verify under it"},
	"ams_fields_h_empty": {"pass", Fail, "an empty h= signs no From, which RFC 6376 §5.4 requires and §4.1.2 carries over to the AMS"},
}

func TestValidationSuite(t *testing.T) {
	total := 0
	for _, sc := range loadSuite(t, "arc-draft-validation-tests.yml") {
		res := serveTXT(t, sc.txt)
		v := &Verifier{Resolver: res}
		for _, c := range sc.tests {
			total++
			t.Run(c.name, func(t *testing.T) {
				want := Result(strings.ToLower(strings.TrimSpace(c.str("cv"))))
				if d, ok := rfc8617Decides[c.name]; ok {
					if string(want) != d.suite {
						t.Fatalf("the suite now expects %q, not %q: revisit rfc8617Decides", want, d.suite)
					}
					t.Logf("RFC 8617 decides %s over the suite's %q: %s", d.want, d.suite, d.why)
					want = d.want
				} else if want == "" {
					t.Fatalf("blank expectation")
				}
				out, err := v.Validate(context.Background(), strings.NewReader(crlf(c.str("message"))))
				got := out.Result
				if err != nil {
					// A message whose header cannot be read has no chain
					// we could validate.
					got = None
				}
				if got != want {
					t.Errorf("%s (%s): cv=%s, want %s (%s, err %v)", c.name, c.str("description"), got, want, out.Reason, err)
				}
			})
		}
	}
	if total < 170 {
		t.Errorf("only %d validation cases read", total)
	}
}

func TestSigningSuite(t *testing.T) {
	total := 0
	for _, sc := range loadSuite(t, "arc-draft-sign-tests.yml") {
		res := serveTXT(t, sc.txt)
		key, err := dkim.ParsePrivateKey([]byte(sc.fields["privatekey"].Value))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sc.tests {
			total++
			t.Run(c.name, func(t *testing.T) {
				msg := crlf(c.str("message"))
				stamp, err := strconv.ParseInt(c.str("t"), 10, 64)
				if err != nil {
					t.Fatalf("t: %v", err)
				}
				sealer := &Sealer{
					Domain: sc.fields["domain"].Value, Selector: sc.fields["sel"].Value, Key: key,
					AuthServID: c.str("srv-id"), Headers: strings.Split(c.str("sig-headers"), ":"),
					Now: func() time.Time { return time.Unix(stamp, 0) },
				}
				set, err := sealMessage(t, &Verifier{Resolver: res}, sealer, msg)
				if strings.TrimSpace(c.str("AS")) == "" {
					if !errors.Is(err, ErrNoSeal) {
						t.Fatalf("the suite adds no set here (%s); got %v, %+v", c.str("description"), err, set)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got, want := collapse(fieldValue(set.AAR)), collapse(c.str("AAR")); got != want {
					t.Errorf("AAR:\n got %s\nwant %s", got, want)
				}
				compareTags(t, "AMS", fieldValue(set.AMS), c.str("AMS"), true)
				compareTags(t, "AS", fieldValue(set.Seal), c.str("AS"), false)

				// The suite's seal signature must verify over the set we
				// made: then what we hashed is what its signer hashed.
				wantTags, _ := dkim.ParseTagList(c.str("AS"))
				suiteSeal := replaceB(set.Seal, wantTags["b"])
				sealed := set.Seal + set.AMS + set.AAR + msg
				if err := checkSeal(t, res, set, suiteSeal, msg); err != nil {
					t.Errorf("the suite's AS b= does not verify over our set: %v", err)
				}
				// And the sealed message validates as the new cv says.
				out, err := (&Verifier{Resolver: res}).Validate(context.Background(), strings.NewReader(sealed))
				if err != nil {
					t.Fatal(err)
				}
				want := Pass
				if set.CV == Fail {
					want = Fail // §5.2 step 2
				}
				if out.Result != want {
					t.Errorf("sealed message validates %s (%s), want %s", out.Result, out.Reason, want)
				}
			})
		}
	}
	if total < 15 {
		t.Errorf("only %d signing cases read", total)
	}
}

// sealMessage validates a message's chain and seals it as the suite's
// signer would: with the results of the message's own
// Authentication-Results fields from the sealer's authserv-id.
func sealMessage(t *testing.T, v *Verifier, s *Sealer, msg string) (Set, error) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(msg))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	vn := v.Start(fields)
	sg, err := s.Start(fields)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.MultiWriter(vn, sg), br); err != nil {
		t.Fatal(err)
	}
	return sg.Finish(vn.Finish(context.Background()).Result, ResultsFor(fields, s.AuthServID))
}

// checkSeal verifies seal (a variant of set.Seal) over set and the
// chain in msg, as the sealer hashed it.
func checkSeal(t *testing.T, res dnsx.Resolver, ns Set, seal, msg string) error {
	t.Helper()
	fields, err := dkim.ReadHeader(bufio.NewReader(strings.NewReader(seal + ns.AMS + ns.AAR + msg)))
	if err != nil {
		t.Fatal(err)
	}
	sets, err := collect(fields)
	vn := &Validation{v: &Verifier{Resolver: res}, fields: fields, sets: sets, n: len(sets)}
	if ns.CV == Fail || err != nil {
		// §5.1.2: only the new set is covered; verify it as a chain of one.
		vn.sets, vn.n = map[int]*set{1: sets[ns.Instance]}, 1
		return vn.verifySeal(context.Background(), dkim.BudgetFrom(context.Background(), 0), 1)
	}
	return vn.verifySeal(context.Background(), dkim.BudgetFrom(context.Background(), 0), ns.Instance)
}

func fieldValue(f string) string {
	_, v, _ := strings.Cut(f, ":")
	return v
}

func replaceB(field, b string) string {
	tags, _ := dkim.ParseTagList(fieldValue(field))
	old := tags["b"]
	return strings.Replace(field, old, b, 1)
}

// compareTags compares two tag lists tag by tag, b= and bh= without
// white space; withB says whether b= must be equal too.
func compareTags(t *testing.T, what, got, want string, withB bool) {
	t.Helper()
	g, err := dkim.ParseTagList(got)
	if err != nil {
		t.Fatalf("%s: ours does not parse: %v", what, err)
	}
	w, err := dkim.ParseTagList(want)
	if err != nil {
		t.Fatalf("%s: the suite's does not parse: %v", what, err)
	}
	for k, wv := range w {
		if k == "b" && !withB {
			continue
		}
		if gv := dkim.StripWhiteSpace(g[k]); gv != dkim.StripWhiteSpace(wv) {
			t.Errorf("%s %s=: got %q, want %q", what, k, gv, dkim.StripWhiteSpace(wv))
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: we add %s=, the suite does not", what, k)
		}
	}
}
