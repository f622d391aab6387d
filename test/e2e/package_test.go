package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mailwall/internal/milter"
)

// requireDebRoot returns the clean Debian root make test-deps prepares with
// debootstrap (the machine's release, minbase with systemd, procps and man-db). The
// tests never fetch it themselves: they reach only loopback.
func requireDebRoot(t *testing.T) string {
	t.Helper()
	root := os.Getenv("MAILWALL_DEB_ROOT")
	if root == "" {
		root = "/var/cache/mailwall-ci/debian-root"
	}
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "not root: dpkg in a chroot needs root"
	default:
		for _, tool := range []string{"dpkg-deb", "unshare", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				missing = tool + " not installed"
			}
		}
		if _, err := os.Stat(filepath.Join(root, "usr/bin/systemd-analyze")); err != nil {
			missing = "no Debian root with systemd at " + root + " (make test-deps makes it with debootstrap)"
		}
	}
	if missing != "" {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but " + missing)
		}
		t.Skip(missing)
	}
	return root
}

// TestDebInstallsInCleanRoot builds the package with dist/mkdeb.sh (what
// "make package" runs), installs it with dpkg in a copy of a clean Debian
// root, checks what it installed (user, permissions, conffile, man pages,
// the unit by systemd-analyze verify), then starts the packaged binary on
// the packaged config, as the unit does (user mailwall, /run/mailwall),
// in a network namespace of its own, and talks to each loopback listener.
func TestDebInstallsInCleanRoot(t *testing.T) {
	base := requireDebRoot(t)
	dir, err := os.MkdirTemp("", "mailwall-deb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	out, err := exec.Command("bash", "../../dist/mkdeb.sh", dir).Output()
	if err != nil {
		t.Fatalf("mkdeb.sh: %v\n%s", err, stderrOf(err))
	}
	deb := strings.TrimSpace(string(out))
	if !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("mkdeb.sh printed %q", out)
	}
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("cp", "-a", base, root).CombinedOutput(); err != nil {
		t.Fatalf("copy the root: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", deb, filepath.Join(root, "tmp", "mailwall.deb")).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	inRoot := func(args ...string) (string, error) {
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := inRoot("dpkg", "-i", "/tmp/mailwall.deb"); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}

	checks := []struct {
		args []string
		want string // the whole output, trimmed
	}{
		{[]string{"dpkg-query", "-W", "-f=${Status}", "mailwall"}, "install ok installed"},
		{[]string{"dpkg-query", "-W", "-f=${Conffiles}", "mailwall"}, "/etc/mailwall/mailwall.yaml"},
		{[]string{"stat", "-c", "%a %U:%G", "/etc/mailwall", "/etc/mailwall/mailwall.yaml", "/var/lib/mailwall"}, "750 root:mailwall\n640 root:mailwall\n750 mailwall:mailwall"},
		{[]string{"getent", "passwd", "mailwall"}, ""},
		{[]string{"systemd-analyze", "verify", "mailwall.service"}, ""},
		{[]string{"systemd-analyze", "verify", "mailwall-queue.socket", "mailwall-queue@0.service"}, ""}, // the dashboard's postsuper
		{[]string{"/usr/bin/mailwall", "config", "check", "/etc/mailwall/mailwall.yaml"}, ""},
	}
	for _, c := range checks {
		out, err := inRoot(c.args...)
		got := strings.TrimSpace(out)
		if err != nil || (c.want != "" && !strings.HasPrefix(got, c.want)) || (c.want == "" && c.args[0] == "systemd-analyze" && got != "") {
			t.Errorf("%s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
	}
	pages, _ := filepath.Glob("../../docs/man/*")
	if len(pages) == 0 {
		t.Fatal("no man pages in docs/man")
	}
	for _, p := range pages {
		name := filepath.Base(p)
		section := name[strings.LastIndex(name, ".")+1:]
		if out, err := inRoot("man", "-w", section, strings.TrimSuffix(name, "."+section)); err != nil {
			t.Errorf("man page %s not installed: %v %s", name, err, out)
		}
	}

	// Start it as the unit would: systemd's RuntimeDirectory made by hand.
	if out, err := inRoot("install", "-d", "-o", "mailwall", "-g", "mailwall", "-m", "0750", "/run/mailwall"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pidFile := filepath.Join(dir, "pid")
	script := fmt.Sprintf(`ip link set lo up || exit 1
chroot --userspec=mailwall:mailwall %s /usr/bin/mailwall serve --config /etc/mailwall/mailwall.yaml &
echo $! > %s
wait $!`, root, pidFile)
	ns := exec.Command("unshare", "--net", "--fork", "--", "sh", "-c", script)
	stdout, _ := ns.StdoutPipe()
	var stderr strings.Builder
	ns.Stderr = &stderr
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	t.Cleanup(func() {
		if ns.ProcessState == nil {
			if b, err := os.ReadFile(pidFile); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				syscall.Kill(pid, syscall.SIGKILL)
			}
			ns.Process.Kill()
			go func() {
				for range lines {
				}
			}()
			<-exited
		}
		if t.Failed() {
			t.Logf("mailwall stderr:\n%s", stderr.String())
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- ns.Wait()
	}()
	want := map[string]bool{"policy server listening on inet:127.0.0.1:10045": false, "milter listening on inet:127.0.0.1:8895": false, "web on http://127.0.0.1:8026": false, "dashboard login admin: first-run password in /var/lib/mailwall/initial-password": false}
	deadline := time.After(30 * time.Second)
	for waiting := len(want); waiting > 0; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mailwall stopped: %v", <-exited)
			}
			for w, seen := range want {
				if !seen && strings.Contains(l, w) {
					want[w] = true
					waiting--
				}
			}
		case <-deadline:
			t.Fatalf("mailwall did not say it listens: %v", want)
		}
	}
	go func() {
		for range lines {
		}
	}()

	err = inNetns(ns.Process.Pid, func() error {
		c, err := milter.Dial("tcp", "127.0.0.1:8895", 5*time.Second)
		if err != nil {
			return fmt.Errorf("milter: %w", err)
		}
		r, err := c.Connect("mail.example.test", netip.MustParseAddr("127.0.0.2"), 25)
		c.Close()
		if err != nil || r.Code != 'c' {
			return fmt.Errorf("milter connect: %v %v", r, err)
		}

		p, err := net.DialTimeout("tcp", "127.0.0.1:10045", 5*time.Second)
		if err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		defer p.Close()
		p.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(p, policyRequest("127.0.0.1", "localhost", "root@localhost"))
		action, err := bufio.NewReader(p).ReadString('\n')
		if err != nil || !strings.HasPrefix(action, "action=") {
			return fmt.Errorf("policy answer %q: %v", action, err)
		}

		// The dashboard sends a visitor without a session to its login page.
		for path, code := range map[string]int{"/healthz": 200, "/": 303} {
			h, err := net.DialTimeout("tcp", "127.0.0.1:8026", 5*time.Second)
			if err != nil {
				return fmt.Errorf("web: %w", err)
			}
			fmt.Fprintf(h, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path)
			resp, err := http.ReadResponse(bufio.NewReader(h), nil)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			h.Close()
			if err != nil || resp.StatusCode != code {
				return fmt.Errorf("GET %s: %v, want %d", path, err, code)
			}
			if loc := resp.Header.Get("Location"); code == 303 && !strings.HasPrefix(loc, "/login") {
				return fmt.Errorf("GET %s: to %q, not the login page", path, loc)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	for path, mode := range map[string]string{"var/lib/mailwall/mailwall.db": "600 mailwall", "run/mailwall/admin.sock": "600 mailwall"} {
		if out, err := inRoot("stat", "-c", "%a %U", "/"+path); err != nil || strings.TrimSpace(out) != mode {
			t.Errorf("%s: %q %v, want %q", path, out, err, mode)
		}
	}

	// SIGTERM stops it cleanly, as systemctl stop does.
	b, err := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid == 0 {
		t.Fatalf("pid file: %q %v", b, err)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("mailwall did not stop on SIGTERM")
	}
}

// inNetns runs f on an OS thread moved into the network namespace of
// process pid: sockets f opens there see that namespace's loopback. The
// thread is never handed back to the scheduler, so it dies with f.
func inNetns(pid int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with this goroutine
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
