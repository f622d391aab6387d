package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"mailwall/internal/migrate"
)

// postfixAddr turns a mailwall listen address into the form Postfix uses:
// inet:host:port as it is; a unix socket under Postfix's queue directory
// relative to it, as chrooted smtpd processes see it.
func postfixAddr(listen string) string {
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		if rel, ok := strings.CutPrefix(path, "/var/spool/postfix/"); ok {
			return "unix:" + rel
		}
		return "unix:" + path
	}
	return listen
}

func cmdPostfixConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("postfix-config", stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	dir := fs.String("postfix-dir", "/etc/postfix", "Postfix's config_directory, read with postconf")
	apply := fs.Bool("apply", false, "make the changes: back up main.cf and master.cf, postconf, postfix check (undone if it fails), postfix reload")
	noReload := fs.Bool("no-reload", false, "with --apply: do not reload Postfix")
	replace := fs.String("replace", "", "more milters to replace, comma separated, as main.cf names them (rspamd's: inet:localhost:11332)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, "")
	if err != nil {
		return err
	}
	var milterAddr, policyAddr string
	if len(cfg.Milter.Listen) > 0 {
		milterAddr = postfixAddr(cfg.Milter.Listen[0])
	}
	if len(cfg.Policyd.Listen) > 0 {
		policyAddr = postfixAddr(cfg.Policyd.Listen[0])
	}
	st, err := readPostfixState(*dir)
	if err != nil {
		if *apply {
			return err
		}
		// Without Postfix here, print the changes for a fresh main.cf.
		fmt.Fprintf(stderr, "mailwall: %v; printing the changes for a main.cf without milters or policy services\n", err)
		st = migrate.PostfixState{}
	}
	var alsoReplace []string
	for _, m := range strings.Split(*replace, ",") {
		if m = strings.TrimSpace(m); m != "" {
			alsoReplace = append(alsoReplace, m)
		}
	}
	plan := migrate.PlanPostfix(st, milterAddr, policyAddr, alsoReplace...)
	if plan.Empty() {
		fmt.Fprintf(stdout, "# %s already puts mailwall in Postfix's path: nothing to change\n", *dir)
		return nil
	}
	printPostfixPlan(stdout, *dir, plan)
	if !*apply {
		fmt.Fprintln(stdout, "\n# then: postfix check && postfix reload (or run this again with --apply)")
		return nil
	}
	if err := applyPostfixPlan(*dir, plan, stdout); err != nil {
		return err
	}
	if milterAddr != "" {
		warnNotListening(stderr, cfg.Milter.Listen[0], "Postfix answers every message with 451 4.7.1 (milter_default_action = tempfail) and senders retry")
	}
	if policyAddr != "" {
		warnNotListening(stderr, cfg.Policyd.Listen[0], "Postfix answers every recipient with 451 4.3.5 Server configuration problem and senders retry")
	}
	if *noReload {
		fmt.Fprintln(stdout, "# not reloaded (--no-reload): run postfix reload")
		return nil
	}
	return reloadPostfix(*dir, stdout)
}

// readPostfixState asks postconf what main.cf and master.cf hold.
func readPostfixState(dir string) (migrate.PostfixState, error) {
	st := migrate.PostfixState{}
	var err error
	if st.Main, err = postconfMap(dir, "-n"); err != nil {
		return st, err
	}
	if st.Overrides, err = postconfMap(dir, "-P"); err != nil {
		return st, err
	}
	commands, err := postconfMap(dir, "-F", "*/*/command")
	if err != nil {
		return st, err
	}
	st.Commands = map[string]string{}
	for k, v := range commands {
		st.Commands[strings.TrimSuffix(k, "/command")] = v
	}
	return st, nil
}

// postconfMap runs postconf and reads its "name = value" lines.
func postconfMap(dir string, args ...string) (map[string]string, error) {
	out, err := postconf(dir, args...)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " = "); ok {
			m[name] = value
		} else if name, ok := strings.CutSuffix(sc.Text(), " ="); ok {
			m[name] = ""
		}
	}
	return m, sc.Err()
}

