package verdict

// featureHashes is what an analyzer (the classifier) kept of the
// message's features for learning from a later click on the dashboard:
// hashes, never text (classify.Kept); nil when none did.
func (r *Result) featureHashes() []byte {
	for _, a := range r.Analyses {
		if k, ok := a.Result.Report.(interface{ FeatureHashes() []byte }); ok {
			if b := k.FeatureHashes(); b != nil {
				return b
			}
		}
	}
	return nil
}
