package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"mailwall/internal/lists"
	"mailwall/internal/migrate"
	"mailwall/internal/store"
)

// listExpiredKept is how long an expired entry is kept (matching skips
// it) before the retention loop deletes it.
const listExpiredKept = 7 * 24 * time.Hour

// startLists loads the allow and block lists from st into a cache that
// follows changes made on any host (nil without a store); stop ends its
// refreshing and waits for it, to be called before the store closes.
func startLists(ctx context.Context, st *store.Store, log *slog.Logger) (c *lists.Cache, stop func()) {
	if st == nil {
		return nil, func() {}
	}
	c = lists.NewCache(st, log)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := c.Refresh(rctx); err != nil {
		log.Warn("allow and block lists not loaded yet: retried in the background", "err", err)
	}
	cancel()
	runCtx, cancelRun := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx, lists.DefaultRefresh); close(done) }()
	return c, func() { cancelRun(); <-done }
}

// cmdLists is "mailwall allow|block add|remove|list|import".
func cmdLists(ctx context.Context, list lists.List, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: add, remove, list or import: %w", list, errUsage)
	}
	sub := args[0]
	fs := newFlags(string(list)+" "+sub, stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded defaults)")
	ip := fs.String("ip", "", "a client address or network (CIDR)")
	sender := fs.String("sender", "", "a sender address (MAIL FROM or From)")
	domain := fs.String("domain", "", "a sender domain and its subdomains (MAIL FROM or From)")
	rcpt := fs.String("rcpt", "", "a recipient address")
	note := fs.String("note", "", "add: why the entry is there")
	expires := fs.Duration("expires", 0, "add: the entry stops applying after this long (0: never)")
	asJSON := fs.Bool("json", false, "list: print JSON")
	postfixAccess := fs.String("postfix-access", "", "import: a Postfix access(5) table's source file")
	accessTable := fs.String("table", "sender", "import: which restriction the access table serves: client, sender or recipient")
	policydSPF := fs.String("policyd-spf", "", "import: policyd-spf.conf (Whitelist, Domain_Whitelist)")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%s %s: unexpected %q: %w", list, sub, pos[0], errUsage)
	}
	var kind lists.Kind
	var value string
	n := 0
	for _, f := range []struct {
		k lists.Kind
		v string
	}{{lists.IP, *ip}, {lists.Sender, *sender}, {lists.Domain, *domain}, {lists.Rcpt, *rcpt}} {
		if f.v != "" {
			kind, value = f.k, f.v
			n++
		}
	}
	switch sub {
	case "add", "remove":
		if n != 1 {
			return fmt.Errorf("%s %s: give one of --ip, --sender, --domain or --rcpt: %w", list, sub, errUsage)
		}
		if _, err := lists.Normalize(kind, value); err != nil {
			return err
		}
	case "list":
		if n > 1 {
			return fmt.Errorf("%s list: at most one of --ip, --sender, --domain or --rcpt: %w", list, errUsage)
		}
	case "import":
		if (*postfixAccess == "") == (*policydSPF == "") {
			return fmt.Errorf("%s import: give --postfix-access FILE or --policyd-spf FILE: %w", list, errUsage)
		}
	default:
		return fmt.Errorf("%s: %q is not add, remove, list or import: %w", list, sub, errUsage)
	}
	if *expires < 0 {
		return fmt.Errorf("%s: --expires must not be negative: %w", list, errUsage)
	}
	_, st, err := openStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		e := lists.Entry{List: list, Kind: kind, Value: value, Note: *note}
		if *expires > 0 {
			e.Expires = time.Now().Add(*expires).Truncate(time.Second)
		}
		e, err := st.AddListEntry(ctx, e)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s %s added%s\n", e.List, e.Kind, e.Value, expiry(e))
		return nil
	case "remove":
		ok, err := st.RemoveListEntry(ctx, list, kind, value)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: no %s entry %q", list, kind, value)
		}
		fmt.Fprintf(stdout, "%s %s %s removed\n", list, kind, value)
		return nil
	case "import":
		var im migrate.AccessImport
		if *postfixAccess != "" {
			t := migrate.AccessTable(*accessTable)
			if t != migrate.ClientAccess && t != migrate.SenderAccess && t != migrate.RecipientAccess {
				return fmt.Errorf("%s import: --table %q is not client, sender or recipient: %w", list, *accessTable, errUsage)
			}
			im, err = migrate.ReadAccessFile(*postfixAccess, t)
		} else {
			im, err = migrate.PolicydSPFLists(*policydSPF)
		}
		if err != nil {
			return err
		}
		for _, s := range im.Skipped {
			fmt.Fprintf(stderr, "mailwall: skipped: %s\n", s)
		}
		// An access table holds both kinds: "allow import" takes its
		// OK lines, "block import" its REJECT lines.
		added := 0
		for _, e := range im.Entries {
			if e.List != list {
				continue
			}
			if _, err := st.AddListEntry(ctx, e); err != nil {
				return err
			}
			added++
		}
		fmt.Fprintf(stdout, "%d %s entries imported, %d lines skipped\n", added, list, len(im.Skipped))
		return nil
	}
	all, err := st.ListEntries(ctx)
	if err != nil {
		return err
	}
	var shown []lists.Entry
	for _, e := range all {
		if e.List == list && (n == 0 || e.Kind == kind) {
			shown = append(shown, e)
		}
	}
	if *asJSON {
		if shown == nil {
			shown = []lists.Entry{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(shown)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tADDED\tEXPIRES\tNOTE")
	now := time.Now()
	for _, e := range shown {
		exp := "never"
		if !e.Expires.IsZero() {
			exp = e.Expires.UTC().Format("2006-01-02 15:04")
			if e.Expired(now) {
				exp += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, printable(e.Value), e.Created.UTC().Format("2006-01-02 15:04"), exp, printable(e.Note))
	}
	return tw.Flush()
}

func expiry(e lists.Entry) string {
	if e.Expires.IsZero() {
		return ""
	}
	return ", expires " + e.Expires.UTC().Format(time.RFC3339)
}
