package perf

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart layout, in SVG user units (pixels at 100%).
const (
	chartWidth  = 960
	labelWidth  = 190 // scenario names, right-aligned before the bars
	valueWidth  = 130 // value text after the longest bar
	rowHeight   = 22
	barHeight   = 14
	groupGap    = 10 // between baselines, sync and async
	chartTop    = 78 // title, subtitle and legend above the axis
	chartBottom = 46 // tick labels and the note below
	plotLeft    = labelWidth + 10
	plotRight   = chartWidth - valueWidth
	maxErrText  = 90 // characters of an error shown in the chart
)

// Bar colours: one per kind of scenario, readable for colour-blind eyes
// (Paul Tol's bright scheme).
var chartColors = map[string]string{
	"sync":  "#4477aa",
	"async": "#ee6677",
	"tls":   "#aa3377",
	"tcp":   "#228833",
	"chan":  "#bbbbbb",
}

// WriteSVG draws the report as a horizontal bar chart of the median
// passes/s per scenario, with a whisker from min to max and the value at
// the end of each bar. log selects a logarithmic axis, which suits figures
// that span several powers of ten; else the axis is linear from zero.
// Failed and skipped scenarios show their reason instead of a bar.
func WriteSVG(w io.Writer, rep *Report, log bool) error {
	bw := bufio.NewWriter(w)
	var (
		lo, hi = math.Inf(1), 0.0
		rows   = len(rep.Results)
		groups = 0
		prev   = "\x00"
	)
	for _, r := range rep.Results {
		if g := groupOf(r.Scenario); g != prev {
			groups++
			prev = g
		}
		if r.OK() {
			lo = math.Min(lo, r.Min)
			hi = math.Max(hi, r.Max)
		}
	}
	if hi <= 0 { // nothing measured
		lo, hi = 1, 10
	}
	sc := newScale(lo, hi, log)
	plotH := rows*rowHeight + max(groups-1, 0)*groupGap
	height := chartTop + plotH + chartBottom

	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	scale := "linear scale"
	if log {
		scale = "log scale"
	}
	text(bw, 12, 22, "start", `font-size="16" font-weight="bold"`, "chirp bench: passes/s per scenario ("+scale+"; higher is better)")
	text(bw, 12, 40, "start", `fill="#444"`, fmt.Sprintf("%s %s/%s, %d CPUs, %s; median of %d runs of %v, whisker min to max",
		rep.GoVersion, rep.OS, rep.Arch, rep.CPUs, rep.Started.Format("2006-01-02 15:04"), rep.Runs, rep.RunTime))
	// Legend.
	x := 12
	legend := []string{"sync", "async", "tcp", "chan"}
	for _, r := range rep.Results {
		if r.TLS {
			legend = []string{"sync", "async", "tls", "tcp", "chan"}
			break
		}
	}
	for _, k := range legend {
		name := map[string]string{"sync": "chirp synchronous", "async": "chirp asynchronous", "tls": "chirp over TLS",
			"tcp": "raw TCP ping-pong (baseline)", "chan": "Go channel round trip (baseline)"}[k]
		fmt.Fprintf(bw, `<rect x="%d" y="50" width="12" height="12" fill="%s"/>`+"\n", x, chartColors[k])
		text(bw, x+16, 60, "start", "", name)
		x += 16 + 7*len(name) + 18
	}

	// Grid and tick labels.
	top, bottom := chartTop, chartTop+plotH
	for _, t := range sc.ticks() {
		tx := sc.x(t)
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#dddddd"/>`+"\n", tx, top-4, tx, bottom)
		text(bw, int(math.Round(tx)), bottom+16, "middle", `fill="#444"`, FormatRate(t))
	}
	fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888888"/>`+"\n", plotLeft, top-4, plotLeft, bottom)
	text(bw, (plotLeft+plotRight)/2, bottom+34, "middle", `fill="#444"`, "passes/s (a pass: a message to the echo node and its echo back)")

	// Bars.
	y := top
	prev = "\x00"
	for _, r := range rep.Results {
		if g := groupOf(r.Scenario); g != prev {
			if prev != "\x00" {
				y += groupGap
			}
			prev = g
		}
		mid := y + rowHeight/2
		text(bw, labelWidth, mid+4, "end", "", r.Name)
		switch {
		case r.Error != "":
			text(bw, plotLeft+6, mid+4, "start", `fill="#cc0000" font-weight="bold"`, "FAILED: "+cut(r.Error, maxErrText))
		case r.Skipped != "":
			text(bw, plotLeft+6, mid+4, "start", `fill="#888888" font-style="italic"`, "skipped: "+cut(r.Skipped, maxErrText))
		default:
			x0, xm := float64(plotLeft), sc.x(r.Median)
			fmt.Fprintf(bw, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
				plotLeft, mid-barHeight/2, math.Max(xm-x0, 1), barHeight, chartColors[groupOf(r.Scenario)],
				escape(fmt.Sprintf("%s: median %s, min %s, max %s passes/s", r.Name, Thousands(r.Median), Thousands(r.Min), Thousands(r.Max))))
			xl, xh := sc.x(r.Min), sc.x(r.Max)
			fmt.Fprintf(bw, `<path d="M%.1f %dH%.1fM%.1f %dV%dM%.1f %dV%d" stroke="#222222" fill="none"/>`+"\n",
				xl, mid, xh, xl, mid-4, mid+4, xh, mid-4, mid+4)
			label := FormatRate(r.Median)
			switch {
			case r.VsPlain > 0:
				label += fmt.Sprintf("  (%.2fx plaintext)", r.VsPlain)
			case r.VsTCP > 0 && r.Kind == KindChirp:
				label += fmt.Sprintf("  (%.2fx tcp)", r.VsTCP)
			}
			text(bw, int(math.Max(xm, xh))+6, mid+4, "start", "", label)
		}
		y += rowHeight
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// groupOf is the colour and block of a scenario.
func groupOf(s Scenario) string {
	if s.TLS {
		return "tls"
	}
	if s.Kind == KindChirp {
		return s.Mode()
	}
	return s.Kind
}

func text(w io.Writer, x, y int, anchor, attrs, s string) {
	if attrs != "" {
		attrs = " " + attrs
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, attrs, escape(s))
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// scale maps passes/s to x between plotLeft and plotRight.
type scale struct {
	log    bool
	lo, hi float64 // axis ends: powers of ten (log), 0 and a round number (linear)
}

func newScale(lo, hi float64, log bool) scale {
	if log {
		lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 1))))
		hi = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, 1))))
		if hi <= lo {
			hi = lo * 10
		}
		return scale{log: true, lo: lo, hi: hi}
	}
	return scale{lo: 0, hi: niceStep(hi/5) * math.Ceil(hi/niceStep(hi/5))}
}

func (s scale) x(v float64) float64 {
	var f float64
	if s.log {
		f = (math.Log10(math.Max(v, s.lo)) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	} else {
		f = (v - s.lo) / (s.hi - s.lo)
	}
	return plotLeft + f*(plotRight-plotLeft)
}

func (s scale) ticks() []float64 {
	var t []float64
	if s.log {
		for v := s.lo; v <= s.hi*1.0001; v *= 10 {
			t = append(t, v)
		}
		return t
	}
	step := niceStep(s.hi / 5)
	for v := 0.0; v <= s.hi*1.0001; v += step {
		t = append(t, v)
	}
	return t
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
