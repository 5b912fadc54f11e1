package sqlinfo

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"os"
	"slices"
	"testing"

	"github.com/go-sql-driver/mysql"
	"pisanix.io/pisanix/internal/testenv"
)

// TestBuiltinFuncsMatchMariaDB asks the server the tests run, for every
// listed name and every identifier in the server's binary: does a plain call
// name(...) reach a stored function (then it must not be listed: the access
// check would skip it), and do name (1), with a blank, and `name`(1) reach
// one (then the forms must say so, so that such calls are checked)? A native
// name missing from the list would only make calls to it refused as stored
// functions for users with rules, so that direction is reported, not
// failed: the list holds across MariaDB patch releases.
func TestBuiltinFuncsMatchMariaDB(t *testing.T) {
	srv := testenv.MariaDB(t)
	ctx := context.Background()
	conn, err := srv.RootDB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE gotest"); err != nil {
		t.Fatal(err)
	}
	// storedLookup: MariaDB looked the call up as a stored function of
	// gotest: 1305, or 1630 when the name collides with a built-in.
	storedLookup := func(call string) bool {
		_, err := conn.ExecContext(ctx, "SELECT "+call)
		var me *mysql.MySQLError
		return errors.As(err, &me) && (me.Number == 1305 || me.Number == 1630)
	}
	bin, err := os.ReadFile(srv.Binary())
	if err != nil {
		t.Fatal(err)
	}
	candidates := identifierRuns(bin)
	for name := range builtinFuncs {
		candidates = append(candidates, name)
	}
	want := map[string]callForms{}
	for _, name := range candidates {
		if _, seen := want[name]; seen || storedLookup(name+"()") {
			continue
		}
		var forms callForms
		if storedLookup(name + " (1)") {
			forms |= spacedStored
		}
		if storedLookup("`" + name + "`(1)") {
			forms |= quotedStored
		}
		want[name] = forms
	}
	if *update {
		// Stored-call forms seen on other servers stay: a needless check
		// costs less than a skipped one.
		merged := map[string]callForms{}
		for name, forms := range want {
			merged[name] = forms | builtinFuncs[name]
		}
		if err := writeBuiltins("builtins.go", merged); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Only one direction decides what a tenant may do: a listed name, or a
	// form the list calls built-in, that this server resolves to a stored
	// function is a call the access check would skip. Natives this server
	// has and the list lacks (patch releases differ) are only refused as
	// stored functions for users with rules: reported, not failed.
	for name, forms := range builtinFuncs {
		got, native := want[name]
		switch {
		case !native:
			t.Errorf("%s() is listed as built-in but calls a stored function", name)
		case got&^forms != 0:
			t.Errorf("%s: listed with stored-call forms %v; the server also resolves %v to a stored function", name, forms, got&^forms)
		}
	}
	var unlisted []string
	for name := range want {
		if _, listed := builtinFuncs[name]; !listed {
			unlisted = append(unlisted, name)
		}
	}
	if len(unlisted) > 0 {
		slices.Sort(unlisted)
		t.Logf("natives of this server not listed (their calls are checked as stored functions; -update adds them): %v", unlisted)
	}
}

var update = flag.Bool("update", false, "rewrite builtins.go from the test server")

// writeBuiltins rewrites the list, keeping its doc comment.
func writeBuiltins(path string, builtin map[string]callForms) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	head, _, ok := bytes.Cut(old, []byte("var builtinFuncs"))
	if !ok {
		return fmt.Errorf("%s: no builtinFuncs", path)
	}
	var names []string
	for name := range builtin {
		names = append(names, name)
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.Write(head)
	b.WriteString("var builtinFuncs = map[string]callForms{\n")
	for i, name := range names {
		fmt.Fprintf(&b, "%q: %s,", name, builtin[name])
		if i%4 == 3 {
			b.WriteByte('\n')
		}
	}
	b.WriteString("\n}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return err
	}
	return os.WriteFile(path, src, 0o644)
}

// identifierRuns returns the distinct lowercase identifiers that stand
// alone between non-identifier bytes in b (how native function names sit in
// the server's symbol tables).
func identifierRuns(b []byte) []string {
	seen := map[string]bool{}
	var out []string
	ident := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(b); {
		if !ident(b[i]) || b[i] >= '0' && b[i] <= '9' {
			i++
			continue
		}
		j := i
		for j < len(b) && ident(b[j]) {
			j++
		}
		if n := j - i; n >= 2 && n <= 40 {
			name := string(bytesToLower(b[i:j]))
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
		i = j
	}
	return out
}

func bytesToLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
