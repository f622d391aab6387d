package migrate

import (
	"fmt"
	"strings"
	"testing"

	"mailwall/internal/lists"
)

// TestReadAccess reads access(5) keys and actions as each table means
// them.
func TestReadAccess(t *testing.T) {
	const table = `# comment
192.0.2.1        OK
198.51.100       REJECT
203.0.113.0/24   550 no thanks
[2001:db8::1]    OK
example.com      OK
@spam.example    REJECT
user@mail.example 250 ok
postmaster@      OK
mx.example.net   DUNNO
slow.example     450 later
held.example     HOLD
bad key          OK
continued.example
  REJECT spanning lines
`
	for _, tc := range []struct {
		as      AccessTable
		want    []string
		skipped int
	}{
		{SenderAccess, []string{"allow ip 192.0.2.1/32", "block ip 198.51.100.0/24", "block ip 203.0.113.0/24", "allow ip 2001:db8::1/128",
			"allow domain example.com", "block domain spam.example", "allow sender user@mail.example", "block domain continued.example"}, 5},
		{ClientAccess, []string{"allow ip 192.0.2.1/32", "block ip 198.51.100.0/24", "block ip 203.0.113.0/24", "allow ip 2001:db8::1/128"}, 9},
		{RecipientAccess, []string{"allow ip 192.0.2.1/32", "block ip 198.51.100.0/24", "block ip 203.0.113.0/24", "allow ip 2001:db8::1/128",
			"allow rcpt user@mail.example"}, 8},
	} {
		im, err := ReadAccess(strings.NewReader(table), "access", tc.as)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range im.Entries {
			got = append(got, fmt.Sprintf("%s %s %s", e.List, e.Kind, e.Value))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || len(im.Skipped) != tc.skipped {
			t.Errorf("%s: got %q\nwant %q\nskipped %d: %q", tc.as, got, tc.want, len(im.Skipped), im.Skipped)
		}
	}
	im, _ := ReadAccess(strings.NewReader("203.0.113.0/24 550 no thanks\n"), "t", ClientAccess)
	if len(im.Entries) != 1 || im.Entries[0].Note != "postfix client access t: no thanks" || im.Entries[0].List != lists.Block {
		t.Errorf("note: %+v", im.Entries)
	}
}

// FuzzReadAccess: any table reads without error or panic, and every
// entry it gives is one the store accepts as it is (normalized, on a
// list).
func FuzzReadAccess(f *testing.F) {
	f.Add("192.0.2.1 OK\n198.51.100 REJECT\n@spam.example 550 no\nuser@ OK\ncont.example\n  REJECT x\n")
	f.Add("[2001:db8::1] OK\n2001:db8::/32 REJECT\n1.2.3.4/33 OK\n\x00 OK\n")
	f.Fuzz(func(t *testing.T, table string) {
		for _, as := range []AccessTable{ClientAccess, SenderAccess, RecipientAccess} {
			im, err := ReadAccess(strings.NewReader(table), "fuzz", as)
			if err != nil {
				return // a line over the scanner's 1 MB
			}
			for _, e := range im.Entries {
				v, err := lists.Normalize(e.Kind, e.Value)
				if err != nil || v != e.Value || (e.List != lists.Allow && e.List != lists.Block) {
					t.Fatalf("%s: entry %+v: %q %v", as, e, v, err)
				}
			}
		}
	})
}