func postconf(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("postconf", append([]string{"-c", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("postconf -c %s %s: %w: %s", dir, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func printPostfixPlan(w io.Writer, dir string, plan migrate.PostfixPlan) {
	fmt.Fprintf(w, "# Changes to %s that put mailwall in place of OpenDKIM, OpenDMARC and policyd-spf\n", dir)
	var main, master []migrate.PostfixChange
	for _, c := range plan.Changes {
		if c.Override() {
			master = append(master, c)
		} else {
			main = append(main, c)
		}
	}
	if len(main) > 0 {
		fmt.Fprintln(w, "\n# main.cf")
	}
	for _, c := range main {
		fmt.Fprintf(w, "# %s\n", c.Why)
		if c.Old != "" {
			fmt.Fprintf(w, "#   was: %s = %s\n", c.Param, c.Old)
		}
		if c.Remove {
			fmt.Fprintf(w, "#   remove %s (postconf -X %s)\n", c.Param, c.Param)
		} else {
			fmt.Fprintf(w, "%s = %s\n", c.Param, c.New)
		}
	}
	if len(master)+len(plan.Disable) > 0 {
		fmt.Fprintln(w, "\n# master.cf")
	}
	for _, c := range master {
		fmt.Fprintf(w, "# %s: %s\n#   was: -o %s=%s\n", c.Param, c.Why, c.Param[strings.LastIndex(c.Param, "/")+1:], c.Old)
		fmt.Fprintf(w, "#   postconf -P -e '%s=%s'\n", c.Param, c.New)
	}
	for _, svc := range plan.Disable {
		fmt.Fprintf(w, "# comment out the %s service: postconf -M# %s\n", svc, svc)
	}
}

// applyPostfixPlan makes the changes with postconf after backing up
// main.cf and master.cf, and puts the backups back when postconf or
// "postfix check" fails, so a failed apply leaves Postfix as it was.
func applyPostfixPlan(dir string, plan migrate.PostfixPlan, stdout io.Writer) error {
	if out, err := exec.Command("postfix", "-c", dir, "check").CombinedOutput(); err != nil {
		return fmt.Errorf("postfix-config: postfix check fails before any change, so nothing was changed: %w\n%s", err, out)
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	var backups [][2]string
	for _, name := range []string{"main.cf", "master.cf"} {
		path := filepath.Join(dir, name)
		backup := path + ".mailwall-" + stamp
		if err := copyFile(path, backup); err != nil {
			return fmt.Errorf("postfix-config: backup: %w", err)
		}
		backups = append(backups, [2]string{backup, path})
		fmt.Fprintf(stdout, "# backed up %s to %s\n", path, backup)
	}
	restore := func(cause error) error {
		for _, b := range backups {
			if err := copyFile(b[0], b[1]); err != nil {
				return fmt.Errorf("%w; restoring %s from %s also failed: %v", cause, b[1], b[0], err)
			}
		}
		return fmt.Errorf("%w; main.cf and master.cf are back as they were", cause)
	}
	for _, c := range plan.Changes {
		var args []string
		switch {
		case c.Override() && c.Remove:
			args = []string{"-P", "-X", c.Param}
		case c.Override():
			args = []string{"-P", "-e", c.Param + "=" + c.New}
		case c.Remove:
			args = []string{"-X", c.Param}
		default:
			args = []string{"-e", c.Param + "=" + c.New}
		}
		if _, err := postconf(dir, args...); err != nil {
			return restore(fmt.Errorf("postfix-config: %w", err))
		}
	}
	for _, svc := range plan.Disable {
		if _, err := postconf(dir, "-M#", svc); err != nil {
			return restore(fmt.Errorf("postfix-config: %w", err))
		}
	}
	if out, err := exec.Command("postfix", "-c", dir, "check").CombinedOutput(); err != nil {
		return restore(fmt.Errorf("postfix-config: postfix check failed after the changes: %w\n%s", err, out))
	}
	fmt.Fprintf(stdout, "# applied %d change(s), commented out %d service(s); postfix check passed\n", len(plan.Changes), len(plan.Disable))
	return nil
}

// reloadPostfix reloads a running Postfix; a stopped one reads the new
// configuration when it starts.
func reloadPostfix(dir string, stdout io.Writer) error {
	if err := exec.Command("postfix", "-c", dir, "status").Run(); err != nil {
		fmt.Fprintln(stdout, "# Postfix is not running: it reads the changes when it starts")
		return nil
	}
	if out, err := exec.Command("postfix", "-c", dir, "reload").CombinedOutput(); err != nil {
		return fmt.Errorf("postfix-config: postfix reload: %w\n%s", err, out)
	}
	fmt.Fprintln(stdout, "# Postfix reloaded")
	return nil
}

// warnNotListening says so when nothing answers at a mailwall listener
// Postfix now uses, and what Postfix does with mail until it does
// (consequence).
func warnNotListening(stderr io.Writer, listen, consequence string) {
	network, addr := "tcp", strings.TrimPrefix(listen, "inet:")
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		network, addr = "unix", path
	}
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "mailwall: warning: nothing answers at %s yet (%v): until mailwall serve runs, %s; start it now (systemctl start mailwall)\n", listen, err, consequence)
		return
	}
	c.Close()
}

// copyFile copies src over dst, keeping src's permission bits.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}
