package phish

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"
)

// Brand is a name that phishing imitates, with the registered domains
// that really belong to it.
type Brand struct {
	Name string `yaml:"name" json:"name"`
	// Domains are the brand's registered (organizational) domains; mail
	// and links under them are the brand's own.
	Domains []string `yaml:"domains" json:"domains"`
	// Words are other names it goes by: Latin tokens matched like Name,
	// others (Japanese names, say) matched as substrings of display names.
	Words []string `yaml:"words,omitempty" json:"words,omitempty"`
}

// DefaultBrands are brands phished in Japan and elsewhere, with their
// main domains. Admins add their own (their bank, their company).
func DefaultBrands() []Brand {
	return []Brand{
		{Name: "amazon", Domains: []string{"amazon.com", "amazon.co.jp", "amazon.co.uk", "amazon.de", "amazon.fr", "amazon.ca", "amazon.in", "amazonses.com", "amazonaws.com", "amazon.jobs", "a2z.com"}, Words: []string{"amzn", "アマゾン"}},
		{Name: "apple", Domains: []string{"apple.com", "icloud.com", "me.com", "mac.com", "apple.co.jp", "itunes.com"}, Words: []string{"icloud", "アップル"}},
		{Name: "microsoft", Domains: []string{"microsoft.com", "office.com", "office365.com", "outlook.com", "live.com", "hotmail.com", "microsoftonline.com", "msn.com", "sharepoint.com", "onmicrosoft.com"}, Words: []string{"office365", "outlook", "onedrive", "sharepoint", "マイクロソフト"}},
		{Name: "google", Domains: []string{"google.com", "gmail.com", "google.co.jp", "googlemail.com", "youtube.com", "accounts.google.com"}, Words: []string{"gmail", "グーグル"}},
		{Name: "paypal", Domains: []string{"paypal.com", "paypal.jp", "paypal.me"}, Words: []string{"ペイパル"}},
		{Name: "netflix", Domains: []string{"netflix.com"}, Words: []string{"ネットフリックス"}},
		{Name: "facebook", Domains: []string{"facebook.com", "facebookmail.com", "meta.com", "fb.com"}},
		{Name: "instagram", Domains: []string{"instagram.com", "facebookmail.com"}},
		{Name: "linkedin", Domains: []string{"linkedin.com"}},
		{Name: "dropbox", Domains: []string{"dropbox.com", "dropboxmail.com"}},
		{Name: "docusign", Domains: []string{"docusign.com", "docusign.net"}},
		{Name: "dhl", Domains: []string{"dhl.com", "dhl.de", "dhl.co.jp"}},
		{Name: "fedex", Domains: []string{"fedex.com"}},
		{Name: "rakuten", Domains: []string{"rakuten.co.jp", "rakuten.com", "rakuten-card.co.jp", "rakuten-bank.co.jp", "rakuten-sec.co.jp"}, Words: []string{"楽天"}},
		{Name: "smbc", Domains: []string{"smbc.co.jp", "smbc-card.com", "vpass.ne.jp"}, Words: []string{"vpass", "三井住友"}},
		{Name: "mufg", Domains: []string{"mufg.jp", "bk.mufg.jp", "cr.mufg.jp"}, Words: []string{"三菱UFJ", "三菱ＵＦＪ"}},
		{Name: "mizuho", Domains: []string{"mizuhobank.co.jp", "mizuho-fg.co.jp", "mizuho-sc.com"}, Words: []string{"みずほ"}},
		{Name: "yahoo", Domains: []string{"yahoo.co.jp", "yahoo.com", "yahoo-net.jp", "yahooinc.com"}, Words: []string{"ヤフー"}},
		{Name: "docomo", Domains: []string{"docomo.ne.jp", "nttdocomo.co.jp", "docomo.co.jp"}, Words: []string{"ドコモ"}},
		{Name: "softbank", Domains: []string{"softbank.jp", "softbank.ne.jp", "softbank.co.jp"}, Words: []string{"ソフトバンク"}},
		{Name: "jcb", Domains: []string{"jcb.co.jp", "jcb.jp"}},
		{Name: "aeon", Domains: []string{"aeon.co.jp", "aeon.com", "aeonbank.co.jp"}, Words: []string{"イオンカード", "イオン銀行"}},
		{Name: "ekinet", Domains: []string{"eki-net.com", "jreast.co.jp"}, Words: []string{"eki-net", "えきねっと"}},
		{Name: "yamato", Domains: []string{"kuronekoyamato.co.jp", "yamato-hd.co.jp"}, Words: []string{"kuronekoyamato", "ヤマト運輸", "クロネコ"}},
		{Name: "sagawa", Domains: []string{"sagawa-exp.co.jp"}, Words: []string{"佐川急便"}},
		{Name: "japanpost", Domains: []string{"japanpost.jp", "post.japanpost.jp", "jp-bank.japanpost.jp"}, Words: []string{"日本郵便", "ゆうちょ"}},
		{Name: "mercari", Domains: []string{"mercari.com", "mercari.jp"}, Words: []string{"メルカリ"}},
		{Name: "binance", Domains: []string{"binance.com"}},
		{Name: "coinbase", Domains: []string{"coinbase.com"}},
		{Name: "ntt", Domains: []string{"ntt.com", "ntt.co.jp", "ntt-east.co.jp", "ntt-west.co.jp"}},
	}
}

