// Package migrate reads the configuration of the filter stack mailwall
// replaces — postfix-policyd-spf-python, OpenDKIM, OpenDMARC and the Postfix
// restrictions with their HELO and S25R access tables — and turns it into a
// mailwall configuration that behaves the same, saying for each old setting
// what it became or why it has no equivalent.
//
// Nothing is copied that holds a secret: signing keys are referenced where
// they are. Postfix hash: tables, which mailwall cannot read, are converted
// from their source text into regexp: tables written beside the new
// configuration.
package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"mailwall/internal/config"
)

// Debian's locations of the files Import reads.
const (
	DebianPolicydSPF = "/etc/postfix-policyd-spf-python/policyd-spf.conf"
	DebianOpenDKIM   = "/etc/opendkim.conf"
	DebianOpenDMARC  = "/etc/opendmarc.conf"
	DebianMainCF     = "/etc/postfix/main.cf"
)

// Sources names the files to read; an empty path is not read.
type Sources struct {
	PolicydSPF string
	OpenDKIM   string
	OpenDMARC  string
	MainCF     string
	// TableDir is where converted tables are to be written (their paths
	// go into the configuration); default: /etc/mailwall/imported.
	TableDir string
}

// Mapping says what one old setting became.
type Mapping struct {
	File    string // the file it was read from
	Line    int    // 0 when the setting is a default the file left alone
	Setting string // as written: "RejectFailures true"
	// Becomes is the mailwall setting ("checks.actions.dmarc_reject:
	// reject"), or "" when there is none.
	Becomes string
	// Note says why, or why nothing: the reason an admin needs.
	Note string
}

// Mapped reports whether the setting has a mailwall equivalent.
func (m Mapping) Mapped() bool { return m.Becomes != "" }

// Result is the imported configuration.
type Result struct {
	Config   *config.Config
	Mappings []Mapping
	// Tables are files to write before the configuration is used:
	// converted access tables, by path.
	Tables map[string][]byte
}

// importer carries the state of one Import.
type importer struct {
	cfg      *config.Config
	tableDir string
	mappings []Mapping
	tables   map[string][]byte
	// authServIDSet: an earlier file named the authserv-id; a later one
	// naming another is reported, not taken.
	authServIDSet bool
}

// Import reads the sources and builds the configuration. A source that
// cannot be read or parsed is an error: an import that silently skipped
// a file would not behave the same.
func Import(src Sources) (*Result, error) {
	im := &importer{cfg: config.Default(), tableDir: src.TableDir, tables: map[string][]byte{}}
	if im.tableDir == "" {
		im.tableDir = "/etc/mailwall/imported"
	}
	im.equivalentDefaults()
	var errs []error
	if src.PolicydSPF != "" {
		errs = append(errs, im.policydSPF(src.PolicydSPF))
	} else {
		// Without policyd-spf the old stack rejected nothing at RCPT for
		// SPF: mailwall's policy server stays off.
		im.cfg.Policyd.Listen = nil
	}
	if src.OpenDKIM != "" {
		errs = append(errs, im.openDKIM(src.OpenDKIM))
	}
	if src.OpenDMARC != "" {
		errs = append(errs, im.openDMARC(src.OpenDMARC))
	}
	if src.MainCF != "" {
		errs = append(errs, im.mainCF(src.MainCF))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := im.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("migrate: the imported configuration is invalid: %w", err)
	}
	return &Result{Config: im.cfg, Mappings: im.mappings, Tables: im.tables}, nil
}

// equivalentDefaults turns off what mailwall does and the old stack did
// not, so that the first day after the switch delivers what the day before
// did. The admin turns them on after watching the dashboard: the mapping
// says so.
func (im *importer) equivalentDefaults() {
	c := im.cfg
	c.Checks.S25R = false                // on only if main.cf had an S25R table
	c.Checks.Actions.HeloInvalid = "tag" // reject only with reject_invalid_helo_hostname
	c.Checks.Actions.IPRevFail = "tag"   // headers only, as before
	c.Checks.Actions.DMARCReject = "tag" // OpenDMARC rejects only with RejectFailures
	c.Checks.Actions.DMARCQuarantine = "tag"
	c.Checks.Actions.TempError = "accept" // OpenDKIM and OpenDMARC raise it (On-DNSError, RejectFailures)
	c.Checks.Score.Quarantine = 0         // the phishing score tags; it holds or rejects nothing yet
	c.Checks.Score.Reject = 0
	const own = "(mailwall's own checks)"
	im.add(own, 0, "phishing score", "checks.score.quarantine: 0, checks.score.reject: 0", "the score tags (X-Mailwall-Score, score.tag) but holds and rejects nothing, as before; set the thresholds once the dashboard shows what they would catch")
	im.add(own, 0, "iprev, HELO syntax, S25R", "checks.actions.iprev_fail: tag, helo_invalid: tag, s25r off", "unless main.cf did these (below); each verdict still records them")
	im.add(own, 0, "DMARC", "checks.actions.dmarc_reject: tag, dmarc_quarantine: tag, temperror: accept", "unless opendmarc.conf rejected (RejectFailures, below); temperror as OpenDKIM's On-DNSError and OpenDMARC's RejectFailures say (below)")
}

