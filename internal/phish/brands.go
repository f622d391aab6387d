package phish

import (
	"math/bits"
	"slices"
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

// DefaultBrands are brands phished in Japan and elsewhere, with the
// registered domains they send from and link to: their country domains,
// short-link and CDN domains too, since a link to one of them is the
// brand's own. Admins add their own (their bank, their company).
func DefaultBrands() []Brand {
	return []Brand{
		{Name: "amazon", Domains: append(country("amazon", "com", "co.jp", "co.uk", "de", "fr", "it", "es", "nl", "se", "pl", "ca", "com.mx", "com.br", "com.au", "in", "sg", "ae", "sa", "com.tr", "eg", "cn", "com.be"),
			"amazonses.com", "amazonaws.com", "amazon.jobs", "a2z.com", "amzn.to", "amzn.com", "amzn.asia", "amzn.eu", "media-amazon.com", "ssl-images-amazon.com", "awstrack.me", "primevideo.com", "audible.com", "audible.co.jp", "kindle.com"), Words: []string{"amzn", "アマゾン"}},
		{Name: "apple", Domains: []string{"apple.com", "icloud.com", "me.com", "mac.com", "apple.co.jp", "itunes.com", "apple.co", "mzstatic.com", "icloud-content.com", "cdn-apple.com", "apple.news"}, Words: []string{"icloud", "アップル"}},
		{Name: "microsoft", Domains: []string{"microsoft.com", "microsoft.co.jp", "office.com", "office365.com", "office.net", "outlook.com", "live.com", "live.jp", "hotmail.com", "hotmail.co.jp", "hotmail.co.uk", "microsoftonline.com", "msn.com", "sharepoint.com", "onmicrosoft.com", "onedrive.com", "1drv.ms", "aka.ms", "msft.net", "azure.com", "windows.com", "windows.net", "bing.com", "skype.com", "xbox.com", "microsoftstore.com", "msauth.net", "msftauth.net", "microsoft365.com", "dynamics.com"}, Words: []string{"office365", "outlook", "onedrive", "sharepoint", "マイクロソフト"}},
		{Name: "google", Domains: append(country("google", "com", "co.jp", "co.uk", "de", "fr", "it", "es", "nl", "be", "ch", "at", "se", "dk", "no", "fi", "pl", "pt", "ie", "gr", "cz", "hu", "ro", "ru", "ca", "com.mx", "com.br", "com.ar", "cl", "com.co", "com.pe", "com.au", "co.nz", "co.in", "co.kr", "com.tw", "com.hk", "com.sg", "co.id", "com.ph", "com.vn", "co.th", "com.my", "com.tr", "co.il", "ae", "com.sa", "com.eg", "co.za", "com.ua", "cn"),
			"gmail.com", "googlemail.com", "youtube.com", "youtu.be", "ytimg.com", "googleusercontent.com", "googleapis.com", "gstatic.com", "googlegroups.com", "googlesource.com", "goo.gl", "g.co", "g.page", "withgoogle.com", "blogger.com", "blogspot.com", "ggpht.com", "android.com", "googlevideo.com", "doubleclick.net", "googleadservices.com", "googlesyndication.com", "google-analytics.com", "googletagmanager.com", "chromium.org", "chrome.com", "firebaseapp.com", "web.app", "appspot.com", "forms.gle"), Words: []string{"gmail", "グーグル"}},
		{Name: "paypal", Domains: []string{"paypal.com", "paypal.jp", "paypal.me", "paypal-communication.com", "paypalobjects.com", "paypal.de", "paypal.co.uk", "paypal.fr"}, Words: []string{"ペイパル"}},
		{Name: "netflix", Domains: []string{"netflix.com", "netflix.net", "nflxext.com", "nflximg.net", "nflxso.net", "nflxvideo.net"}, Words: []string{"ネットフリックス"}},
		{Name: "facebook", Domains: []string{"facebook.com", "facebookmail.com", "meta.com", "fb.com", "fb.me", "fbcdn.net", "messenger.com"}},
		{Name: "instagram", Domains: []string{"instagram.com", "facebookmail.com", "cdninstagram.com"}},
		{Name: "linkedin", Domains: []string{"linkedin.com", "lnkd.in", "licdn.com"}},
		{Name: "dropbox", Domains: []string{"dropbox.com", "dropboxmail.com", "db.tt", "dropboxusercontent.com"}},
		{Name: "docusign", Domains: []string{"docusign.com", "docusign.net"}},
		{Name: "dhl", Domains: []string{"dhl.com", "dhl.de", "dhl.co.jp", "dhl.co.uk", "dhl.fr", "dhl.it", "dhl.es", "dhl.nl", "dpdhl.com", "dhl-news.com"}},
		{Name: "fedex", Domains: []string{"fedex.com"}},
		{Name: "ups", Domains: []string{"ups.com"}},
		{Name: "usps", Domains: []string{"usps.com", "usps.gov"}},
		{Name: "rakuten", Domains: []string{"rakuten.co.jp", "rakuten.com", "rakuten.ne.jp", "rakuten-card.co.jp", "rakuten-bank.co.jp", "rakuten-sec.co.jp", "r10.to", "rakuten.jp"}, Words: []string{"楽天"}},
		{Name: "smbc", Domains: []string{"smbc.co.jp", "smbc-card.com", "vpass.ne.jp", "smbc-fg.com"}, Words: []string{"vpass", "三井住友"}},
		{Name: "mufg", Domains: []string{"mufg.jp", "bk.mufg.jp", "cr.mufg.jp"}, Words: []string{"三菱UFJ", "三菱ＵＦＪ"}},
		{Name: "mizuho", Domains: []string{"mizuhobank.co.jp", "mizuho-fg.co.jp", "mizuho-sc.com"}, Words: []string{"みずほ"}},
		{Name: "resona", Domains: []string{"resonabank.co.jp", "resona-gr.co.jp"}, Words: []string{"りそな"}},
		{Name: "saisoncard", Domains: []string{"saisoncard.co.jp", "credit-saison.co.jp"}, Words: []string{"セゾン"}},
		{Name: "orico", Domains: []string{"orico.co.jp"}, Words: []string{"オリコ"}},
		{Name: "epos", Domains: []string{"eposcard.co.jp", "0101.co.jp"}, Words: []string{"eposcard", "エポスカード"}},
		{Name: "amex", Domains: []string{"americanexpress.com", "americanexpress.co.jp", "aexp.com", "aexp-static.com"}, Words: []string{"americanexpress", "アメリカン・エキスプレス"}},
		{Name: "paypay", Domains: []string{"paypay.ne.jp", "paypay-bank.co.jp", "paypay-card.co.jp"}, Words: []string{"ペイペイ"}},
		{Name: "yahoo", Domains: append(country("yahoo", "com", "co.jp", "co.uk", "fr", "de", "it", "es", "ca", "com.au", "co.in", "com.br", "com.mx", "com.ar", "com.tw", "com.hk", "com.sg", "co.id", "com.ph", "com.vn", "co.nz", "gr", "se", "dk", "no", "fi", "ie", "pl", "ro", "at", "be", "ch", "nl", "net"),
			"yahoo-net.jp", "yahooinc.com", "yimg.com", "yimg.jp", "ymail.com", "rocketmail.com", "yahoodns.net", "yahoo-mail.jp"), Words: []string{"ヤフー"}},
		{Name: "docomo", Domains: []string{"docomo.ne.jp", "nttdocomo.co.jp", "docomo.co.jp"}, Words: []string{"ドコモ"}},
		{Name: "softbank", Domains: []string{"softbank.jp", "softbank.ne.jp", "softbank.co.jp"}, Words: []string{"ソフトバンク"}},
		{Name: "jcb", Domains: []string{"jcb.co.jp", "jcb.jp", "jcb.com", "jcbcard.co.jp"}},
		{Name: "aeon", Domains: []string{"aeon.co.jp", "aeon.com", "aeonbank.co.jp", "aeon.jp"}, Words: []string{"イオンカード", "イオン銀行"}},
		{Name: "ekinet", Domains: []string{"eki-net.com", "jreast.co.jp"}, Words: []string{"eki-net", "えきねっと"}},
		{Name: "smartex", Domains: []string{"smart-ex.jp", "jr-central.co.jp"}, Words: []string{"smart-ex", "スマートex", "スマートEX"}},
		{Name: "jrwest", Domains: []string{"jr-odekake.net", "westjr.co.jp"}, Words: []string{"e5489", "JR西日本"}},
		{Name: "etcmeisai", Domains: []string{"etc-meisai.jp"}, Words: []string{"ETC利用照会", "ETCマイレージ"}},
		{Name: "kddi", Domains: []string{"kddi.com", "au.com", "ezweb.ne.jp", "auone.jp", "au-net.ne.jp"}},
		{Name: "tokyogas", Domains: []string{"tokyo-gas.co.jp"}, Words: []string{"東京ガス"}},
		{Name: "kepco", Domains: []string{"kepco.co.jp"}, Words: []string{"関西電力"}},
		{Name: "yamato", Domains: []string{"kuronekoyamato.co.jp", "yamato-hd.co.jp"}, Words: []string{"kuronekoyamato", "ヤマト運輸", "クロネコ"}},
		{Name: "sagawa", Domains: []string{"sagawa-exp.co.jp"}, Words: []string{"佐川急便"}},
		{Name: "japanpost", Domains: []string{"japanpost.jp", "post.japanpost.jp", "jp-bank.japanpost.jp"}, Words: []string{"日本郵便", "ゆうちょ", "郵便局"}},
		{Name: "nta", Domains: []string{"nta.go.jp", "e-tax.nta.go.jp"}, Words: []string{"国税庁", "e-tax"}},
		{Name: "tepco", Domains: []string{"tepco.co.jp"}, Words: []string{"東京電力"}},
		{Name: "mercari", Domains: []string{"mercari.com", "mercari.jp"}, Words: []string{"メルカリ"}},
		{Name: "binance", Domains: []string{"binance.com", "binance.us", "binance.info"}},
		{Name: "coinbase", Domains: []string{"coinbase.com", "coinbase.de"}},
		{Name: "metamask", Domains: []string{"metamask.io", "consensys.io", "consensys.net"}},
		{Name: "spotify", Domains: []string{"spotify.com", "scdn.co", "spotifycdn.com", "spoti.fi"}},
		{Name: "chase", Domains: []string{"chase.com", "jpmorgan.com", "jpmorganchase.com", "jpmchase.com"}},
		{Name: "wellsfargo", Domains: []string{"wellsfargo.com", "wf.com", "wellsfargoemail.com"}, Words: []string{"wells fargo"}},
		{Name: "bankofamerica", Domains: []string{"bankofamerica.com", "bofa.com", "ml.com", "emcom.bankofamerica.com"}, Words: []string{"bank of america"}},
		{Name: "adobe", Domains: []string{"adobe.com", "adobesign.com", "adobe.io", "adobelogin.com", "typekit.net", "echosign.com"}},
		{Name: "wetransfer", Domains: []string{"wetransfer.com", "we.tl", "wetransfer.net"}},
		{Name: "norton", Domains: []string{"norton.com", "nortonlifelock.com", "symantec.com", "gendigital.com"}},
		{Name: "mcafee", Domains: []string{"mcafee.com"}},
		{Name: "ntt", Domains: []string{"ntt.com", "ntt.co.jp", "ntt-east.co.jp", "ntt-west.co.jp", "ntt.jp"}},
	}
}

// country returns label under each public suffix: a brand's country
// domains.
func country(label string, suffixes ...string) []string {
	out := make([]string, len(suffixes))
	for i, s := range suffixes {
		out[i] = label + "." + s
	}
	return out
}

// commonWords are brand names and words that are also ordinary English
// words: they match whole tokens only (no substring, no look-alike), and
// in a host name only in its registered label, so "outlook.4team.biz"
// and "outlooksecure" are not Microsoft's, "pineapple" not Apple's. A
// surname is one too: Horton and Morton are not Norton.
var commonWords = map[string]bool{
	"outlook": true, "apple": true, "ups": true, "chase": true, "norton": true,
}

// brandIndex matches text against brands.
type brandIndex struct {
	brands []Brand
	// names are the brands' Latin names, lower case, matched to tokens:
	// brand by brand, each brand's in its order (the order of matches).
	names []brandName
	// exact holds every name, for isName.
	exact map[string]bool
	// whole finds the names a token is (or whose skeleton it is);
	// grams, those it may hold: see candidates.
	whole map[string][]int32
	grams map[uint32][]int32
	// bigrams has the bit of each gram's first two bytes set: most
	// positions of a token start no gram, and the map is not asked.
	bigrams [1 << 16 / 64]uint64
	// domains are each brand's Domains in lower case.
	domains [][]string
	// phrases are names in other scripts or with punctuation, NFKC and
	// lower case: matched as substrings; asciiPhrases, those ASCII text
	// may hold.
	phrases, asciiPhrases []brandName
}

func newBrandIndex(brands []Brand) *brandIndex {
	ix := &brandIndex{brands: brands, exact: map[string]bool{}, whole: map[string][]int32{}, grams: map[uint32][]int32{}}
	for i, b := range brands {
		ds := make([]string, len(b.Domains))
		for j, d := range b.Domains {
			ds[j] = strings.ToLower(d)
		}
		ix.domains = append(ix.domains, ds)
		for _, w := range append([]string{b.Name}, b.Words...) {
			w = Normalize(w)
			if isLatin(w) && len(tokens(w)) == 1 {
				id := int32(len(ix.names))
				ix.names = append(ix.names, brandName{brand: i, word: w, common: commonWords[w]})
				ix.exact[w] = true
				ix.whole[w] = append(ix.whole[w], id)
				if !commonWords[w] && len(w) >= 6 {
					// What matchIn looks for in a token besides the name
					// whole: the name (its first three bytes), and for a
					// look-alike, one half or the other as it is (the
					// second half's first three bytes; the first's are
					// the name's).
					for _, g := range []string{w[:3], w[len(w)/2 : len(w)/2+3]} {
						k := gramKey(g)
						if l := ix.grams[k]; len(l) == 0 || l[len(l)-1] != id {
							ix.grams[k] = append(l, id)
						}
						ix.bigrams[k>>14] |= 1 << (k >> 8 & 63)
					}
				}
			} else {
				ix.phrases = append(ix.phrases, brandName{brand: i, word: w})
				if isLatin(w) {
					ix.asciiPhrases = append(ix.asciiPhrases, brandName{brand: i, word: w})
				}
			}
		}
	}
	return ix
}

// gramKey packs three bytes; its top 16 bits are the first two.
func gramKey(s string) uint32 { return uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2]) }

