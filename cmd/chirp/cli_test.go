package main

// Tests that run the real chirp binary, built once in TestMain, and check
// its stdout, stderr and exit status as a user sees them.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
	"github.com/gochirp/chirp/internal/scrape"
	"github.com/gochirp/chirp/perf"
	"go.uber.org/goleak"
)

// chirpBin is the chirp binary the tests run.
var chirpBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chirp-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	chirpBin = filepath.Join(dir, "chirp")
	if out, err := exec.Command("go", "build", "-o", chirpBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building chirp: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(leakcheck.Options()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the test process's environment without CHIRP_ variables,
// plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CHIRP_") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

// chirp runs the binary to its end (at most a minute) and returns its exit
// status, stdout and stderr.
func chirp(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chirpBin, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	case err != nil:
		t.Fatalf("chirp %q: %v", args, err)
	}
	return 0, out.String(), errOut.String()
}

// syncBuffer is an output of a running child that tests read meanwhile.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a chirp child that runs until stopped (echo, listen).
type proc struct {
	cmd         *exec.Cmd
	out, errOut *syncBuffer
	port        int
	done        chan struct{}
	code        int
}

var readyRE = regexp.MustCompile(perf.Ready + `(\d+)`)

// startChirp starts the binary and waits until it announces its port
// (stdout for echo, stderr for listen). It is stopped at the test's end.
func startChirp(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(chirpBin, args...), out: &syncBuffer{}, errOut: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	waitFor(t, 20*time.Second, fmt.Sprintf("chirp %q to listen", args), func() bool {
		m := readyRE.FindStringSubmatch(p.out.String() + p.errOut.String())
		if m != nil {
			p.port, _ = strconv.Atoi(m[1])
		}
		return m != nil
	})
	return p
}

// addr is the child's address on 127.0.0.1.
func (p *proc) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// stop ends the child as Ctrl-C does and returns its exit status.
func (p *proc) stop(t *testing.T) int {
	select {
	case <-p.done:
		return p.code
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("chirp %q did not end within 15s of SIGINT", p.cmd.Args[1:])
	}
	return p.code
}

// wait waits for the child to end by itself.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("chirp %q did not end; stderr:\n%s", p.cmd.Args[1:], p.errOut.String())
	}
	return p.code
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serverArgs are the flags every node the tests start shares: loopback, a
// free port.
func serverArgs(cmd string, more ...string) []string {
	return append([]string{cmd, "-bind", "127.0.0.1", "-port", "0"}, more...)
}

