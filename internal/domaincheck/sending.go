// The sending side ("mailwall domain check --sending"): what the large
// receivers publish as requirements for senders, checked from the DNS,
// the sending host's address and name, and a sample message, with what
// cannot be seen from here said as such.
//
// The requirements, as published: Gmail's Email sender guidelines (all
// senders from February 2024, more for those sending 5,000 messages a
// day: https://support.google.com/a/answer/81126), Yahoo's Sender Best
// Practices (the same, from February 2024:
// https://senders.yahooinc.com/best-practices/), and Outlook.com's for
// domains sending more than 5,000 a day, from May 2025
// (https://sendersupport.olc.protection.outlook.com/pm/). In short: SPF
// and DKIM pass, DMARC published (p=none is enough) and passing through
// an aligned SPF or DKIM domain, forward-confirmed reverse DNS for the
// sending address, TLS, RFC 5322 format, one-click unsubscribe (RFC 8058)
// for bulk and marketing mail, and a spam complaint rate under 0.3 %.

package domaincheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/spf"
)

// SectionSending holds the sender requirements' findings.
const SectionSending = "sending"

// SenderGuidelines are the published requirements the sending checks
// follow: Gmail's, Yahoo's, Outlook.com's.
var SenderGuidelines = []string{
	"https://support.google.com/a/answer/81126",
	"https://senders.yahooinc.com/best-practices/",
	"https://sendersupport.olc.protection.outlook.com/pm/",
}

// MaxSampleMessage bounds the sample message read for the header checks.
const MaxSampleMessage = 10 << 20

// Sending describes how a domain's mail leaves: the fields a caller
// does not know stay zero, and the checks that need them say so.
type Sending struct {
	// IP is the address the mail leaves from (SPF, reverse DNS).
	IP netip.Addr
	// Helo is the name the sending host greets with (Postfix's
	// smtp_helo_name, by default myhostname).
	Helo string
	// MailFrom is the envelope sender's domain; "" is the domain itself.
	MailFrom string
	// Message is a message as the host sends it (header and body): its
	// format, signatures and unsubscribe fields are checked. Nil: none.
	Message []byte
}

// sendingRun carries what the checks found for the DMARC evaluation.
type sendingRun struct {
	*run
	domain, mailFrom string
	s                Sending
	spfResult        spf.Result
	dkim             []dkim.Result // the sample's signatures
	fields           []dkim.Field  // the sample's header
	fromDomain       string        // the sample's From domain
}

// CheckSending adds the sender requirements to rep (section "sending"),
// checking domain as the From domain of mail sent as s describes.
func (c *Checker) CheckSending(ctx context.Context, rep *Report, domain string, s Sending) {
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	r := &sendingRun{run: &run{c: c, ctx: ctx, rep: rep}, domain: domain, s: s, fromDomain: domain}
	r.mailFrom = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s.MailFrom)), ".")
	if r.mailFrom == "" {
		r.mailFrom = domain
	}
	if s.Message != nil {
		r.readSample()
	}
	r.sendSPF()
	r.sendDKIM()
	r.sendDMARC()
	r.sendReverseDNS()
	r.sendTLS()
	if s.Message != nil {
		r.sendFormat()
	}
	r.sendUnsubscribe()
	r.unseen()
}

func (r *sendingRun) add(st Status, subject, msg, fix string) {
	r.run.add(SectionSending, st, subject, msg, fix)
}

// readSample parses the sample message's header and checks its
// signatures as a receiver would.
func (r *sendingRun) readSample() {
	if len(r.s.Message) > MaxSampleMessage {
		r.add(Fail, "message", fmt.Sprintf("the sample is %d bytes; at most %d are read", len(r.s.Message), MaxSampleMessage), "give a smaller message")
		r.s.Message = nil
		return
	}
	fields, err := dkim.ReadHeader(bufio.NewReader(bytes.NewReader(r.s.Message)))
	if err != nil {
		r.add(Fail, "message", "the sample's header does not parse: "+err.Error(), "give the message as sent, header and body (mailwall send-test --bulk --print writes one)")
		r.s.Message = nil
		return
	}
	r.fields = fields
	if froms := fieldValues(fields, "From"); len(froms) == 1 {
		if a, err := mail.ParseAddress(froms[0]); err == nil {
			if _, d, ok := strings.Cut(a.Address, "@"); ok {
				r.fromDomain = strings.ToLower(d)
			}
		}
	}
	if r.fromDomain != r.domain {
		r.add(Warn, "message", fmt.Sprintf("the sample is From %s, not %s: its From domain is checked", r.fromDomain, r.domain), "")
	}
	v := &dkim.Verifier{Resolver: r.c.Resolver}
	res, err := v.Verify(r.ctx, bytes.NewReader(r.s.Message))
	if err != nil {
		r.add(Fail, "message", "the sample could not be read: "+err.Error(), "")
		return
	}
	r.dkim = res
}

