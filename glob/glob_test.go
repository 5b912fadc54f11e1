package glob

import "testing"

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pat, a, b string // b != "": the subject is a.b
		want      bool
	}{
		{"*", "", "", true},
		{"*", "anything", "", true},
		{"", "", "", true},
		{"", "x", "", false},
		{"?", "", "", false},
		{"orders", "ORDERS", "", true},
		{"orders", "orders2", "", false},
		{"card_*", "card_numbers", "", true},
		{"card_*", "card", "", false},
		{"r?ot", "rOot", "", true},
		{"r?ot", "rot", "", false},
		{"a*b*c", "axxbyybzc", "", true},
		{"a*b*c", "axxbyybzcd", "", false},
		{"*a*b", "xxbxxa", "", false},
		{"**x", "abx", "", true},
		{"Ü?er", "üßer", "", true}, // ? is one character, not one byte
		{"shop.*", "shop", "orders", true},
		{"shop.*", "shopping", "orders", false},
		{"*.orders", "shop", "ORDERS", true},
		{"s*s", "shop", "orders", true}, // '*' spans the dot
	} {
		p := Compile(c.pat)
		got := p.Match(c.a)
		if c.b != "" {
			got = p.MatchQualified(c.a, c.b)
		}
		if got != c.want {
			t.Errorf("%q ~ %q.%q = %v, want %v", c.pat, c.a, c.b, got, c.want)
		}
	}
	if star, stars, a := Compile("*"), Compile("**"), Compile("a"); !star.All() || stars.All() || a.All() {
		t.Error("All")
	}
}

func BenchmarkMatch(b *testing.B) {
	p := Compile("card_*")
	for b.Loop() {
		p.Match("card_numbers")
	}
}
