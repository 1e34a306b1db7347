package permanent_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/permanent"
)

// Every package's Permanent makes the one error that every package's
// IsPermanent recognises, through wrapping.
func TestPermanentIsOne(t *testing.T) {
	base := errors.New("bad input")
	makers := map[string]func(error) error{"client": client.Permanent, "handlers": handlers.Permanent, "permanent": permanent.New}
	checks := map[string]func(error) bool{"client": client.IsPermanent, "handlers": handlers.IsPermanent, "permanent": permanent.Is}
	for mn, mk := range makers {
		err := fmt.Errorf("attempt 3: %w", mk(base))
		for cn, is := range checks {
			if !is(err) {
				t.Errorf("%s.IsPermanent(%s.Permanent(err)) = false", cn, mn)
			}
		}
		if !errors.Is(err, base) || err.Error() != "attempt 3: bad input" {
			t.Errorf("%s: wrapper hides the cause: %v", mn, err)
		}
		if mk(nil) != nil {
			t.Errorf("%s.Permanent(nil) != nil", mn)
		}
	}
	for cn, is := range checks {
		if is(base) {
			t.Errorf("%s.IsPermanent(plain error) = true", cn)
		}
	}
}
