package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mailwall/internal/milter"
)

// milterMsg is one message for milterSend: the client's name (given in
// Connect and HELO) and address, the queue ID, the envelope sender and
// recipient, the header fields as sent and the body.
type milterMsg struct {
	host, ip, queueID, from, rcpt string
	fields                        [][2]string
	body                          string
}

// milterSend runs one milter session with serve's milter at addr,
// failing the test unless each step up to the recipient continues, and
// returns the end-of-message modifications and reply.
func milterSend(t *testing.T, addr string, timeout time.Duration, m milterMsg) ([]milter.Modification, milter.Reply) {
	t.Helper()
	c, err := milter.Dial("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	step := func(name string, r milter.Reply, err error) {
		if err != nil || r.Code != 'c' {
			t.Fatalf("%s: %v %v", name, r, err)
		}
	}
	r, err := c.Connect(m.host, netip.MustParseAddr(m.ip), 40000)
	step("connect", r, err)
	r, err = c.Helo(m.host)
	step("helo", r, err)
	c.Macro('M', "i", m.queueID)
	r, err = c.Mail(m.from)
	step("mail", r, err)
	r, err = c.Rcpt(m.rcpt)
	step("rcpt", r, err)
	for _, h := range m.fields {
		if _, err := c.Header(h[0], h[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.EndOfHeaders(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Body([]byte(m.body)); err != nil {
		t.Fatal(err)
	}
	mods, reply, err := c.EndOfMessage()
	if err != nil {
		t.Fatal(err)
	}
	return mods, reply
}

// writeZones writes each zone file of files (name to text) into dir and
// returns their paths.
func writeZones(t *testing.T, dir string, files map[string]string) []string {
	t.Helper()
	var paths []string
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}