func TestHelpCommand(t *testing.T) {
	code, stdout, stderr := chirp(t, nil, "", "help")
	if code != 0 || stderr != "" {
		t.Fatalf("chirp help: exit %d, stderr %q", code, stderr)
	}
	for _, c := range commands {
		if !strings.Contains(stdout, "  "+c.name+" ") {
			t.Errorf("chirp help does not list %s:\n%s", c.name, stdout)
		}
	}
	for _, want := range []string{"CHIRP_TLS_CHAIN", "CHIRP_TIMEOUT", "a flag overrides its variable", "Exit status"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("chirp help does not mention %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = chirp(t, nil, "", "help", "send")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: chirp send [flags] HOST:PORT DATA|-") ||
		!strings.Contains(stdout, "-concurrency") || !strings.Contains(stdout, "CHIRP_TIMEOUT") {
		t.Errorf("chirp help send: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, again, _ := chirp(t, nil, "", "help", "help"); code != 0 || !strings.HasPrefix(again, "usage: chirp COMMAND") {
		t.Errorf("chirp help help: exit %d, stdout %q", code, again)
	}
	_, helpFlag, _ := chirp(t, nil, "", "send", "-h")
	if helpFlag != "" {
		t.Errorf("chirp send -h wrote %q to stdout; the flags go to stderr", helpFlag)
	}
}

// TestEachCommandDescribesItsOwnFlags: -h of each command shows its flags,
// with the text that fits it, and not the flags it lacks.
func TestEachCommandDescribesItsOwnFlags(t *testing.T) {
	for _, c := range []struct {
		cmd          string
		want, reject []string
	}{
		{"echo", []string{"-port int", "port to listen on", "-metrics ADDR", "-watch", "sending the echoes", "-slots"},
			[]string{"listen uses", "-count", "-print"}},
		{"listen", []string{"port to listen on", "-print string", "-0", "-count", "-metrics ADDR", "-watch", "printing messages",
			"JSON Lines", `"data_encoding"`},
			[]string{"echo and send handle", "-concurrency"}},
		{"send", []string{"where answers come back", "-concurrency", "-echo", "-size BYTES", "- reads it from standard input"},
			[]string{"port to listen on,", "-metrics", "-watch", "-slots", "-print"}},
		{"request", []string{"where answers come back", "-json", "wait for the answer"},
			[]string{"-workers", "-slots", "-metrics", "-concurrency"}},
		{"bench", []string{"-quick", "-tls-chain FILE"}, []string{"CHIRP_TLS_CHAIN"}},
		{"certs", []string{"-dir", "DH_PARAMS_PEM"}, []string{"-port"}},
		{"relay", []string{"-to HOST:PORT", "port to listen on", "timeout of a forward", "fewest forwards in flight"},
			[]string{"-workers", "-concurrency", "-print"}},
		{"dissect", []string{"-max-size"}, []string{"-port"}},
	} {
		code, stdout, stderr := chirp(t, nil, "", c.cmd, "-h")
		if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "usage: chirp "+c.cmd+" ") {
			t.Errorf("chirp %s -h: exit %d, stdout %q, stderr %q", c.cmd, code, stdout, stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("chirp %s -h lacks %q", c.cmd, w)
			}
		}
		for _, r := range c.reject {
			if strings.Contains(stderr, r) {
				t.Errorf("chirp %s -h mentions %q, which is not its own", c.cmd, r)
			}
		}
	}
}

// TestBadInputs: each bad command line or failure gives exactly one line
// naming the problem in the user's terms (plus, for a usage error, where
// the usage is) and the exit status.
func TestBadInputs(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	missing := filepath.Join(t.TempDir(), "missing.pem")
	usage := func(cmd, problem string) string {
		return fmt.Sprintf("chirp %s: %s\nrun 'chirp %s -h' for usage\n", cmd, problem, cmd)
	}
	for _, c := range []struct {
		args   []string
		env    []string
		stderr string
		code   int
	}{
		{[]string{"frobnicate"}, nil, "chirp: unknown command \"frobnicate\"\nrun 'chirp help' for usage\n", 2},
		{[]string{"-v", "send"}, nil, "chirp: flag -v before a command\nrun 'chirp help' for usage\n", 2},
		{[]string{"help", "frobnicate"}, nil, "chirp help: unknown command \"frobnicate\"\nrun 'chirp help' for usage\n", 2},
		{[]string{"send", "-nosuch"}, nil, usage("send", "flag provided but not defined: -nosuch"), 2},
		{[]string{"echo", "-port", "-1"}, nil, usage("echo", "-port -1: want 1025..65535, or 0 for a free one"), 2},
		{[]string{"echo", "-port", "80"}, nil, usage("echo", "-port 80: want 1025..65535, or 0 for a free one"), 2},
		{[]string{"echo", "extra"}, nil, usage("echo", `unexpected arguments ["extra"]`), 2},
		{[]string{"echo", "-timeout", "10ms"}, nil, usage("echo", "-timeout 10ms: want 100ms to 20m0s"), 2},
		{[]string{"echo", "-slots", "33"}, nil, usage("echo", "-slots 33: want 1..32, or 0 for 16"), 2},
		{[]string{"echo", "-busy-poll", "20ms"}, nil, usage("echo", "-busy-poll 20ms: want 0 to 10ms"), 2},
		{[]string{"bench", "-busy-poll", "-1us"}, nil, usage("bench", "-busy-poll -1µs: want 0 to 10ms"), 2},
		{[]string{"echo", "-always-encrypt"}, nil, usage("echo", "-always-encrypt needs -tls-chain"), 2},
		{[]string{"echo", "-bind", "127.0.0.1,127.0.0.2"}, nil, usage("echo", "-bind: more than one address of the family of 127.0.0.2"), 2},
		{[]string{"echo", "-bind", "nonsense"}, nil, usage("echo", `-bind: "nonsense" is not an IP address`), 2},
		{[]string{"listen", "-count", "-1"}, nil, usage("listen", "-count must not be negative"), 2},
		{[]string{"listen", "-print", "yaml"}, nil, usage("listen", `-print "yaml": want text, raw, json or none`), 2},
		{[]string{"listen", "-0"}, nil, usage("listen", "-0 needs -print raw"), 2},
		{[]string{"send"}, nil, usage("send", "want HOST:PORT and DATA (- reads standard input)"), 2},
		{[]string{"send", "127.0.0.1:1"}, nil, usage("send", "want DATA after HOST:PORT (- reads standard input), or -size"), 2},
		{[]string{"send", "127.0.0.1:1", "a", "b"}, nil, usage("send", "want HOST:PORT and one DATA, got 3 arguments (quote DATA with spaces)"), 2},
		{[]string{"send", "-n", "0", "127.0.0.1:1", "x"}, nil, usage("send", "-n and -concurrency must be at least 1"), 2},
		{[]string{"send", "-size", "3", "127.0.0.1:1", "x"}, nil, usage("send", "give DATA or -size, not both"), 2},
		{[]string{"send", "not-an-address", "x"}, nil, usage("send", `"not-an-address": want HOST:PORT`), 2},
		{[]string{"send", "localhost:http2", "x"}, nil, usage("send", `"localhost:http2": "http2" is not a port`), 2},
		{[]string{"send", "127.0.0.1:1", "x"}, []string{"CHIRP_TIMEOUT=soon"}, usage("send", `CHIRP_TIMEOUT="soon" is not a valid -timeout`), 2},
		{[]string{"request", "127.0.0.1:1"}, nil, usage("request", "want HOST:PORT and DATA (- reads standard input)"), 2},
		{[]string{"bench", "-echo-style", "fast"}, nil, usage("bench", `-echo-style "fast": want inline or workers`), 2},
		{[]string{"bench", "-placement", "near"}, nil, usage("bench", `-placement "near": want free, same or apart`), 2},
		{[]string{"bench", "-tls=false", "-tls-chain", "chain.pem"}, nil, usage("bench", "-tls-chain with -tls=false"), 2},
		{[]string{"bench-peer"}, nil, usage("bench-peer", "bench-peer needs -tcp-echo and no arguments"), 2},
		{[]string{"relay"}, nil, usage("relay", "-to is required: the nodes to forward to"), 2},
		{[]string{"relay", "-to", "nohost"}, nil, usage("relay", `-to "nohost": want HOST:PORT`), 2},

		// Failures: one line, exit 1.
		{[]string{"listen", "-bind", "198.18.0.1", "-port", "0"}, nil,
			"chirp listen: cannot listen on 198.18.0.1 port 0: -bind 198.18.0.1 is not an address of this machine\n", 1},
		{[]string{"echo", "-bind", "127.0.0.1", "-port", strconv.Itoa(busyPort)}, nil,
			fmt.Sprintf("chirp echo: 127.0.0.1 port %d is already in use\n", busyPort), 1},
		{[]string{"echo", "-bind", "127.0.0.1", "-port", "0", "-tls-chain", missing}, nil,
			fmt.Sprintf("chirp echo: -tls-chain %s: no such file or directory\n", missing), 1},
		{[]string{"send", "-bind", "127.0.0.1", "127.0.0.1:1", "x"}, []string{"CHIRP_TLS_CHAIN=" + missing},
			fmt.Sprintf("chirp send: -tls-chain %s: no such file or directory\n", missing), 1},
		{[]string{"echo", "-bind", "127.0.0.1", "-port", "0", "-metrics", "nonsense"}, nil,
			"chirp echo: -metrics nonsense: cannot listen: missing port in address\n", 1},
		{[]string{"echo", "-bind", "127.0.0.1", "-port", "0", "-metrics", busy.Addr().String()}, nil,
			fmt.Sprintf("chirp echo: -metrics %s: cannot listen: address already in use\n", busy.Addr()), 1},
		{[]string{"request", "-bind", "127.0.0.1", "127.0.0.1:1", "x"}, nil,
			"chirp request: cannot connect to 127.0.0.1:1: connection refused\n", 1},
		{[]string{"send", "-bind", "127.0.0.1", "127.0.0.1:1", "x"}, nil,
			"chirp send: 1 of 1 sends failed; the first: cannot connect to 127.0.0.1:1: connection refused\n", 1},
	} {
		code, stdout, stderr := chirp(t, c.env, "", c.args...)
		if code != c.code || stderr != c.stderr {
			t.Errorf("chirp %q (env %q): exit %d, stderr\n%q\nwant exit %d, stderr\n%q", c.args, c.env, code, stderr, c.code, c.stderr)
		}
		if c.args[0] != "send" && stdout != "" {
			t.Errorf("chirp %q: stdout %q, want nothing", c.args, stdout)
		}
	}
}

func TestRequestPrintsTheAnswer(t *testing.T) {
	echo := startChirp(t, nil, serverArgs("echo")...)
	code, stdout, stderr := chirp(t, nil, "", "request", "-bind", "127.0.0.1", echo.addr(), "hello chirp")
	if code != 0 || stdout != "hello chirp\n" || stderr != "" {
		t.Fatalf("request: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// -json and DATA from stdin with "-": binary data comes back as base64.
	data := "\x00\x01binary\xff"
	code, stdout, stderr = chirp(t, nil, data, "request", "-bind", "127.0.0.1", "-json", "-header", "h1", echo.addr(), "-")
	if code != 0 || stderr != "" {
		t.Fatalf("request -json: exit %d, stderr %q", code, stderr)
	}
	var j jsonMessage
	if err := json.Unmarshal([]byte(stdout), &j); err != nil || !strings.HasSuffix(stdout, "}\n") {
		t.Fatalf("request -json printed %q: %v", stdout, err)
	}
	got, _ := base64.StdEncoding.DecodeString(j.Data)
	if j.DataEncoding != "base64" || string(got) != data || j.Header != "h1" || j.HeaderEncoding != "utf-8" ||
		j.Remote != echo.addr() || len(j.Identity) != 32 || len(j.Node) != 32 {
		t.Errorf("request -json: %+v", j)
	}
}

// TestRequestTimesOut: a listen node takes the message but never answers;
// the timeout comes from CHIRP_TIMEOUT unless -timeout overrides it.
func TestRequestTimesOut(t *testing.T) {
	listen := startChirp(t, nil, serverArgs("listen", "-print", "none")...)
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"CHIRP_TIMEOUT=300ms"}, nil, "300ms"},
		{[]string{"CHIRP_TIMEOUT=300ms"}, []string{"-timeout", "400ms"}, "400ms"},
	} {
		start := time.Now()
		args := append(append([]string{"request", "-bind", "127.0.0.1"}, c.args...), listen.addr(), "anyone?")
		code, stdout, stderr := chirp(t, c.env, "", args...)
		want := fmt.Sprintf("chirp request: no answer from %s within %s\n", listen.addr(), c.want)
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("request %v (env %v): exit %d, stdout %q, stderr %q; want 1 and %q", c.args, c.env, code, stdout, stderr, want)
		}
		if d, _ := time.ParseDuration(c.want); time.Since(start) < d {
			t.Errorf("request gave up after %v, before its timeout %v", time.Since(start), d)
		}
	}
}

