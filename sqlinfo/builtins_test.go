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

// TestBuiltinFuncsMatchMariaDB asks the server the tests run: no listed
// name may reach a stored function when called without a database (the
// access check would skip it), and every native name found in the
// server's binary must be listed (else calls to it are refused as stored
// functions for users with rules).
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
	storedCall := func(call string) bool {
		_, err := conn.ExecContext(ctx, "SELECT "+call)
		var me *mysql.MySQLError
		return errors.As(err, &me) && me.Number == 1305 // FUNCTION gotest.x does not exist
	}
	builtin := map[string]bool{}
	for name := range builtinFuncs {
		builtin[name] = true
		for _, call := range []string{name + "()", "`" + name + "`()"} {
			if storedCall(call) {
				t.Errorf("%s is listed as built-in but calls a stored function", call)
				builtin[name] = false
			}
		}
	}
	bin, err := os.ReadFile(srv.Binary())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range identifierRuns(bin) {
		if _, listed := builtinFuncs[name]; !listed && !storedCall("`"+name+"`()") {
			builtin[name] = true
			if !*update {
				t.Errorf("%s() is built into this server but not in builtinFuncs (go test ./sqlinfo -run %s -update)", name, t.Name())
			}
		}
	}
	if *update {
		if err := writeBuiltins("builtins.go", builtin); err != nil {
			t.Fatal(err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite builtins.go from the test server")

// writeBuiltins rewrites the list, keeping its doc comment.
func writeBuiltins(path string, builtin map[string]bool) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	head, _, ok := bytes.Cut(old, []byte("var builtinFuncs"))
	if !ok {
		return fmt.Errorf("%s: no builtinFuncs", path)
	}
	var names []string
	for name, ok := range builtin {
		if ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.Write(head)
	b.WriteString("var builtinFuncs = map[string]struct{}{\n")
	for i, name := range names {
		fmt.Fprintf(&b, "%q: {},", name)
		if i%6 == 5 {
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
