package conncheck

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// RegexpTable is a Postfix regexp: table (regexp_table(5)) read as Postfix
// reads it: /pattern/flags result lines, !/pattern/ negation, if/endif
// blocks, continuation lines, comments. Patterns are case-insensitive
// unless the "i" flag toggles that, and match leftmost-longest like the
// POSIX regular expressions Postfix uses.
type RegexpTable struct {
	Name  string
	rules []tableRule
	// Warnings are rules skipped as Postfix skips them (a result that
	// refers to a group the pattern does not have).
	Warnings []string
}

type tableRule struct {
	re     *regexp.Regexp
	source string // the pattern as written, between its delimiters
	negate bool
	result string // "" for an if line
	line   int
	// if blocks: depth of nesting this rule lives at, and for an "if"
	// the index just past its endif.
	isIf   bool
	skipTo int
}

// ParseRegexpTable reads a table; errors name the line.
func ParseRegexpTable(r io.Reader, name string) (*RegexpTable, error) {
	t := &RegexpTable{Name: name}
	var lines []struct {
		text string
		no   int
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for no := 1; sc.Scan(); no++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(lines) > 0 {
			lines[len(lines)-1].text += " " + trimmed // continuation
			continue
		}
		lines = append(lines, struct {
			text string
			no   int
		}{trimmed, no})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("conncheck: %s: %w", name, err)
	}
	var open []int // indexes of unclosed if rules
	for _, l := range lines {
		text := l.text
		switch {
		case strings.EqualFold(text, "endif"):
			if len(open) == 0 {
				return nil, fmt.Errorf("conncheck: %s, line %d: endif without if", name, l.no)
			}
			t.rules[open[len(open)-1]].skipTo = len(t.rules)
			open = open[:len(open)-1]
			continue
		case strings.HasPrefix(strings.ToLower(text), "if ") || strings.HasPrefix(strings.ToLower(text), "if!"):
			re, source, negate, rest, err := parsePattern(strings.TrimSpace(text[2:]))
			if err != nil {
				return nil, fmt.Errorf("conncheck: %s, line %d: %w", name, l.no, err)
			}
			if rest != "" {
				return nil, fmt.Errorf("conncheck: %s, line %d: text after the if pattern", name, l.no)
			}
			open = append(open, len(t.rules))
			t.rules = append(t.rules, tableRule{re: re, source: source, negate: negate, line: l.no, isIf: true})
			continue
		}
		re, source, negate, result, err := parsePattern(text)
		if err != nil {
			return nil, fmt.Errorf("conncheck: %s, line %d: %w", name, l.no, err)
		}
		if result == "" {
			return nil, fmt.Errorf("conncheck: %s, line %d: no result after the pattern", name, l.no)
		}
		if n := maxGroupRef(result); n > re.NumSubexp() || (negate && n > 0) {
			t.Warnings = append(t.Warnings, fmt.Sprintf("%s, line %d: out of range replacement index \"%d\": skipping this rule", name, l.no, n))
			continue
		}
		t.rules = append(t.rules, tableRule{re: re, source: source, negate: negate, result: result, line: l.no})
	}
	if len(open) > 0 {
		return nil, fmt.Errorf("conncheck: %s, line %d: if without endif", name, t.rules[open[len(open)-1]].line)
	}
	return t, nil
}

// LoadRegexpTable reads a table file.
func LoadRegexpTable(path string) (*RegexpTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("conncheck: %w", err)
	}
	defer f.Close()
	return ParseRegexpTable(f, path)
}

// Rule is one rule of a table as written.
type Rule struct {
	Pattern string // between the delimiters, flags left out
	Negate  bool   // "!/pattern/": the rule matches what the pattern does not
	Result  string
	Line    int
}

// Rules lists the table's rules in order, those inside if blocks
// included; the if lines themselves are not rules.
func (t *RegexpTable) Rules() []Rule {
	var rules []Rule
	for _, r := range t.rules {
		if !r.isIf {
			rules = append(rules, Rule{Pattern: r.source, Negate: r.negate, Result: r.result, Line: r.line})
		}
	}
	return rules
}

