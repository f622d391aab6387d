package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"mailwall/internal/config"
	"mailwall/internal/manpage"
)

// commandDoc is the manual page of one subcommand. Its options are not
// written here: they are read from the subcommand's own flag set (what
// "-h" prints), so the page cannot drift from the code.
type commandDoc struct {
	name     string // "dkim"
	summary  string
	synopsis []string
	// flagsOf lists the argument vectors whose "-h" prints the options,
	// one per sub-subcommand: {"dkim", "keygen"}.
	flagsOf     [][]string
	description string // paragraphs separated by blank lines
	examples    string
	files       []manpage.Block
}

// commandDocs documents every subcommand run dispatches.
func commandDocs() []commandDoc {
	return []commandDoc{
		{
			name:     "serve",
			summary:  "run the milter and the Postfix policy server",
			synopsis: []string{"mailwall serve [--config FILE] [--dns HOST:PORT] [--cpuprofile FILE] [--memprofile FILE]"},
			flagsOf:  [][]string{{"serve"}},
			description: `Runs mailwall's daemon: the Postfix policy delegation server (policyd.listen), the milter (milter.listen), the store's recorder, DMARC report sending and reading, the web dashboard with /metrics and /healthz (web.listen) and the admin socket (admin.socket). Without --config it reads /etc/mailwall/mailwall.yaml when that exists, else runs on the embedded defaults: every listener on loopback.

The garbage collector's heap goal is kept at 32 MB or more; GOGC in the environment turns that off.

SIGHUP flushes the DNS cache and re-reads the config file. The checks, the SPF settings and the policy server's answers apply to the next request and the next milter connection; a message being checked finishes under the rules it began with. Listeners, dns, store, reports, web, admin and log need a restart, and the log names those that changed. A config that does not load leaves the running one in place. SIGTERM and SIGINT stop the daemon after the requests in progress.

On first start without web.password_hash, a dashboard password is made, kept hashed in the store and written to a file of mode 0600, initial-password beside the SQLite store (/var/lib/mailwall/initial-password by default; with PostgreSQL, in $STATE_DIRECTORY or /var/lib/mailwall); standard output, which goes to the journal, names only the file.`,
			files: []manpage.Block{
				{Tag: "/etc/mailwall/mailwall.yaml", Text: "the configuration the packaged service reads; see mailwall.yaml(5)"},
				{Tag: "/var/lib/mailwall/mailwall.db", Text: "the SQLite store (store.dsn)"},
				{Tag: "/run/mailwall/admin.sock", Text: "the admin socket used by mailwall dns (admin.socket)"},
			},
		},
		{
			name:     "import",
			summary:  "turn policyd-spf, OpenDKIM, OpenDMARC and Postfix settings into a mailwall config",
			synopsis: []string{"mailwall import [--policyd-spf FILE] [--opendkim FILE] [--opendmarc FILE] [--main-cf FILE] [--out FILE|-] [--table-dir DIR] [--force]"},
			flagsOf:  [][]string{{"import"}},
			description: `Reads the configuration of the stack mailwall replaces, where Debian puts it or where the options say: policyd-spf.conf; opendkim.conf with its KeyTable, SigningTable and InternalHosts (checks.internal_hosts: signed, not checked); opendmarc.conf, whose IgnoreHosts become checks.not_checked (neither checked nor signed); and the check_helo_access and check_client_access tables main.cf names. A default path that does not exist is skipped (the daemon is not installed); a path given as an option must exist.

It writes a mailwall config that behaves the same, holding only the keys that differ from the embedded defaults, after checking that it reads back as the same configuration. It prints every old setting with the file and line it came from and what it became, or why it has no equivalent.

Signing keys are referenced where they are, never copied; a key others can read gets a warning. Postfix hash:, btree:, lmdb: and cdb: tables are converted from their source text into regexp: tables under --table-dir; regexp: tables are read in place. A client access table with the S25R rules turns on mailwall's S25R check with the table's action. mailwall's own additions (the phishing score's quarantine and reject thresholds) stay at "tag", so the first day after the switch delivers what the day before did.`,
			examples: "mailwall import --out /etc/mailwall/mailwall.yaml\nmailwall serve --config /etc/mailwall/mailwall.yaml\nmailwall postfix-config --config /etc/mailwall/mailwall.yaml --apply",
		},
		{
			name:     "postfix-config",
			summary:  "print or make the Postfix changes that put mailwall in place of the old daemons",
			synopsis: []string{"mailwall postfix-config [--config FILE] [--postfix-dir DIR] [--replace MILTER,...] [--apply] [--no-reload]"},
			flagsOf:  [][]string{{"postfix-config"}},
			description: `Reads the Postfix instance in --postfix-dir with postconf(1) and prints the main.cf and master.cf changes that hand mail to the config's milter and policy server.

OpenDKIM's and OpenDMARC's entries in smtpd_milters, non_smtpd_milters and master.cf -o overrides (known by their socket names, or ports 8891 to 8893) become mailwall's milter, in the first one's place, as do the milters given with --replace (rspamd's, when mailwall takes over its authentication checks); other milters keep theirs. A check_policy_service that names a master.cf service running policyd-spf becomes mailwall's policy server, keeping the settings of a { address, name=value } group; the service is commented out and its _time_limit removed. With nothing to replace, the milter is appended and the policy check is added after reject_unauth_destination. A unix socket under /var/spool/postfix is written relative to it, as the chrooted smtpd sees it. milter_default_action becomes tempfail: while mailwall is stopped Postfix answers 451 4.7.1 and senders retry, where accept (Postfix's default) would pass mail unchecked and leave internal mail unsigned.

With --apply, it runs "postfix check" first and changes nothing if that fails; backs up main.cf and master.cf as main.cf.mailwall-TIMESTAMP and master.cf.mailwall-TIMESTAMP; makes the changes with postconf; runs "postfix check" again and puts the backups back if it fails; warns when mailwall does not answer at its addresses yet, saying what Postfix answers until it does; and reloads Postfix if it runs. A second run finds nothing to change.`,
		},
		{
			name:        "check-message",
			summary:     "run the receive pipeline on one message, offline",
			synopsis:    []string{"mailwall check-message --ip IP --helo NAME --sender ADDR [--rcpt ADDR] [--auth USER] [--dns HOST:PORT] [--json] < MESSAGE"},
			flagsOf:     [][]string{{"check-message"}},
			description: `Reads a message on standard input and checks it as if it had come over SMTP with that envelope: HELO, iprev, S25R, SPF, DKIM, ARC, DMARC and the phishing score, as the milter does inside Postfix. It prints the headers it would add, the action and every reason; with --json, the whole result.`,
		},
		{
			name:    "learn",
			summary: "teach the store's classifier model spam or ham, or take a lesson back",
			synopsis: []string{
				"mailwall learn spam|ham [--config FILE] [--rcpt ADDR] < MESSAGE",
				"mailwall learn --maildir DIR --as spam|ham [--config FILE]",
				"mailwall learn --import FILE [--config FILE]",
				"mailwall unlearn spam|ham [--config FILE] < MESSAGE",
			},
			flagsOf: [][]string{{"learn"}},
			description: `Teaches the Bayes model kept in the config's store, the one serve classifies with when checks.classifier.source is store; each running serve reads the change at its next refresh (checks.classifier.refresh). Learning adds to the counts of the message's features in one transaction, so several hosts and this command learn into one model at once.

The same message (known by a hash of its Message-ID and body, never its text) is not counted twice as the same class; learnt as the other class, the first learning is taken back. --maildir learns every message of DIR's new/ and cur/. unlearn takes back a message learnt so, and only that. --import adds a model file's counts (bench/classify -save's NAME.model) to the store's model, to start from. --rcpt names the recipient, whose address then reads as "(recipient)" rather than as words.`,
		},
		{
			name:    "train",
			summary: "learn a classifier model from labelled messages",
			synopsis: []string{
				"mailwall train --labels FILE [--split S] [--classes phish,spam,ham] [--era-neutral] [--config FILE] [--rcpt ADDR] -o OUT DIR",
			},
			flagsOf: [][]string{{"train"}},
			description: `Learns a model (checks.classifier.kind) from the messages under DIR that the labels file names, read as serve reads them: the phishing rules of the config run first and their hits are features, with the authentication rules at 0 (archived mail's SPF, DKIM and DMARC say nothing today). The labels file is tab-separated: FILE and CLASS (phish, spam or ham) a row, or a header row naming the columns id, class, split and ip, as ../shared/corpus/labels.tsv and split.tsv have them. OUT named NAME.model is written as bench/classify writes models (with NAME-kinds.model, which tells phishing from spam, when both are learnt); any other name gets the compact encoding, which checks.classifier.model reads too. The same messages give the same file byte for byte.

make model writes the starter model built into mailwall this way: the SpamAssassin messages of the corpus's train split, --era-neutral (without the features that date a message: MIME structure, transfer encodings, charsets, header order, the mailer).`,
		},
		{
			name:    "eval",
			summary: "measure the content analyzers on labelled messages",
			synopsis: []string{
				"mailwall eval --labels FILE [--split S] [--model FILE] [--no-classifier] [--config FILE] [--rcpt ADDR] DIR",
				"mailwall eval --labels FILE [--split S] --train-labels FILE [--train-split S] [--train-classes C] DIR",
			},
			flagsOf:     [][]string{{"eval"}},
			description: `Runs the config's content analyzers (the phishing rules, then the classifier with the rules' hits as features; authentication rules at 0) over labelled messages and prints the confusion matrix of class against action at the configured score thresholds; the classifier's probability alone at its threshold and where at most 1% and 0.1% of the ham is flagged, and the score likewise; the rules and features that decided most for each class; and every ham flagged with why. The classifier's model is --model, else checks.classifier.model, else the starter model; --train-labels learns one from other labelled messages first (for example the train split, judged on validate).`,
		},
		{
			name:     "reputation",
			summary:  "show the ham and spam history of authenticated identities",
			synopsis: []string{"mailwall reputation show [IDENTITY] [--kind from_domain|from_org|dkim|spf|net] [-n N] [--config FILE]"},
			flagsOf:  [][]string{{"reputation"}},
			description: `Prints what the store's reputation history (checks.reputation) holds: without IDENTITY the N identities with the most evidence, with it every kind's row for that domain or network (a kind= prefix, as the verdict explanations write it, is allowed); for an address, whether it is a known correspondent. The counts are messages, decayed to now with the configured half-life; feedback counts feedback_weight each.

Identities are only those authentication vouched for: the From domain of mail that passed DMARC (from_domain) and, for a subdomain, its registered domain (from_org), verified DKIM d= (dkim), the SPF-pass MAIL FROM domain (spf) and the client's /24 or /56 (net).`,
		},
		{
			name:    "spf",
			summary: "check SPF for a client, or lint a domain's SPF record",
			synopsis: []string{
				"mailwall spf --ip IP --helo NAME --sender ADDR [--dns HOST:PORT] [--json]",
				"mailwall spf lint DOMAIN [--dns HOST:PORT] [--json]",
			},
			flagsOf: [][]string{{"spf"}, {"spf", "lint"}},
			description: `mailwall spf evaluates SPF (RFC 7208) for a client address, HELO name and envelope sender and prints the Received-SPF header, or with --json the result, explanation and lookup count. An empty --sender checks the HELO identity. The exit status is 0 for any SPF result.

mailwall spf lint fetches a domain's record and walks its includes, reporting more than 10 DNS lookups, void lookups, +all and ?all, ptr, several SPF records, strings over 255 octets, answers that need TCP, terms after all, and syntax errors with their position. It exits 1 when it reports an error, as domain check does, 0 otherwise.`,
		},
		{
			name:     "dkim",
			summary:  "make DKIM keys, sign and verify messages",
			synopsis: []string{"mailwall dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--bits N] --out DIR", "mailwall dkim sign --domain D --selector S --key FILE < MESSAGE", "mailwall dkim verify [--dns HOST:PORT] [--json] < MESSAGE"},
			flagsOf:  [][]string{{"dkim", "keygen"}, {"dkim", "sign"}, {"dkim", "verify"}},
			description: `keygen writes S.private (PKCS#8 PEM, mode 0600, never overwritten) and S.txt, the DNS record ready for a zone file, split into strings of at most 255 octets. RSA keys of 2048 bits are the default; ed25519 keys follow RFC 8463 (publish an RSA key next to them for receivers that lack it).

sign prints the message with a DKIM-Signature field added. Keys may be PEM (PKCS#1 or PKCS#8) or dkimpy's base64 Ed25519 seed.

verify checks every signature of a message and prints one line per signature with its result and reason, or with --json a list of results.`,
		},
		{
			name:     "domain",
			summary:  "check a domain's SPF, DKIM, DMARC, MX and name servers",
			synopsis: []string{"mailwall domain check DOMAIN [--dns HOST:PORT] [--selector S ...] [--ns-port N] [--timeout D] [--json]", "mailwall domain check --sending DOMAIN [--ip IP] [--helo NAME] [--mail-from DOMAIN] [--message FILE]"},
			flagsOf:  [][]string{{"domain", "check"}},
			description: `Reads a domain's records as receivers read them and prints a pass, warn or fail line for each finding: the SPF record and its include tree; DKIM keys for the selectors given and common ones; the DMARC record and its report destinations; the MX hosts with forward-confirmed reverse DNS; each authoritative name server asked on its own (serials, same answers, zone transfer refused).

--sending adds what Gmail, Yahoo and Outlook.com require of senders (https://support.google.com/a/answer/81126, https://senders.yahooinc.com/best-practices/, https://sendersupport.olc.protection.outlook.com/pm/): SPF passing for the sending address (--ip), a DKIM key and, in a message as sent (--message), a passing signature by the From domain, a DMARC record (p=none is enough) and a pass through an aligned identifier, forward-confirmed reverse DNS matching the HELO name (--helo), one From, Date and Message-ID, and one-click unsubscribe (RFC 8058) for bulk mail, each with its fix; and says what cannot be seen from here: TLS, the spam complaint rate (under 0.3 %), reputation (warm up; Google Postmaster Tools, Microsoft SNDS).`,
		},
		{
			name:        "send-test",
			summary:     "send a well-formed, optionally signed, test message",
			synopsis:    []string{"mailwall send-test --from ADDR --to ADDR --server HOST:PORT [--source-ip IP] [--helo NAME] [--sign-domain D --selector S --key FILE] [--subject S] [--tls-insecure] [--bulk] [--print]"},
			flagsOf:     [][]string{{"send-test"}},
			description: `Sends one message with Date, Message-ID and MIME headers over SMTP, DKIM-signed when given a key, from a chosen source address (127.0.0.x plays several hosts on one machine), with STARTTLS when the server offers it, and prints the whole SMTP dialogue. --bulk makes a message that meets the bulk sender requirements (List-Unsubscribe with an https and a mailto URI, List-Unsubscribe-Post: List-Unsubscribe=One-Click, signed by the From domain); --print writes the message instead of sending it, for domain check --sending --message.`,
		},
		{
			name:        "lab",
			summary:     "a whole mail setup on loopback from one lab file",
			synopsis:    []string{"mailwall lab LABFILE [--dir DIR] [--dns HOST:PORT] [--mx-port N] [--config FILE]", "mailwall lab run LABFILE [--dir DIR] [--json]"},
			flagsOf:     [][]string{{"lab"}},
			description: `Builds a mail lab from a lab file: DKIM keys (kept across runs), forward and reverse zone files, the lab DNS server and a receiving MX that runs the receive pipeline and keeps accepted mail in a Maildir. "lab run" also sends every host's test messages and prints what the MX concluded.`,
		},
		{
			name:        "lab-dns",
			summary:     "serve zone files authoritatively on loopback",
			synopsis:    []string{"mailwall lab-dns [--listen 127.0.0.1:5353] [--axfr-allow CIDR,...] [--config FILE] ZONEFILE..."},
			flagsOf:     [][]string{{"lab-dns"}},
			description: `Serves BIND-style zone files over UDP and TCP, authoritatively only: names outside the zones get REFUSED, never a recursive answer. The origin comes from $ORIGIN, else from the file name (example.test.zone, db.example.test); ORIGIN=FILE names it. Zone transfers (AXFR) go only over TCP and only to the CIDRs of --axfr-allow. SIGHUP reloads the files and keeps the old zones if one is broken.`,
		},
		{
			name:        "ddns",
			summary:     "keep a changing address's A/AAAA and SPF records up to date",
			synopsis:    []string{"mailwall ddns [--config FILE] [--address IP] [--dry-run] [--json]"},
			flagsOf:     [][]string{{"ddns"}},
			description: `Learns the server's public address (ddns.interface, or ddns.url answering it as text; a global unicast address only) and compares it with the A/AAAA records of ddns.names at the zone's primary. When they differ it sends one dynamic update (RFC 2136) signed with the TSIG key of ddns.key_file: the records are replaced, and in the SPF record of each of ddns.spf_names the ip4: or ip6: term that named the old address gets the new one, every other byte kept; prerequisites make the server refuse the update if the records changed meanwhile. It then asks each name server of the zone directly until it shows the change (ddns.verify_attempts, with backoff) and says which do not. Nothing is sent when the records are up to date. With ddns.enabled, serve does the same every ddns.every.`,
		},
		{
			name:        "config",
			summary:     "print the embedded defaults or check a config file",
			synopsis:    []string{"mailwall config default", "mailwall config check [FILE]"},
			description: `"config default" prints the embedded default configuration with its comments: the file the package installs as /etc/mailwall/mailwall.yaml. "config check" reads a file (default /etc/mailwall/mailwall.yaml) as serve would and reports the first error with its line; unknown keys are errors. It also refuses what would stop serve: a brands file, HELO table or signing key that cannot be read, a listen address without a valid port. mailwall.yaml(5) describes every key.`,
		},
		{
			name:        "report",
			summary:     "DMARC aggregate reports made here and received",
			synopsis:    []string{"mailwall report list [--received] [--domain D] [--json]", "mailwall report show ID [--json]", "mailwall report send-now", "mailwall report import [--all] MAILDIR|FILE..."},
			flagsOf:     [][]string{{"report", "list"}},
			description: `list shows the reports made here, or with --received those received; show prints one report's XML; send-now makes and sends the reports due now, as the daemon does every reports.every; import reads received reports from a Maildir (new/ only, cur/ too with --all) or from files: gzip, zip or plain XML, RFC 9990 or RFC 7489.`,
		},
		{
			name:        "dns",
			summary:     "inspect and flush the running daemon's DNS cache",
			synopsis:    []string{"mailwall dns query NAME [TYPE] [--socket PATH] [--json]", "mailwall dns flush [NAME] [--socket PATH]"},
			flagsOf:     [][]string{{"dns", "query"}},
			description: `Asks mailwall serve over its admin socket (admin.socket, mode 0600) what its DNS cache holds for a name, with the time each answer has left, or drops the whole cache or one name, so an edited record is seen at once.`,
		},
		{
			name:        "web",
			summary:     "manage the dashboard's password; release or delete held mail for it",
			synopsis:    []string{"mailwall web password-hash < PASSWORD", "mailwall web reset-password [--config FILE]", "mailwall web postsuper -H|-d QUEUEID [--socket PATH]", "mailwall web queue-helper [--postfix-config DIR]"},
			flagsOf:     [][]string{{"web", "reset-password"}, {"web", "postsuper"}, {"web", "queue-helper"}},
			description: `password-hash reads a password on standard input and prints its bcrypt hash for web.password_hash. reset-password makes a new random password, keeps its hash in the store and prints it; a running serve reads it within 10 seconds and ends the sessions open. postsuper is how the dashboard (web.postsuper) releases (-H) or deletes (-d) a message held in Postfix's hold queue: it asks mailwall-queue.socket (/run/mailwall-queue.sock, group mailwall), whose root helper, queue-helper, one per connection, checks the queue ID and runs postsuper, and for a release postqueue -i, without a shell.`,
		},
		{
			name:    "allow",
			summary: "the site's allow list",
			synopsis: []string{"mailwall allow add|remove [--ip CIDR | --sender ADDR | --domain D | --rcpt ADDR] [--note TEXT] [--expires DURATION] [--config FILE]",
				"mailwall allow list [--ip|--sender|--domain|--rcpt X] [--json] [--config FILE]",
				"mailwall allow import --postfix-access FILE [--table client|sender|recipient] | --policyd-spf FILE [--config FILE]"},
			flagsOf: [][]string{{"allow", "add"}},
			description: `Edits the allow list in the configured store; every mailwall serve on that store applies a change within seconds (the lists are held in memory and reread when their version changes). Entries: a client address or network (--ip), a sender address (--sender) or domain with its subdomains (--domain), matched against the envelope MAIL FROM and the header From, and a recipient (--rcpt) who wants all mail.

An allowed client skips the policy server's SPF rejection, the DNS blocklists and greylisting, and the milter's score and checks. A sender or domain entry applies only to an identity that is authenticated: a From domain that passes DMARC (or, without a DMARC record, an aligned DKIM or SPF pass), an envelope sender that passes SPF beside a From that does not fail DMARC. A forged From never benefits from its domain's entry. Authenticated mail still gets its Authentication-Results; the verdict's reasons name the entry.

import adds a Postfix access(5) table's OK and 2xx lines (its source file; --table says which restriction it serves, which decides what its keys mean) or policyd-spf.conf's Whitelist and Domain_Whitelist.`,
		},
		{
			name:        "block",
			summary:     "the site's block list",
			synopsis:    []string{"mailwall block add|remove|list|import ... (as mailwall allow)"},
			flagsOf:     [][]string{{"block", "add"}},
			description: `Edits the block list, as mailwall allow does the allow list. A blocked client, sender or recipient is refused with 550 5.7.1 by the policy server at RCPT and by the milter at end of message. Block entries need no authentication, as Postfix's check_sender_access does not: mail claiming a blocked sender is that sender's or a forgery of it, and neither is wanted. A block entry wins over an allow entry, except a recipient's: postmaster@ gets every sender's mail (RFC 5321 section 4.5.1). import adds an access table's REJECT and 5xx lines.`,
		},
		{
			name:        "version",
			summary:     "print which build of mailwall this is",
			synopsis:    []string{"mailwall version", "mailwall --version"},
			description: `Prints the version (the Debian package's, stamped in when the package is built, else the Go module's), the commit the binary was built from and its time, and the Go version. A running daemon exports the same as the metric mailwall_build_info{version,revision,goversion}.`,
		},
	}
}