// sendSPF: SPF must pass for the envelope sender's domain at the sending
// address (Gmail: all senders; Outlook.com: high-volume senders).
func (r *sendingRun) sendSPF() {
	if !r.s.IP.IsValid() {
		txts, err := dnsx.TXT(r.ctx, r.c.Resolver, r.mailFrom)
		switch {
		case err != nil:
			r.add(Fail, "spf", lookupError("TXT", err), "")
		case !slices.ContainsFunc(txts, isSPF):
			r.add(Fail, "spf", "no SPF record for "+r.mailFrom+": SPF cannot pass", fmt.Sprintf("publish %s TXT \"v=spf1 ip4:YOUR.ADDRESS -all\"", r.mailFrom))
		default:
			r.add(Info, "spf", "an SPF record is published; give --ip ADDRESS to evaluate it for the sending host", "")
		}
		return
	}
	ip := r.s.IP.Unmap()
	helo := r.s.Helo
	if helo == "" {
		helo = r.mailFrom
	}
	out := (&spf.Checker{Resolver: r.c.Resolver}).CheckHost(r.ctx, ip, r.mailFrom, "postmaster@"+r.mailFrom, helo)
	r.spfResult = out.Result
	mech := "ip4:"
	if ip.Is6() {
		mech = "ip6:"
	}
	subject := fmt.Sprintf("spf %s at %s", r.mailFrom, ip)
	switch out.Result {
	case spf.Pass:
		r.add(Pass, subject, fmt.Sprintf("pass (%s)", out.Mechanism), "")
	case spf.None:
		r.add(Fail, subject, "none: no SPF record, so SPF cannot pass", fmt.Sprintf("publish %s TXT \"v=spf1 %s%s -all\"", r.mailFrom, mech, ip))
	case spf.TempError:
		r.add(Fail, subject, "temperror: "+out.Problem+": receivers defer or junk the mail", "make the record's DNS answer reliably")
	case spf.PermError:
		r.add(Fail, subject, "permerror: "+out.Problem, "fix the record (\"mailwall domain check "+r.mailFrom+"\" lints it)")
	default:
		r.add(Fail, subject, fmt.Sprintf("%s: the record does not list the sending address", out.Result),
			fmt.Sprintf("add %s%s to %s's SPF record, before its all term", mech, ip, r.mailFrom))
	}
}

func isSPF(txt string) bool {
	return strings.EqualFold(txt, "v=spf1") || len(txt) > 7 && strings.EqualFold(txt[:7], "v=spf1 ")
}

// sendDKIM: mail must be DKIM-signed (Gmail: all senders; Yahoo and
// Gmail recommend 2048-bit RSA keys), by the From domain for alignment.
func (r *sendingRun) sendDKIM() {
	if r.s.Message != nil {
		if len(r.dkim) == 0 {
			r.add(Fail, "dkim", "the sample has no DKIM-Signature", fmt.Sprintf("sign with d=%s (checks.signing; mailwall send-test --key signs its test messages)", r.fromDomain))
			return
		}
		rsaPass, edPass := false, false
		for _, d := range r.dkim {
			rsaPass = rsaPass || d.Status == dkim.Pass && strings.HasPrefix(d.Algorithm, "rsa")
			edPass = edPass || d.Status == dkim.Pass && strings.HasPrefix(d.Algorithm, "ed25519")
		}
		if edPass && !rsaPass {
			// RFC 8463 §3 asks signers to add an RSA signature while
			// verifiers catch up; a receiver that does not check ed25519
			// sees no passing signature.
			r.add(Warn, "dkim", "signed with ed25519 only: receivers that do not verify ed25519 yet see no passing DKIM signature", "sign with an RSA key (2048 bits) too")
		}
		for _, d := range r.dkim {
			subject := fmt.Sprintf("dkim d=%s s=%s", d.Domain, d.Selector)
			switch {
			case d.Status != dkim.Pass:
				r.add(Fail, subject, fmt.Sprintf("%s: %s", d.Status, d.Reason), "check the key published at the selector matches the signing key (mailwall dkim)")
			case d.KeyBits > 0 && d.KeyBits < 2048 && strings.HasPrefix(d.Algorithm, "rsa"):
				r.add(Warn, subject, fmt.Sprintf("pass, with a %d-bit RSA key: Gmail and Yahoo ask for 2048 bits", d.KeyBits), "mailwall dkim keygen --bits 2048 and a new selector")
			default:
				r.add(Pass, subject, "pass", "")
			}
		}
		return
	}
	selectors := slices.Clone(r.c.Selectors)
	for _, s := range CommonSelectors {
		if !slices.Contains(selectors, s) {
			selectors = append(selectors, s)
		}
	}
	var found []string
	for _, sel := range selectors {
		if txts, err := dnsx.TXT(r.ctx, r.c.Resolver, sel+"._domainkey."+r.domain); err == nil && len(txts) > 0 {
			if _, err := dkim.ParseKey(txts[0]); err == nil {
				found = append(found, sel)
			}
		}
	}
	if len(found) == 0 {
		r.add(Fail, "dkim", "no DKIM key found for "+r.domain+": mail signed by it cannot be verified", fmt.Sprintf("mailwall dkim keygen --domain %s --selector SEL, publish the record, sign outgoing mail (checks.signing); give --selector if yours is not a common one", r.domain))
		return
	}
	r.add(Pass, "dkim", fmt.Sprintf("a key at %s: mail signed with d=%s can pass and align", strings.Join(found, ", "), r.domain), "")
	r.add(Info, "dkim", "whether the mail is signed cannot be seen from the DNS; give --message FILE (a message as sent) to verify its signature", "")
}

