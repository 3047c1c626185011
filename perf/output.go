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
// min and max passes/s, the spread (max/min), the ratio to the raw-TCP
// baseline with the same messages in flight and size, for TLS scenarios
// the ratio to the same scenario in plaintext, and for relay scenarios the
// ratio to the same scenario direct. Every figure comes
// from this run on this machine.
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
	if rep.Style != "" {
		note := styleNote[rep.Style]
		if note == "" {
			note = string(rep.Style)
		}
		fmt.Fprintf(bw, "handlers: %s\n", note)
	}
	if rep.Placement != "" {
		fmt.Fprintf(bw, "placement: %s\n", rep.Placement)
	}
	if rep.BusyPoll > 0 {
		fmt.Fprintf(bw, "busy poll: %v (both nodes' loops poll that long before they sleep)\n", rep.BusyPoll)
	}
	for _, k := range slices.Sorted(maps.Keys(rep.Peers)) {
		fmt.Fprintf(bw, "peer %-12s %s\n", k+":", rep.Peers[k])
	}
	hasTLS := false // a TLS row compared with its plaintext twin
	for _, r := range rep.Results {
		hasTLS = hasTLS || r.VsPlain > 0
	}
	plainCol := ""
	if hasTLS {
		plainCol = fmt.Sprintf(" %8s", "vs plain")
	}
	hasRelay := false // a relay row compared with the same scenario direct
	for _, r := range rep.Results {
		hasRelay = hasRelay || r.VsDirect > 0
	}
	if hasRelay {
		plainCol += fmt.Sprintf(" %9s", "vs direct")
	}
	fmt.Fprintf(bw, "\n%-26s %11s %11s %11s %7s %8s%s\n", "scenario", "passes/s", "min", "max", "spread", "vs tcp", plainCol)
	hasTCP := false
	for _, r := range rep.Results {
		line := fmt.Sprintf("%-26s ", r.Name)
		switch {
		case r.Skipped != "":
			line += "skipped: " + r.Skipped
		case r.Error != "":
			line += "FAILED: " + r.Error
		default:
			ratio, vsPlain, spread := "", "", ""
			if r.Spread > 0 {
				spread = strconv.FormatFloat(r.Spread, 'f', 2, 64) + "x"
			}
			if r.VsTCP > 0 {
				ratio = strconv.FormatFloat(r.VsTCP, 'f', 2, 64) + "x"
				hasTCP = true
			}
			if r.VsPlain > 0 {
				vsPlain = strconv.FormatFloat(r.VsPlain, 'f', 2, 64) + "x"
			}
			if hasTLS {
				vsPlain = fmt.Sprintf(" %8s", vsPlain)
			}
			if hasRelay {
				vsDirect := ""
				if r.VsDirect > 0 {
					vsDirect = strconv.FormatFloat(r.VsDirect, 'f', 2, 64) + "x"
				}
				vsPlain += fmt.Sprintf(" %9s", vsDirect)
			}
			line += fmt.Sprintf("%11s %11s %11s %7s %8s%s", Thousands(r.Median), Thousands(r.Min), Thousands(r.Max), spread, ratio, vsPlain)
		}
		fmt.Fprintln(bw, strings.TrimRight(line, " "))
	}
	fmt.Fprintf(bw, "\nspread: the fastest run over the slowest.\n")
	if hasTCP {
		fmt.Fprintf(bw, "vs tcp: a chirp scenario over the raw TCP baseline with as many messages in flight and the same size.\n")
	}
	if hasTLS {
		fmt.Fprintf(bw, "vs plain: a TLS scenario over the same one in plaintext (both ends encrypt loopback).\n")
	}
	if hasRelay {
		fmt.Fprintf(bw, "vs direct: a pass through a relay (a router node in front of the echo peer) over the same one direct.\n")
	}
	if n := rep.Failed(); n > 0 {
		fmt.Fprintf(bw, "\n%d scenario(s) FAILED.\n", n)
	}
	return bw.Flush()
}

// styleNote says what a Style means in the table.
var styleNote = map[Style]string{
	StyleInline:  "inline (on the event loop, zero-copy echo; as libchirp's callbacks)",
	StyleWorkers: "workers (handler goroutine pool, sends and releases handed to the loop)",
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
