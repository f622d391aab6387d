package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Key documents one configuration key for the reference (docs/config.md,
// mailwall.yaml(5)): its place and type from the Config structs, its
// default and its text from the embedded default.yaml, so the reference
// cannot drift from either.
type Key struct {
	Path    string // "checks.actions.spf_fail"
	Type    string // "string", "duration", "list of strings", "section", ...
	Default string // as YAML: "tag", "[]", "2s"; "" for a section
	Doc     string // default.yaml's comments on the key, '#' removed
}

// Section reports whether the key holds other keys.
func (k Key) Section() bool { return k.Type == "section" }

// Reference lists every key of the configuration in file order. It fails
// when default.yaml and the Config structs disagree: a key without a field,
// or a field without a key.
func Reference() ([]Key, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(defaultYAML, &doc); err != nil {
		return nil, fmt.Errorf("config: default.yaml: %w", err)
	}
	if len(doc.Content) != 1 {
		return nil, fmt.Errorf("config: default.yaml: not one document")
	}
	var keys []Key
	fileDoc := comment(doc.HeadComment) // the file's own header, before hostname
	if err := referenceOf("", doc.Content[0], reflect.TypeOf(Config{}), &keys); err != nil {
		return nil, err
	}
	if len(keys) > 0 && fileDoc != "" && strings.HasPrefix(keys[0].Doc, fileDoc) {
		keys[0].Doc = strings.TrimSpace(strings.TrimPrefix(keys[0].Doc, fileDoc))
	}
	return keys, nil
}

func referenceOf(prefix string, node *yaml.Node, t reflect.Type, keys *[]Key) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("config: default.yaml: %s is not a mapping", prefix)
	}
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = f
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("config: default.yaml: %s has no field in the Config structs", path)
		}
		seen[k.Value] = true
		text := join(comment(k.HeadComment), comment(k.LineComment), comment(v.LineComment))
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			*keys = append(*keys, Key{Path: path, Type: "section", Doc: text})
			if err := referenceOf(path, v, f.Type, keys); err != nil {
				return err
			}
			continue
		}
		def, err := flow(v)
		if err != nil {
			return fmt.Errorf("config: default.yaml: %s: %w", path, err)
		}
		*keys = append(*keys, Key{Path: path, Type: typeName(f.Type), Default: def, Doc: text})
	}
	for name := range fields {
		if !seen[name] {
			return fmt.Errorf("config: default.yaml lacks %s", strings.TrimPrefix(prefix+"."+name, "."))
		}
	}
	return nil
}

// typeName says in words what a key holds.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(Duration(0)):
		return "duration"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		var names []string
		for i := 0; i < t.Elem().NumField(); i++ {
			name, _, _ := strings.Cut(t.Elem().Field(i).Tag.Get("yaml"), ",")
			names = append(names, name)
		}
		return "list of {" + strings.Join(names, ", ") + "}"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int"
	default:
		return "string"
	}
}

// flow renders a default value on one line, as it would be written.
func flow(v *yaml.Node) (string, error) {
	c := *v
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	if c.Kind == yaml.SequenceNode || c.Kind == yaml.MappingNode {
		c.Style = yaml.FlowStyle
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// comment strips the '#' marks of a YAML comment and joins its lines;
// a blank comment line keeps a paragraph break.
func comment(c string) string {
	var paras []string
	var cur []string
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line == "" {
			if len(cur) > 0 {
				paras = append(paras, strings.Join(cur, " "))
				cur = nil
			}
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		paras = append(paras, strings.Join(cur, " "))
	}
	return strings.Join(paras, "\n\n")
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