// candidates sets in set the bits of the names that a token tok (with
// skeleton skel, when mapped) may match as matchIn matches: a name
// equal to either, or one of whose grams either holds. Every name
// matchIn would find is among them; matchIn rules out the rest. One pass
// over the token instead of one search per name. It reports whether
// there are any.
func (ix *brandIndex) candidates(set []uint64, tok, skel string, mapped bool) bool {
	found := false
	mark := func(ids []int32) {
		for _, id := range ids {
			set[id>>6] |= 1 << (id & 63)
			found = true
		}
	}
	mark(ix.whole[tok])
	if mapped {
		mark(ix.whole[skel])
	}
	for _, s := range []string{tok, skel} {
		for i := 0; i+3 <= len(s); i++ {
			k := gramKey(s[i:])
			if ix.bigrams[k>>14]&(1<<(k>>8&63)) != 0 {
				mark(ix.grams[k])
			}
		}
		if !mapped {
			break
		}
	}
	return found
}

// owns reports whether domain is one of brand i's, or under one.
func (ix *brandIndex) owns(i int, domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range ix.domains[i] {
		if strings.HasSuffix(domain, d) && (len(domain) == len(d) || domain[len(domain)-len(d)-1] == '.') {
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

// match finds brands named or imitated in tokens of s (a local part, a
// display name). near allows one edit for longer names (amozon for
// amazon).
func (ix *brandIndex) match(s string, near bool) []brandMatch {
	return ix.matchIn(nil, s, near, true)
}

// matchHost finds brands named or imitated in a host name (Unicode form)
// without its public suffix. Names that are ordinary words count only in
// its registered label: "outlook-login.example" imitates Microsoft,
// "outlook.4team.biz" is 4team's page about Outlook.
func (ix *brandIndex) matchHost(host string) []brandMatch {
	return ix.matchLabels(withoutSuffix(host))
}

// matchLabels is matchHost of the host whose labels before the public
// suffix are full.
func (ix *brandIndex) matchLabels(full string) []brandMatch {
	dot := strings.LastIndexByte(full, '.')
	if dot < 0 {
		return ix.matchIn(nil, full, true, true) // the registered label alone
	}
	out := ix.matchIn(nil, full, true, false)
	label := full[dot+1:]
	for _, m := range ix.matchIn(nil, label, false, true) {
		if commonWords[m.token] && !slices.ContainsFunc(out, func(o brandMatch) bool { return o.brand == m.brand }) {
			out = append(out, m)
		}
	}
	return out
}

// matchIn appends to out the brands found in s; common says whether
// names that are ordinary words (commonWords) count.
func (ix *brandIndex) matchIn(out []brandMatch, s string, near, common bool) []brandMatch {
	add := func(m brandMatch) {
		for _, o := range out {
			if o.brand == m.brand {
				return
			}
		}
		out = append(out, m)
	}
	folded := Normalize(s)
	var small [4]uint64 // 256 names; more take an allocation
	set := small[:]
	if n := (len(ix.names) + 63) / 64; n > len(small) {
		set = make([]uint64, n)
	}
	var toks [16]compoundToken
	for _, tk := range compoundTokens(toks[:0], folded) {
		tok := tk.text
		skel := skeleton(tok)
		mapped := skel != tok
		clear(set)
		if !ix.candidates(set, tok, skel, mapped) {
			continue // most tokens: no name to try
		}
		// An English word one edit from a name (finance, cloud) is that
		// word, not a look-alike.
		lookAlike := near && len(skel) <= maxNearToken && !ordinaryWords[tok] && !ordinaryWords[skel] && !ix.exact[tok]
		for w, word := range set {
			for ; word != 0; word &= word - 1 {
				bn := &ix.names[w<<6|bits.TrailingZeros64(word)]
				if how := bn.how(tk, skel, common, lookAlike); how != "" {
					add(brandMatch{brand: bn.brand, how: how, token: tok})
				}
			}
		}
	}
	phrases := ix.phrases
	if isLatin(folded) {
		phrases = ix.asciiPhrases // the others cannot be in it
	}
	for _, p := range phrases {
		if strings.Contains(folded, p.word) {
			add(brandMatch{brand: p.brand, how: "name", token: p.word})
		}
	}
	return out
}

// hasOrdinary reports whether tok holds one of ordinaryWords.
func hasOrdinary(tok string) bool {
	for w := range ordinaryWords {
		if strings.Contains(tok, w) {
			return true
		}
	}
	return false
}

// nearOutsideOrdinary reports whether the look-alike of name in tok lies
// outside the ordinary words in it; asked only after nearSubstring
// found one, so the common token costs nothing more.
func nearOutsideOrdinary(tok, name string) bool {
	if !hasOrdinary(tok) {
		return true
	}
	return slices.ContainsFunc(withoutOrdinary(tok), func(p string) bool { return nearSubstring(p, name) })
}

// withoutOrdinary splits a token at the ordinary words in it: the
// pieces where a look-alike may hide ("yahoofinance" is "yahoo", not a
// look-alike of binance).
func withoutOrdinary(tok string) []string {
	for w := range ordinaryWords {
		if strings.Contains(tok, w) {
			tok = strings.ReplaceAll(tok, w, " ")
		}
	}
	return strings.Fields(tok)
}

// brandName is a name of a brand as matched: common, an ordinary word
// (commonWords).
type brandName struct {
	brand  int // index in brandIndex.brands
	word   string
	common bool
}

// how says how token tk, of skeleton skel, matches the name: "name",
// "homoglyph", "look-alike" or "" (not at all); common and lookAlike
// say whether a common word's name and a look-alike count here.
func (bn *brandName) how(tk compoundToken, skel string, common, lookAlike bool) string {
	tok, name, mapped := tk.text, bn.word, skel != tk.text
	if bn.common {
		// Whole tokens only, homoglyphs included.
		switch {
		case !common || tk.tail:
			// "Start-ups", "follow-ups": the second word of a
			// compound is the ordinary word.
		case tok == name:
			return "name"
		case mapped && skel == name:
			return "homoglyph"
		}
		return ""
	}
	switch {
	case tok == name || len(name) >= 6 && len(tok) > len(name) && strings.Contains(tok, name):
		return "name"
	case mapped && (skel == name || len(name) >= 6 && len(skel) > len(name) && strings.Contains(skel, name)):
		return "homoglyph"
	case lookAlike && len(name) >= 6 && nearSubstring(skel, name) && nearOutsideOrdinary(skel, name):
		return "look-alike"
	}
	return ""
}

// maxNearToken bounds the tokens searched for look-alikes (a label or a
// local part is at most 63 or 64 octets): the search is quadratic.
const maxNearToken = 64

// ordinaryWords are words one edit from a brand name that are not
// look-alikes.
var ordinaryWords = map[string]bool{
	"amazing": true, "amazingly": true, "goggle": true, "goggles": true, "googly": true, "googol": true, "paypals": true,
	"finance": true, "finances": true, "financed": true, "cloud": true, "clouds": true, "cloudy": true,
}

// compoundToken is a token of compoundTokens: tail says it follows a
// hyphen joined to a word before it ("ups" in "start-ups").
type compoundToken struct {
	text string
	tail bool
}

// compoundTokens splits as tokens does and marks the tokens that end a
// hyphenated compound; it appends them to out.
func compoundTokens(out []compoundToken, s string) []compoundToken {
	start := -1
	for i, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, compoundToken{s[start:i], compoundTail(s, start)})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, compoundToken{s[start:], compoundTail(s, start)})
	}
	return out
}

