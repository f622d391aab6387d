package dkim

import (
	"hash"
	"slices"
)

// BodyHashes hashes one message's body for several signatures at once:
// signatures with the same hash and body canonicalization share one
// canonicalization and one hash pass, and an l= takes the hash of the
// prefix where it ends (Sum leaves a hash's state as it is). Before issue
// 23 each signature hashed the body on its own: ten DKIM signatures and
// fifty ARC sets made sixty passes over a 10 MB body; now at most one per
// hash and canonicalization, four in all.
type BodyHashes struct {
	streams []*bodyStream
}

// bodyStream is one canonicalization feeding one hash.
type bodyStream struct {
	alg, canon string
	body       bodyHasher // writes to h
	h          prefixHash
	done       bool
	final      []byte
}

// prefixHash is a hash that records its sum at the given lengths.
type prefixHash struct {
	hash.Hash
	n    int64
	cuts []int64 // lengths still to record, ascending
	sums map[int64][]byte
}

func (p *prefixHash) Write(b []byte) (int, error) {
	written := len(b)
	for len(p.cuts) > 0 && p.cuts[0] <= p.n+int64(len(b)) {
		k := p.cuts[0] - p.n
		p.Hash.Write(b[:k])
		p.n += k
		b = b[k:]
		p.sums[p.cuts[0]] = p.Hash.Sum(nil)
		p.cuts = p.cuts[1:]
	}
	p.Hash.Write(b)
	p.n += int64(len(b))
	return written, nil
}

// BodyHashID names one signature's hash in a BodyHashes.
type BodyHashID struct {
	s     *bodyStream
	limit int64
}

// Add asks for the body hash of a signature with algorithm alg, body
// canonicalization canon and l= limit (-1 without); call it before the
// first Write.
func (bs *BodyHashes) Add(alg, canon string, limit int64) BodyHashID {
	// rsa-sha256 and ed25519-sha256 hash the body alike.
	hashAlg := RSASHA256
	if alg == RSASHA1 {
		hashAlg = RSASHA1
	}
	var s *bodyStream
	for _, x := range bs.streams {
		if x.alg == hashAlg && x.canon == canon {
			s = x
		}
	}
	if s == nil {
		// One allocation for the stream, its hasher and its hash wrapper.
		s = &bodyStream{alg: hashAlg, canon: canon, h: prefixHash{Hash: newHash(hashAlg)}}
		s.body = *newBodyHasher(&s.h, canon, -1)
		bs.streams = append(bs.streams, s)
	}
	if limit >= 0 {
		if i, found := slices.BinarySearch(s.h.cuts, limit); !found {
			s.h.cuts = slices.Insert(s.h.cuts, i, limit)
		}
		if s.h.sums == nil {
			s.h.sums = map[int64][]byte{}
		}
	}
	return BodyHashID{s: s, limit: limit}
}

// Write feeds body octets to every stream.
func (bs *BodyHashes) Write(p []byte) (int, error) {
	for _, s := range bs.streams {
		s.body.Write(p)
	}
	return len(p), nil
}

// Sum ends the body (on the first call for its stream) and returns the
// hash for id and the length of the canonical body, all of it, past any
// l=. A limit past the body's end gets the whole body's hash; the caller
// sees from the length that the body is shorter than l=.
func (bs *BodyHashes) Sum(id BodyHashID) (sum []byte, length int64) {
	s := id.s
	if !s.done {
		s.done = true
		s.final = s.body.Sum()
	}
	if id.limit >= 0 {
		if sum, ok := s.h.sums[id.limit]; ok {
			return sum, s.body.written
		}
	}
	return s.final, s.body.written
}
