package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fieldErrors flattens err (a FieldError or a tree joined by errors.Join or
// wrapped with %w) into its FieldErrors.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *FieldError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "beaver.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameConfig compares a and b, taking nil and empty lists as equal.
func sameConfig(a, b Config) bool {
	for _, c := range []*Config{&a, &b} {
		for _, l := range []*[]string{&c.Auth.Tokens, &c.Handlers.Exec.Allow, &c.Cluster.Peers} {
			if len(*l) == 0 {
				*l = nil
			}
		}
	}
	return reflect.DeepEqual(a, b)
}

// keysOf returns the keys named by the FieldErrors in err.
func keysOf(err error) []string {
	var keys []string
	for _, fe := range fieldErrors(err) {
		keys = append(keys, fe.Key)
	}
	return keys
}

func readDoc() (string, error) {
	data, err := os.ReadFile("../../docs/config.md")
	return string(data), err
}