// compoundTail reports whether the token at start follows a hyphen
// joined to a letter or digit before it.
func compoundTail(s string, start int) bool {
	if start < 2 {
		return false
	}
	if h, n := utf8.DecodeLastRuneInString(s[:start]); h == '-' || h == '\u2010' {
		p, _ := utf8.DecodeLastRuneInString(s[:start-n])
		return unicode.IsLetter(p) || unicode.IsDigit(p)
	}
	return false
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
		switch c := tok[i]; {
		case c >= utf8.RuneSelf, c >= '0' && c <= '9':
			return false
		case c == 'n' && i > 0 && tok[i-1] == 'r', c == 'v' && i > 0 && tok[i-1] == 'v':
			return false
		}
	}
	return true
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
// of name at its start or end. A deletion from a six-letter name leaves five letters, an
// ordinary word as often as not (cloud from icloud): only longer names
// are matched with a letter missing. A substring that is an ordinary
// word (finance in yahoofinance) is that word.
func nearSubstring(s, name string) bool {
	low := len(name) - 1
	if len(name) < 7 {
		low = len(name)
	}
	if len(s) < low {
		return false
	}
	// One edit changes at most one half of name, so a near substring
	// holds the other half as it is: two fast searches rule out most
	// tokens before the quadratic one.
	if h := len(name) / 2; !strings.Contains(s, name[:h]) && !strings.Contains(s, name[h:]) {
		return false
	}
	for n := low; n <= len(name)+1; n++ {
		for i := 0; i+n <= len(s); i++ {
			if i > 0 && i+n < len(s) {
				// Inside a longer word (sagewa in messagewall, resoni in
				// firesonic): chance. Look-alikes lead or end a token
				// (amozonjp, secureamozon).
				continue
			}
			if w := s[i : i+n]; editDistanceAtMost1(w, name) && !ordinaryWords[w] {
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
	org, _ := suffixParts(domain)
	return org
}

// withoutSuffix drops the public suffix: "amazon.co.jp.evil.test" gives
// "amazon.co.jp.evil", where look-alikes hide.
func withoutSuffix(domain string) string {
	_, without := suffixParts(domain)
	return without
}

// suffixParts returns registered(domain) and withoutSuffix(domain) from
// one walk of the public suffix list.
func suffixParts(domain string) (org, without string) {
	org, suffix := RegisteredSuffix(domain)
	if d := strings.ToLower(strings.TrimSuffix(domain, ".")); suffix != d {
		without = strings.TrimSuffix(d, "."+suffix)
	}
	return org, without
}

// RegisteredSuffix returns a domain's registered (organizational) domain
// as publicsuffix.EffectiveTLDPlusOne derives it, or the name itself
// when that has none, and its public suffix, from one walk of the list
// and without the errors EffectiveTLDPlusOne allocates; the name is read
// in lower case, without a final dot.
func RegisteredSuffix(domain string) (org, suffix string) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	suffix, _ = publicsuffix.PublicSuffix(d)
	org = d
	// EffectiveTLDPlusOne refuses a name with an empty label.
	if !strings.HasPrefix(d, ".") && !strings.HasSuffix(d, ".") && !strings.Contains(d, "..") && len(d) > len(suffix) {
		if i := len(d) - len(suffix) - 1; d[i] == '.' {
			org = d[1+strings.LastIndexByte(d[:i], '.'):]
		}
	}
	return org, suffix
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
