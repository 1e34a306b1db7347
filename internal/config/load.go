package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError reports one bad configuration key: unknown, of the wrong type,
// or with an invalid value. Load and Validate return one or several of them
// (joined with errors.Join).
type FieldError struct {
	Key     string // dotted path, e.g. "snapshot.every_records"
	Line    int    // line in the YAML file, or 0 when not from a file
	Problem string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Problem)
	}
	return e.Key + ": " + e.Problem
}

// Load returns the defaults overridden by the YAML file at path. An empty path
// returns the defaults. Unknown keys, values of the wrong type and more than
// one YAML document are errors naming the key and line; Load does not call
// Validate.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := decode(data, &c); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// decode applies the YAML document in data to c. It first walks the document
// against the key table, which names unknown or mistyped keys by their full
// path and line, then decodes it strictly into c.
func decode(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil // empty file: defaults
	} else if err != nil {
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return fmt.Errorf("line %d: only one YAML document is allowed", next.Line)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	scratch := Default()
	if err := checkNode(doc.Content[0], "", &scratch); err != nil {
		return err
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	return strict.Decode(c)
}

// checkNode checks the mapping n found at the dotted path prefix: every key
// must be in the key table or a section of it, and every value must decode
// into its field (of scratch).
func checkNode(n *yaml.Node, prefix string, scratch *Config) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // an empty section leaves its defaults
	}
	if n.Kind != yaml.MappingNode {
		return &FieldError{Key: orTop(prefix), Line: n.Line, Problem: "must be a mapping of keys"}
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name := kn.Value
		if prefix != "" {
			name = prefix + "." + kn.Value
		}
		switch k := lookupKey(name); {
		case strings.Contains(kn.Value, "."):
			errs = append(errs, &FieldError{Key: name, Line: kn.Line,
				Problem: "unknown key (write nested keys as mappings, e.g. snapshot: {keep: 2})"})
		case name == periodicKey:
			errs = append(errs, checkPeriodic(vn))
		case k != nil:
			if _, list := k.field(scratch).(*[]string); !list && vn.ShortTag() == "!!null" {
				errs = append(errs, &FieldError{Key: name, Line: vn.Line, Problem: "has no value (remove the key to keep its default)"})
			} else if err := vn.Decode(k.field(scratch)); err != nil {
				errs = append(errs, &FieldError{Key: name, Line: vn.Line, Problem: yamlProblem(err)})
			}
		case isSection(name):
			errs = append(errs, checkNode(vn, name, scratch))
		default:
			errs = append(errs, &FieldError{Key: name, Line: kn.Line,
				Problem: "unknown key (known keys of " + orTop(prefix) + ": " + strings.Join(children(prefix), ", ") + ")"})
		}
	}
	return errors.Join(errs...)
}

func lookupKey(name string) *key {
	for i := range keys {
		if keys[i].name == name {
			return &keys[i]
		}
	}
	return nil
}

// isSection reports whether name is a proper prefix of some key.
func isSection(name string) bool {
	return slices.ContainsFunc(keys, func(k key) bool { return strings.HasPrefix(k.name, name+".") })
}

// children lists the names directly below the section prefix ("" for the top
// level), in table order.
func children(prefix string) []string {
	var names []string
	for _, k := range keys {
		rest, ok := k.name, prefix == ""
		if !ok {
			rest, ok = strings.CutPrefix(k.name, prefix+".")
		}
		first, _, _ := strings.Cut(rest, ".")
		if ok && !slices.Contains(names, first) {
			names = append(names, first)
		}
	}
	return names
}

func orTop(prefix string) string {
	if prefix == "" {
		return "the top level"
	}
	return prefix
}

// yamlProblem turns a yaml error about one value into a phrase without the
// "yaml: unmarshal errors: line N:" noise (FieldError carries the line).
func yamlProblem(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err.Error()
	}
	msg := te.Errors[0]
	if strings.HasPrefix(msg, "line ") {
		_, msg, _ = strings.Cut(msg, ": ")
	}
	return msg
}
