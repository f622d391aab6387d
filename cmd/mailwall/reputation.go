package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/config"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// reputationConfig maps checks.reputation (and the classifier's
// autolearn) onto the package's Config.
func reputationConfig(cfg *config.Config) reputation.Config {
	r := cfg.Checks.Reputation
	al := cfg.Checks.Classifier.Autolearn
	rc := reputation.Config{HalfLife: r.HalfLife.D(), OutcomeSpam: r.OutcomeSpam, OutcomeHam: r.OutcomeHam, FeedbackWeight: r.FeedbackWeight,
		HamMaxScore: r.HamMaxScore, QuarantineScore: cfg.Checks.Score.Quarantine,
		CacheSize: r.CacheSize, CacheTTL: r.CacheTTL.D(), LookupTimeout: r.LookupTimeout.D(), FlushInterval: r.FlushInterval.D(),
		Learn: reputation.LearnConfig{Enabled: al.Enabled && cfg.Checks.Classifier.Source == "store", RejectScore: cfg.Checks.Score.Reject,
			SpamProbability: al.SpamProbability, HamMaxScore: al.HamMaxScore, Balance: al.Balance, PerDomainPerDay: al.PerDomainPerDay}}
	if rc.QuarantineScore == 0 {
		rc.QuarantineScore = cfg.Checks.Score.Reject
	}
	if rc.Learn.RejectScore == 0 {
		rc.Learn.Enabled = false // no reject threshold: no sure spam
	}
	for _, s := range cfg.Checks.Signing {
		rc.OwnDomains = append(rc.OwnDomains, strings.ToLower(s.Domain))
	}
	return rc
}

// reputationRules are the analyzer's weights from checks.reputation.
func reputationRules(cfg *config.Config) reputation.Rules {
	r := cfg.Checks.Reputation
	w := r.Weights
	return reputation.Rules{Bad: w.Bad, NetBad: w.NetBad, Good: w.Good, NewBrand: w.NewBrand, Correspondent: w.KnownCorrespondent,
		MinEvidence: r.MinEvidence, NetMinEvidence: r.NetMinEvidence, GoodMinHam: r.GoodMinHam, NetGoodMinHam: r.NetGoodMinHam,
		StrongHit: r.StrongHit, BrandRules: r.BrandRules}
}

// startReputation starts the shared history's writer on st; nil (and a
// no-op stop) without a store. It exists whenever the store does, so
// that a reload can turn the analyzer on; it writes only for messages
// the analyzer saw and for signed mail while the analyzer is on.
func startReputation(cfg *config.Config, st *store.Store, log *slog.Logger) (*reputation.Reputation, func()) {
	if st == nil {
		return nil, func() {}
	}
	rep := reputation.New(st, reputationConfig(cfg), log)
	rep.Model = st
	rep.Start()
	return rep, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rep.Close(ctx); err != nil {
			log.Warn("reputation: evidence not written at shutdown", "err", err)
		}
	}
}

// setReputation gives the pipeline's reputation analyzer the shared
// history (nil: it says nothing), and takes the reloaded config's
// settings into it.
func setReputation(as []analysis.Analyzer, rep *reputation.Reputation) {
	for _, a := range as {
		if r, ok := a.(*reputation.Analyzer); ok {
			r.Rep = rep
		}
	}
}

// observeReputation hands a verdict to the history (milterFilter's
// afterwards, once the reply is out): evidence for the identities the
// analyzer saw, correspondents for mail we signed.
func observeReputation(rep *reputation.Reputation, analyzers []analysis.Analyzer, r *verdict.Result, env verdict.Envelope) {
	on := false
	for _, a := range analyzers {
		if ra, ok := a.(*reputation.Analyzer); ok && ra.Rep == rep {
			on = true
		}
	}
	if !on {
		return
	}
	o := reputation.Outcome{Action: string(r.Action), Stage: r.Stage, Hits: r.Hits, Probability: -1,
		Internal: r.Internal, Signed: r.Signed, Rcpts: env.Rcpts}
	for _, a := range r.Analyses {
		switch rep := a.Report.(type) {
		case *reputation.Report:
			o.Report = rep
		case *classify.Report:
			o.Probability = rep.Probability
		}
	}
	rep.Observe(o)
}

