package authtoken

import "testing"

func TestSet(t *testing.T) {
	s := New([]string{"a", "", "bcd"})
	for tok, want := range map[string]bool{"a": true, "bcd": true, "": false, "b": false, "bcde": false} {
		if got := s.Valid(tok); got != want {
			t.Errorf("Valid(%q) = %v, want %v", tok, got, want)
		}
	}
	if (Set{}).Valid("") {
		t.Error("the empty set accepted a token")
	}
}
