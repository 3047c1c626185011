package perf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// WriteTable writes the report as a table, one line per scenario: median,
// min and max passes/s, the ratio to the raw-TCP baseline, and libchirp's
// own figure where PROTOCOL.md has one.
func WriteTable(w io.Writer, rep *Report) error {
	bw := bufio.NewWriter(w)
	mode := "default"
	if rep.Quick {
		mode = "quick"
	}
	fmt.Fprintf(bw, "chirp bench (%s): %s %s/%s, %d CPUs, %s\n", mode, rep.GoVersion, rep.OS, rep.Arch, rep.CPUs,
		rep.Started.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(bw, "passes/s: median of %d runs of %v after a %v warm-up, min and max; took %.1fs\n",
		rep.Runs, rep.RunTime, rep.Warmup, rep.Elapsed.Seconds())
	for _, k := range slices.Sorted(maps.Keys(rep.Peers)) {
		fmt.Fprintf(bw, "peer %-5s %s\n", k+":", rep.Peers[k])
	}
	fmt.Fprintf(bw, "\n%-24s %11s %11s %11s %8s %9s\n", "scenario", "passes/s", "min", "max", "vs tcp", "C ref")
	hasRef := false
	for _, r := range rep.Results {
		line := fmt.Sprintf("%-24s ", r.Name)
		switch {
		case r.Skipped != "":
			line += "skipped: " + r.Skipped
		case r.Error != "":
			line += "FAILED: " + r.Error
		default:
			ratio, ref := "", ""
			if r.VsTCP > 0 {
				ratio = strconv.FormatFloat(r.VsTCP, 'f', 2, 64) + "x"
			}
			if r.CRef > 0 {
				ref = Thousands(r.CRef)
				hasRef = true
			}
			line += fmt.Sprintf("%11s %11s %11s %8s %9s", Thousands(r.Median), Thousands(r.Min), Thousands(r.Max), ratio, ref)
		}
		fmt.Fprintln(bw, strings.TrimRight(line, " "))
	}
	if hasRef {
		fmt.Fprintf(bw, "\nC ref: libchirp C to C, 5-byte data, from PROTOCOL.md §9 (2 vCPU, another machine and day).\n")
	}
	if n := rep.Failed(); n > 0 {
		fmt.Fprintf(bw, "\n%d scenario(s) FAILED.\n", n)
	}
	return bw.Flush()
}

// Thousands writes v rounded to an integer with thousands separators.
func Thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
