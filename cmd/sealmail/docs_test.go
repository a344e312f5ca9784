package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// configDoc is the operator's reference for every key.
const configDoc = "../../docs/configuration.md"

// TestConfigDocMatchesKeys keeps docs/configuration.md exact against
// configKeys: every key has a row, every row names a real key, and the
// default in the row is the one in configKeys.
func TestConfigDocMatchesKeys(t *testing.T) {
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## Keys\n")
	if !ok {
		t.Fatalf("%s has no \"## Keys\" section", configDoc)
	}
	table, _, _ = strings.Cut(table, "\n## ")
	tick := regexp.MustCompile("`([^`]*)`")
	documented := map[string]string{} // key → its default as written
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		names := tick.FindAllStringSubmatch(cells[1], -1)
		defs := tick.FindAllStringSubmatch(cells[2], -1)
		for i, n := range names {
			def := ""
			switch {
			case len(defs) == len(names):
				def = defs[i][1]
			case len(defs) == 1:
				def = defs[0][1]
			}
			documented[n[1]] = def
		}
	}
	for _, k := range configKeys() {
		def, ok := documented[k.name]
		if !ok {
			t.Errorf("%s does not document key %s", configDoc, k.name)
			continue
		}
		if want := docDefault(k); def != want {
			t.Errorf("%s: %s default is `%s` in the doc, `%s` in config.go", configDoc, k.name, def, want)
		}
		delete(documented, k.name)
	}
	for name := range documented {
		t.Errorf("%s documents %s, which config.go does not know", configDoc, name)
	}
}

// docDefault renders a key's default as the doc writes it: the default
// tag as it is, `""` for an empty string, lists in brackets, maps as {}.
func docDefault(k configKey) string {
	switch k.typ {
	case typeAliases:
		return "{}"
	case typeList:
		l, _ := toList(k.def)
		return "[" + strings.Join(l, ", ") + "]"
	}
	if k.def == "" {
		return `""`
	}
	return k.def
}

// TestCommandsDocumented: docs/configuration.md has a row for every
// registered command, and every row names a real command.
func TestCommandsDocumented(t *testing.T) {
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Commands\n")
	if !ok {
		t.Fatalf("%s has no \"## Commands\" section", configDoc)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]bool{}
	cell := regexp.MustCompile("^\\| `([^`]*)`")
	word := regexp.MustCompile(`^[a-z][a-z0-9-]*(\\\|[a-z][a-z0-9-]*)*$`) // "allow\|deny"
	for _, line := range strings.Split(section, "\n") {
		m := cell.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// The command's words lead the cell; alternatives ("allow\|deny")
		// name one command each.
		names := []string{""}
		for _, w := range strings.Fields(m[1]) {
			if !word.MatchString(w) {
				break
			}
			var next []string
			for _, n := range names {
				for _, alt := range strings.Split(w, `\|`) {
					next = append(next, strings.TrimSpace(n+" "+alt))
				}
			}
			names = next
		}
		for _, n := range names {
			if n != "" {
				rows[n] = true
			}
		}
	}
	for _, c := range commands {
		if !rows[c.name] {
			t.Errorf("%s does not document the command %q", configDoc, c.name)
		}
		delete(rows, c.name)
	}
	delete(rows, "help")
	for name := range rows {
		t.Errorf("%s documents a command %q that does not exist", configDoc, name)
	}
}
