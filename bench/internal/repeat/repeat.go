// Package repeat summarises the repeated runs of one benchmark row: the
// harnesses run each row several times, the servers under test taking
// turns, and print the median run with the range of rates.
package repeat

import (
	"cmp"
	"slices"
)

// Median returns the run with the median rate, and the lowest and the
// highest rate of all. rs must not be empty; it is not changed.
func Median[R any](rs []R, rate func(R) float64) (median R, lowest, highest float64) {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b R) int { return cmp.Compare(rate(a), rate(b)) })
	return sorted[len(sorted)/2], rate(sorted[0]), rate(sorted[len(sorted)-1])
}
