package deptest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/sealmail/sealmail"

// listed is the part of `go list -json` the rules need.
type listed struct {
	ImportPath string
	Deps       []string
}

// touchSources stats every Go file of the module so that `go test`'s result
// cache notices when any of them changes (it cannot see what `go list`
// reads in a child process).
func touchSources(t *testing.T) {
	t.Helper()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "../.." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			_, err := os.ReadDir(path)
			return err
		}
		if strings.HasSuffix(path, ".go") || d.Name() == "go.mod" {
			_, err := os.Stat(path)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk sources: %v", err)
	}
}

func listPackages(t *testing.T) []listed {
	t.Helper()
	touchSources(t)
	cmd := exec.Command("go", "list", "-deps=false", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 3 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// rule forbids packages matching from (by prefix) to depend, directly or
// not, on packages matching any of to (by prefix).
type rule struct {
	name   string
	from   func(pkg string) bool
	denied []string
}

func under(prefix string) func(string) bool {
	return func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
}

func not(f func(string) bool) func(string) bool { return func(p string) bool { return !f(p) } }

var rules = []rule{
	{"store never sees keys or crypto", under(module + "/store"),
		[]string{module + "/crypto", "github.com/ProtonMail/go-crypto"}},
	{"crypto knows nothing of storage", under(module + "/crypto"),
		[]string{module + "/store", module + "/server", module + "/policy", module + "/keyserver", "github.com/dgraph-io/badger"}},
	{"only cmd/ imports viper", not(under(module + "/cmd")),
		[]string{"github.com/spf13/viper"}},
	// Packages expose what they count through Options hooks; only the
	// binary knows Prometheus.
	{"only cmd/ imports prometheus", not(under(module + "/cmd")),
		[]string{"github.com/prometheus"}},
	{"keyserver imports store and policy only", under(module + "/keyserver"),
		[]string{module + "/crypto", module + "/server"}},
	{"policy imports store only", under(module + "/policy"),
		[]string{module + "/crypto", module + "/server", module + "/keyserver"}},
	{"libraries never import the binary", not(under(module + "/cmd")),
		[]string{module + "/cmd"}},
	// Servers get already-guarded listeners from cmd; the guard knows no
	// protocol and nothing of the project.
	{"only cmd/ imports server/listener", both(not(under(module+"/cmd")), not(under(module+"/server/listener"))),
		[]string{module + "/server/listener"}},
	// The shared mailbox reader knows the store and the keys, no protocol
	// and no account management; its structure types know nothing.
	{"server/mailbox imports store and crypto only", under(module + "/server/mailbox"),
		[]string{module + "/policy", module + "/keyserver", module + "/server/account", module + "/server/smtp",
			module + "/server/imap", module + "/server/listener"}},
	{"server/mailbox/structure imports no project package", under(module + "/server/mailbox/structure"),
		[]string{module + "/store", module + "/crypto", module + "/policy", module + "/keyserver", module + "/server/account",
			module + "/server/smtp", module + "/server/imap", module + "/server/listener"}},
	// The IMAP wire layer is protocol only: no store, no keys.
	{"server/imap/wire imports no storage or keys", under(module + "/server/imap/wire"),
		[]string{module + "/store", module + "/crypto", module + "/policy", module + "/server/account", "github.com/dgraph-io/badger"}},
	{"server/connset imports no project package", under(module + "/server/connset"),
		[]string{module + "/store", module + "/crypto", module + "/policy", module + "/keyserver", module + "/server/smtp",
			module + "/server/imap", module + "/server/pop3", module + "/server/account", module + "/server/mailbox", module + "/server/listener"}},
	// The benchmarks' message generator, shared by server tests and
	// cmd/sealbench so that both measure one data set.
	{"server/benchmsg imports no project package", under(module + "/server/benchmsg"),
		[]string{module + "/store", module + "/crypto", module + "/policy", module + "/keyserver", module + "/server/smtp",
			module + "/server/imap", module + "/server/pop3", module + "/server/account", module + "/server/mailbox",
			module + "/server/listener", module + "/server/connset", module + "/server/internal"}},
	{"server/listener imports no project package but server/connset", under(module + "/server/listener"),
		[]string{module + "/store", module + "/crypto", module + "/policy", module + "/keyserver",
			module + "/server/smtp", module + "/server/imap", module + "/server/account", module + "/server/mailbox"}},
	// The server packages' shared test scaffolding: tests only, and so
	// light that any server package's own tests may import it.
	{"only tests import server/internal/testutil", not(under(module + "/server/internal/testutil")),
		[]string{module + "/server/internal/testutil"}},
	{"server/internal/testutil imports crypto and store only", under(module + "/server/internal/testutil"),
		[]string{module + "/policy", module + "/keyserver", module + "/server/account", module + "/server/mailbox",
			module + "/server/smtp", module + "/server/imap", module + "/server/pop3", module + "/server/connset",
			module + "/server/listener", module + "/server/filter", module + "/server/audit", module + "/server/retention",
			"github.com/dgraph-io/badger"}},
}

func both(f, g func(string) bool) func(string) bool {
	return func(p string) bool { return f(p) && g(p) }
}

func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		deps := goList(t, "-deps", p.ImportPath)
		for _, r := range rules {
			if !r.from(p.ImportPath) {
				continue
			}
			for _, d := range deps {
				for _, bad := range r.denied {
					if d == bad || strings.HasPrefix(d, bad+"/") {
						t.Errorf("%s: %s depends on %s", r.name, p.ImportPath, d)
					}
				}
			}
		}
	}
}

