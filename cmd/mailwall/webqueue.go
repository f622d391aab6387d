package main

// The dashboard's release and delete of mail Postfix holds. postsuper
// needs root, and mailwall serve runs as user mailwall under a unit
// that can never gain privileges (NoNewPrivileges: no sudo, no setuid),
// writes nowhere in /var/spool (ProtectSystem=strict) and keeps no
// capabilities. So the package installs a narrow path beside it,
// mailwall-queue.socket (/run/mailwall-queue.sock, root's, mode 0660,
// group mailwall): each connection starts one "mailwall web
// queue-helper" as root (systemd's Accept=yes, the connection on its
// stdin and stdout), which reads one request, "release QUEUEID" or
// "delete QUEUEID", checks the queue ID as the dashboard does, and runs
// postsuper -H or -d on it (a release also asks postqueue -i to deliver
// it now), without a shell. "mailwall web postsuper -H|-d QUEUEID",
// the default web.postsuper, is the daemon's side.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mailwall/internal/web"
)

// queueSocket is where mailwall-queue.socket listens.
const queueSocket = "/run/mailwall-queue.sock"

// Bounds of the helper's conversation: a request is one short line,
// read within queueReadTimeout; postsuper and postqueue get
// queueRunTimeout each, their output is cut at queueMaxOutput; the
// client waits queueClientTimeout for all of it.
const (
	queueMaxRequest    = 128
	queueReadTimeout   = 10 * time.Second
	queueRunTimeout    = 20 * time.Second
	queueMaxOutput     = 4 << 10
	queueClientTimeout = 60 * time.Second
)

