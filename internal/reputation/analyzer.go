package reputation

import (
	"context"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/mailbox"
)

// The rules' names.
const (
	RuleBad           = "reputation_bad"
	RuleGood          = "reputation_good"
	RuleNewBrand      = "reputation_new_brand"
	RuleCorrespondent = "known_correspondent"
)

// Rules are the analyzer's weights and thresholds.
type Rules struct {
	// Bad weighs an identity with a mostly spam history (NetBad for a
	// client network, which many senders may share); Good, negative, a
	// long good history; NewBrand a first message from identities never
	// seen that imitates a brand; Correspondent, negative, an aligned
	// From our users wrote to.
	Bad, NetBad, Good, NewBrand, Correspondent int
	// MinEvidence is the evidence (in messages, decayed) an identity
	// needs before its history counts, NetMinEvidence a network's;
	// GoodMinHam and NetGoodMinHam the ham a good history needs.
	MinEvidence, NetMinEvidence, GoodMinHam, NetGoodMinHam float64
	// StrongHit: the score after reputation's negative hits is never
	// below the largest other hit of at least this weight, so a long
	// good history cannot cancel a strong phishing signal.
	StrongHit int
	// BrandRules are the rules that say a message imitates a brand
	// (for reputation_new_brand).
	BrandRules []string
}

// DefaultRules are the built-in weights.
func DefaultRules() Rules {
	return Rules{Bad: 40, NetBad: 20, Good: -15, NewBrand: 40, Correspondent: -20,
		MinEvidence: 3, NetMinEvidence: 10, GoodMinHam: 5, NetGoodMinHam: 20, StrongHit: 40,
		BrandRules: []string{"brand_from_domain", "brand_display_name", "brand_local_part", "url_brand_lookalike", "own_domain_impersonation"}}
}

// The shares of spam from which a history is bad, and up to which it
// is good (mox's 0.9 and 0.1 for DKIM and SPF).
const (
	badRatio  = 0.9
	goodRatio = 0.1
)

// Analyzer is reputation as one of the pipeline's analyzers. List it
// last: it weighs the other analyzers' hits (the brand rules, the cap
// on its negative weights) and may learn from them.
type Analyzer struct {
	Rep   *Reputation // nil: no store, nothing said (but that)
	Rules Rules
}

// Name is the analyzer's config key, checks.reputation.
func (a *Analyzer) Name() string { return "reputation" }

// Report is what reputation found, under "reputation" in check-message
// --json.
type Report struct {
	Identities []IdentityReport `json:"identities"`
	// Correspondent is the aligned From address our users wrote to.
	Correspondent string `json:"known_correspondent,omitempty"`
	// Decided is the identity whose history decided ("" none).
	Decided string `json:"decided,omitempty"`

	ids   Identities
	keys  []Key      // ids.Keys(), for Observe
	claim string     // the From domain as written, for the learning quota
	learn *learnItem // a candidate for automatic learning
}

// IdentityReport is one identity's history as of the message.
type IdentityReport struct {
	Kind     Kind    `json:"kind"`
	Identity string  `json:"identity"`
	Ham      float64 `json:"ham"`
	Spam     float64 `json:"spam"`
	Seen     bool    `json:"seen"`
}

// IdentitiesOf are the identities of m that authentication vouched for.
func IdentitiesOf(m *analysis.Message) Identities {
	ids := Identities{DKIM: m.DKIMPass, Net: Network(m.ClientIP)}
	if m.DMARC == "pass" {
		ids.FromDomain = m.HeaderFrom
	}
	if m.SPF == "pass" {
		ids.SPF = m.SPFDomain
	}
	return ids
}