// sharedServices are the server/ packages other server/ packages may
// import (DESIGN.md: the shared services). server/filter, the spam
// classifier, is one: the MX scores with it and the access protocols
// train it; server/smtp/inbound and server/imap reach it through
// interfaces of their own, so only cmd/ imports it today.
// server/connset, the connection bookkeeping every protocol server
// shares, is a utility that knows nothing of the project; so is
// server/benchmsg, the benchmarks' message generator.
var sharedServices = []string{module + "/server/account", module + "/server/mailbox", module + "/server/filter", module + "/server/audit", module + "/server/retention", module + "/server/connset", module + "/server/benchmsg"}

// leafServices may import nothing of the project but these.
var leafServices = map[string][]string{
	module + "/server/account": {module + "/store", module + "/crypto", module + "/policy"},
	module + "/server/filter":  {module + "/store", module + "/crypto", module + "/policy"},
	// Everything the audit log records reaches it through its Event.
	module + "/server/audit": {module + "/store", module + "/crypto"},
	// The retention service decides on metadata only: no crypto.
	module + "/server/retention": {module + "/store", module + "/policy"},
}

// TestServerImports: a server/ package imports no other server/ package
// except the shared services, the account and filter services import
// nothing of the project but store, crypto and policy, the audit log
// nothing but store and crypto, and the retention service nothing but
// store and policy.
func TestServerImports(t *testing.T) {
	for _, p := range listPackages(t) {
		if !under(module + "/server")(p.ImportPath) {
			continue
		}
		own := module + "/server/" + strings.SplitN(strings.TrimPrefix(p.ImportPath, module+"/server/"), "/", 2)[0]
		for _, d := range goList(t, "-deps", p.ImportPath) {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			if allowed, ok := leafServices[own]; ok {
				okDep := under(own)(d)
				for _, a := range allowed {
					okDep = okDep || under(a)(d)
				}
				if !okDep {
					t.Errorf("%s imports %v only: %s depends on %s", own, allowed, p.ImportPath, d)
				}
				continue
			}
			if !under(module+"/server")(d) || under(own)(d) {
				continue
			}
			shared := false
			for _, s := range sharedServices {
				shared = shared || under(s)(d)
			}
			if !shared {
				t.Errorf("server packages import only the shared services of server/: %s depends on %s", p.ImportPath, d)
			}
		}
	}
}

// TestBadgerImportedOnlyByBackend checks direct imports (with tests): no
// package but store/badgerstore names badger in its own import list.
func TestBadgerImportedOnlyByBackend(t *testing.T) {
	touchSources(t)
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		n++
		if under(module + "/store/badgerstore")(f[0]) {
			continue
		}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "github.com/dgraph-io/badger") {
				t.Errorf("%s imports %s; only store/badgerstore may", f[0], imp)
			}
		}
	}
	if n < 3 {
		t.Fatalf("go list listed only %d packages", n)
	}
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}
