// Package permanent is the one "do not retry" error of Beaver-Raft. The
// built-in handlers, the Go handlers of an embedding program (package
// beaver) and remote workers (package client) all mark errors with it, and
// every worker recognises it, whoever made it.
package permanent

import "errors"

// New wraps err to mean "do not retry": the job fails at once, whatever
// attempts are left. The error's text and errors.Is/As see through the
// wrapper. New(nil) is nil.
func New(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err}
}

// Is reports whether err, or an error it wraps, was made by New.
func Is(err error) bool {
	var p *Error
	return errors.As(err, &p)
}

// Error is an error marked permanent.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }
