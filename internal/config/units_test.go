package config

import (
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseByteSize(t *testing.T) {
	good := []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"1000", 1000},
		{"1B", 1},
		{"512KiB", 512 << 10},
		{"1MiB", 1 << 20},
		{"1GiB", 1 << 30},
		{"2TiB", 2 << 40},
		{"10MB", 10_000_000},
		{"1KB", 1000},
		{"3GB", 3_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"64mib", 64 << 20},
		{"64 MiB", 64 << 20},
		{" 7 ", 7},
	}
	for _, tc := range good {
		got, err := ParseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1M", "1 kibibyte", "10XB", "99999999999999999999", "9000000TiB", "0x10"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0"}, {1, "1"}, {1000, "1KB"}, {1024, "1KiB"}, {64 << 10, "64KiB"}, {1 << 20, "1MiB"},
		{10_000_000, "10MB"}, {1 << 30, "1GiB"}, {1536 << 20, "1536MiB"}, {1_000_000_007, "1000000007"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseByteSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("round trip of %d: got %d, %v", int64(tc.in), back, err)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"10ms", 10 * time.Millisecond, "10ms"},
		{"30s", 30 * time.Second, "30s"},
		{"5m", 5 * time.Minute, "5m"},
		{"1h", time.Hour, "1h"},
		{"168h", 168 * time.Hour, "168h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"90s", 90 * time.Second, "1m30s"},
		{"0", 0, "0s"},
		{"-2m", -2 * time.Minute, "-2m"},
	} {
		var d Duration
		if err := d.Set(tc.in); err != nil || d.Duration() != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, d.Duration(), err, tc.want)
		}
		if d.String() != tc.str {
			t.Errorf("Duration(%v).String() = %q, want %q", tc.want, d.String(), tc.str)
		}
	}
	for _, in := range []string{"", "30", "1 hour", "1d", "abc"} {
		var d Duration
		if err := d.Set(in); err == nil {
			t.Errorf("Set(%q) = %v, want an error", in, d)
		}
	}
}

func TestUnitsYAML(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}
	in := doc{D: Duration(90 * time.Minute), B: 512 * KiB}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d: 1h30m\nb: 512KiB\n"; string(out) != want {
		t.Errorf("Marshal = %q, want %q", out, want)
	}
	var back doc
	if err := yaml.Unmarshal(out, &back); err != nil || back != in {
		t.Errorf("Unmarshal(%q) = %+v, %v; want %+v", out, back, err, in)
	}
	for _, bad := range []string{"d: 30\n", "d: [1s]\n", "b: 1.5GiB\n", "b: {x: 1}\n"} {
		if err := yaml.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("Unmarshal(%q) succeeded, want an error", bad)
		}
	}
}
