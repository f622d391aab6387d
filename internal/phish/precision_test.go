package phish

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// TestPrecision holds the misfires of issue 24 (item 2) as hand-written
// messages: each must stay quiet, and the phishing beside it must not.
func TestPrecision(t *testing.T) {
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Content rules only, as the shared corpus measures them: nothing
	// authenticated, no DMARC record.
	none := Input{SPF: "none"}
	tests := []struct {
		name string
		raw  string
		in   Input
		want []string
	}{
		{
			name: "newsletter links through its own click tracker to its sister sites",
			raw: "From: CNET Shopper <newsletter@news.online.example.com>\nContent-Type: text/html\n\n" +
				`<a href="http://clickthru.online.example.com/Click?q=1">news.com</a> <a href="http://clickthru.online.example.com/Click?q=2">www.shopper.com</a>` + "\n",
			in: none,
		},
		{
			name: "newsletter through a mail service's click tracker",
			raw: "From: Shop <news@shop.example>\nContent-Type: text/html\n\n" +
				`<a href="https://u123.ct.sendgrid.net/ls/click?upn=x">www.partner-store.com</a> <a href="https://shop.us1.list-manage.com/track/click?u=1">https://blog.example.org/</a>` + "\n",
			in: none,
		},
		{
			name: "links through the DKIM signer's own redirector",
			raw: "From: Events <events@conference.example>\nContent-Type: text/html\n\n" +
				`<a href="https://links.mailer.example.net/c/1">www.venue-hotel.com</a>` + "\n",
			in: Input{SPF: "pass", DKIMPass: []string{"bounce.mailer.example.net"}},
		},
		{
			name: "ASP.NET is a product, not a host",
			raw:  "From: Dev Digest <digest@devnews.example>\nContent-Type: text/html\n\n" + `<a href="https://articles.example.org/42">What is new in ASP.NET</a> <a href="https://articles.example.org/43">Node.JS tips</a>` + "\n",
			in:   none,
		},
		{
			name: "file names are not hosts",
			raw:  "From: Billing <billing@vendor.example>\nContent-Type: text/html\n\n" + `<a href="https://files.example.org/d/1">invoice-2024.pdf</a>` + "\n",
			in:   none,
		},
		{
			name: "finance.yahoo.com is not binance",
			raw:  "From: Friend <friend@isp.example>\n\nSee http://finance.yahoo.com/q?s=IBM and http://rss.finance.yahoo.com/\n",
			in:   none,
		},
		{
			name: "Outlook add-in vendor is not Microsoft",
			raw:  "From: Gnome Digest <digest@lockergnome.example>\n\nhttp://outlook.4team.biz/ and http://www.outlooksecure.com/\n",
			in:   none,
		},
		{
			name: "cloud is not icloud",
			raw:  "From: Cloud Team <team@cloudmark.com>\n\nhttp://cloud.leaseweb.net/\n",
			in:   none,
		},
		{
			name: "Yahoo's country domains are Yahoo's",
			raw:  "From: Someone <someone@yahoo.co.uk>\n\nhttp://uk.news.yahoo.com/ http://digital.yahoo.com.au/\n",
			in:   none,
		},
		{
			name: "Google's and Amazon's country, short-link and CDN domains",
			raw:  "From: Google <no-reply@google.de>\n\nhttps://goo.gl/x https://android.googlesource.com/ https://www.googletagmanager.com/ https://amzn.to/abc\n",
			in:   none,
		},
		{
			name: "PayPal is not a look-alike of PayPay",
			raw:  "From: Shop <shop@store.example>\n\nPay at https://www.paypal.com/checkout\n",
			in:   none,
		},
		{
			name: "start-ups and follow-ups are not UPS",
			raw:  "From: Start-ups Weekly <news@founders.example>\nSubject: Follow-ups\n\nStart-ups and pick-ups: https://founders.example/\n",
			in:   none,
		},
		{
			name: "a forwarding service's alias: the newsletter's address in the display name, links through its redirector",
			raw: "From: \"Dev Newsletter news@devsite.example [alias/devsite.example]\" <ticket_x1@forwarder.example>\nContent-Type: text/html\n\n" +
				`<a href="http://lists.devsite.example/t?1">www.partner-one.example.com</a> <a href="http://lists.devsite.example/t?2">www.partner-two.example.org</a>` + "\n",
			in:   none,
			want: []string{DisplayNameAddress},
		},
		{
			name: "phishing: UPS first in a compound is UPS",
			raw:  "From: UPS-Zustellung <paket@zustell-info.example>\n\nIhr Paket wartet.\n",
			in:   none,
			want: []string{BrandDisplayName, DMARCNoneBrand},
		},
		{
			name: "phishing: the display name's address elsewhere, a brand's site shown",
			raw: "From: \"service@paypal.com\" <alert@evil-host.example>\nContent-Type: text/html\n\n" +
				`<a href="http://paypal.com.evil-host.example/x">https://www.paypal.com/signin</a>` + "\n",
			in:   none,
			want: []string{BrandDisplayName, DisplayNameAddress, DMARCNoneBrand, URLBrandLookalike, URLTextMismatch},
		},
		{
			name: "a mailing list that sets Reply-To to itself (List-Post)",
			raw:  "From: Ann <ann@uni.example>\nReply-To: users@lists.project.example\nList-Post: <mailto:users@lists.project.example>\n\nA question for the list.\n",
			in:   none,
		},
		{
			name: "a mailing list that sets Reply-To to itself (List-Id)",
			raw:  "From: Ann <ann@uni.example>\nReply-To: Users <users@groups.example.org>\nList-Id: The users list <users.groups.example.org>\n\nA question for the list.\n",
			in:   none,
		},
		{
			name: "Reply-To elsewhere than the list the message claims",
			raw:  "From: Ann <ann@uni.example>\nReply-To: payout@claims.example\nList-Id: <users.groups.example.org>\nList-Post: <mailto:users@groups.example.org>\n\nSend your details.\n",
			in:   none,
			want: []string{ReplyToOtherOrg},
		},
		{
			name: "a brand's own mail, signed by the brand",
			raw:  "From: PayPal <service@paypal.com>\n\nYour receipt.\n",
			in:   Input{DMARC: "none", DKIMPass: []string{"paypal.com"}, SPF: "none"},
		},
		{
			name: "a brand's own mail from its own servers (SPF), no DKIM",
			raw:  "From: PayPal <service@paypal.com>\n\nYour receipt.\n",
			in:   Input{DMARC: "none", SPF: "pass", SPFDomain: "mail.paypal.com"},
		},
		{
			name: "a brand's domain with DMARC not evaluated (offline) says nothing",
			raw:  "From: PayPal <service@paypal.com>\n\nYour receipt.\n",
			in:   none,
		},
		{
			name: "a brand's domain failing an enforcing DMARC policy is DMARC's to judge",
			raw:  "From: PayPal <service@paypal.com>\n\nYour receipt.\n",
			in:   Input{DMARC: "fail", DMARCPolicy: "reject", SPF: "fail"},
			want: []string{AuthDMARCFail, AuthSPFFail},
		},
		{
			name: "phishing: a brand's own domain forged, no DMARC record",
			raw:  "From: PayPal <service@paypal.com>\n\nVerify your account.\n",
			in:   Input{DMARC: "none", SPF: "softfail", SPFDomain: "bulk.example"},
			want: []string{AuthSPFFail, BrandDomainSpoof},
		},
		{
			name: "phishing: a brand's subdomain forged, DMARC p=none",
			raw:  "From: Amazon <no-reply@account.amazon.co.jp>\n\nVerify your account.\n",
			in:   Input{DMARC: "fail", DMARCPolicy: "none", SPF: "none"},
			want: []string{AuthDMARCFail, BrandDomainSpoof},
		},
		{
			name: "phishing: a brand's site shown, the link goes to the sender's own domain",
			raw: "From: Amazon <account@desctrl.example>\nContent-Type: text/html\n\n" +
				`<a href="http://desctrl.example/signin">https://www.amazon.co.jp/gp/css/homepage.html</a>` + "\n",
			in:   none,
			want: []string{BrandDisplayName, DMARCNoneBrand, URLTextMismatch},
		},
		{
			name: "phishing: a brand's site shown through a mail service's tracker",
			raw: "From: Support <support@helpdesk.example>\nContent-Type: text/html\n\n" +
				`<a href="https://u1.ct.sendgrid.net/ls/click?x">https://www.paypal.com/signin</a>` + "\n",
			in:   none,
			want: []string{DMARCNoneBrand, URLTextMismatch},
		},
		{
			name: "phishing: Outlook in the registered label",
			raw:  "From: Mail Admin <admin@outlook-verify.example>\n\nhttps://outlook-verify.example/login\n",
			in:   none,
			want: []string{BrandFromDomain, DMARCNoneBrand, URLBrandLookalike},
		},
		{
			name: "phishing: a carrier and a wallet",
			raw:  "From: USPS Delivery <track@parcel-notice.example>\n\nhttps://metamask-wallet.example/restore\n",
			in:   none,
			want: []string{BrandDisplayName, DMARCNoneBrand, URLBrandLookalike},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.ClientIP = netip.MustParseAddr("192.0.2.10")
			in.Fields, in.Body = msg(t, tc.raw)
			r := c.Check(context.Background(), in)
			var got []string
			for _, h := range r.Hits {
				if h.Rule != AuthNone {
					got = append(got, h.Rule)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules %v, want %v", got, tc.want)
				for _, h := range r.Hits {
					t.Logf("  %s (%d): %s", h.Rule, h.Weight, h.Detail)
				}
			}
		})
	}
}