// Analyze judges m's identities by their history.
func (a *Analyzer) Analyze(ctx context.Context, m *analysis.Message) analysis.Result {
	if a.Rep == nil {
		return analysis.Result{Problems: []string{"reputation: no store to read the history from"}}
	}
	ids := IdentitiesOf(m)
	keys := ids.Keys()
	rep := &Report{ids: ids, keys: keys, claim: strings.ToLower(m.HeaderFrom)}
	if len(keys) > 0 {
		rep.Identities = make([]IdentityReport, 0, len(keys))
	}
	out := analysis.Result{Report: rep}
	// A subdomain's organization is judged by the mail of its other
	// subdomains (from_org) and of the registered domain itself (that
	// domain's from_domain): one more key to read, not to write.
	ask := keys
	var orgSelf Key
	for _, k := range keys {
		if k.Kind == FromOrg {
			orgSelf = Key{FromDomain, k.Identity}
			ask = append(slices.Clip(keys), orgSelf)
		}
	}
	// counts and seen are by index in keys (ask's last: orgSelf).
	counts, seen := make([]Counts, len(ask)), make([]bool, len(ask))
	err := a.Rep.lookup(ctx, ask, counts, seen)
	if err != nil {
		out.Problems = append(out.Problems, err.Error())
	}
	for i, k := range keys {
		if k.Kind == FromOrg {
			o := counts[len(keys)]
			counts[i].Ham, counts[i].Spam = counts[i].Ham+o.Ham, counts[i].Spam+o.Spam
			seen[i] = seen[i] || seen[len(keys)]
		}
		c := counts[i]
		rep.Identities = append(rep.Identities, IdentityReport{Kind: k.Kind, Identity: k.Identity, Ham: round(c.Ham), Spam: round(c.Spam), Seen: seen[i]})
	}
	dmarcFail := m.DMARC == "fail"
	var hits []analysis.Hit
	if verdict, i := a.judge(keys, counts); verdict != 0 {
		k, c := keys[i], counts[i]
		rep.Decided = k.String()
		why := rep.Decided + ": " + strconv.FormatFloat(c.Spam, 'f', 1, 64) + " spam, " + strconv.FormatFloat(c.Ham, 'f', 1, 64) +
			" ham (half-life " + days(a.Rep.Cfg.HalfLife) + ")"
		switch {
		case verdict > 0:
			w := a.Rules.Bad
			if k.Kind == Net {
				w = a.Rules.NetBad
			}
			hits = append(hits, analysis.Hit{Rule: RuleBad, Weight: w, Detail: why})
		case !dmarcFail && a.Rules.Good != 0:
			hits = append(hits, analysis.Hit{Rule: RuleGood, Weight: a.Rules.Good, Detail: why})
		}
	}
	if brand := a.brandHit(m.Hits); brand != "" && err == nil && len(keys) > 0 && a.Rules.NewBrand != 0 {
		// The authenticated domains decide when there are any: a new
		// look-alike domain sending through a big provider's network,
		// seen often, is still new. Without them, the network does.
		ask := keys
		if keys[len(keys)-1].Kind == Net && len(keys) > 1 {
			ask = keys[:len(keys)-1]
		}
		unseen := !slices.Contains(seen[:len(ask)], true)
		if unseen {
			names := make([]string, len(ask))
			for i, k := range ask {
				names[i] = k.String()
			}
			hits = append(hits, analysis.Hit{Rule: RuleNewBrand, Weight: a.Rules.NewBrand,
				Detail: fmt.Sprintf("first message from %s, and %s fired", strings.Join(names, ", "), brand)})
		}
	}
	if m.DMARC == "pass" && a.Rules.Correspondent != 0 {
		if addr := alignedFrom(m); addr != "" {
			known, kerr := a.Rep.Known(ctx, addr)
			if kerr != nil {
				out.Problems = append(out.Problems, kerr.Error())
			}
			if known {
				rep.Correspondent = addr
				hits = append(hits, analysis.Hit{Rule: RuleCorrespondent, Weight: a.Rules.Correspondent,
					Detail: "From " + addr + " (DMARC pass): our users wrote to this address"})
			}
		}
	}
	out.Hits = a.capNegative(m.Hits, hits)
	a.Rep.candidate(m, rep, out.Hits)
	return out
}

// judge applies mox's order: the From domain's history decides when it
// has enough (mixed: nothing more is asked), else its organization's
// (the registered domain, for a subdomain); then DKIM and SPF
// together (they must not disagree); then the network. Unlike mox, a
// good name is never borrowed by something new: DKIM and SPF domains
// vouch only when the From domain is not a fresh one, the network only
// when nothing else is authenticated. It returns +1 (bad), -1 (good)
// or 0, and the index in keys of the identity that decided (-1: none).
func (a *Analyzer) judge(keys []Key, counts []Counts) (int, int) {
	r := a.Rules
	class := func(i int) int {
		k, c := keys[i], counts[i]
		min, good := r.MinEvidence, r.GoodMinHam
		if k.Kind == Net {
			min, good = r.NetMinEvidence, r.NetGoodMinHam
		}
		switch {
		case c.Total() < min:
			return 2 // not enough to say
		case c.SpamRatio() >= badRatio:
			return 1
		case c.SpamRatio() <= goodRatio && c.Ham >= good:
			return -1
		}
		return 0 // mixed
	}
	freshFrom := false                                 // a From domain that passed DMARC, too new to judge
	for _, kind := range []Kind{FromDomain, FromOrg} { // the domain, then its organization
		for i, k := range keys {
			if k.Kind != kind {
				continue
			}
			if v := class(i); v != 2 {
				return min(v, 1), i
			}
			freshFrom = true
		}
	}
	bad, good := -1, -1 // the first of each
	mixed := false
	for i, k := range keys {
		if k.Kind != DKIM && k.Kind != SPF {
			continue
		}
		switch class(i) {
		case 1:
			if bad < 0 {
				bad = i
			}
		case -1:
			if good < 0 {
				good = i
			}
		case 0:
			mixed = true
		}
	}
	switch {
	case bad >= 0 && good < 0:
		return 1, bad
	case good >= 0 && bad < 0 && !mixed && !freshFrom:
		// A fresh From domain does not borrow the good name of its
		// mail service's DKIM or SPF domain.
		return -1, good
	case bad >= 0 || good >= 0 || mixed:
		return 0, -1
	}
	// The network last. Its good name counts only for mail with nothing
	// else authenticated: a fresh domain on a shared host's network
	// (phishing's usual home) does not inherit it.
	for i, k := range keys {
		if k.Kind != Net {
			continue
		}
		switch v := class(i); {
		case v == 1:
			return v, i
		case v == -1 && len(keys) == 1:
			return v, i
		}
	}
	return 0, -1
}

