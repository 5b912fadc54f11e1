package sqlinfo

import (
	"strings"
	"testing"
)

// Each KILL of a text is found where it stands, so that the proxy can
// write the backend's thread id in its place; a KILL it cannot read back
// as written has no span.
func TestKillSpans(t *testing.T) {
	for text, want := range map[string][]string{
		"kill 5; select sleep(0.05)":                  {"5"},
		"SELECT 1;KILL QUERY 7 ;  KILL CONNECTION 8":  {"7", "8"},
		"select 'kill 5'; /* kill 6 */ KILL /*c*/ 9;": {"9"},
		"KILL 00012; SELECT 1":                        {"00012"},
		"SELECT 1; /*!KILL 5*/":                       {""},
	} {
		info := Classify([]byte(text), "")
		if len(info.Kills) != len(want) {
			t.Fatalf("%q: %d kills, want %d", text, len(info.Kills), len(want))
		}
		for i, k := range info.Kills {
			got := ""
			if k.Start >= 0 {
				got = text[k.Start:k.End]
			}
			if got != want[i] {
				t.Errorf("%q: kill %d at %q, want %q", text, i, got, want[i])
			}
			if k.Start >= 0 && !strings.HasPrefix(strings.ToUpper(text[k.StmtStart:]), "KILL") {
				t.Errorf("%q: kill %d statement starts at %q", text, i, text[k.StmtStart:])
			}
		}
	}
}
