package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"mailwall/internal/config"
	"mailwall/internal/migrate"
)

// cmdImport reads the old stack's files and writes a mailwall config that
// behaves the same, printing what each setting became.
func cmdImport(args []string, stdout, stderr io.Writer) error {
	fset := newFlags("import", stderr)
	policyd := fset.String("policyd-spf", migrate.DebianPolicydSPF, "policyd-spf.conf to read (\"\": none)")
	opendkim := fset.String("opendkim", migrate.DebianOpenDKIM, "opendkim.conf to read (\"\": none)")
	opendmarc := fset.String("opendmarc", migrate.DebianOpenDMARC, "opendmarc.conf to read (\"\": none)")
	mainCF := fset.String("main-cf", migrate.DebianMainCF, "Postfix main.cf whose restrictions to read (\"\": none)")
	out := fset.String("out", "/etc/mailwall/mailwall.yaml", "the config file to write (\"-\": standard output, the mapping then goes to standard error)")
	tableDir := fset.String("table-dir", "", "where converted hash: tables go (default: imported/ beside --out)")
	force := fset.Bool("force", false, "overwrite --out if it exists")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	// A Debian default path that is not there is a daemon not installed;
	// a path given on the command line must exist.
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var skipped []string
	pick := func(flagName string, path string) string {
		if path == "" || given[flagName] {
			return path
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			skipped = append(skipped, path)
			return ""
		}
		return path
	}
	src := migrate.Sources{
		PolicydSPF: pick("policyd-spf", *policyd),
		OpenDKIM:   pick("opendkim", *opendkim),
		OpenDMARC:  pick("opendmarc", *opendmarc),
		MainCF:     pick("main-cf", *mainCF),
		TableDir:   *tableDir,
	}
	if src.TableDir == "" {
		dir := "/etc/mailwall"
		if *out != "-" {
			dir = filepath.Dir(*out)
		}
		src.TableDir = filepath.Join(dir, "imported")
	}
	res, err := migrate.Import(src)
	if err != nil {
		return err
	}
	header := "mailwall configuration written by \"mailwall import\" from:\n"
	for _, p := range []string{src.PolicydSPF, src.OpenDKIM, src.OpenDMARC, src.MainCF} {
		if p != "" {
			header += "  " + p + "\n"
		}
	}
	header += "Only the keys that differ from the embedded defaults are here\n(mailwall config default prints them all)."
	data, err := migrate.YAML(res.Config, header)
	if err != nil {
		return err
	}
	// The written file must read back as the same configuration.
	back, err := config.Parse(data)
	if err != nil {
		return fmt.Errorf("import: the written config does not read back: %w", err)
	}
	if a, b := mustYAML(back), mustYAML(res.Config); a != b {
		return fmt.Errorf("import: the written config reads back differently")
	}
	report := stdout
	if *out == "-" {
		report = stderr
	}
	for _, p := range skipped {
		fmt.Fprintf(report, "%s: not found, skipped\n", p)
	}
	fmt.Fprint(report, migrate.Report(res.Mappings))
	if err := migrate.WriteTables(res.Tables); err != nil {
		return err
	}
	for p := range res.Tables {
		fmt.Fprintf(report, "wrote %s\n", p)
	}
	if *out == "-" {
		_, err := stdout.Write(data)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(*out, flags, 0o640)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("import: %s exists (--force overwrites it)", *out)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(report, "wrote %s; check it with: mailwall config check %s\n", *out, *out)
	return nil
}

func mustYAML(c *config.Config) string {
	b, err := migrate.YAML(c, "")
	if err != nil {
		return err.Error()
	}
	return string(b)
}
