package dkim

import (
	"io"
	"strings"
)

// MaxSignedHeaders is the most names an h= tag may list (DKIM-Signature
// and ARC-Message-Signature). Real signers list fewer than 30, over-signed
// names included; past this the signature is a permerror, not work.
const MaxSignedHeaders = 256

// HeaderIndex selects the fields an h= tag signs in time linear in the
// number of fields. The fields are indexed once per message by lower-case
// name, for the names some h= lists; each hash then takes, name by name,
// the last instance of that name it has not used yet (RFC 6376 §5.4.2).
// Looking each name up by a scan of all the fields cost names x fields:
// 25,000 names over 200,000 fields was 54 s of CPU.
type HeaderIndex struct {
	fields []Field
	slot   map[string]int // lower-case name -> index into byName
	byName [][]int        // positions in fields, top to bottom
	buf    []byte
}

// NewHeaderIndex returns an index over fields; names are added by Want or
// by the first Hash that needs them.
func NewHeaderIndex(fields []Field) *HeaderIndex {
	return &HeaderIndex{fields: fields}
}

// smallHeader is the most fields Hash scans instead of indexing: up to
// it, a scan per name costs less than building the index (most mail has
// 10 to 30 fields), and with h= capped stays linear in the names.
const smallHeader = 64

// Want indexes the names not indexed yet, in one pass over the fields.
// Giving every signature's names up front makes that one pass in all.
func (ix *HeaderIndex) Want(names []string) {
	if len(ix.fields) <= smallHeader {
		return
	}
	if ix.slot == nil {
		ix.slot = make(map[string]int)
	}
	first := len(ix.byName)
	for _, n := range names {
		if _, ok := ix.slot[string(ix.lower(n))]; !ok {
			ix.slot[string(ix.buf)] = len(ix.byName)
			ix.byName = append(ix.byName, nil)
		}
	}
	if len(ix.byName) == first {
		return
	}
	for i, f := range ix.fields {
		// Only the names added now: the others have their fields.
		if j, ok := ix.slot[string(ix.lower(f.Name))]; ok && j >= first {
			ix.byName[j] = append(ix.byName[j], i)
		}
	}
}

// lower returns name in ASCII lower case, in a buffer reused by the next
// call: field names are ASCII (RFC 5322 §3.6.8) and compared without case.
func (ix *HeaderIndex) lower(name string) []byte {
	ix.buf = ix.buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		ix.buf = append(ix.buf, c)
	}
	return ix.buf
}

// Hash computes the hash of the signed header fields and of the signature
// field itself (RFC 6376 §3.7; an ARC-Message-Signature the same, RFC 8617
// §5.1.2): for each name in headers, the last instance not yet used,
// bottom up; names with no instance left add nothing. The signature field
// is hashed with its b= emptied and without its CRLF.
func (ix *HeaderIndex) Hash(sigField Field, alg, canon string, headers []string) []byte {
	h := newHash(alg)
	if len(ix.fields) <= smallHeader {
		var used uint64 // bit i: fields[i] taken
		for _, name := range headers {
			for i := len(ix.fields) - 1; i >= 0; i-- {
				if used&(1<<i) == 0 && equalFoldASCII(ix.fields[i].Name, name) {
					used |= 1 << i
					io.WriteString(h, canonHeader(ix.fields[i], canon))
					break
				}
			}
		}
	} else {
		ix.Want(headers)
		used := make([]int, len(ix.byName)) // instances taken, per name
		for _, name := range headers {
			j := ix.slot[string(ix.lower(name))]
			list := ix.byName[j]
			if n := used[j]; n < len(list) {
				used[j] = n + 1
				io.WriteString(h, canonHeader(ix.fields[list[len(list)-1-n]], canon))
			}
		}
	}
	s := canonHeader(Field{Name: sigField.Name, Raw: withoutB(sigField.Raw)}, canon)
	io.WriteString(h, strings.TrimSuffix(s, "\r\n"))
	return h.Sum(nil)
}

// equalFoldASCII compares field names as HeaderIndex does: ASCII letters
// without case, other octets exactly.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// HeaderHash is Hash over fields indexed for this one signature.
func HeaderHash(fields []Field, sigField Field, alg, canon string, headers []string) []byte {
	return NewHeaderIndex(fields).Hash(sigField, alg, canon, headers)
}
