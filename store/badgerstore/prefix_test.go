package badgerstore

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// TestKeyPrefixesDistinct: every key prefix (a package constant pXxx
// with a rune value) is a different byte, across all the files that
// declare them (keys.go, retention_codec.go, …): two tables on one
// prefix read each other's rows as corrupt.
func TestKeyPrefixesDistinct(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := map[string]string{}
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					r := []rune(id.Name)
					if len(r) < 2 || r[0] != 'p' || !unicode.IsUpper(r[1]) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.CHAR {
						continue
					}
					n++
					if other, dup := seen[lit.Value]; dup {
						t.Errorf("prefix %s is both %s and %s (%s)", lit.Value, other, id.Name, name)
					}
					seen[lit.Value] = id.Name
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d prefixes: the test no longer sees the declarations", n)
	}
}
