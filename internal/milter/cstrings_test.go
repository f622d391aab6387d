package milter

import (
	"slices"
	"testing"
)

// TestCstrings: a packet's NUL-terminated strings, the last one with or
// without its NUL, empty ones kept; cpair gives the first two, "" for
// those missing, as the header command reads a field.
func TestCstrings(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      []string
		name, val string
	}{
		{"", nil, "", ""},
		{"\x00", []string{""}, "", ""},
		{"Subject\x00", []string{"Subject"}, "Subject", ""},
		{"Subject\x00 hello\x00", []string{"Subject", " hello"}, "Subject", " hello"},
		{"Subject\x00 hello", []string{"Subject", " hello"}, "Subject", " hello"},
		{"a\x00\x00c\x00", []string{"a", "", "c"}, "a", ""},
		{"From\x00 a@b\x00extra\x00", []string{"From", " a@b", "extra"}, "From", " a@b"},
	} {
		if got := cstrings([]byte(tc.in)); !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) || cap(got) != len(got) {
			t.Errorf("cstrings(%q) = %q (cap %d), want %q", tc.in, got, cap(got), tc.want)
		}
		if name, val := cpair([]byte(tc.in)); name != tc.name || val != tc.val {
			t.Errorf("cpair(%q) = %q, %q; want %q, %q", tc.in, name, val, tc.name, tc.val)
		}
	}
}