// sendDMARC: a DMARC record (p=none is enough) and, for what can be
// evaluated, a pass through an aligned identifier (RFC 9989 §4.4).
// Gmail's bulk senders and Outlook.com's high-volume ones need both.
func (r *sendingRun) sendDMARC() {
	in := dmarc.Input{FromDomains: []string{r.fromDomain}, SPFDomain: r.mailFrom, SPFScope: "mfrom", SPFResult: string(r.spfResult), SourceIP: r.s.IP}
	if in.SPFResult == "" {
		in.SPFResult = string(spf.None)
	}
	for _, d := range r.dkim {
		if d.Domain != "" {
			in.DKIM = append(in.DKIM, dmarc.DKIMResult{Domain: d.Domain, Selector: d.Selector, Result: string(d.Status)})
		}
	}
	res := (&dmarc.Evaluator{Resolver: r.c.Resolver}).Evaluate(r.ctx, in)
	subject := "dmarc " + r.fromDomain
	switch {
	case res.Result == dmarc.TempError:
		r.add(Fail, subject, "the record's lookup failed: "+res.Reason, "")
		return
	case res.Result == dmarc.PermError:
		r.add(Fail, subject, "permerror: "+res.Reason+": receivers apply no policy", "publish one valid record (\"mailwall domain check "+r.fromDomain+"\" says what is wrong)")
		return
	case res.Record == nil:
		r.add(Fail, subject, "no DMARC record: Gmail, Yahoo and Outlook.com require one from bulk senders",
			fmt.Sprintf("publish _dmarc.%s TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@%s\"", r.fromDomain, r.fromDomain))
		return
	case res.Policy == dmarc.PolicyNone:
		r.add(Pass, subject, "p=none: meets the requirement (a record, any policy)", "once the aggregate reports show all your mail passing, move to p=quarantine, then p=reject")
	default:
		r.add(Pass, subject, fmt.Sprintf("p=%s", res.Policy), "")
	}
	if !r.s.IP.IsValid() && r.s.Message == nil {
		r.add(Info, "alignment", "give --ip (SPF) or --message (DKIM) to evaluate DMARC alignment", "")
		return
	}
	why := fmt.Sprintf("SPF %s for %s (aligned: %v), DKIM aligned: %v", in.SPFResult, r.mailFrom, res.SPFAligned, res.DKIMAligned)
	switch {
	case res.Result != dmarc.Pass:
		r.add(Fail, "alignment", fmt.Sprintf("DMARC %s: %s", res.Result, why),
			fmt.Sprintf("sign with d=%s, or send with a MAIL FROM in %s whose SPF record lists the sending address", r.fromDomain, r.fromDomain))
	case res.SPFAligned && res.DKIMAligned:
		r.add(Pass, "alignment", "DMARC pass: "+why, "")
	case r.s.Message == nil:
		r.add(Pass, "alignment", "DMARC pass through SPF: "+why+" (DKIM not evaluated without --message)", "")
	case !r.s.IP.IsValid():
		r.add(Pass, "alignment", fmt.Sprintf("DMARC pass through DKIM (d=%s); SPF not evaluated without --ip", res.AlignedDKIM), "")
	default:
		// Both is what Outlook.com prefers, and what survives a
		// forwarder that breaks one of them.
		r.add(Warn, "alignment", "DMARC pass through one identifier only: "+why,
			"align both: sign with d="+r.fromDomain+" and send with a MAIL FROM in "+r.fromDomain)
	}
}

