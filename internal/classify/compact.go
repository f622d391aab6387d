package classify

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// The compact encoding of a Bayes model, for shipping one (the starter
// model is embedded in the binary): only the buckets in use, their
// indices as differences from the one before and every number a varint,
// in columns (all the index steps, then all the junk counts, then all the
// ham counts: runs of small numbers compress best), the whole deflated.
//
//	"MWCZ" version(1)                          plain
//	deflate(
//	  bits(1) uvarint(nJunk) uvarint(nHam) uvarint(MinCount)
//	  float64(MinStrength) uvarint(MaxClues) uvarint(count)
//	  uvarint(step)*count uvarint(junk)*count uvarint(ham)*count)
//
// The same model gives the same bytes (a fixed deflate level, no time
// stamp), so that make model can be checked against the committed file.
const (
	compactMagic   = "MWCZ"
	compactVersion = 1
)

// IsCompact reports whether b starts like EncodeCompact's output.
func IsCompact(b []byte) bool { return len(b) >= 5 && string(b[:4]) == compactMagic }

// EncodeCompact writes m in the compact encoding.
func EncodeCompact(m *Bayes) ([]byte, error) {
	m.densify()
	var raw []byte
	raw = append(raw, m.bits)
	raw = binary.AppendUvarint(raw, m.nJunk)
	raw = binary.AppendUvarint(raw, m.nHam)
	raw = binary.AppendUvarint(raw, uint64(m.MinCount))
	raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(m.MinStrength))
	raw = binary.AppendUvarint(raw, uint64(m.MaxClues))
	var steps, junk, ham []byte
	count, last := uint64(0), -1
	for i, b := range m.table {
		if b.junk == 0 && b.ham == 0 {
			continue
		}
		steps = binary.AppendUvarint(steps, uint64(i-last))
		junk = binary.AppendUvarint(junk, uint64(b.junk))
		ham = binary.AppendUvarint(ham, uint64(b.ham))
		count++
		last = i
	}
	raw = binary.AppendUvarint(raw, count)
	raw = append(append(append(raw, steps...), junk...), ham...)

	var out bytes.Buffer
	out.WriteString(compactMagic)
	out.WriteByte(compactVersion)
	zw, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("classify: compact model: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("classify: compact model: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("classify: compact model: %w", err)
	}
	return out.Bytes(), nil
}

var errCompact = errors.New("classify: not a compact model, or a damaged one")

// DecodeCompact reads what EncodeCompact wrote. What it inflates is
// bounded by the table the header announces (at most 31 octets a
// bucket), so a small file cannot make it allocate more than a model.
func DecodeCompact(b []byte) (*Bayes, error) { return decodeCompact(b, false) }

// decodeCompact is DecodeCompact; prune keeps only the buckets that can
// be clues (counted at least MinCount times, and far enough from 0.5:
// with the model's message counts fixed, each bucket's probability is
// too): the starter model's 556,000 buckets in use are 171,000 so,
// 3 MB instead of a dense 16. Such a model is for classifying only:
// learning into it would start from the pruned counts.
func decodeCompact(b []byte, prune bool) (*Bayes, error) {
	if !IsCompact(b) {
		return nil, errCompact
	}
	if b[4] != compactVersion {
		return nil, fmt.Errorf("classify: compact model version %d, want %d", b[4], compactVersion)
	}
	// Read as a stream, never inflated whole: the starter model is read
	// at every start and reload, and its inflated bytes were garbage
	// twice its size.
	limit := int64(64 + 31<<maxBits)
	lr := &io.LimitedReader{R: flate.NewReader(bytes.NewReader(b[5:])), N: limit + 1}
	br := bufio.NewReaderSize(lr, 32<<10)
	bits, err := br.ReadByte()
	if err != nil {
		return nil, errCompact
	}
	if bits < minBits || bits > maxBits {
		return nil, fmt.Errorf("classify: compact model of 2^%d buckets, want 2^%d to 2^%d", bits, minBits, maxBits)
	}
	bad := false
	uv := func() uint64 {
		v, err := binary.ReadUvarint(br)
		if err != nil {
			bad = true
			return 0
		}
		return v
	}
	m := &Bayes{bits: bits}
	m.nJunk, m.nHam = uv(), uv()
	minCount := uv()
	var f [8]byte
	if _, err := io.ReadFull(br, f[:]); err != nil {
		return nil, errCompact
	}
	m.MinStrength = math.Float64frombits(binary.LittleEndian.Uint64(f[:]))
	maxClues, count := uv(), uv()
	size := uint64(1) << bits
	if bad || minCount > math.MaxUint32 || !(m.MinStrength >= 0 && m.MinStrength < 0.5) || maxClues > MaxFeatures || count > size {
		return nil, errCompact
	}
	m.MinCount, m.MaxClues = uint32(minCount), int(maxClues)
	idx := make([]uint32, count)
	next := uint64(0)
	for k := range idx {
		step := uv()
		if bad || step == 0 || step > size || next+step > size {
			return nil, errCompact
		}
		next += step
		idx[k] = uint32(next - 1)
	}
	// Read only, as a model file is used: sparse (sparse.go). Learning
	// into it makes it dense.
	vals := make([]bayesBucket, len(idx))
	for _, side := range []func(*bayesBucket, uint32){
		func(b *bayesBucket, v uint32) { b.junk = v },
		func(b *bayesBucket, v uint32) { b.ham = v },
	} {
		for k := range idx {
			v := uv()
			if bad || v > math.MaxUint32 {
				return nil, errCompact
			}
			side(&vals[k], uint32(v))
		}
	}
	// Nothing may follow, and the stream must have ended within limit.
	if _, err := br.ReadByte(); err != io.EOF || lr.N <= 0 {
		return nil, errCompact
	}
	keep := func(b bayesBucket) bool {
		if !prune {
			return true
		}
		_, ok := m.clue(b, m.nJunk, m.nHam) // counted enough, and not near 0.5
		return ok
	}
	n := 0
	for _, b := range vals {
		if keep(b) {
			n++
		}
	}
	m.sparse = newSparseBuckets(n)
	for k, i := range idx {
		if keep(vals[k]) {
			m.sparse.set(i, vals[k])
		}
	}
	return m, nil
}
