package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitFile is the systemd unit shipped for production (docs/production.md).
const unitFile = "../../docs/sealmail.service"

// TestSystemdUnit: the shipped unit passes `systemd-analyze verify`
// without a word, has the hardening issue 14 asks for, and systemd's
// own offline security assessment rates its exposure 2.0 or better
// ("OK"). It runs the real systemd-analyze (Debian's systemd package,
// which .ci/run installs).
func TestSystemdUnit(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install Debian's systemd package (.ci/run does) to check docs/sealmail.service")
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nUser=sealmail\n", "\nProtectSystem=strict\n", "\nNoNewPrivileges=yes\n", "\nReadWritePaths=/var/lib/sealmail\n",
		"\nStateDirectory=sealmail\n", "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n", "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"\nMemorySwapMax=0\n", "\nLimitCORE=0\n", "\nUMask=0077\n",
		"\nExecStart=/usr/local/bin/sealmail --config /etc/sealmail/sealmail.yaml serve\n",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("%s lacks %q", unitFile, strings.TrimSpace(want))
		}
	}
	// production.md's configuration puts the data where the unit lets
	// the service write.
	prod, err := os.ReadFile("../../docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(prod, []byte("data_dir: /var/lib/sealmail\n")) || !bytes.Contains(prod, []byte("sealmail.service")) {
		t.Errorf("docs/production.md does not configure data_dir /var/lib/sealmail or name the unit")
	}
	// verify checks that ExecStart's program exists: point it at the
	// binary under test.
	dir := t.TempDir()
	path := filepath.Join(dir, "sealmail.service")
	local := bytes.ReplaceAll(unit, []byte("/usr/local/bin/sealmail"), []byte(binary))
	if err := os.WriteFile(path, local, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", "--man=no", path},
		{"security", "--offline=true", "--threshold=20", "--no-pager", path},
	} {
		cmd := exec.Command(tool, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || (args[0] == "verify" && stderr.Len() > 0) {
			t.Errorf("systemd-analyze %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		if args[0] == "security" && !bytes.Contains(out, []byte("Overall exposure level for sealmail.service")) {
			t.Errorf("systemd-analyze security printed:\n%s", out)
		}
	}
}
