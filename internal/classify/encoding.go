package classify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A serialized model, little-endian:
//
//	"MWCL" version(1) kind(1) bits(1)  the header
//	parameters                          fixed per kind
//	count(4) {index(4) a(4) b(4)}...    the buckets in use, by index
//
// Only buckets in use are written: a model trained on a few thousand
// messages fills a few percent of its table.
const (
	modelMagic   = "MWCL"
	modelVersion = 1
	kindFTRL     = 1
	kindBayes    = 2
)

var errModelFormat = errors.New("classify: not a model, or a damaged one")

type modelWriter struct{ b []byte }

func newModelWriter(kind byte, bits uint8) *modelWriter {
	return &modelWriter{b: append([]byte(modelMagic), modelVersion, kind, bits)}
}

func (w *modelWriter) uint64(v uint64)   { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *modelWriter) float64(v float64) { w.uint64(math.Float64bits(v)) }

// buckets writes the buckets of a table of size n for which get says
// they are in use.
func (w *modelWriter) buckets(n int, get func(i int) (a, b uint32, used bool)) {
	countAt := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0)
	count := uint32(0)
	for i := range n {
		a, b, used := get(i)
		if !used {
			continue
		}
		w.b = binary.LittleEndian.AppendUint32(w.b, uint32(i))
		w.b = binary.LittleEndian.AppendUint32(w.b, a)
		w.b = binary.LittleEndian.AppendUint32(w.b, b)
		count++
	}
	binary.LittleEndian.PutUint32(w.b[countAt:], count)
}

type modelReader struct {
	b    []byte
	bits uint8
	err  error
}

func newModelReader(b []byte, kind byte) (*modelReader, error) {
	if len(b) < 7 || string(b[:4]) != modelMagic {
		return nil, errModelFormat
	}
	if b[4] != modelVersion {
		return nil, fmt.Errorf("classify: model version %d, want %d", b[4], modelVersion)
	}
	if b[5] != kind {
		return nil, fmt.Errorf("classify: model kind %d, want %d", b[5], kind)
	}
	if b[6] < minBits || b[6] > maxBits {
		return nil, fmt.Errorf("classify: model of 2^%d buckets, want 2^%d to 2^%d", b[6], minBits, maxBits)
	}
	return &modelReader{b: b[7:], bits: b[6]}, nil
}

func (r *modelReader) uint64() uint64 {
	if len(r.b) < 8 {
		r.err = errModelFormat
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *modelReader) float64() float64 { return math.Float64frombits(r.uint64()) }

// buckets reads the buckets, each handed to set; indices must rise and
// fit the table.
func (r *modelReader) buckets(set func(i, a, b uint32) error) error {
	if r.err != nil || len(r.b) < 4 {
		return errModelFormat
	}
	count := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	if uint64(count) > 1<<r.bits || uint64(len(r.b)) != 12*uint64(count) {
		return errModelFormat
	}
	next := uint32(0)
	for range count {
		i := binary.LittleEndian.Uint32(r.b)
		if i < next || uint64(i) >= 1<<r.bits {
			return errModelFormat
		}
		if err := set(i, binary.LittleEndian.Uint32(r.b[4:]), binary.LittleEndian.Uint32(r.b[8:])); err != nil {
			return err
		}
		next = i + 1
		r.b = r.b[12:]
	}
	return nil
}

// UnmarshalModel restores a model of any kind from MarshalBinary's
// bytes.
func UnmarshalModel(b []byte) (Model, error) {
	if len(b) < 7 || string(b[:4]) != modelMagic {
		return nil, errModelFormat
	}
	var m Model
	switch b[5] {
	case kindFTRL:
		m = &FTRL{}
	case kindBayes:
		m = &Bayes{}
	default:
		return nil, fmt.Errorf("classify: unknown model kind %d", b[5])
	}
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return m, nil
}
