package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// sessions maps session ids to sessions, in memory: a restart logs
// everybody out. The cookie holds a random id, never the token; the map is
// keyed by the id's SHA-256, so that the id itself is not kept either.
//
// Expired sessions are dropped when they are looked up or when a login
// needs room, so the store needs no goroutine of its own.
type sessions struct {
	clock func() time.Time
	ttl   time.Duration
	max   int

	mu   sync.Mutex
	byID map[[sha256.Size]byte]*session
}

type session struct {
	csrf    string
	created time.Time
	expires time.Time
}

func newSessions(clock func() time.Time, ttl time.Duration, max int) *sessions {
	return &sessions{clock: clock, ttl: ttl, max: max, byID: make(map[[sha256.Size]byte]*session)}
}

// randomToken is 32 random bytes, base64url encoded.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its id (for the cookie) and its
// expiry. When the store is full, expired sessions go first, then the
// oldest ones.
func (s *sessions) create() (id string, expires time.Time) {
	id = randomToken()
	now := s.clock()
	sess := &session{csrf: randomToken(), created: now, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		for k, v := range s.byID {
			if !now.Before(v.expires) {
				delete(s.byID, k)
			}
		}
	}
	for len(s.byID) >= s.max {
		var oldest [sha256.Size]byte
		var at time.Time
		for k, v := range s.byID {
			if at.IsZero() || v.created.Before(at) {
				oldest, at = k, v.created
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess.expires
}

// lookup returns the CSRF token of the live session id.
func (s *sessions) lookup(id string) (csrf string, ok bool) {
	if id == "" {
		return "", false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.byID[k]
	if sess == nil {
		return "", false
	}
	if !s.clock().Before(sess.expires) {
		delete(s.byID, k)
		return "", false
	}
	return sess.csrf, true
}

// remove ends session id.
func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// sameToken compares a CSRF token in constant time.
func sameToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