// brandHit is the first brand rule among the earlier hits.
func (a *Analyzer) brandHit(hits []analysis.Hit) string {
	for _, h := range hits {
		if h.Weight > 0 && slices.Contains(a.Rules.BrandRules, h.Rule) {
			return h.Rule
		}
	}
	return ""
}

// capNegative lowers reputation's negative weights so that the score
// stays at or above the largest earlier hit of StrongHit or more: a
// good history lowers a score, it does not cancel a strong signal.
func (a *Analyzer) capNegative(earlier, ours []analysis.Hit) []analysis.Hit {
	strong := 0
	for _, h := range earlier {
		if h.Weight >= a.Rules.StrongHit && h.Weight > strong {
			strong = h.Weight
		}
	}
	if strong == 0 {
		return ours
	}
	room := analysis.Score(earlier) - strong
	for _, h := range ours {
		if h.Weight > 0 {
			room += h.Weight
		}
	}
	out := ours[:0]
	for _, h := range ours {
		if h.Weight < 0 {
			if room <= 0 {
				continue
			}
			if -h.Weight > room {
				h.Weight = -room
				h.Detail += fmt.Sprintf(" (capped: a %d-point hit stands)", strong)
			}
			room += h.Weight
		}
		out = append(out, h)
	}
	return out
}

// alignedFrom is the From address when it is one mailbox in the domain
// DMARC evaluated ("" otherwise), lower case.
func alignedFrom(m *analysis.Message) string {
	var from string
	for _, f := range m.Fields {
		if strings.EqualFold(f.Name, "From") {
			if from != "" {
				return "" // two From fields
			}
			from = f.Value()
		}
	}
	from = strings.TrimSpace(strings.ReplaceAll(from, "\r\n", ""))
	_, addr, ok := mailbox.Simple(from)
	if !ok {
		addr, ok = mailbox.Angle(from)
	}
	if !ok {
		a, err := mail.ParseAddress(from)
		if err != nil {
			return ""
		}
		addr = a.Address
	}
	if len(addr) > maxIdentity {
		return ""
	}
	addr = strings.ToLower(addr)
	if _, d, ok := strings.Cut(addr, "@"); !ok || d != strings.ToLower(m.HeaderFrom) {
		return ""
	}
	return addr
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// days writes a half-life as days when it is whole days.
func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Outcome is what became of a message, for Observe.
type Outcome struct {
	Action string // accept, tag, quarantine, tempfail, reject
	Stage  string // the stage that decided
	Hits   []analysis.Hit
	// Report is this analyzer's report on the message (nil: it did not
	// run).
	Report *Report
	// Probability is the classifier's (-1: it did not run).
	Probability float64
	// Internal mail from our own users; Signed: mailwall signed it;
	// Rcpts its envelope recipients.
	Internal, Signed bool
	Rcpts            []string
}

// Observe turns a message's outcome into evidence: the recipients of
// mail we signed become correspondents; a message rejected or
// quarantined whose other analyzers' score reaches the quarantine
// threshold (the classifier's hit among them, at the weight its config
// trusts it with) is spam evidence, one accepted with a low score ham
// evidence. A DMARC failure alone is not: a forwarder's DMARC failures
// say nothing of its network's own mail; nor is an allow or block
// entry. Reputation's own hits are left out of the score it judges by,
// so a good history does not feed itself. Queued learning is confirmed
// here. It never waits on the store.
func (r *Reputation) Observe(o Outcome) {
	if o.Internal {
		if o.Signed {
			r.Wrote(o.Rcpts)
		}
		return
	}
	if o.Report == nil {
		return
	}
	other := 0
	for _, h := range o.Hits {
		switch h.Rule {
		case RuleBad, RuleGood, RuleNewBrand, RuleCorrespondent:
		default:
			other += h.Weight
		}
	}
	keys := o.Report.keys // Analyze made them
	switch {
	case o.Action == "tempfail":
	case (o.Action == "reject" || o.Action == "quarantine") && o.Stage != "lists" && other >= r.Cfg.QuarantineScore:
		r.add(keys, 0, r.Cfg.OutcomeSpam)
	case (o.Action == "accept" || o.Action == "") && other < r.Cfg.HamMaxScore:
		r.add(keys, r.Cfg.OutcomeHam, 0)
	}
	r.confirmLearn(o, other)
}