// flagBlocks runs a subcommand with -h and turns what its flag set prints
// into tagged paragraphs.
func flagBlocks(args []string) []manpage.Block {
	// The flag set's own listing (help.go), as "-h" alone no longer
	// reaches the command.
	var blocks []manpage.Block
	for _, l := range strings.Split(commandFlags(context.Background(), args), "\n") {
		switch {
		case strings.HasPrefix(l, "  -"):
			name, typ, _ := strings.Cut(strings.TrimPrefix(l, "  -"), " ")
			tag := "--" + name
			if typ != "" {
				tag += " " + strings.ToUpper(typ)
			}
			blocks = append(blocks, manpage.Block{Tag: tag})
		case strings.HasPrefix(l, "    \t") && len(blocks) > 0:
			b := &blocks[len(blocks)-1]
			b.Text = strings.TrimSpace(b.Text + " " + strings.TrimSpace(l))
		}
	}
	return blocks
}

// manPages renders every manual page, by file name.
func manPages() (map[string][]byte, error) {
	pages := map[string][]byte{}
	docs := commandDocs()
	var overview []manpage.Block
	for _, d := range docs {
		overview = append(overview, manpage.Block{Tag: "mailwall " + d.name, Text: d.summary + "; see mailwall-" + d.name + "(8)."})
		var sections []manpage.Section
		sections = append(sections, manpage.Section{Heading: "Description", Blocks: paragraphs(d.description)})
		for _, args := range d.flagsOf {
			heading := "Options"
			if len(d.flagsOf) > 1 {
				heading = "Options of " + strings.Join(args, " ")
			}
			if blocks := flagBlocks(args); len(blocks) > 0 {
				sections = append(sections, manpage.Section{Heading: heading, Blocks: blocks})
			}
		}
		if d.examples != "" {
			sections = append(sections, manpage.Section{Heading: "Examples", Blocks: []manpage.Block{{Code: d.examples}}})
		}
		if len(d.files) > 0 {
			sections = append(sections, manpage.Section{Heading: "Files", Blocks: d.files})
		}
		sections = append(sections, manpage.Section{Heading: "See also", Blocks: []manpage.Block{{Text: "mailwall(8), mailwall.yaml(5)"}}})
		p := manpage.Page{Name: "mailwall-" + d.name, Section: "8", Summary: d.summary, Source: "mailwall", Manual: "mailwall manual",
			Synopsis: d.synopsis, Sections: sections}
		pages[p.Name+".8"] = p.Roff()
	}
	main := manpage.Page{Name: "mailwall", Section: "8", Summary: "one mail filter for Postfix: SPF, DKIM, DMARC, ARC, phishing", Source: "mailwall", Manual: "mailwall manual",
		Synopsis: []string{"mailwall COMMAND [OPTIONS] [ARGUMENTS]"},
		Sections: []manpage.Section{
			{Heading: "Description", Blocks: paragraphs(`mailwall replaces the filter stack beside Postfix (postfix-policyd-spf-python, OpenDKIM, OpenDMARC, HELO and S25R access tables) with one daemon: a milter (protocol 6) and a policy delegation server that check the client's reverse DNS, HELO, SPF, DKIM, DMARC and ARC, score phishing signs, sign outgoing mail, add Authentication-Results and Received-SPF, and send and read DMARC reports, with a dashboard and Prometheus metrics.

Every command but lab and lab-dns reads /etc/mailwall/mailwall.yaml when it exists, else the embedded defaults, unless given --config; "mailwall CMD -h" prints one command's help; mailwall.yaml(5) lists every key. Listeners are on loopback unless the configuration says otherwise.`)},
			{Heading: "Commands", Blocks: overview},
			{Heading: "Exit status", Blocks: paragraphs("0 on success, 1 on an error, 2 on a usage error.")},
			{Heading: "See also", Blocks: []manpage.Block{{Text: "mailwall.yaml(5), postconf(5), postfix(1)"}}},
		}}
	pages["mailwall.8"] = main.Roff()
	conf, err := configPage()
	if err != nil {
		return nil, err
	}
	pages["mailwall.yaml.5"] = conf
	return pages, nil
}

