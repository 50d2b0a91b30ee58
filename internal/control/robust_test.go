package control

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// rawRequest sends one HTTP request with body over a fresh connection and
// returns the status and body of the answer.
func rawRequest(t *testing.T, path, body string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: uptables\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", ExecPath, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBadRequests: oversized, malformed, ambiguous and unknown requests get
// a clear answer and change nothing.
func TestBadRequests(t *testing.T) {
	f := newFixture(t, seedRules)
	before := f.exec("save", "-c").Stdout
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"oversized", `{"command":"iptables","args":["-A","INPUT","-j","` + strings.Repeat("A", 2<<20) + `"]}`, 413, "bad request: body over 1048576 bytes"},
		{"not JSON", "-F INPUT", 400, "bad request: invalid character"},
		{"truncated", `{"command":"iptables","args":["-F"`, 400, "bad request: unexpected EOF"},
		{"empty", "", 400, "bad request: EOF"},
		{"misspelt field", `{"command":"iptables","argz":["-F"]}`, 400, `bad request: json: unknown field "argz"`},
		{"two objects", `{"command":"iptables","args":["-F"]}{"command":"status"}`, 400, "bad request: data after the request object"},
		{"trailing garbage", `{"command":"iptables","args":["-F"]} rm -rf`, 400, "bad request: invalid character 'r'"},
		{"wrong type", `{"command":"iptables","args":"-F"}`, 400, "bad request: json: cannot unmarshal string"},
		{"unknown command", `{"command":"reboot","args":[]}`, 200, `uptables: unknown control command \"reboot\"`},
	}
	for _, c := range cases {
		status, body := rawRequest(t, f.srv.Addr(), c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %.200q, want %d containing %q", c.name, status, body, c.status, c.want)
		}
	}
	if after := f.exec("save", "-c").Stdout; after != before {
		t.Errorf("rules changed by bad requests:\n%s\nwas:\n%s", after, before)
	}
	if got := fileText(t, f.file); !strings.Contains(got, "-A INPUT -s 10.9.9.9/32 -j BLOCK") {
		t.Errorf("rules file changed:\n%s", got)
	}
}

// TestSilentClients: a client that connects and sends nothing, one that
// stalls in its headers and one that stalls in its body are all closed
// after ReadTimeout; the server keeps answering others meanwhile, and no
// goroutine is left (the fixture checks at cleanup).
func TestSilentClients(t *testing.T) {
	f := newFixture(t, seedRules)
	path := filepath.Join(t.TempDir(), "short.sock")
	const timeout = 300 * time.Millisecond
	srv, err := Listen(Config{Path: path, Rules: f.rules, Mode: "proxy", ReadTimeout: timeout, IdleTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	partial := []string{
		"",                                  // nothing at all
		"POST /v1/exec HTTP/1.1\r\nHost: u", // cut in the headers
		"POST /v1/exec HTTP/1.1\r\nHost: u\r\nContent-Length: 100\r\n\r\n{\"command\":", // cut in the body
	}
	var conns []net.Conn
	for _, p := range partial {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Served meanwhile.
	if rep, err := NewClient(path).Exec(context.Background(), "status", nil); err != nil || rep.Exit != 0 {
		t.Fatalf("status while clients stall: %v %+v", err, rep)
	}
	for i, c := range conns {
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("client %d: %v (the server did not close it)", i, err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("client %d closed after %v", i, el)
		}
		// A stalled body is answered 400 (net/http's read error), the
		// others closed without an answer.
		if i < 2 && len(b) != 0 {
			t.Errorf("client %d got %q", i, b)
		}
	}
	// A kept-alive connection idle after its request is closed too.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"command":"status","args":[]}`
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: u\r\nContent-Length: %d\r\n\r\n%s", ExecPath, len(body), body)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle kept-alive connection: %v, want EOF", err)
	}
}

// TestConcurrentCommands: changes from many clients at once are each
// applied once, atomically, to the engine and the file; listings taken
// meanwhile are whole.
func TestConcurrentCommands(t *testing.T) {
	f := newFixture(t, seedRules)
	const clients, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan string, clients*each*2)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := NewClient(f.srv.Addr())
			for j := 0; j < each; j++ {
				src := fmt.Sprintf("10.%d.%d.1", i+1, j+1)
				rep, err := cl.Exec(context.Background(), "iptables", []string{"-A", "BLOCK", "-s", src, "-j", "DROP"})
				if err != nil || rep.Exit != 0 {
					errs <- fmt.Sprintf("append %s: %v %+v", src, err, rep)
				}
				rep, err = cl.Exec(context.Background(), "save", nil)
				if err != nil || rep.Exit != 0 || !strings.Contains(rep.Stdout, "COMMIT\n# Completed") {
					errs <- fmt.Sprintf("save: %v exit %d", err, rep.Exit)
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	saved := f.exec("save").Stdout
	if n := strings.Count(saved, "-A BLOCK -s 10."); n != clients*each {
		t.Errorf("%d rules appended, want %d", n, clients*each)
	}
	if file := fileText(t, f.file); strings.Count(file, "-A BLOCK -s 10.") != clients*each {
		t.Errorf("rules file has %d of the %d rules", strings.Count(file, "-A BLOCK -s 10."), clients*each)
	}
}

// FuzzDecodeRequest: whatever body a client sends, the decoder answers
// with a request or a 400/413 error, never a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"command":"status","args":[]}`, `{"command":"iptables","args":["-L"]} x`, `{"argz":1}`, `[`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, status, err := decodeRequest(bytes.NewReader(body))
		if (err == nil) != (status == 200) || (status != 200 && status != 400 && status != 413) {
			t.Fatalf("status %d with error %v", status, err)
		}
	})
}

// FuzzExecArgs: the argument parsers of the read-mostly commands (save,
// recent, conntrack, connlimit, hashlimit, status) with hostile arguments:
// an exit status and a message, never a panic. (iptables command lines
// have their own fuzz target in internal/iptables.)
func FuzzExecArgs(f *testing.F) {
	for _, s := range []string{"save\x00-c\x00-t\x00nat", "recent\x00SSH\x00+10.0.0.1", "recent\x00-x", "recent\x00SSH\x00/",
		"conntrack\x00-L\x00-p\x00tcp\x00--dport\x0080", "conntrack\x00-D\x00-s", "conntrack\x00-F", "connlimit", "hashlimit\x00HL", "status\x00-v"} {
		f.Add(s)
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "rules.v4")
	if err := os.WriteFile(file, []byte(seedRules), 0o640); err != nil {
		f.Fatal(err)
	}
	eng := netfilter.New(netfilter.Config{Seed: 1})
	now := func() time.Time { return t0 }
	rules := NewRules(RulesConfig{Engine: eng, Registry: builtin.Registry(), File: file, Now: now})
	rs, err := ReadSaveFile(file, builtin.Registry())
	if err != nil {
		f.Fatal(err)
	}
	if err := rules.Load(rs); err != nil {
		f.Fatal(err)
	}
	srv := &Server{cfg: Config{Rules: rules, Mode: "proxy", Now: now, Started: t0, BootNS: t0.Add(-time.Hour).UnixNano()}}
	f.Fuzz(func(t *testing.T, s string) {
		w := strings.Split(s, "\x00")
		if w[0] == "iptables" {
			return
		}
		rep := srv.Exec(Request{Command: w[0], Args: w[1:]})
		if rep.Exit != 0 && rep.Stderr == "" {
			t.Fatalf("%q: exit %d without a message", w, rep.Exit)
		}
	})
}
