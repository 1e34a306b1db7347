package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// cases are JSON values, valid or not, of every kind.
var cases = []string{
	`0`, `-0`, `1`, `-1`, `12.5`, `-0.0e-0`, `1E+9`, `1e9`, `123456789012345678901234567890`,
	`01`, `-01`, `00`, `1.`, `.5`, `-`, `+1`, `1e`, `1e+`, `1.e5`, `0x10`, `NaN`, `Infinity`, `--1`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `fals`,
	`""`, `"a"`, `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"\ud800"`, `"\x"`, `"\u12"`, `"\u12g4"`, `"\U0041"`, `"\`, `"abc`,
	"\"\x00\"", "\"\x1f\"", "\"\t\"", "\"\x7f\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"é😀\"",
	`[]`, `{}`, `[ ]`, `{ }`, `[1,2]`, `[1 , 2 ]`, `{"a":1,"b":[{}]}`, ` { "a" : [ 1 , { "b" : null } ] } `,
	`[`, `]`, `{`, `}`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{1:1}`, `{"a" 1}`, `{"a"::1}`,
	`[1}`, `{"a":1]`, `[[[]]`, `[]]`, `{"a":{"b":1}`, `{"a":1}}`, `[1][2]`, `1 2`, `"a" "b"`,
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth),
	strings.Repeat("[", 3) + strings.Repeat("]", 2),
}

// checkValue checks Value against json.Valid on data with
// whitespace around one value: it takes exactly the valid JSON, but what
// is nested deeper than MaxDepth.
func checkValue(t *testing.T, data []byte) {
	t.Helper()
	j, ok := Value(data, Space(data, 0))
	got := ok && Space(data, j) == len(data)
	if want := json.Valid(data); got != want && (got || nesting(data) <= MaxDepth) {
		t.Fatalf("%q: Value %v (to %d), json.Valid %v", data, got, j, want)
	}
}

// nesting is the deepest nesting of brackets and braces of data outside
// strings, valid JSON or not.
func nesting(data []byte) int {
	depth, deepest, inStr := 0, 0, false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func TestValue(t *testing.T) {
	for _, c := range cases {
		checkValue(t, []byte(c))
		// and what follows a value is the caller's
		if j, ok := Value([]byte(c+",x"), Space([]byte(c), 0)); ok && j > len(c) {
			t.Errorf("%q: Value went on to %d", c, j)
		}
	}
	if _, ok := Value([]byte(strings.Repeat("[", MaxDepth+1)+strings.Repeat("]", MaxDepth+1)), 0); ok {
		t.Error("took a value nested deeper than MaxDepth")
	}
}

// FuzzValue is a differential test of Value against json.Valid.
//
//	go test -run '^$' -fuzz '^FuzzValue$' -fuzztime 60s ./internal/jsonscan/
func FuzzValue(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkValue(t, data)
	})
}