func TestBrandPrecision(t *testing.T) {
	ix := newBrandIndex(DefaultBrands())
	for _, tc := range []struct {
		s    string
		host bool
		want string // brand, "" for none
	}{
		{"finance", false, ""},
		{"Lido Finance", false, ""},
		{"yahoofinance", false, ""},
		{"Cloud Support", false, ""},
		{"cloudmark", false, ""},
		{"messagewall", false, ""},
		{"firesonic", false, ""},
		{"paypal", false, "paypal"},
		{"Outlook Web Access", false, "microsoft"},
		{"outlooksecure", false, ""},
		{"MetaMask Inc", false, "metamask"},
		{"Tim Hortons", false, ""},
		{"Books, etc.", false, ""},
		{"ETC利用照会サービス", false, "etcmeisai"},
		{"JR西日本 e5489", false, "jrwest"},
		{"Norton Security", false, "norton"},
		{"outlook.4team.biz", true, ""},
		{"outlook-login.example", true, "microsoft"},
		{"outlook.mail-tools.example.com", true, ""},
		{"paypal.secure-login.example", true, "paypal"},
		{"binance.com", true, "binance"},
		{"finance.yahoo.com", true, "yahoo"},
	} {
		var ms []brandMatch
		if tc.host {
			ms = ix.matchHost(tc.s)
		} else {
			ms = ix.match(tc.s, true)
		}
		got := ""
		if len(ms) > 0 {
			got = ix.brands[ms[0].brand].Name
		}
		if got != tc.want || len(ms) > 1 {
			t.Errorf("%q: %v, want %s", tc.s, ms, tc.want)
		}
	}
	owned := map[string]string{
		"yahoo.co.uk": "yahoo", "news.yahoo.com.au": "yahoo", "google.de": "google", "android.googlesource.com": "google",
		"goo.gl": "google", "amzn.to": "amazon", "amazon.com.au": "amazon", "1drv.ms": "microsoft", "lnkd.in": "linkedin",
	}
	for d, brand := range owned {
		i := slices.IndexFunc(ix.brands, func(b Brand) bool { return b.Name == brand })
		if !ix.owns(i, d) {
			t.Errorf("%s is not %s's", d, brand)
		}
	}
}