// sendOne runs "chirp send" of one message on loopback and checks it went well.
func sendOne(t *testing.T, stdin string, args ...string) {
	t.Helper()
	args = append([]string{"send", "-bind", "127.0.0.1"}, args...)
	if code, stdout, stderr := chirp(t, nil, stdin, args...); code != 0 || stderr != "" || !strings.Contains(stdout, "1 ok, 0 failed") {
		t.Fatalf("chirp %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
	}
}

// TestListenPrintModes: text, raw (lines and length-prefixed), json and
// none, fed by send, with DATA from stdin only when it is "-". stdout
// carries the messages only.
func TestListenPrintModes(t *testing.T) {
	t.Run("text", func(t *testing.T) {
		l := startChirp(t, nil, serverArgs("listen", "-count", "1")...)
		sendOne(t, "", "-header", "hdr", l.addr(), "hello listener")
		if code := l.wait(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
		line := l.out.String()
		for _, want := range []string{"from 127.0.0.1:", "identity=", "serial=", "header_len=3", "data_len=14", " ack", `header="hdr"`, `data="hello listener"`} {
			if !strings.Contains(line, want) || strings.Count(line, "\n") != 1 {
				t.Errorf("listen printed %q; want one line with %q", line, want)
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		l := startChirp(t, nil, serverArgs("listen", "-print", "raw", "-count", "2")...)
		sendOne(t, "ignored", l.addr(), "first line")
		sendOne(t, "from stdin", l.addr(), "-")
		if code := l.wait(t); code != 0 || l.out.String() != "first line\nfrom stdin\n" {
			t.Errorf("listen -print raw: exit %d, stdout %q, stderr %q", code, l.out.String(), l.errOut.String())
		}
		if !strings.HasSuffix(l.errOut.String(), "chirp listen: 2 messages received\n") {
			t.Errorf("listen's stderr: %q", l.errOut.String())
		}
	})
	t.Run("raw-0", func(t *testing.T) {
		l := startChirp(t, nil, serverArgs("listen", "-print", "raw", "-0", "-count", "2")...)
		sendOne(t, "", l.addr(), "a\nb")
		sendOne(t, "", "-size", "0", l.addr())
		if code := l.wait(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
		var want bytes.Buffer
		binary.Write(&want, binary.BigEndian, uint32(3))
		want.WriteString("a\nb")
		binary.Write(&want, binary.BigEndian, uint32(0))
		if got := l.out.String(); got != want.String() {
			t.Errorf("listen -print raw -0 wrote %q, want %q", got, want.String())
		}
	})
	t.Run("json", func(t *testing.T) {
		l := startChirp(t, nil, serverArgs("listen", "-print", "json", "-count", "2")...)
		sendOne(t, "", "-header", "h", l.addr(), "text ✓")
		sendOne(t, "\xff\xfe\x00", l.addr(), "-")
		if code := l.wait(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
		lines := strings.Split(strings.TrimSuffix(l.out.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("want two JSON lines, got %q", l.out.String())
		}
		var a, b jsonMessage
		if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(lines[1]), &b); err != nil {
			t.Fatal(err)
		}
		if a.Data != "text ✓" || a.DataEncoding != "utf-8" || a.Header != "h" || a.HeaderEncoding != "utf-8" ||
			!strings.HasPrefix(a.Remote, "127.0.0.1:") || len(a.Identity) != 32 || len(a.Node) != 32 {
			t.Errorf("first message: %+v", a)
		}
		if raw, _ := base64.StdEncoding.DecodeString(b.Data); b.DataEncoding != "base64" || string(raw) != "\xff\xfe\x00" || b.Header != "" {
			t.Errorf("binary message: %+v", b)
		}
	})
	t.Run("none", func(t *testing.T) {
		l := startChirp(t, nil, serverArgs("listen", "-print", "none", "-count", "1")...)
		sendOne(t, "", l.addr(), "quiet")
		if code := l.wait(t); code != 0 || l.out.String() != "" || !strings.HasSuffix(l.errOut.String(), "chirp listen: 1 messages received\n") {
			t.Errorf("listen -print none: exit %d, stdout %q, stderr %q", code, l.out.String(), l.errOut.String())
		}
	})
}

// TestEchoAndListenStopCleanlyOnInterrupt: Ctrl-C ends both with status 0
// and their summary.
func TestEchoAndListenStopCleanlyOnInterrupt(t *testing.T) {
	echo := startChirp(t, nil, serverArgs("echo")...)
	sendOne(t, "", "-echo", echo.addr(), "ping")
	if code := echo.stop(t); code != 0 || !strings.HasSuffix(echo.errOut.String(), "chirp echo: 1 echoed, 0 failed\n") {
		t.Errorf("echo after SIGINT: exit %d, stderr %q", code, echo.errOut.String())
	}
	listen := startChirp(t, nil, serverArgs("listen")...)
	if code := listen.stop(t); code != 0 || !strings.HasSuffix(listen.errOut.String(), "chirp listen: 0 messages received\n") {
		t.Errorf("listen after SIGINT: exit %d, stderr %q", code, listen.errOut.String())
	}
}

// silentPeer listens on loopback, accepts connections and never says a
// word: a chirp connect to it times out after twice the send timeout.
func silentPeer(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() { // accept and stay silent
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln
}

// TestSendIsQuietWhenStderrIsNotATerminal: a send that lasts over the
// progress threshold prints no progress to a pipe, only its one-line error.
func TestSendIsQuietWhenStderrIsNotATerminal(t *testing.T) {
	ln := silentPeer(t)
	start := time.Now()
	code, stdout, stderr := chirp(t, nil, "", "send", "-bind", "127.0.0.1", "-timeout", "1.2s", ln.Addr().String(), "x")
	if took := time.Since(start); took < progressAfter {
		t.Fatalf("send took %v, less than the progress threshold %v: the test proves nothing", took, progressAfter)
	}
	want := fmt.Sprintf("chirp send: 1 of 1 sends failed; the first: no answer from %s within 1.2s\n", ln.Addr())
	if code != 1 || stderr != want || !strings.Contains(stdout, "0 ok, 1 failed") {
		t.Errorf("send to a silent peer: exit %d, stdout %q, stderr %q; want 1 and only %q", code, stdout, stderr, want)
	}
}

// TestSendShowsProgressOnATerminal: the same long send with stderr a
// terminal shows its progress line after the threshold and erases it.
func TestSendShowsProgressOnATerminal(t *testing.T) {
	ln := silentPeer(t)
	var out, errOut syncBuffer
	err := runSend(context.Background(), stdio{out: &out, err: &errOut, errTTY: true}, &nodeFlags{bind: "127.0.0.1", timeout: 1200 * time.Millisecond},
		ln.Addr().String(), []byte("x"), sendOptions{n: 1, concurrency: 1})
	if err == nil {
		t.Fatal("send to a silent peer succeeded")
	}
	if got := errOut.String(); !strings.HasPrefix(got, "\rchirp send: 0 of 1 done, 0/s, 0 failed\033[K") || !strings.HasSuffix(got, "\r\033[K") {
		t.Errorf("progress on a terminal: %q", got)
	}
}

// TestStatusLine: on a terminal the line is rewritten in place and erased
// at the end; on a pipe each update is a line; nothing before the delay.
func TestStatusLine(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var buf syncBuffer
		n := 0
		stop := statusLine(&buf, tty, 50*time.Millisecond, 20*time.Millisecond, func() string { n++; return fmt.Sprintf("update %d", n) })
		if buf.String() != "" {
			t.Errorf("tty=%v: printed %q before the delay", tty, buf.String())
		}
		waitFor(t, 10*time.Second, "two updates", func() bool { return strings.Contains(buf.String(), "update 2") })
		stop()
		got := buf.String()
		if tty {
			if !strings.HasPrefix(got, "\rupdate 1\033[K\rupdate 2\033[K") || !strings.HasSuffix(got, "\r\033[K") || strings.Contains(got, "\n") {
				t.Errorf("on a terminal: %q", got)
			}
		} else if !strings.HasPrefix(got, "update 1\nupdate 2\n") || strings.Contains(got, "\r") {
			t.Errorf("on a pipe: %q", got)
		}
	}
}

// watchRE is one line of -watch.
var watchRE = regexp.MustCompile(`(?m)^chirp (echo|listen): [\d,]+ msg/s in, [\d,]+ msg/s out, \d+ connections, \d+ slots in use, \d+ errors$`)

// TestWatchPrintsARateLineToAPipe: -watch on echo and listen prints the
// one-line view, a line per second on a pipe, with the traffic in it.
func TestWatchPrintsARateLineToAPipe(t *testing.T) {
	echo := startChirp(t, nil, serverArgs("echo", "-watch")...)
	startSender(t, echo.addr())
	waitFor(t, 20*time.Second, "a watch line showing the traffic", func() bool {
		return regexp.MustCompile(`(?m)^chirp echo: [1-9][\d,]* msg/s in, [1-9][\d,]* msg/s out, [1-9]\d* connections`).MatchString(echo.errOut.String())
	})
	if !watchRE.MatchString(echo.errOut.String()) || strings.Contains(echo.errOut.String(), "\r") {
		t.Errorf("echo -watch wrote %q", echo.errOut.String())
	}
	listen := startChirp(t, nil, serverArgs("listen", "-watch", "-print", "none")...)
	waitFor(t, 20*time.Second, "listen's watch line", func() bool { return watchRE.MatchString(listen.errOut.String()) })
	if listen.out.String() != "" {
		t.Errorf("listen -watch wrote %q to stdout", listen.out.String())
	}
}

// startSender starts a "chirp send -echo" to dst that goes on until the
// test ends.
func startSender(t *testing.T, dst string) *exec.Cmd {
	sender := exec.Command(chirpBin, "send", "-bind", "127.0.0.1", "-echo", "-n", "100000000", dst, "traffic")
	sender.Env = cleanEnv()
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sender.Process.Kill()
		_ = sender.Wait()
	})
	return sender
}

var metricsRE = regexp.MustCompile(`metrics at (http://\S+/metrics)`)

// TestMetricsDuringTraffic scrapes echo's -metrics while a sender keeps it
// busy and parses the page with the Prometheus client library's parser.
func TestMetricsDuringTraffic(t *testing.T) {
	echo := startChirp(t, nil, serverArgs("echo", "-metrics", "127.0.0.1:0")...)
	m := metricsRE.FindStringSubmatch(echo.errOut.String())
	if m == nil {
		t.Fatalf("echo did not say where its metrics are: %q", echo.errOut.String())
	}
	sender := startSender(t, echo.addr())
	var fams scrape.Families
	waitFor(t, 20*time.Second, "messages and send latencies in a scrape", func() bool {
		f, err := scrape.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		in, _ := f.Value("chirp_messages_received_total")
		lat, _ := f.Value("chirp_send_latency_seconds")
		fams = f
		return in >= 10 && lat >= 10
	})
	if ok := sender.ProcessState == nil; !ok {
		t.Fatal("the sender ended before the scrape")
	}
	for _, name := range []string{"chirp_messages_sent_total", "chirp_acks_received_total", "chirp_acks_sent_total", "chirp_connections"} {
		if v, ok := fams.Value(name); !ok || v < 1 {
			t.Errorf("%s = %v (present %v) during traffic", name, v, ok)
		}
	}
	if _, ok := fams.Value("chirp_send_errors_total", "kind", "timeout"); !ok {
		t.Error("no chirp_send_errors_total{kind=\"timeout\"}")
	}
}

// TestListenMetricsCountReceived: listen's -metrics too.
func TestListenMetricsCountReceived(t *testing.T) {
	l := startChirp(t, nil, serverArgs("listen", "-print", "none", "-metrics", "127.0.0.1:0")...)
	m := metricsRE.FindStringSubmatch(l.errOut.String())
	if m == nil {
		t.Fatalf("listen did not say where its metrics are: %q", l.errOut.String())
	}
	sendOne(t, "", l.addr(), "one")
	f, err := scrape.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Value("chirp_messages_received_total"); v != 1 {
		t.Errorf("chirp_messages_received_total = %v, want 1", v)
	}
}

// TestTLSFailuresAreOneLine: a plaintext sender and one with another CA's
// credentials, against an echo node that encrypts loopback too.
func TestTLSFailuresAreOneLine(t *testing.T) {
	echoChain, _ := certsIn(t)
	strangerChain, _ := certsIn(t) // another CA
	echo := startChirp(t, nil, serverArgs("echo", "-tls-chain", echoChain, "-always-encrypt")...)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"request", "-timeout", "1s", "-bind", "127.0.0.1", echo.addr(), "x"},
			fmt.Sprintf("chirp request: cannot connect to %s: peer closed the connection without a handshake; it may expect TLS\n", echo.addr())},
		{[]string{"request", "-timeout", "1s", "-bind", "127.0.0.1", "-always-encrypt", echo.addr(), "x"},
			fmt.Sprintf("chirp request: TLS with %s failed: certificate signed by unknown authority\n", echo.addr())},
	} {
		env := []string{"CHIRP_TLS_CHAIN=" + strangerChain}
		if !slices.Contains(c.args, "-always-encrypt") {
			env = nil
		}
		code, stdout, stderr := chirp(t, env, "", c.args...)
		if code != 1 || stdout != "" || stderr != c.want {
			t.Errorf("chirp %q: exit %d, stdout %q, stderr %q; want 1 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
}