// strictness orders mailwall's actions, the weakest first.
var strictness = []string{"accept", "tag", "quarantine", "tempfail", "reject"}

// raiseTempError makes checks.actions.temperror at least action: in the
// old stack each daemon acted on DNS trouble in turn, so the strictest
// one decided.
func (im *importer) raiseTempError(action string) {
	if slices.Index(strictness, action) > slices.Index(strictness, im.cfg.Checks.Actions.TempError) {
		im.cfg.Checks.Actions.TempError = action
	}
}

func (im *importer) add(file string, line int, setting, becomes, note string) {
	im.mappings = append(im.mappings, Mapping{File: file, Line: line, Setting: setting, Becomes: becomes, Note: note})
}

// directive is one "name value" or "name = value" line.
type directive struct {
	name, value string
	line        int
}

// readDirectives reads a configuration file of one directive a line:
// "#" starts a comment line; sep is "=" for policyd-spf.conf, "" for
// white space (OpenDKIM, OpenDMARC).
func readDirectives(path, sep string) ([]directive, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var out []directive
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var name, value string
		if sep == "" {
			name, value, _ = strings.Cut(line, " ")
			if n, v, ok := strings.Cut(line, "\t"); ok && len(n) < len(name) {
				name, value = n, v
			}
		} else {
			var ok bool
			if name, value, ok = strings.Cut(line, sep); !ok {
				return nil, fmt.Errorf("migrate: %s, line %d: no %q in %q", path, i+1, sep, line)
			}
		}
		out = append(out, directive{name: strings.TrimSpace(name), value: strings.TrimSpace(value), line: i + 1})
	}
	return out, nil
}

// byName indexes directives by lower-case name (the daemons read names
// without regard to case); of repeats, the last one counts.
func byName(ds []directive) map[string]directive {
	m := make(map[string]directive, len(ds))
	for _, d := range ds {
		m[strings.ToLower(d.name)] = d
	}
	return m
}

// parseBool reads the booleans these daemons accept.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on", "y", "t":
		return true, nil
	case "0", "no", "false", "off", "n", "f":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", v)
}

// YAML writes the keys of c that differ from the defaults, under a header
// comment, so the file says only what the import decided.
func YAML(c *config.Config, header string) ([]byte, error) {
	changed, err := diffYAML(config.Default(), c)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		buf.WriteString(strings.TrimRight("# "+line, " ") + "\n")
	}
	if len(changed.Content) == 0 {
		buf.WriteString("{}\n")
		return buf.Bytes(), nil
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(changed); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return buf.Bytes(), nil
}

// diffYAML returns a mapping node holding the keys of b whose values
// differ from a's, recursing into sections; lists are compared whole.
func diffYAML(a, b *config.Config) (*yaml.Node, error) {
	var na, nb yaml.Node
	if err := na.Encode(a); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if err := nb.Encode(b); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return diffNodes(&na, &nb), nil
}

func diffNodes(a, b *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode}
	old := map[string]*yaml.Node{}
	for i := 0; i+1 < len(a.Content); i += 2 {
		old[a.Content[i].Value] = a.Content[i+1]
	}
	for i := 0; i+1 < len(b.Content); i += 2 {
		k, v := b.Content[i], b.Content[i+1]
		o := old[k.Value]
		if o != nil && v.Kind == yaml.MappingNode && o.Kind == yaml.MappingNode {
			if sub := diffNodes(o, v); len(sub.Content) > 0 {
				out.Content = append(out.Content, k, sub)
			}
			continue
		}
		if o == nil || !sameNode(o, v) {
			out.Content = append(out.Content, k, v)
		}
	}
	return out
}

func sameNode(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || a.Value != b.Value || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !sameNode(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// Report writes the mapping as a table an admin reads: one line a
// setting, grouped by file, the settings without an equivalent marked.
func Report(ms []Mapping) string {
	var b strings.Builder
	files := map[string][]Mapping{}
	var order []string
	for _, m := range ms {
		if _, ok := files[m.File]; !ok {
			order = append(order, m.File)
		}
		files[m.File] = append(files[m.File], m)
	}
	for _, f := range order {
		fmt.Fprintf(&b, "%s\n", f)
		list := files[f]
		sort.SliceStable(list, func(i, j int) bool { return list[i].Line < list[j].Line })
		for _, m := range list {
			where := "default"
			if m.Line > 0 {
				where = fmt.Sprintf("line %d", m.Line)
			}
			arrow := "-> " + m.Becomes
			if !m.Mapped() {
				arrow = "-> (no equivalent)"
			}
			fmt.Fprintf(&b, "  %-9s %s\n            %s\n", where, m.Setting, arrow)
			if m.Note != "" {
				fmt.Fprintf(&b, "            %s\n", m.Note)
			}
		}
	}
	return b.String()
}

// WriteTables writes the converted tables, creating their directory.
func WriteTables(tables map[string][]byte) error {
	paths := make([]string, 0, len(tables))
	for p := range tables {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if err := os.WriteFile(p, tables[p], 0o644); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}
