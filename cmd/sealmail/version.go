package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// buildInfo is what `sealmail version` prints: the module version, the
// version control state the binary was built from, and the toolchain.
type buildInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`               // "(devel)" for a build from a checkout
	Commit   string `json:"commit,omitempty"`      // "" when built without VCS information
	Time     string `json:"commit_time,omitempty"` // RFC 3339
	Modified bool   `json:"modified,omitempty"`    // built from a checkout with uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// readBuildInfo reads the binary's build information
// (runtime/debug.ReadBuildInfo): `go build` stamps the module version
// and, in a git checkout, vcs.revision, vcs.time and vcs.modified.
func readBuildInfo() buildInfo {
	b := buildInfo{Module: "github.com/sealmail/sealmail", Version: "unknown",
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	return buildInfoFrom(b, bi)
}

// buildInfoFrom fills b from bi.
func buildInfoFrom(b buildInfo, bi *debug.BuildInfo) buildInfo {
	if bi.Main.Path != "" {
		b.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	b.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one-line form for logs and the status output.
func (b buildInfo) String() string {
	s := b.Version
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " " + c
		if b.Modified {
			s += "+modified"
		}
	}
	return s + " " + b.Go
}

func runVersion(_ context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	b := readBuildInfo()
	if e.flags.json {
		return writeJSON(e.io.out, b)
	}
	fmt.Fprintf(e.io.out, "sealmail %s (%s)\n", b.Version, b.Module)
	switch {
	case b.Commit == "":
		fmt.Fprintln(e.io.out, "commit: unknown (built without version control information)")
	default:
		mod := ""
		if b.Modified {
			mod = ", with uncommitted changes"
		}
		fmt.Fprintf(e.io.out, "commit: %s (%s%s)\n", b.Commit, b.Time, mod)
	}
	fmt.Fprintf(e.io.out, "go: %s %s\n", b.Go, b.Platform)
	return nil
}
