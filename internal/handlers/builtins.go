package handlers

import (
	"net/http"

	"github.com/beaver-raft/beaver-raft/internal/config"
)

// Names under which Builtins registers the built-in handlers; a job's type
// selects its handler.
const (
	NoopType  = "noop"
	SleepType = "sleep"
	HTTPType  = "http"
	ExecType  = "exec"
)

// Builtins returns the built-in handlers by job type, as the handlers
// section of the configuration enables them: noop and sleep always, http
// when cfg.HTTP.Enabled, exec only when cfg.Exec.Enabled. cfg is assumed
// validated. The map is new; the caller may add its own handlers to it.
func Builtins(cfg config.HandlersConfig) map[string]Handler {
	m := map[string]Handler{
		NoopType:  Noop(),
		SleepType: Sleep(),
	}
	if cfg.HTTP.Enabled {
		m[HTTPType] = HTTP(HTTPOptions{
			Client:    &http.Client{Timeout: cfg.HTTP.Timeout.Duration()},
			MaxResult: int(cfg.HTTP.MaxResult),
		})
	}
	if cfg.Exec.Enabled {
		// The configuration has no exec result limit: DefaultMaxResult.
		m[ExecType] = Exec(ExecOptions{Allow: cfg.Exec.Allow})
	}
	return m
}