// configPage is mailwall.yaml(5): every key from config.Reference.
func configPage() ([]byte, error) {
	keys, err := config.Reference()
	if err != nil {
		return nil, err
	}
	var sections []manpage.Section
	cur := &manpage.Section{Heading: "Top level"}
	for _, k := range keys {
		if k.Section() && !strings.Contains(k.Path, ".") {
			sections = append(sections, *cur)
			cur = &manpage.Section{Heading: k.Path}
			if k.Doc != "" {
				cur.Blocks = append(cur.Blocks, manpage.Block{Text: k.Doc})
			}
			continue
		}
		text := k.Doc
		if !k.Section() {
			text = fmt.Sprintf("%s, default %s. %s", k.Type, k.Default, k.Doc)
		}
		cur.Blocks = append(cur.Blocks, manpage.Block{Tag: k.Path, Text: text})
	}
	sections = append(sections, *cur)
	intro := manpage.Section{Heading: "Description", Blocks: paragraphs(`mailwall reads one YAML file, given with --config (the packaged service reads /etc/mailwall/mailwall.yaml). Every key is optional: a key left out keeps its embedded default, which "mailwall config default" prints with its comments. Unknown keys are errors. Durations are Go durations: "300ms", "2s", "5m", "720h". "mailwall config check FILE" checks a file; SIGHUP makes mailwall serve re-read it.`)}
	p := manpage.Page{Name: "mailwall.yaml", Section: "5", Summary: "mailwall configuration file", Source: "mailwall", Manual: "mailwall manual",
		Sections: append(append([]manpage.Section{intro}, sections...), manpage.Section{Heading: "See also", Blocks: []manpage.Block{{Text: "mailwall(8), mailwall-serve(8), mailwall-import(8)"}}})}
	return p.Roff(), nil
}

