package snapshot

import (
	"errors"
	"fmt"
	"slices"
)

// ErrUnlinked is wrapped by the error of a delta file that checks out but
// continues no chain: its parent or its base is missing or damaged (or it
// lost a fork to a longer branch). It can never be restored.
var ErrUnlinked = errors.New("snapshot: delta continues no complete chain")

// Chain is a full snapshot and the deltas that continue it, oldest first:
// Deltas[0].Parent is Base, Deltas[i].Parent is Deltas[i-1], and every
// delta's Base is Base. Restoring Base and then each delta in order gives
// the state at Tip().LSN; restoring only a prefix gives the state at that
// prefix's last LSN.
type Chain struct {
	Base   Meta
	Deltas []Meta
}

// Tip is the newest file of the chain.
func (c Chain) Tip() Meta {
	if len(c.Deltas) == 0 {
		return c.Base
	}
	return c.Deltas[len(c.Deltas)-1]
}

// DeltaBytes is the size of the chain's delta files.
func (c Chain) DeltaBytes() int64 {
	var n int64
	for _, d := range c.Deltas {
		n += d.Size
	}
	return n
}

// Files lists the chain's files, base first.
func (c Chain) Files() []Meta { return append([]Meta{c.Base}, c.Deltas...) }

func (c Chain) holds(path string) bool {
	if path == "" {
		return false
	}
	return slices.ContainsFunc(c.Files(), func(m Meta) bool { return m.Path == path })
}

// Unusable is a snapshot file that belongs to no chain, and why.
type Unusable struct {
	Meta Meta
	// Err wraps ErrCorrupt (header, link block or trailer damaged: a
	// *CorruptionError) or ErrUnlinked.
	Err error
}

// Catalog is the snapshot directory as chains.
type Catalog struct {
	// Chains, newest base first (at equal LSNs, as List orders them).
	Chains []Chain
	// Unusable files, newest first.
	Unusable []Unusable
}

// Catalog reads the header, link block and trailer of every snapshot file
// (not the bodies) and sorts the files into chains: each complete full
// snapshot is a chain's base, continued by the longest run of complete
// deltas that link to it (at a fork, the branch that reaches the highest
// LSN). Files that are damaged or continue no chain are listed as
// Unusable. Body damage is found only when a body is read (OpenBody,
// Verify).
func (s *Store) Catalog() (Catalog, error) {
	metas, err := s.List()
	if err != nil {
		return Catalog{}, err
	}
	var cat Catalog
	var fulls, deltas []Meta
	for _, m := range metas {
		f, h, t, err := s.openChecked(m.Path)
		if errors.Is(err, ErrNoSnapshot) {
			continue // deleted since List
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return Catalog{}, err
		}
		if err != nil {
			cat.Unusable = append(cat.Unusable, Unusable{Meta: m, Err: err})
			continue
		}
		f.Close()
		m.BodyCRC, m.Parent, m.Base = t.bodyCRC, h.parent, h.base
		if m.Kind == Full {
			fulls = append(fulls, m)
		} else {
			deltas = append(deltas, m)
		}
	}
	children := map[Link][]Meta{}
	for _, d := range deltas {
		children[d.Parent] = append(children[d.Parent], d)
	}
	used := map[string]bool{}
	for _, b := range fulls {
		base := b.Link()
		var best []Meta
		var walk func(cur Link, path []Meta)
		walk = func(cur Link, path []Meta) {
			if len(path) > 0 && (best == nil || path[len(path)-1].LSN > best[len(best)-1].LSN) {
				best = slices.Clone(path)
			}
			for _, ch := range children[cur] {
				if ch.Base != base || used[ch.Path] {
					continue
				}
				walk(ch.Link(), append(path, ch))
			}
		}
		walk(base, nil)
		for _, d := range best {
			used[d.Path] = true
		}
		cat.Chains = append(cat.Chains, Chain{Base: b, Deltas: best})
	}
	for _, d := range deltas {
		if !used[d.Path] {
			cat.Unusable = append(cat.Unusable, Unusable{Meta: d, Err: fmt.Errorf("%w: %s follows %s in the chain of base %s, which is not a complete chain here", ErrUnlinked, d.Path, d.Parent, d.Base)})
		}
	}
	slices.SortStableFunc(cat.Unusable, func(a, b Unusable) int {
		if a.Meta.LSN != b.Meta.LSN {
			if a.Meta.LSN > b.Meta.LSN {
				return -1
			}
			return 1
		}
		return 0
	})
	return cat, nil
}