// sendReverseDNS: the sending address must have a PTR whose name
// resolves back to it (Gmail: all senders), and the HELO name should be
// that name.
func (r *sendingRun) sendReverseDNS() {
	if !r.s.IP.IsValid() {
		r.add(Info, "reverse dns", "give --ip ADDRESS (and --helo NAME) to check the sending host's PTR and HELO", "")
		return
	}
	ip := r.s.IP.Unmap()
	rev := conncheck.CheckIPRev(r.ctx, r.c.Resolver, ip)
	subject := "reverse dns " + ip.String()
	fix := "ask whoever runs the address (ISP, hosting provider) to set its PTR to your HELO name, and publish an A/AAAA record for that name"
	switch rev.Result {
	case "pass":
		r.add(Pass, subject, fmt.Sprintf("PTR %s resolves back to it", rev.Name), "")
	case "temperror":
		r.add(Fail, subject, "lookup failed: "+rev.Reason, "")
	default:
		r.add(Fail, subject, fmt.Sprintf("%s: %s: Gmail rejects mail from addresses without forward-confirmed reverse DNS", rev.Result, rev.Reason), fix)
	}
	helo := strings.TrimSuffix(strings.ToLower(r.s.Helo), ".")
	if helo == "" {
		r.add(Info, "helo", "give --helo NAME (Postfix's smtp_helo_name, by default myhostname) to compare it with the PTR", "")
		return
	}
	subject = "helo " + helo
	if rev.Result == "pass" && slices.ContainsFunc(rev.Names, func(n string) bool { return strings.EqualFold(strings.TrimSuffix(n, "."), helo) }) {
		r.add(Pass, subject, "the PTR name, which resolves to the address", "")
		return
	}
	addrs, err := lookupAddrs(r.ctx, r.c.Resolver, helo)
	if err != nil && dnsx.IsTemporary(err) {
		r.add(Fail, subject, lookupError("A/AAAA", err), "")
		return
	}
	setHelo := fmt.Sprintf("set smtp_helo_name (or myhostname) in main.cf to the PTR name%s", ptrHint(rev))
	if slices.Contains(addrs, ip) {
		r.add(Warn, subject, "resolves to the address but is not its PTR name", setHelo)
		return
	}
	r.add(Fail, subject, "does not resolve to the sending address: receivers see a HELO that lies", setHelo)
}

func ptrHint(rev conncheck.IPRev) string {
	if rev.Result == "pass" {
		return " (" + strings.TrimSuffix(rev.Name, ".") + ")"
	}
	return ""
}

