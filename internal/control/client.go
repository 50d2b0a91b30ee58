package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// Client talks to a daemon's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path. Nothing is dialled
// until Exec.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// ErrNotRunning is returned (wrapped) when no daemon listens on the socket.
var ErrNotRunning = errors.New("no uptables daemon is running")

// Exec runs one command in the daemon and returns what it printed and its
// exit status. The error is for the transport only (no daemon, permission,
// protocol); a failing command is a Reply with a non-zero Exit.
func (c *Client) Exec(ctx context.Context, command string, args []string) (Reply, error) {
	return c.ExecInput(ctx, command, args, "")
}

// ExecInput is Exec with the command's standard input (ipset restore);
// it counts against the request bound of 1 MiB.
func (c *Client) ExecInput(ctx context.Context, command string, args []string, stdin string) (Reply, error) {
	if args == nil {
		args = []string{}
	}
	body, err := json.Marshal(Request{Command: command, Args: args, Stdin: stdin})
	if err != nil {
		return Reply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://uptables"+ExecPath, bytes.NewReader(body))
	if err != nil {
		return Reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return Reply{}, c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return Reply{}, fmt.Errorf("control socket %s: %s", c.path, strings.TrimSpace(string(msg)))
	}
	var rep Reply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return Reply{}, fmt.Errorf("control socket %s: bad reply: %v", c.path, err)
	}
	return rep, nil
}

// dialError explains why the socket could not be reached.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing listens on %s; start it with `uptables run ... --control %s`)", ErrNotRunning, c.path, c.path)
	case errors.Is(err, syscall.EACCES), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("control socket %s: permission denied (it is root-only: run as root or as the daemon's user)", c.path)
	}
	return fmt.Errorf("control socket %s: %v", c.path, err)
}

// DefaultTimeout bounds one command (a conntrack -L of a full table takes
// well under a second).
const DefaultTimeout = 30 * time.Second