func TestShownHost(t *testing.T) {
	for text, want := range map[string]string{
		"www.amazon.co.jp":                   "www.amazon.co.jp",
		"https://www.amazon.co.jp/gp/signin": "www.amazon.co.jp",
		"Amazon.com":                         "amazon.com",
		"ASP.NET":                            "",
		"http://ASP.NET/":                    "asp.net",
		"invoice.pdf":                        "",
		"www.futuresoftindiacom":             "",
		"click here":                         "",
	} {
		if got := shownHost(text); got != want {
			t.Errorf("%q: %q, want %q", text, got, want)
		}
	}
}

func TestOwnDomainImpersonation(t *testing.T) {
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rcpts := []string{"alice@corp.example.com"}
	tests := []struct {
		name string
		from string
		in   Input
		want bool
	}{
		{"fake administrator in the recipient's domain, nothing passes", `"Mail Administrator" <postmaster@corp.example.com>`, Input{Rcpts: rcpts, SPF: "softfail", DMARC: "none"}, true},
		{"a subdomain of the recipient's organization", `"IT Helpdesk" <it@mail.example.com>`, Input{Rcpts: rcpts, SPF: "none"}, true},
		{"display name claims the domain, address elsewhere", `"example.com Mailbox Quota" <alert@quota-notice.example.net>`, Input{Rcpts: rcpts, SPF: "pass", SPFDomain: "quota-notice.example.net"}, true},
		{"display name ends a sentence with the domain", `"Password expiry for example.com." <alert@quota-notice.example.net>`, Input{Rcpts: []string{"<alice@corp.example.com>"}}, true},
		{"colleague, DMARC passes", `"Bob" <bob@corp.example.com>`, Input{Rcpts: rcpts, SPF: "pass", SPFDomain: "corp.example.com", DMARC: "pass"}, false},
		{"colleague, aligned DKIM without DMARC record", `"Bob" <bob@corp.example.com>`, Input{Rcpts: rcpts, DKIMPass: []string{"example.com"}, DMARC: "none"}, false},
		{"colleague, aligned SPF", `"Bob" <bob@example.com>`, Input{Rcpts: rcpts, SPF: "pass", SPFDomain: "bounces.example.com", DMARC: "none"}, false},
		{"another organization", `"Newsletter" <news@shop.example.net>`, Input{Rcpts: rcpts, SPF: "none"}, false},
		{"display name with a longer domain", `"notexample.com team" <a@shop.example.net>`, Input{Rcpts: rcpts}, false},
		{"no recipients known", `"Mail Administrator" <postmaster@corp.example.com>`, Input{SPF: "fail"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Fields, in.Body = msg(t, "From: "+tc.from+"\nSubject: Your mailbox is full\n\nVerify your account.\n")
			r := c.Check(context.Background(), in)
			got := slices.ContainsFunc(r.Hits, func(h Hit) bool { return h.Rule == OwnDomain })
			if got != tc.want {
				t.Errorf("own_domain_impersonation %v, want %v: %v", got, tc.want, r.Rules())
			}
		})
	}
}
