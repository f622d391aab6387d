package classify

import (
	"strconv"
	"strings"
)

// Per-recipient statistics without a table per recipient: a message
// learnt for one recipient teaches its features twice, as they are (the
// site's statistics) and salted by the recipient, each hash mixed with
// a hash of the normalized address, into the same table; a message for
// exactly one recipient is then classified on the site's features and
// that recipient's salted ones (PredictFor). A user's preference (a
// mailing list the site reads and one user calls spam) is learnt for
// that user alone, and every user still has the site's knowledge.
//
// The salted hash is computed from the feature hash's top 32 bits only,
// which is what a verdict keeps (Kept), so that a dashboard click
// teaches the same buckets as mailwall learn --rcpt. Beside its salted
// features, every message learnt for a recipient counts in the
// recipient's own buckets of message counts (recipientCountHash), which
// say how much the recipient has taught, of each class.
//
// The cost is collisions: the table is shared, so a recipient's salted
// features land in buckets the site's features use as well, and a bucket
// sums both. TestRecipientCollisions measures what that does to the
// site's predictions.

// RecipientSalt is the salt of a recipient's statistics: a hash of the
// normalized address (NormalizeRecipient); 0 for an empty address.
func RecipientSalt(addr string) uint64 {
	a := NormalizeRecipient(addr)
	if a == "" {
		return 0
	}
	return hashFeature("rcpt-salt", []byte(a))
}

// NormalizeRecipient is the form of an address its statistics are kept
// under: without angle brackets and surrounding space, in lower case,
// and without a "+detail" in the local part (bob+lists@example.com is
// bob@example.com), so one mailbox has one set of statistics.
func NormalizeRecipient(addr string) string {
	a := strings.TrimSpace(addr)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	a = strings.ToLower(strings.TrimSpace(a))
	local, domain, ok := strings.Cut(a, "@")
	if !ok {
		return a
	}
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local + "@" + domain
}

// saltHash is feature hash h salted for a recipient: a 64-bit mix of
// the hash's top 32 bits (all that Kept keeps) and the salt. It never
// returns 0 (mix does not).
func saltHash(h, salt uint64) uint64 { return mix((h >> 32) ^ salt) }

// recipientCounts is how many buckets count a recipient's messages.
// Each may be shared with a feature of the site's (a third of the
// buckets are in use with a model of the corpus), which would make a
// recipient who taught nothing look as if they had; the recipient's
// count is the least of them (a count-min sketch), too high only when
// every one is shared. With the corpus's model (TestRecipientCollisions)
// and one bucket, 52 of 10,000 recipients who taught nothing counted
// as having taught 5 of each class; with 4, none.
const recipientCounts = 4

// recipientCountHash is the recipient's i-th bucket of message counts:
// every message learnt for the recipient counts in each once.
func recipientCountHash(salt uint64, i int) uint64 {
	return mix(salt ^ (0x6d657373616765 + uint64(i)<<56)) // "message"
}

// recipientKey is the key a message learnt for a recipient is known
// by: its MessageKey and the salt, so that each recipient learns a
// message delivered to several once, and a second lesson of the other
// class for one recipient takes only that recipient's back.
func recipientKey(key string, salt uint64) string {
	if salt == 0 || key == "" {
		return key
	}
	return key + "." + strconv.FormatUint(salt, 16)
}

// saltedBuckets appends to dst the buckets (of a table of 2^bits) that
// a message of hashes learnt for the recipient of salt adds beside its
// own: each feature salted, and the recipient's count buckets.
func saltedBuckets(dst []uint32, hashes []uint64, salt uint64, bits int) []uint32 {
	for _, h := range hashes {
		dst = append(dst, uint32(saltHash(h, salt)>>(64-bits)))
	}
	for i := range recipientCounts {
		dst = append(dst, uint32(recipientCountHash(salt, i)>>(64-bits)))
	}
	return dst
}

// Recipient modes: how a message's site features and its recipient's
// salted features are combined (PredictFor). TestRecipientModes
// measures them on the corpus.
const (
	// RecipientAdd adds the recipient's clues to the site's in one
	// Fisher combination: twice the evidence where both know a feature.
	RecipientAdd = "add"
	// RecipientOverride takes, feature by feature, the recipient's clue
	// where the recipient has seen the feature (MinCount times) and the
	// site's where not.
	RecipientOverride = "override"
	// RecipientPrior takes, feature by feature, the recipient's counts
	// smoothed towards the site's probability of the feature (where
	// Robinson smooths towards 0.5), with the weight of
	// recipientPriorS messages: the site's view where the recipient has
	// little evidence, the recipient's where much.
	RecipientPrior = "prior"
	// RecipientOnly classifies on the recipient's clues alone once the
	// recipient has taught enough (rspamd's per_user statistics).
	RecipientOnly = "only"
)

// DefaultRecipientMode is the mode the analyzer uses: on the corpus
// (TestRecipientModes: a recipient reports 20 messages of a mailing
// list the site reads as ham as spam) it flagged the most of the list
// for that recipient (63% at DefaultThreshold, RecipientOverride 53%,
// RecipientAdd 13%) at the same cost to their other mail as override
// (3 of 270 other ham flagged where the site flags 1; another
// recipient, who taught the list as ham, missed 3 more of 200
// phishing). RecipientOnly, rspamd's, flags all of the list but, with
// 30 lessons, 7% of the recipient's other ham and 5% of their spam:
// rspamd waits for 200 lessons of each class.
const DefaultRecipientMode = RecipientPrior

// DefaultRecipientMinLearns is how many messages of each class a
// recipient must have taught before their statistics count: below it,
// the site's model alone classifies their mail.
const DefaultRecipientMinLearns = 5