// configMarkdown is docs/config.md: the same reference as a table per
// section.
func configMarkdown() ([]byte, error) {
	keys, err := config.Reference()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the config structs and the embedded `default.yaml` by\n`go test ./cmd/mailwall -run TestDocsUpToDate -update`; do not edit.\n")
	b.WriteString("Every key is optional; `mailwall config default` prints the defaults with\ntheir comments, `mailwall config check FILE` checks a file. Durations are\nGo durations (`2s`, `5m`, `720h`).\n")
	inTable := false
	for _, k := range keys {
		if k.Section() {
			level := "##"
			if strings.Contains(k.Path, ".") {
				level = "###"
			}
			fmt.Fprintf(&b, "\n%s `%s`\n\n", level, k.Path)
			if k.Doc != "" {
				b.WriteString(k.Doc + "\n\n")
			}
			inTable = false
			continue
		}
		if !inTable {
			if k.Path == keys[0].Path { // after the introduction, not a heading
				b.WriteString("\n")
			}
			b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
			inTable = true
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", k.Path, k.Type, strings.ReplaceAll(k.Default, "|", `\|`), strings.ReplaceAll(strings.ReplaceAll(k.Doc, "|", `\|`), "\n\n", "<br>"))
	}
	return b.Bytes(), nil
}

func paragraphs(text string) []manpage.Block {
	var blocks []manpage.Block
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		blocks = append(blocks, manpage.Block{Text: p})
	}
	return blocks
}
