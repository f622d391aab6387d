package arc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

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
