package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakePostfix writes stand-ins for postsuper and postqueue that record
// their name and arguments, one a line; postsuper exits with code.
func fakePostfix(t *testing.T, code int) (h *queueHelper, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "args")
	for name, exit := range map[string]int{"postsuper": code, "postqueue": 0} {
		script := fmt.Sprintf("#!/bin/sh\necho %s >> %s\nfor a in \"$@\"; do echo \"$a\" >> %s; done\necho '%s: said'\nexit %d\n", name, log, log, name, exit)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &queueHelper{postsuper: filepath.Join(dir, "postsuper"), postqueue: filepath.Join(dir, "postqueue"), configDir: "/etc/postfix-mx2",
		readTimeout: time.Second, log: io.Discard}, log
}

// TestQueueHelper: the root side runs postsuper -H or -d (and postqueue
// -i after a release) on the Postfix instance of its command line for a
// well-formed request only; anything else is refused before any command
// runs.
func TestQueueHelper(t *testing.T) {
	for _, tc := range []struct {
		name, request string
		fail          bool
		answer        string // its first line
		args          string // what the commands got
	}{
		{"release", "release 4F2A91C3D\n", false, "ok", "postsuper\n-c\n/etc/postfix-mx2\n-H\n4F2A91C3D\npostqueue\n-c\n/etc/postfix-mx2\n-i\n4F2A91C3D\n"},
		{"delete", "delete 4dD1YL0bm2zJbk\n", false, "ok", "postsuper\n-c\n/etc/postfix-mx2\n-d\n4dD1YL0bm2zJbk\n"},
		{"postsuper fails", "delete 4F2A91C3D\n", true, "error: postsuper -d 4F2A91C3D: exit status 1", "postsuper\n-c\n/etc/postfix-mx2\n-d\n4F2A91C3D\n"},
		{"ALL", "delete ALL\n", false, `error: want "release QUEUEID" or "delete QUEUEID"`, ""},
		{"an option for an ID", "delete -r\n", false, `error: want "release QUEUEID" or "delete QUEUEID"`, ""},
		{"two IDs", "delete 4F2A91C3D 4F2A91C3E\n", false, `error: want "release QUEUEID" or "delete QUEUEID"`, ""},
		{"another operation", "requeue 4F2A91C3D\n", false, `error: want "release QUEUEID" or "delete QUEUEID"`, ""},
		{"no end of line", "delete 4F2A91C3D", false, "error: want one line of at most 128 octets", ""},
		{"too long", "delete " + strings.Repeat("A", 200) + "\n", false, "error: want one line of at most 128 octets", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, log := fakePostfix(t, map[bool]int{false: 0, true: 1}[tc.fail])
			var out bytes.Buffer
			err := h.serve(context.Background(), strings.NewReader(tc.request), &out)
			first, rest, _ := strings.Cut(out.String(), "\n")
			if first != tc.answer || (err == nil) != (tc.answer == "ok") {
				t.Errorf("answer %q (%v), want %q", out.String(), err, tc.answer)
			}
			if tc.answer == "ok" && !strings.Contains(rest, "postsuper: said") {
				t.Errorf("postsuper's words not passed on: %q", rest)
			}
			got, _ := os.ReadFile(log)
			if string(got) != tc.args {
				t.Errorf("the commands got %q, want %q", got, tc.args)
			}
		})
	}
	// A client that says nothing is dropped after the read timeout.
	h, _ := fakePostfix(t, 0)
	h.readTimeout = 50 * time.Millisecond
	r, w := io.Pipe()
	defer w.Close()
	var out bytes.Buffer
	if err := h.serve(context.Background(), r, &out); err == nil || !strings.HasPrefix(out.String(), "error: no request within") {
		t.Errorf("a silent client: %q %v", out.String(), err)
	}
}

// TestWebPostsuper: "mailwall web postsuper" (web.postsuper's default)
// through a unix socket to the helper, as mailwall-queue.socket
// connects them: the exit status and output say what the helper did,
// and a queue ID that is not one is refused before any connection.
func TestWebPostsuper(t *testing.T) {
	h, log := fakePostfix(t, 0)
	sock := filepath.Join(t.TempDir(), "queue.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.serve(context.Background(), c, c)
			c.Close()
		}
	}()
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"web", "postsuper", "-H", "4F2A91C3D", "--socket", sock}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "postsuper: said") {
		t.Errorf("release: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	if got, _ := os.ReadFile(log); !strings.Contains(string(got), "-H\n4F2A91C3D\npostqueue\n") {
		t.Errorf("the helper ran %q", got)
	}
	for _, args := range [][]string{{"-d", "ALL"}, {"-H", "4F2A91C3D", "-d", "4F2A91C3E"}, {}} {
		stdout.Reset()
		stderr.Reset()
		if code := run(ctx, append([]string{"web", "postsuper", "--socket", sock}, args...), nil, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", args, code)
		}
	}
	if code := run(ctx, []string{"web", "postsuper", "-d", "4F2A91C3D", "--socket", filepath.Join(t.TempDir(), "none")}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "is mailwall-queue.socket enabled?") {
		t.Errorf("no helper: exit %d, %q", code, stderr.String())
	}
}

// TestPostsuperCommand: web.postsuper's "mailwall" is the running
// binary; any other command is taken as written.
func TestPostsuperCommand(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for setting, want := range map[string]string{
		"mailwall web postsuper":                       self + " web postsuper",
		"  /usr/sbin/postsuper   -c /etc/postfix-mx2 ": "/usr/sbin/postsuper -c /etc/postfix-mx2",
		"/opt/mailwall web postsuper":                  "/opt/mailwall web postsuper",
		"":                                             "",
	} {
		if got := strings.Join(postsuperCommand(setting), " "); got != want {
			t.Errorf("postsuperCommand(%q) = %q, want %q", setting, got, want)
		}
	}
}