// feedbackReputation tells the history a person's judgement of a
// delivered message, raw (mailwall learn, the Junk watcher): its
// identities are read from our Authentication-Results field. class is
// spam or ham, "!spam" or "!ham" to take it back; prev is what the
// message had been learnt as before ("junk", "ham", ""), whose
// feedback a change of mind takes back first. Nothing when the history
// is off or the message has no such field.
func feedbackReputation(ctx context.Context, cfg *config.Config, st reputation.Store, raw []byte, prev, class string) error {
	if !cfg.Checks.Reputation.Enabled || st == nil {
		return nil
	}
	id := cfg.Checks.AuthServID
	if id == "" {
		id = cfg.ReceiverName()
	}
	fields, _ := classify.ParseMessage(raw)
	ids := reputation.FromAuthResults(fields, id)
	rep := reputation.New(st, reputationConfig(cfg), nil)
	if c, retract := strings.CutPrefix(class, "!"); retract {
		return rep.Feedback(ctx, ids, c != "ham", true)
	}
	if prev != "" {
		if err := rep.Feedback(ctx, ids, prev != "ham", true); err != nil {
			return err
		}
	}
	return rep.Feedback(ctx, ids, class != "ham", false)
}

// junkFeedback is the Junk watcher's feedback into reputation: the
// learnt message's file is read again (its header) for its
// identities.
func junkFeedback(cfg *config.Config, st *store.Store, log *slog.Logger) func(ctx context.Context, path, prev, class string) {
	if !cfg.Checks.Reputation.Enabled {
		return nil
	}
	return func(ctx context.Context, path, prev, class string) {
		raw, err := readLearnFile(path)
		if err == nil {
			err = feedbackReputation(ctx, cfg, st, raw, prev, class)
		}
		if err != nil {
			log.Warn("reputation: feedback from a Maildir not recorded", "path", path, "err", err)
		}
	}
}

// cmdReputation is "mailwall reputation show [IDENTITY]".
func cmdReputation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reputation", stderr)
	cfgPath := fs.String("config", "", "config file (its store holds the history)")
	kind := fs.String("kind", "", "only this kind: from_domain, from_org, dkim, spf or net")
	n := fs.Int("n", 20, "how many identities to list")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] != "show" || len(pos) > 2 {
		fs.Usage()
		return fmt.Errorf("reputation show [IDENTITY] [--kind K] [-n N]: %w", errUsage)
	}
	if _, ok := reputation.ParseKind(*kind); *kind != "" && !ok {
		return fmt.Errorf("reputation: --kind %q is not from_domain, from_org, dkim, spf or net: %w", *kind, errUsage)
	}
	cfg, st, err := openStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer st.Close()
	var rows []reputation.Entry
	if len(pos) == 2 {
		id := strings.ToLower(pos[1])
		if k, v, ok := strings.Cut(id, "="); ok {
			if _, known := reputation.ParseKind(k); known {
				id = v
			}
		}
		if strings.Contains(id, "@") {
			known, err := st.KnownCorrespondents(ctx, []string{id})
			if err != nil {
				return err
			}
			if known[id] {
				fmt.Fprintf(stdout, "%s: a known correspondent (our users wrote to it): its DMARC-passing mail gets known_correspondent\n", id)
			} else {
				fmt.Fprintf(stdout, "%s: not a correspondent\n", id)
			}
			return nil
		}
		rows, err = st.FindReputation(ctx, id)
		if err == nil && len(rows) == 0 {
			fmt.Fprintf(stdout, "%s: no history\n", id)
			return nil
		}
	} else {
		rows, err = st.TopReputation(ctx, reputation.Kind(*kind), max(*n, 1))
	}
	if err != nil {
		return err
	}
	hl := cfg.Checks.Reputation.HalfLife.D()
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tIDENTITY\tHAM\tSPAM\tSPAM%%\tFIRST SEEN\tUPDATED\n")
	for _, e := range rows {
		if *kind != "" && string(e.Kind) != *kind {
			continue
		}
		c := e.Counts.At(now, hl)
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.0f\t%s\t%s\n", e.Kind, e.Identity, c.Ham, c.Spam, 100*c.SpamRatio(),
			e.FirstSeen.UTC().Format(time.DateOnly), e.Updated.UTC().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "(evidence in messages, decayed to now with a half-life of %s)\n", hl)
	return nil
}
