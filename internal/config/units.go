package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes. It reads "1000", "10MB" (10^6 bytes per MB),
// "512KiB" (2^10 per KiB) and so on, and writes itself back in the largest
// unit that divides it exactly.
type ByteSize int64

// Binary and decimal byte units.
const (
	B   ByteSize = 1
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1e3
	MB  ByteSize = 1e6
	GB  ByteSize = 1e9
	TB  ByteSize = 1e12
)

// byteUnits is in the order String prefers: binary before decimal, large
// before small.
var byteUnits = []struct {
	name string
	size ByteSize
}{
	{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
	{"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}, {"B", B},
}

// ParseByteSize reads a non-negative whole number of bytes with an optional
// unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of
// 1024). Units are case-insensitive; a space may separate number and unit.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	end := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	digits, unit := t, ""
	if end >= 0 {
		digits, unit = t[:end], strings.TrimSpace(t[end:])
	}
	if digits == "" || strings.HasPrefix(unit, ".") {
		return 0, fmt.Errorf("invalid size %q: want a whole number of bytes with an optional unit, like 64MiB", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	mult := B
	if unit != "" {
		mult = 0
		for _, u := range byteUnits {
			if strings.EqualFold(unit, u.name) {
				mult = u.size
			}
		}
		if mult == 0 {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
		}
	}
	if n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return ByteSize(n) * mult, nil
}

// String writes b in the largest unit that divides it exactly: 1MiB, 10MB,
// 1000000007.
func (b ByteSize) String() string {
	if b != 0 {
		for _, u := range byteUnits[:len(byteUnits)-1] {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set implements pflag.Value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type implements pflag.Value.
func (*ByteSize) Type() string { return "bytes" }

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error { return setScalar(b, n) }

// Duration is a time.Duration written as a Go duration string ("30s",
// "1h30m"). A bare number is refused: it has no unit.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String writes d as time.Duration does, without zero trailing units:
// "1h", "5m", "1h30m", "10ms".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Set implements pflag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration like 30s, 5m or 1h30m", s)
	}
	*d = Duration(v)
	return nil
}

// Type implements pflag.Value.
func (*Duration) Type() string { return "duration" }

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error { return setScalar(d, n) }

// setScalar sets v from a YAML scalar through its pflag.Value parser, so the
// file and the flags accept exactly the same spellings.
func setScalar(v pflag.Value, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("want a single value, not a list or mapping")
	}
	return v.Set(n.Value)
}

var (
	_ pflag.Value      = (*ByteSize)(nil)
	_ pflag.Value      = (*Duration)(nil)
	_ yaml.Unmarshaler = (*ByteSize)(nil)
	_ yaml.Unmarshaler = (*Duration)(nil)
	_ yaml.Marshaler   = ByteSize(0)
	_ yaml.Marshaler   = Duration(0)
)