// brandIndex matches text against brands.
type brandIndex struct {
	brands []Brand
	// names are each brand's Latin names, lower case: matched to tokens.
	names [][]string
	// phrases are names in other scripts or with punctuation, NFKC and
	// lower case: matched as substrings.
	phrases [][]string
}

func newBrandIndex(brands []Brand) *brandIndex {
	ix := &brandIndex{brands: brands, names: make([][]string, len(brands)), phrases: make([][]string, len(brands))}
	for i, b := range brands {
		for _, w := range append([]string{b.Name}, b.Words...) {
			w = Normalize(w)
			if isLatin(w) && len(tokens(w)) == 1 {
				ix.names[i] = append(ix.names[i], w)
			} else {
				ix.phrases[i] = append(ix.phrases[i], w)
			}
		}
	}
	return ix
}

// owns reports whether domain is one of brand i's, or under one.
func (ix *brandIndex) owns(i int, domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range ix.brands[i].Domains {
		d = strings.ToLower(d)
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// brandMatch is a brand found in a text, and how.
type brandMatch struct {
	brand int
	how   string // "name", "look-alike" or "homoglyph"
	token string // what matched, as written
}

// match finds brands named or imitated in tokens of s (a domain without
// its public suffix, a local part, a display name). near allows one edit
// for longer names (amozon for amazon).
func (ix *brandIndex) match(s string, near bool) []brandMatch {
	var out []brandMatch
	seen := map[int]bool{}
	add := func(m brandMatch) {
		if !seen[m.brand] {
			seen[m.brand] = true
			out = append(out, m)
		}
	}
	folded := Normalize(s)
	for _, tok := range tokens(folded) {
		skel := skeleton(tok)
		mapped := skel != tok
		lookAlike := near && len(skel) <= maxNearToken && !ordinaryWords[tok]
		for i, names := range ix.names {
			for _, name := range names {
				how := ""
				switch {
				case tok == name || len(name) >= 6 && strings.Contains(tok, name):
					how = "name"
				case mapped && (skel == name || len(name) >= 6 && strings.Contains(skel, name)):
					how = "homoglyph"
				case lookAlike && len(name) >= 6 && nearSubstring(skel, name):
					how = "look-alike"
				}
				if how != "" {
					add(brandMatch{brand: i, how: how, token: tok})
				}
			}
		}
	}
	for i, phrases := range ix.phrases {
		for _, p := range phrases {
			if strings.Contains(folded, p) {
				add(brandMatch{brand: i, how: "name", token: p})
			}
		}
	}
	return out
}

// maxNearToken bounds the tokens searched for look-alikes (a label or a
// local part is at most 63 or 64 octets): the search is quadratic.
const maxNearToken = 64

// ordinaryWords are words one edit from a brand name that are not
// look-alikes.
var ordinaryWords = map[string]bool{
	"amazing": true, "amazingly": true, "goggle": true, "goggles": true, "paypals": true,
}

// tokens splits at anything that is not a letter or digit.
func tokens(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func isLatin(s string) bool {
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// extraConfusables are look-alikes phishing uses beyond confusableLatin
// (UTS #39 maps to a letter of the same case, and digits to digits):
// digits used as letters, and Cyrillic lower-case letters that look like
// Latin small capitals.
var extraConfusables = map[rune]string{
	'0': "o", '1': "l", '3': "e", '4': "a", '5': "s", '7': "t", '8': "b", '9': "g",
	'ß': "b", 'ӏ': "l", 'к': "k", 'м': "m", 'т': "t", 'в': "b", 'н': "h", 'п': "n", 'г': "r", 'ł': "l", 'ø': "o",
}

// skeleton lower-cases a token, strips accents, maps confusable letters
// to Latin ones (UTS #39's table, confusables_table.go, then
// extraConfusables) and the pairs rn and vv to m and w.
func skeleton(tok string) string {
	if plainLetters(tok) {
		return tok // the usual token: nothing to map
	}
	var b strings.Builder
	for _, r := range norm.NFD.String(tok) {
		if unicode.Is(unicode.Mn, r) {
			continue // combining accents
		}
		if s, ok := extraConfusables[r]; ok {
			b.WriteString(s)
			continue
		}
		if c, ok := confusableLatin[r]; ok {
			if s, ok := extraConfusables[rune(c)]; ok {
				b.WriteString(s) // a look-alike of a digit used as a letter
			} else {
				b.WriteByte(c)
			}
			continue
		}
		b.WriteRune(r)
	}
	return pairs.Replace(b.String())
}

// plainLetters reports an ASCII token that skeleton leaves as it is: no
// digit (all are confusable), no rn or vv.
func plainLetters(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c >= utf8.RuneSelf || c >= '0' && c <= '9' {
			return false
		}
	}
	return !strings.Contains(tok, "rn") && !strings.Contains(tok, "vv")
}

// pairs are letter pairs that read as one letter.
var pairs = strings.NewReplacer("rn", "m", "vv", "w")

// scripts returns the scripts of the letters in s, for mixed-script
// detection.
func scripts(s string) []string {
	var out []string
	add := func(n string) {
		for _, o := range out {
			if o == n {
				return
			}
		}
		out = append(out, n)
	}
	for _, r := range s {
		switch {
		case !unicode.IsLetter(r):
		case unicode.Is(unicode.Latin, r):
			add("Latin")
		case unicode.Is(unicode.Cyrillic, r):
			add("Cyrillic")
		case unicode.Is(unicode.Greek, r):
			add("Greek")
		case unicode.Is(unicode.Han, r), unicode.Is(unicode.Hiragana, r), unicode.Is(unicode.Katakana, r):
			add("Japanese")
		default:
			add("other")
		}
	}
	return out
}

// mixedScript reports a token that mixes Latin with Cyrillic or Greek:
// the homoglyph trick (Japanese mixed with Latin is ordinary).
func mixedScript(s string) bool {
	if isLatin(s) {
		return false // ASCII: one script
	}
	for _, tok := range tokens(s) {
		sc := scripts(tok)
		latin, lookalike := false, false
		for _, x := range sc {
			latin = latin || x == "Latin"
			lookalike = lookalike || x == "Cyrillic" || x == "Greek"
		}
		if latin && lookalike {
			return true
		}
	}
	return false
}

// nearSubstring reports whether some substring of s is within one edit
// of name.
func nearSubstring(s, name string) bool {
	if len(s) < len(name)-1 {
		return false
	}
	// One edit changes at most one half of name, so a near substring
	// holds the other half as it is: two fast searches rule out most
	// tokens before the quadratic one.
	if h := len(name) / 2; !strings.Contains(s, name[:h]) && !strings.Contains(s, name[h:]) {
		return false
	}
	for n := len(name) - 1; n <= len(name)+1; n++ {
		for i := 0; i+n <= len(s); i++ {
			if editDistanceAtMost1(s[i:i+n], name) {
				return true
			}
		}
	}
	return false
}

// editDistanceAtMost1 reports whether a and b differ by at most one
// insertion, deletion or substitution (bytes; callers pass skeletons).
func editDistanceAtMost1(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return a[i+min(1, len(a)-i):] == b[i+min(1, len(b)-i):]
	}
	return a[i:] == b[i+1:]
}

// registered returns the registered domain (public suffix plus one
// label), or the name itself when it has none.
func registered(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if r, err := publicsuffix.EffectiveTLDPlusOne(domain); err == nil {
		return r
	}
	return domain
}

// withoutSuffix drops the public suffix: "amazon.co.jp.evil.test" gives
// "amazon.co.jp.evil", where look-alikes hide.
func withoutSuffix(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	suffix, _ := publicsuffix.PublicSuffix(domain)
	if suffix == domain {
		return ""
	}
	return strings.TrimSuffix(domain, "."+suffix)
}

// unicodeDomain decodes A-labels (xn--) for display and matching; the
// second result says whether there were any.
func unicodeDomain(domain string) (string, bool) {
	if !strings.Contains(strings.ToLower(domain), "xn--") {
		return domain, false
	}
	u, err := idna.ToUnicode(strings.ToLower(domain))
	if err != nil {
		return domain, true
	}
	return u, true
}
