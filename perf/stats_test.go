package perf

import (
	"slices"
	"testing"
)

func TestSummarizeTakesMedianMinMax(t *testing.T) {
	for _, tc := range []struct {
		name string
		xs   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []float64{7}, Summary{Median: 7, Min: 7, Max: 7, Spread: 1}},
		{"odd count, unsorted", []float64{30, 10, 20}, Summary{Median: 20, Min: 10, Max: 30, Spread: 3}},
		{"even count averages the middle two", []float64{4, 1, 3, 2}, Summary{Median: 2.5, Min: 1, Max: 4, Spread: 4}},
		{"outlier does not move the median", []float64{100, 101, 99, 1e9, 98}, Summary{Median: 100, Min: 98, Max: 1e9, Spread: 1e9 / 98}},
		{"ties", []float64{5, 5, 5, 1, 9}, Summary{Median: 5, Min: 1, Max: 9, Spread: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.xs)
			if got := Summarize(tc.xs); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.xs, got, tc.want)
			}
			if !slices.Equal(in, tc.xs) {
				t.Errorf("Summarize changed its input: %v, was %v", tc.xs, in)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 25512.4: "25,512", 1234567.8: "1,234,568", -4321: "-4,321"} {
		if got := Thousands(v); got != want {
			t.Errorf("Thousands(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{950: "950", 25500: "25.5k", 168000: "168k", 1234567: "1.23M"} {
		if got := FormatRate(v); got != want {
			t.Errorf("FormatRate(%v) = %q, want %q", v, got, want)
		}
	}
	for n, want := range map[int]string{5: "5B", 1024: "1KiB", 65536: "64KiB", 1536: "1.5KiB", 1 << 20: "1MiB"} {
		if got := SizeName(n); got != want {
			t.Errorf("SizeName(%d) = %q, want %q", n, got, want)
		}
	}
}
