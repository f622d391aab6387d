// Package manpage writes manual pages in man(7) roff, the format man(1)
// reads on every Debian system, from plain text: paragraphs, tagged
// items and literal blocks.
package manpage

import (
	"bytes"
	"fmt"
	"strings"
)

// Page is one manual page.
type Page struct {
	Name     string // "mailwall-serve"
	Section  string // "8"
	Summary  string // the NAME line after the dash
	Source   string // footer, "mailwall"
	Manual   string // header, "mailwall manual"
	Synopsis []string
	Sections []Section
}

// Section is a heading and what follows it.
type Section struct {
	Heading string
	Blocks  []Block
}

// Block is a paragraph (Text), a tagged paragraph (Tag and Text, as for
// an option) or a literal block (Code).
type Block struct {
	Tag  string
	Text string
	Code string
}

// Roff renders the page.
func (p Page) Roff() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH %s %s \"\" %q %q\n", strings.ToUpper(escape(p.Name)), p.Section, p.Source, p.Manual)
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", escape(p.Name), escape(p.Summary))
	if len(p.Synopsis) > 0 {
		b.WriteString(".SH SYNOPSIS\n.nf\n")
		for _, s := range p.Synopsis {
			b.WriteString(line(s))
		}
		b.WriteString(".fi\n")
	}
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(escape(s.Heading)))
		for i, blk := range s.Blocks {
			switch {
			case blk.Code != "":
				b.WriteString(".PP\n.RS 4\n.nf\n")
				for _, l := range strings.Split(strings.TrimRight(blk.Code, "\n"), "\n") {
					b.WriteString(line(l))
				}
				b.WriteString(".fi\n.RE\n")
			case blk.Tag != "":
				fmt.Fprintf(&b, ".TP\n.B %s\n", escape(blk.Tag))
				writeText(&b, blk.Text)
			default:
				if i > 0 {
					b.WriteString(".PP\n")
				}
				writeText(&b, blk.Text)
			}
		}
	}
	return b.Bytes()
}

// writeText writes running text; a blank line starts a new paragraph.
func writeText(b *bytes.Buffer, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".IP\n")
		}
		b.WriteString(line(strings.Join(strings.Fields(para), " ")))
	}
}

// line escapes one output line: a leading dot or quote would be read as
// a request.
func line(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s + "\n"
}

// escape makes text literal in roff: backslashes print as themselves and
// hyphens as the minus sign options need to be copied and pasted.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}
