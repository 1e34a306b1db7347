package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/beaver-raft/beaver-raft/client"
)

// addClientCommands adds the commands that talk to a running server:
// enqueue, status, jobs, worker, cluster and queues.
func addClientCommands(root *cobra.Command, e *env) {
	root.AddCommand(
		newEnqueueCmd(e),
		newStatusCmd(e),
		newJobsCmd(e),
		newWorkerCmd(e),
		newClusterCmd(e),
		newPeriodicCmd(e),
		newQueuesCmd(e),
	)
}

// Defaults of the flags every client command has.
const (
	defaultServer         = "http://127.0.0.1:7070"
	defaultRequestTimeout = 30 * time.Second
	envServer             = "BEAVER_SERVER"
	envToken              = "BEAVER_TOKEN"
)

// clientFlags are the flags of every command that talks to a server:
// --server, --token and --timeout.
type clientFlags struct {
	server  string
	token   string
	timeout time.Duration
	fs      *pflag.FlagSet // where the flags were bound, to see what was given
}

// bind adds the flags to fs. The default of --server is $BEAVER_SERVER when
// it is set; --token falls back to $BEAVER_TOKEN when it is not given (its
// value is never shown in the help).
func (f *clientFlags) bind(fs *pflag.FlagSet) {
	f.fs = fs
	server := defaultServer
	if v := os.Getenv(envServer); v != "" {
		server = v
	}
	fs.StringVar(&f.server, "server", server, "URL of the server (env "+envServer+")")
	fs.StringVar(&f.token, "token", "", "bearer token, one of the server's auth.tokens (default: env "+envToken+")")
	fs.DurationVar(&f.timeout, "timeout", defaultRequestTimeout, "time limit of each request to the server")
}

// resolvedToken is --token if given (even empty), else $BEAVER_TOKEN.
func (f *clientFlags) resolvedToken() string {
	if f.fs != nil && f.fs.Changed("token") {
		return f.token
	}
	return os.Getenv(envToken)
}

// check validates the flags: a usage error if one is bad.
func (f *clientFlags) check() error {
	if f.timeout <= 0 {
		return usageErrorf("--timeout must be positive, got %v", f.timeout)
	}
	if strings.TrimSpace(f.server) == "" {
		return usageErrorf("--server is empty")
	}
	return nil
}

// client returns a client of the server. Close it when done.
func (f *clientFlags) client() (*client.Client, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return client.New(f.server, client.WithToken(f.resolvedToken())), nil
}

// call runs one request with the --timeout limit and turns its error into
// one a user can act on (see callErr).
func (f *clientFlags) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return f.callErr(fn(ctx))
}

// requestError is an error of a call to the server, worded for the command
// line; Unwrap gives the client's error (a *client.Error when the server
// answered).
type requestError struct {
	msg string
	err error
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.err }

// callErr words an error of the client for the command line:
//
//   - the server's error answer as "<code>: <message>", with a hint for 401;
//   - no answer within --timeout, or an interruption, as such;
//   - a failed connection naming the server and the flag that sets it.
//
// It returns nil for nil and leaves errors already worded alone.
func (f *clientFlags) callErr(err error) error {
	if err == nil {
		return nil
	}
	var re *requestError
	if errors.As(err, &re) {
		return err
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		msg := ce.Code + ": " + ce.Message
		switch {
		case ce.Code == "":
			msg = fmt.Sprintf("HTTP %d %s from %s: %s", ce.Status, http.StatusText(ce.Status), f.server, ce.Message)
			if ce.Status == http.StatusNotFound {
				msg += " (is --server a Beaver-Raft server?)"
			}
		case ce.Status == http.StatusUnauthorized:
			msg += " (give the server's token with --token or " + envToken + ")"
		}
		return &requestError{msg: msg, err: err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &requestError{msg: "interrupted", err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &requestError{msg: fmt.Sprintf("no answer from %s within %v (see --timeout)", f.server, f.timeout), err: err}
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return &requestError{msg: fmt.Sprintf("cannot reach the server at %s (see --server or %s): %v", f.server, envServer, inner), err: err}
	}
	return &requestError{msg: fmt.Sprintf("request to %s failed: %v", f.server, inner), err: err}
}

// usageErrorf is a usage error: exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// usageFlagErrors makes the flag errors of cmd and its subcommands usage
// errors (exit status 2) that point to --help.
func usageFlagErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
}

// usageArgs makes the errors of an argument validator usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageErrorf("%v (see '%s --help')", err, cmd.CommandPath())
		}
		return nil
	}
}
