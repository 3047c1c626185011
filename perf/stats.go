package perf

import (
	"slices"
)

// Summary describes the per-run rates of one scenario.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Spread is Max divided by Min: how far the runs stray from each
	// other (1 is perfectly steady; 0 when Min is 0).
	Spread float64 `json:"spread,omitempty"`
}

// Summarize returns the median (the mean of the two middle values for an
// even count), minimum, maximum and spread of xs; the zero Summary when xs
// is empty.
// xs is not changed.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	med := s[mid]
	if len(s)%2 == 0 {
		med = (s[mid-1] + s[mid]) / 2
	}
	sum := Summary{Median: med, Min: s[0], Max: s[len(s)-1]}
	if sum.Min > 0 {
		sum.Spread = sum.Max / sum.Min
	}
	return sum
}
