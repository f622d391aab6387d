package main

import (
	"fmt"
	"io"
	"strings"

	"mailwall/internal/config"
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
	cfgPath := fs.String("config", "", "config file (default: embedded defaults)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "# main.cf: add or change these lines, then run: postfix check && postfix reload")
	if len(cfg.Milter.Listen) > 0 {
		m := postfixAddr(cfg.Milter.Listen[0])
		fmt.Fprintf(stdout, "smtpd_milters = %s\n", m)
		fmt.Fprintln(stdout, "non_smtpd_milters = $smtpd_milters")
		fmt.Fprintln(stdout, "milter_protocol = 6")
		fmt.Fprintln(stdout, "milter_default_action = tempfail")
		fmt.Fprintln(stdout, "# and remove the OpenDKIM and OpenDMARC sockets from smtpd_milters")
	}
	if len(cfg.Policyd.Listen) > 0 {
		p := postfixAddr(cfg.Policyd.Listen[0])
		fmt.Fprintln(stdout, "smtpd_recipient_restrictions =")
		fmt.Fprintln(stdout, "    permit_mynetworks,")
		fmt.Fprintln(stdout, "    permit_sasl_authenticated,")
		fmt.Fprintln(stdout, "    reject_unauth_destination,")
		fmt.Fprintf(stdout, "    check_policy_service %s\n", p)
		fmt.Fprintln(stdout, "smtpd_policy_service_timeout = 30s")
		fmt.Fprintln(stdout, "# remove policyd-spf_time_limit and any check_policy_service unix:private/policyd-spf")
		fmt.Fprintln(stdout)
		fmt.Fprintln(stdout, "# master.cf: remove the policyd-spf service, for example:")
		fmt.Fprintln(stdout, "#   policyd-spf  unix  -  n  n  -  0  spawn  user=policyd-spf argv=/usr/bin/policyd-spf")
	}
	return nil
}