// cmdWebPostsuper is "mailwall web postsuper -H|-d QUEUEID": the
// request to the queue helper, its answer printed; an error when the
// helper refused or postsuper failed.
func cmdWebPostsuper(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("web postsuper", stderr)
	release := fs.String("H", "", "release this message from the hold queue (postsuper -H)")
	del := fs.String("d", "", "delete this message from the queue (postsuper -d)")
	sock := fs.String("socket", queueSocket, "the queue helper's socket (mailwall-queue.socket)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	op, id := "release", *release
	if *del != "" {
		op, id = "delete", *del
	}
	if fs.NArg() != 0 || (*release == "") == (*del == "") {
		return fmt.Errorf("web postsuper -H QUEUEID | -d QUEUEID: %w", errUsage)
	}
	if !web.ValidQueueID(id) {
		return fmt.Errorf("web postsuper: %q is not a Postfix queue ID: %w", id, errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, queueClientTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", *sock)
	if err != nil {
		return fmt.Errorf("web postsuper: the queue helper: %w (is mailwall-queue.socket enabled?)", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "%s %s\n", op, id); err != nil {
		return fmt.Errorf("web postsuper: %w", err)
	}
	answer, err := io.ReadAll(io.LimitReader(conn, 2*queueMaxOutput+256))
	if err != nil {
		return fmt.Errorf("web postsuper: the queue helper's answer: %w", err)
	}
	status, output, _ := strings.Cut(string(answer), "\n")
	if output = strings.TrimSpace(output); output != "" {
		fmt.Fprintln(stdout, output)
	}
	switch {
	case status == "ok":
		return nil
	case strings.HasPrefix(status, "error: "):
		return errors.New(strings.TrimPrefix(status, "error: "))
	}
	return fmt.Errorf("web postsuper: the queue helper answered %q", status)
}

// postsuperCommand is web.postsuper split at spaces, "mailwall" (the
// default's) meaning this very binary, so that the client is the
// daemon's own version wherever it is installed.
func postsuperCommand(setting string) []string {
	cmd := strings.Fields(setting)
	if len(cmd) > 0 && cmd[0] == "mailwall" {
		if self, err := os.Executable(); err == nil {
			cmd[0] = self
		}
	}
	return cmd
}

// queueHelper is the root side: its commands, from the unit's command
// line (never from the client).
type queueHelper struct {
	postsuper, postqueue string
	configDir            string // Postfix's config_directory, -c; "": its default
	readTimeout          time.Duration
	log                  io.Writer
}

// cmdWebQueueHelper is "mailwall web queue-helper": one request on
// stdin, the answer on stdout ("ok" or "error: why", then postsuper's
// own words).
func cmdWebQueueHelper(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("web queue-helper", stderr)
	h := queueHelper{readTimeout: queueReadTimeout, log: stderr}
	fs.StringVar(&h.postsuper, "postsuper", "/usr/sbin/postsuper", "postsuper's path")
	fs.StringVar(&h.postqueue, "postqueue", "/usr/sbin/postqueue", "postqueue's path")
	fs.StringVar(&h.configDir, "postfix-config", "", "Postfix's config_directory, for an instance other than the default")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("web queue-helper [--postfix-config DIR]: %w", errUsage)
	}
	return h.serve(ctx, stdin, stdout)
}

// serve answers one request.
func (h *queueHelper) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	who := peerOf(in)
	line, err := readLine(in, h.readTimeout)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return fmt.Errorf("web queue-helper (%s): %w", who, err)
	}
	op, id, _ := strings.Cut(line, " ")
	flag := map[string]string{"release": "-H", "delete": "-d"}[op]
	if flag == "" || !web.ValidQueueID(id) {
		fmt.Fprintf(out, "error: want \"release QUEUEID\" or \"delete QUEUEID\"\n")
		return fmt.Errorf("web queue-helper (%s): refused %q", who, line)
	}
	output, err := h.run(ctx, h.postsuper, flag, id)
	if err != nil {
		fmt.Fprintf(out, "error: postsuper %s %s: %v\n%s\n", flag, id, err, output)
		return fmt.Errorf("web queue-helper (%s): postsuper %s %s: %w: %s", who, flag, id, err, output)
	}
	if op == "release" {
		// postsuper -H puts it in the deferred queue, tried at the queue
		// manager's next scan: ask for it now.
		if qout, err := h.run(ctx, h.postqueue, "-i", id); err != nil {
			output += fmt.Sprintf("\n(postqueue -i %s failed: %v %s: the message waits for the next queue run)", id, err, qout)
		}
	}
	fmt.Fprintf(out, "ok\n%s\n", output)
	fmt.Fprintf(h.log, "mailwall web queue-helper: %s %s for %s: %s\n", op, id, who, strings.ReplaceAll(output, "\n", "; "))
	return nil
}

// run runs a Postfix command on the instance, without a shell, bounded
// in time and output.
func (h *queueHelper) run(ctx context.Context, name string, args ...string) (string, error) {
	if h.configDir != "" {
		args = append([]string{"-c", h.configDir}, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, queueRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var b cappedBuffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return strings.TrimSpace(b.String()), err
}

// readLine reads one line of at most queueMaxRequest octets within
// timeout.
func readLine(in io.Reader, timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(io.LimitReader(in, queueMaxRequest)).ReadString('\n')
		if err != nil {
			err = errors.New("want one line of at most 128 octets")
		}
		done <- result{strings.TrimRight(line, "\r\n"), err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no request within %v", timeout)
	}
}

// peerOf names the process at the other end of a unix socket on in,
// for the log ("uid 998 pid 1234"); "a pipe" when in is none.
func peerOf(in io.Reader) string {
	f, ok := in.(*os.File)
	if !ok {
		return "a pipe"
	}
	cred, err := unix.GetsockoptUcred(int(f.Fd()), unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return "a pipe"
	}
	return fmt.Sprintf("uid %d pid %d", cred.Uid, cred.Pid)
}

// cappedBuffer keeps the first queueMaxOutput octets written to it.
type cappedBuffer struct{ bytes.Buffer }

func (c *cappedBuffer) Write(b []byte) (int, error) {
	if room := queueMaxOutput - c.Len(); room > 0 {
		c.Buffer.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}