// lookupAddrs is name's A and AAAA addresses.
func lookupAddrs(ctx context.Context, res dnsx.Resolver, name string) ([]netip.Addr, error) {
	var out []netip.Addr
	var firstErr error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, err := res.Query(ctx, name, qtype)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, rr := range a.Records {
			var ip netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(rr.AAAA)
			}
			if ip.IsValid() {
				out = append(out, ip)
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, firstErr
}

// sendTLS: Gmail requires TLS for sending; a connection's TLS cannot be
// seen from the DNS.
func (r *sendingRun) sendTLS() {
	r.add(Info, "tls", "not visible from here: Gmail requires a TLS connection for sending",
		"Postfix: smtp_tls_security_level = may (Debian's default); mailwall send-test shows whether a server took STARTTLS")
}

// sendFormat: RFC 5322 §3.6 asks for exactly one From and one Date, and
// Gmail for a Message-ID; receivers junk mail that lacks them.
func (r *sendingRun) sendFormat() {
	if r.fields == nil {
		return
	}
	bad := false
	for _, f := range []struct {
		name     string
		required bool
	}{{"From", true}, {"Date", true}, {"Message-ID", false}} {
		n := len(fieldValues(r.fields, f.name))
		switch {
		case n == 0 && f.required:
			r.add(Fail, "format", f.name+": missing (RFC 5322 §3.6 requires one)", "add a "+f.name+" field")
			bad = true
		case n == 0:
			r.add(Fail, "format", "Message-ID: missing (Gmail asks for one, RFC 5322 §3.6.4 says it should be there)", "let Postfix add it (always_add_missing_headers) or add it where the mail is made")
			bad = true
		case n > 1:
			r.add(Fail, "format", fmt.Sprintf("%s: %d fields (RFC 5322 §3.6 allows one)", f.name, n), "send one "+f.name+" field")
			bad = true
		}
	}
	for _, from := range fieldValues(r.fields, "From") {
		if _, err := mail.ParseAddressList(from); err != nil {
			r.add(Fail, "format", fmt.Sprintf("From %q does not parse: %v", from, err), "write From as \"Name <user@domain>\"")
			bad = true
		}
	}
	if !bad {
		r.add(Pass, "format", "one From, one Date, a Message-ID", "")
	}
}

// sendUnsubscribe: bulk and marketing mail must offer one-click
// unsubscribe (RFC 8058): List-Unsubscribe with an https URI (a mailto:
// too, for the clients that use it), List-Unsubscribe-Post:
// List-Unsubscribe=One-Click, both covered by a valid DKIM signature
// (RFC 8058 §4).
func (r *sendingRun) sendUnsubscribe() {
	if r.fields == nil {
		r.add(Info, "unsubscribe", "bulk and marketing mail must carry one-click unsubscribe (RFC 8058); give --message FILE to check a message's fields", "mailwall send-test --bulk makes a message that has them")
		return
	}
	lu := fieldValues(r.fields, "List-Unsubscribe")
	post := fieldValues(r.fields, "List-Unsubscribe-Post")
	if len(lu) == 0 {
		r.add(Warn, "unsubscribe", "no List-Unsubscribe: required of bulk and marketing mail (Gmail, Yahoo), not of one-to-one mail",
			"add List-Unsubscribe: <https://...>, <mailto:...> and List-Unsubscribe-Post: List-Unsubscribe=One-Click, signed")
		return
	}
	var https, mailto bool
	for _, v := range lu {
		for _, u := range strings.Split(v, ",") {
			u = strings.Trim(strings.TrimSpace(u), "<>")
			https = https || strings.HasPrefix(strings.ToLower(u), "https://")
			mailto = mailto || strings.HasPrefix(strings.ToLower(u), "mailto:")
		}
	}
	ok := true
	if !https {
		r.add(Fail, "unsubscribe", "List-Unsubscribe has no https URI: one-click needs one (RFC 8058 §3.1)", "add <https://YOUR.SITE/unsubscribe?id=...> that takes a POST")
		ok = false
	}
	if !mailto {
		r.add(Warn, "unsubscribe", "List-Unsubscribe has no mailto: URI, which some clients (Outlook.com) use", "add <mailto:unsubscribe@"+r.fromDomain+"?subject=unsubscribe>")
	}
	if len(post) != 1 || strings.Join(strings.Fields(post[0]), "") != "List-Unsubscribe=One-Click" {
		r.add(Fail, "unsubscribe", "no List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058 §3.1)", "add that field")
		ok = false
	}
	// RFC 8058 §4: the signature must cover both fields.
	covered := false
	for _, d := range r.dkim {
		if d.Status == dkim.Pass && d.Signature != nil && containsFold(d.Signature.Headers, "list-unsubscribe") && containsFold(d.Signature.Headers, "list-unsubscribe-post") {
			covered = true
		}
	}
	if !covered {
		r.add(Fail, "unsubscribe", "no passing DKIM signature covers List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 §4)", "sign both fields (list them in the signer's h=)")
		ok = false
	}
	if ok {
		r.add(Pass, "unsubscribe", "one-click: an https URI, List-Unsubscribe-Post, both signed", "")
	}
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(strings.TrimSpace(x), s) })
}

// unseen says what decides delivery that no DNS query shows.
func (r *sendingRun) unseen() {
	r.add(Info, "complaints", "not visible from here: Gmail and Yahoo want user-reported spam under 0.3 % (aim for 0.1 %)",
		"watch the spam rate in Google Postmaster Tools and Yahoo's Sender Hub; send only mail recipients asked for")
	r.add(Info, "unsubscribe", "not visible from here: Gmail and Yahoo want unsubscribe requests honored within two days",
		"take the one-click POST and mailto requests off the list at once")
	r.add(Info, "reputation", "not visible from here: a new address or domain has no reputation, and builds one over weeks",
		"warm up: start with low volume to engaged recipients and raise it gradually; keep the same IP and domain; watch Google Postmaster Tools, Microsoft SNDS, Yahoo's Sender Hub")
	r.add(Info, "sources", "the published requirements: "+strings.Join(SenderGuidelines, " "), "")
}

// fieldValues are the values of the fields named name, unfolded and
// trimmed.
func fieldValues(fields []dkim.Field, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, strings.Join(strings.Fields(f.Value()), " "))
		}
	}
	return out
}
