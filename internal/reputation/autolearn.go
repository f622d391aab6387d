// Learning without asking: the classifier's store model learns mail
// that is ham or spam beyond reasonable doubt, as rspamd's Bayes
// autolearn does, behind guards against poisoning.

package reputation

import (
	"context"
	"fmt"
	"math"
	"strings"

	"golang.org/x/net/publicsuffix"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
)

// LearnConfig is checks.classifier.autolearn.
type LearnConfig struct {
	Enabled bool
	// Spam: the other analyzers' score reached RejectScore, or the
	// classifier said SpamProbability or more and another rule fired;
	// and the message was rejected or quarantined.
	RejectScore     int
	SpamProbability float64
	// Ham: a known correspondent, DMARC pass, accepted with the other
	// analyzers' score at most HamMaxScore.
	HamMaxScore int
	// Balance: a class is not learnt while the model holds more than
	// Balance times the other class's messages (plus balanceSlack, so
	// that an empty model can start).
	Balance float64
	// PerDomainPerDay bounds what one sender's registered domain can
	// teach a day, per class.
	PerDomainPerDay int
}

// DefaultLearnConfig is on, with rspamd-like guards.
func DefaultLearnConfig() LearnConfig {
	return LearnConfig{Enabled: true, RejectScore: 100, SpamProbability: 0.999, HamMaxScore: 5, Balance: 3, PerDomainPerDay: 20}
}

// balanceSlack lets a class run that far ahead of an empty other class.
const balanceSlack = 10

// maxLearnQueue bounds the messages waiting to be learnt.
const maxLearnQueue = 1000

// learnItem is a message to learn: its key (classify.MessageKey), class
// ("junk" or "ham"), feature hashes and the domain its quota counts.
type learnItem struct {
	key, class, domain string
	hashes             []uint64
}

// candidate extracts the features of a message that may be learnt,
// while its body is at hand (the pipeline lets go of it after); the
// outcome confirms it (confirmLearn). Most messages are no candidate
// and cost nothing here.
func (r *Reputation) candidate(m *analysis.Message, rep *Report, ours []analysis.Hit) {
	l := r.Cfg.Learn
	if !l.Enabled || r.Model == nil {
		return
	}
	score := analysis.Score(m.Hits) + analysis.Score(ours)
	class := ""
	switch {
	case score >= l.RejectScore || hasRule(m.Hits, classify.Rule) && otherRule(m.Hits):
		class = "junk"
	case rep.Correspondent != "" && m.DMARC == "pass" && analysis.Score(m.Hits) <= l.HamMaxScore:
		class = "ham"
	default:
		return
	}
	x, _ := r.extract.Get().(*classify.Extractor)
	if x == nil {
		x = classify.NewExtractor()
	}
	defer r.extract.Put(x)
	msg := &classify.Message{Fields: m.Fields, Body: m.Body, Recipients: m.Rcpts, Content: m.Content(), Extra: classify.Extras(m)}
	v := x.Extract(msg)
	dom := rep.ids.FromDomain
	if class == "junk" {
		dom = cmpOr(rep.claim, rep.ids.SPF, rep.ids.Net)
	}
	// The key is the one mailwall unlearn computes from the message as
	// delivered (MessageKey reads the milter's CRLF as a Maildir's LF).
	key := classify.MessageKey(&classify.Message{Fields: m.Fields, Body: m.Body}, nil)
	rep.learn = &learnItem{key: key, class: class, domain: registered(dom), hashes: append([]uint64(nil), v.Hashes...)}
}

func hasRule(hits []analysis.Hit, rule string) bool {
	for _, h := range hits {
		if h.Rule == rule && h.Weight > 0 {
			return true
		}
	}
	return false
}

// otherRule: a rule besides the classifier fired.
func otherRule(hits []analysis.Hit) bool {
	for _, h := range hits {
		if h.Rule != classify.Rule && h.Weight > 0 {
			return true
		}
	}
	return false
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// registered is a domain's registered domain (the domain itself when
// the list does not know it): subdomains share their domain's quota.
func registered(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if strings.Contains(d, "/") { // a network
		return d
	}
	if r, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return r
	}
	return d
}

// confirmLearn queues the message's learning when its outcome bears
// the candidate out: junk rejected or quarantined (not allow-listed),
// with the score or the classifier's certainty; ham accepted with a low
// score and DMARC passed (a From that failed DMARC never teaches ham).
func (r *Reputation) confirmLearn(o Outcome, other int) {
	it := o.Report.learn
	l := r.Cfg.Learn
	if it == nil || !l.Enabled || r.Model == nil || o.Stage == "lists" {
		return
	}
	switch it.class {
	case "junk":
		if o.Action != "reject" && o.Action != "quarantine" {
			return
		}
		if other < l.RejectScore && (o.Probability < l.SpamProbability || !otherRule(o.Hits)) {
			return
		}
	case "ham":
		if (o.Action != "accept" && o.Action != "") || other > l.HamMaxScore || o.Report.ids.FromDomain == "" || o.Report.Correspondent == "" {
			return
		}
	}
	r.mu.Lock()
	if len(r.learn) < maxLearnQueue {
		r.learn = append(r.learn, *it)
	}
	r.mu.Unlock()
}

// LearnStats counts what a batch of automatic learning did.
type LearnStats struct {
	Learnt, Unbalanced, OverQuota int
}

// runLearn teaches the model the queued messages that pass the guards:
// the balance of the model's classes and each domain's daily quota.
func (r *Reputation) runLearn(ctx context.Context, items []learnItem) error {
	st, err := r.Model.ModelCounts(ctx, classify.SiteModel, math.MaxInt64, func(classify.BucketCount) {})
	if err != nil {
		return fmt.Errorf("autolearn: %w", err)
	}
	bits := st.Bits
	if bits == 0 {
		bits = classify.DefaultBits
	}
	n := map[string]float64{"junk": float64(st.Junk), "ham": float64(st.Ham)}
	var stats LearnStats
	var batch []classify.Learning
	day := r.now().Unix() / 86400
	for _, it := range items {
		other := "ham"
		if it.class == "ham" {
			other = "junk"
		}
		if n[it.class] >= r.Cfg.Learn.Balance*n[other]+balanceSlack {
			stats.Unbalanced++
			continue
		}
		ok, err := r.St.TakeLearnQuota(ctx, day, it.domain, it.class, r.Cfg.Learn.PerDomainPerDay)
		if err != nil {
			return fmt.Errorf("autolearn: %w", err)
		}
		if !ok {
			stats.OverQuota++
			continue
		}
		b := make([]uint32, len(it.hashes))
		for i, h := range it.hashes {
			b[i] = uint32(h >> (64 - bits))
		}
		batch = append(batch, classify.Learning{Key: it.key, Class: it.class, Buckets: b})
		n[it.class]++
	}
	if len(batch) > 0 {
		out, err := r.Model.LearnCounts(ctx, classify.SiteModel, bits, batch)
		if err != nil {
			return fmt.Errorf("autolearn: %w", err)
		}
		for _, o := range out {
			if o.Changed {
				stats.Learnt++
			}
		}
	}
	r.Log.Info("autolearn", "queued", len(items), "learnt", stats.Learnt, "unbalanced", stats.Unbalanced, "over_quota", stats.OverQuota)
	r.mu.Lock()
	r.stats.Learnt += stats.Learnt
	r.stats.Unbalanced += stats.Unbalanced
	r.stats.OverQuota += stats.OverQuota
	r.mu.Unlock()
	return nil
}

// Stats is what automatic learning did since the start.
func (r *Reputation) Stats() LearnStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}
