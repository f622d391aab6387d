package verdict

import "strconv"

// withDNSSEC adds to an Authentication-Results comment what DNSSEC said
// of the record a result rests on (issue 27): "secure" when the answer
// was validated from a trust anchor, "unprotected" when it was not
// (an unsigned zone, or a trust_ad server not trusted), as OpenDKIM
// writes "(2048-bit key; secure)". keyBits > 0 puts the DKIM key's size
// first. status "" (dns.dnssec off) leaves the comment as it was; a
// bogus answer never gets here: it is a temperror whose reason names
// the failing link.
func withDNSSEC(comment, status string, keyBits int) string {
	if status == "" {
		return comment
	}
	word := "unprotected"
	if status == "secure" {
		word = "secure"
	}
	if keyBits > 0 {
		word = strconv.Itoa(keyBits) + "-bit key; " + word
	}
	if comment == "" {
		return word
	}
	return comment + "; " + word
}