// parsePattern reads [!]<delim>pattern<delim>flags and returns the
// compiled pattern, its source and the rest of the line.
func parsePattern(s string) (*regexp.Regexp, string, bool, string, error) {
	negate := false
	if strings.HasPrefix(s, "!") {
		negate = true
		s = strings.TrimLeft(s[1:], " \t")
	}
	if s == "" {
		return nil, "", false, "", fmt.Errorf("missing pattern")
	}
	delim := s[0]
	if delim == ' ' || delim == '\\' {
		return nil, "", false, "", fmt.Errorf("bad pattern delimiter %q", delim)
	}
	// The pattern ends at the next unescaped delimiter.
	end := -1
	for i := 1; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == delim {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, "", false, "", fmt.Errorf("pattern %q has no closing %c", s, delim)
	}
	pattern := s[1:end]
	rest := s[end+1:]
	fold, multi := true, false // Postfix: case-insensitive by default
	i := 0
	for ; i < len(rest) && rest[i] != ' ' && rest[i] != '\t'; i++ {
		switch rest[i] {
		case 'i':
			fold = !fold
		case 'm':
			multi = !multi
		case 'x':
			return nil, "", false, "", fmt.Errorf("flag x (extended syntax) is not supported")
		default:
			return nil, "", false, "", fmt.Errorf("unknown pattern flag %q", rest[i])
		}
	}
	prefix := ""
	if fold {
		prefix += "(?i)"
	}
	if multi {
		prefix += "(?m)"
	}
	re, err := regexp.Compile(prefix + pattern)
	if err != nil {
		return nil, "", false, "", fmt.Errorf("pattern %q: %w", pattern, err)
	}
	re.Longest()
	return re, pattern, negate, strings.TrimSpace(rest[i:]), nil
}

var groupRef = regexp.MustCompile(`\$(\{[0-9]+\}|[0-9]+)`)

// maxGroupRef is the highest $n or ${n} a result refers to.
func maxGroupRef(result string) int {
	hi := 0
	for _, m := range groupRef.FindAllString(result, -1) {
		n, _ := strconv.Atoi(strings.Trim(m, "${}"))
		hi = max(hi, n)
	}
	return hi
}

// Lookup returns the result of the first rule that matches key, with $1
// and ${1} replaced by the match's groups, as Postfix does.
func (t *RegexpTable) Lookup(key string) (result string, ok bool) {
	for i := 0; i < len(t.rules); {
		r := &t.rules[i]
		m := r.re.FindStringSubmatchIndex(key)
		matched := (m != nil) != r.negate
		if r.isIf {
			if matched {
				i++
			} else {
				i = r.skipTo
			}
			continue
		}
		if matched {
			if r.negate || !strings.Contains(r.result, "$") {
				return r.result, true
			}
			return string(r.re.ExpandString(nil, r.result, key, m)), true
		}
		i++
	}
	return "", false
}

// Decision is what an access-table result asks for.
type Decision struct {
	Kind string // reject, defer, ok, dunno, hold, discard, warn, prepend, other
	Code int    // SMTP reply code for reject and defer
	DSN  string // enhanced status code
	Text string
	Raw  string
}

// Reply formats the SMTP reply for a rejected or deferred command, as
// Postfix writes it: "554 5.7.1 <name>: Helo command rejected: Access
// denied". what is "Helo command", "Client host", "Sender address" ...
func (d Decision) Reply(what, key string) string {
	return fmt.Sprintf("%d %s <%s>: %s rejected: %s", d.Code, d.DSN, key, what, d.Text)
}

// ParseAction reads an access(5) result. Codes follow Postfix's defaults:
// access_map_reject_code 554, access_map_defer_code 450, DSN x.7.1.
func ParseAction(result string) Decision {
	d := Decision{Raw: result}
	word, text, _ := strings.Cut(strings.TrimSpace(result), " ")
	text = strings.TrimSpace(text)
	switch up := strings.ToUpper(word); {
	case up == "REJECT":
		d.Kind, d.Code, d.DSN, d.Text = "reject", 554, "5.7.1", orText(text, "Access denied")
	case up == "DEFER" || up == "DEFER_IF_REJECT" || up == "DEFER_IF_PERMIT":
		d.Kind, d.Code, d.DSN, d.Text = "defer", 450, "4.7.1", orText(text, "Access denied")
		if up != "DEFER" {
			d.Kind = strings.ToLower(up)
		}
	case up == "OK" || up == "PERMIT":
		d.Kind = "ok"
	case up == "DUNNO":
		d.Kind = "dunno"
	case up == "HOLD" || up == "DISCARD" || up == "WARN" || up == "PREPEND":
		d.Kind, d.Text = strings.ToLower(up), text
	case len(word) == 3 && (word[0] == '4' || word[0] == '5') && isDigits(word):
		d.Code, _ = strconv.Atoi(word)
		d.Kind = "reject"
		if word[0] == '4' {
			d.Kind = "defer"
		}
		d.DSN = string(word[0]) + ".7.1"
		if dsn, rest, ok := strings.Cut(text, " "); ok && isDSN(dsn, word[0]) {
			d.DSN, text = dsn, rest
		} else if isDSN(text, word[0]) {
			d.DSN, text = text, ""
		}
		d.Text = orText(text, "Access denied")
	default:
		d.Kind, d.Text = "other", result
	}
	return d
}

func orText(t, def string) string {
	if t == "" {
		return def
	}
	return t
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// isDSN reports whether s is an enhanced status code of the class c.
func isDSN(s string, class byte) bool {
	parts := strings.Split(s, ".")
	return len(parts) == 3 && len(parts[0]) == 1 && parts[0][0] == class && isDigits(parts[1]) && isDigits(parts[2])
}
