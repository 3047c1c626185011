package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/gochirp/chirp/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// TestREADMEShowsThisProgram: README.md shows main.go verbatim, so the
// program Example runs (under -race in CI) is the one users read.
func TestREADMEShowsThisProgram(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := append(append([]byte("```go\n"), src...), "```\n"...)
	if !bytes.Contains(readme, block) {
		t.Fatal("README.md does not show examples/echo/main.go verbatim in a ```go block: copy it over")
	}
}

// Example runs the README's program.
func Example() {
	main()
	// Output: HELLO
}
