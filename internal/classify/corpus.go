package classify

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Labelled is one message of a labelled corpus: a directory with
// labels.tsv (id, class, ...) and split.tsv (id, class, split), the
// messages in CLASS/ID.eml, as ../shared/corpus has them.
type Labelled struct {
	ID    string
	Class string // "phish", "spam" or "ham"
	Split string // "train" or "validate"
	Path  string
	// ClientIP is the client's address when the labels give one.
	ClientIP netip.Addr
	// Rcpts are the envelope recipients (RCPT TO), as the pipeline
	// would have them.
	Rcpts []string
}

// Junk reports whether the class is phishing or spam.
func (l Labelled) Junk() bool { return l.Class != "ham" }

// Recipients are the addresses that the corpus's collectors wrote for
// their own (phishing_pot writes phishing@pot, the SpamAssassin corpus
// its maintainer's anonymized addresses), to pass as Message.Recipients:
// the classifier then learns "addressed to the recipient", not which
// collection a message came from.
func (l Labelled) Recipients() []string {
	if strings.HasPrefix(l.ID, "pot-") {
		return []string{"phishing@pot"}
	}
	return []string{"jm@jmason.org", "yyyy@netnoteinc.com", "jm@netnoteinc.com", "zzzz@spamassassin.taint.org", "yyyy@spamassassin.taint.org"}
}

// ReadCorpus reads the labels and the split of a corpus directory.
func ReadCorpus(dir string) ([]Labelled, error) {
	f, err := os.Open(filepath.Join(dir, "split.tsv"))
	if err != nil {
		return nil, fmt.Errorf("classify: corpus: %w", err)
	}
	defer f.Close()
	var out []Labelled
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if line == 0 {
			if len(cols) < 3 || cols[0] != "id" || cols[1] != "class" || cols[2] != "split" {
				return nil, fmt.Errorf("classify: corpus: split.tsv: header %q", sc.Text())
			}
			continue
		}
		if len(cols) < 3 {
			return nil, fmt.Errorf("classify: corpus: split.tsv line %d: %d columns", line+1, len(cols))
		}
		id, class := cols[0], cols[1]
		if strings.ContainsAny(id, `/\`) || (class != "phish" && class != "spam" && class != "ham") {
			return nil, fmt.Errorf("classify: corpus: split.tsv line %d: id %q class %q", line+1, id, class)
		}
		out = append(out, Labelled{ID: id, Class: class, Split: cols[2], Path: filepath.Join(dir, class, id+".eml")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("classify: corpus: split.tsv: %w", err)
	}
	return out, nil
}

// Load reads the message and returns it ready to classify.
func (l Labelled) Load() (*Message, error) {
	raw, err := os.ReadFile(l.Path)
	if err != nil {
		return nil, fmt.Errorf("classify: corpus: %w", err)
	}
	fields, body := ParseMessage(raw)
	return &Message{Fields: fields, Body: body, Recipients: l.Recipients()}, nil
}
