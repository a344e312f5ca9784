package policy

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
)

// The jurisdiction presets sealmail ships, as data (docs/retention.md has
// the schema). Each cites its sources and says it is not legal advice.
//
//go:embed presets/*.yaml
var presetFiles embed.FS

var (
	builtinOnce sync.Once
	builtin     []*Preset
	builtinErr  error
)

// Builtin returns the presets shipped with sealmail, ordered by ID. They
// are parsed once; a broken file is a build defect (TestBuiltinPresets).
func Builtin() ([]*Preset, error) {
	builtinOnce.Do(func() {
		names, err := fs.Glob(presetFiles, "presets/*.yaml")
		if err != nil {
			builtinErr = err
			return
		}
		for _, n := range names {
			src, err := presetFiles.ReadFile(n)
			if err != nil {
				builtinErr = err
				return
			}
			p, err := ParsePreset(bytes.NewReader(src), n)
			if err != nil {
				builtinErr = err
				return
			}
			if want := strings.TrimSuffix(strings.TrimPrefix(n, "presets/"), ".yaml"); p.ID != want {
				builtinErr = fmt.Errorf("%s: id %q does not match the file name", n, p.ID)
				return
			}
			p.Builtin = true
			builtin = append(builtin, p)
		}
		slices.SortFunc(builtin, func(a, b *Preset) int { return strings.Compare(a.ID, b.ID) })
	})
	return builtin, builtinErr
}
