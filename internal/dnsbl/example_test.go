package dnsbl_test

import (
	"fmt"

	"mailwall/internal/dnsbl"
)

func ExampleParseSites() {
	sites, err := dnsbl.ParseSites("zen.spamhaus.org=127.0.0.[2..11]*3, list.dnswl.org=127.0.[0..255].[2..3]*-4 b.barracudacentral.org*2 bl.spamcop.net")
	if err != nil {
		panic(err)
	}
	for _, s := range sites {
		filter := "any answer"
		if s.Filter != nil {
			filter = s.Filter.String()
		}
		fmt.Printf("%-24s filter %-22s weight %d\n", s.Zone, filter, s.Weight)
	}
	// Output:
	// zen.spamhaus.org         filter 127.0.0.[2..11]        weight 3
	// list.dnswl.org           filter 127.0.[0..255].[2..3]  weight -4
	// b.barracudacentral.org   filter any answer             weight 2
	// bl.spamcop.net           filter any answer             weight 1
}
