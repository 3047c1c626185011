package perf

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleReport has every kind of row: baselines, measured chirp scenarios,
// a failure and a skip, with characters that need escaping in XML.
func sampleReport() *Report {
	rep := &Report{
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Elapsed: 42 * time.Second,
		GoVersion: "go1.26", OS: "linux", Arch: "amd64", CPUs: 2, Runs: 3,
		RunTime: 400 * time.Millisecond, Warmup: 200 * time.Millisecond,
		Peers: map[string]string{"sync": "child <1> & co", "tcp": "in-process"},
	}
	add := func(s Scenario, runs ...float64) {
		rep.Results = append(rep.Results, Result{Scenario: s, Runs: runs, Summary: Summarize(runs), Passes: 1000})
	}
	add(Scenario{Name: "chan round trip", Kind: KindChan, InFlight: 1}, 2e6, 1.9e6, 2.1e6)
	add(Scenario{Name: "tcp single 5B", Kind: KindTCP, InFlight: 1, Size: 5}, 26000, 25000, 27000)
	add(Scenario{Name: "sync single 5B", Kind: KindChirp, InFlight: 1, Size: 5}, 5000, 5100, 4900)
	add(Scenario{Name: "async pooled16 64KiB", Kind: KindChirp, Async: true, InFlight: 16, Size: 64 << 10}, 9000, 12000, 8000)
	rep.Results[2].VsTCP = 5000.0 / 26000
	rep.Results = append(rep.Results,
		Result{Scenario: Scenario{Name: "async single <5B>", Kind: KindChirp, Async: true, InFlight: 1, Size: 5},
			Error: `run 2: send to 127.0.0.1:1: chirp: timeout & "more"`},
		Result{Scenario: Scenario{Name: "sync pooled64 5B", Kind: KindChirp, InFlight: 64, Size: 5}, Skipped: "no echo peer"})
	return rep
}

func TestWriteJSONRoundTrips(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not decode: %v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(&back, rep) {
		t.Errorf("decoded report differs:\n got %+v\nwant %+v", back, *rep)
	}
	for _, key := range []string{`"median"`, `"min"`, `"max"`, `"runs"`, `"vs_tcp"`, `"error"`, `"skipped"`, `"in_flight"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, b.String())
		}
	}
}

// checkXML decodes every token of the document and counts elements by name.
func checkXML(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	count := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			count[se.Name.Local]++
		}
	}
	return count
}

func TestWriteSVGIsWellFormedWithABarPerMeasuredScenario(t *testing.T) {
	for _, log := range []bool{true, false} {
		var b bytes.Buffer
		if err := WriteSVG(&b, sampleReport(), log); err != nil {
			t.Fatal(err)
		}
		count := checkXML(t, b.Bytes())
		if count["svg"] != 1 {
			t.Errorf("log=%v: %d svg elements", log, count["svg"])
		}
		// Background + 4 legend swatches + one bar per measured scenario.
		if want := 1 + 4 + 4; count["rect"] != want {
			t.Errorf("log=%v: %d rects, want %d", log, count["rect"], want)
		}
		s := b.String()
		for _, want := range []string{"FAILED: run 2", "skipped: no echo peer", "async single &lt;5B&gt;", "5k", "(0.19x tcp)"} {
			if !strings.Contains(s, want) {
				t.Errorf("log=%v: SVG lacks %q", log, want)
			}
		}
	}
}

func TestWriteSVGWithNothingMeasured(t *testing.T) {
	rep := sampleReport()
	rep.Results = rep.Results[4:] // the failure and the skip
	var b bytes.Buffer
	if err := WriteSVG(&b, rep, true); err != nil {
		t.Fatal(err)
	}
	checkXML(t, b.Bytes())
}

func TestScaleMapsValuesInsideThePlot(t *testing.T) {
	for _, log := range []bool{true, false} {
		sc := newScale(3000, 2.1e6, log)
		prev := -1.0
		for _, v := range []float64{3000, 26000, 2.1e6} {
			x := sc.x(v)
			if x < plotLeft || x > plotRight || x <= prev {
				t.Errorf("log=%v: x(%v) = %v, outside [%d,%d] or not increasing", log, v, x, plotLeft, plotRight)
			}
			prev = x
		}
		ticks := sc.ticks()
		if len(ticks) < 3 || len(ticks) > 12 {
			t.Errorf("log=%v: ticks %v", log, ticks)
		}
	}
}

func TestWriteTableShowsEveryRow(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{"sync single 5B", "5,000", "4,900", "5,100", "0.19x", "1.04x",
		"FAILED: run 2: send to", "skipped: no echo peer", "1 scenario(s) FAILED", "spread"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	for i, line := range strings.Split(s, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("line %d has trailing blanks: %q", i+1, line)
		}
	}
}

// TestTLSRowsShowTheirRatioToPlaintext: a TLS row brings the "vs plain"
// column and its note, its own colour and its ratio in the chart.
func TestTLSRowsShowTheirRatioToPlaintext(t *testing.T) {
	rep := sampleReport()
	rep.Style = StyleInline
	tls := Result{Scenario: Scenario{Name: "tls async pooled16 64KiB", Kind: KindChirp, Async: true, TLS: true, InFlight: 16, Size: 64 << 10},
		Runs: []float64{6000, 6100, 5900}, Summary: Summarize([]float64{6000, 6100, 5900}), Passes: 100, VsPlain: 6000.0 / 9000}
	rep.Results = append(rep.Results, tls)
	var table bytes.Buffer
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vs plain", "0.67x", "vs plain: a TLS scenario over", "handlers: inline"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, rep, true); err != nil {
		t.Fatal(err)
	}
	checkXML(t, svg.Bytes())
	for _, want := range []string{"chirp over TLS", "(0.67x plaintext)", chartColors["tls"]} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// Without TLS rows, no column.
	table.Reset()
	if err := WriteTable(&table, sampleReport()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(table.String(), "vs plain") {
		t.Errorf("plaintext table has a vs plain column:\n%s", table.String())
	}
}
