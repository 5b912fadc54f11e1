// Package glob matches the wildcard patterns of access rules and audit
// filters against user, database and table names.
//
// path.Match was passed over: it gives [ and \ meanings these names do not
// have here, and folds no case.
package glob

import (
	"unicode"
	"unicode/utf8"
)

// Pattern is a compiled pattern: '*' matches any run of characters (none
// included), '?' exactly one character, anything else itself without
// regard to case (MySQL compares database and table names
// case-insensitively on some systems: a rule for `orders` must not be
// escaped by writing `ORDERS`).
type Pattern struct {
	runes []rune // lower-cased
	ascii string // the lower-cased pattern when it is all ASCII, for the byte loop
}

// Compile compiles s.
func Compile(s string) Pattern {
	rs := []rune(s)
	ascii := true
	for i, r := range rs {
		rs[i] = lower(r)
		ascii = ascii && r < utf8.RuneSelf
	}
	p := Pattern{runes: rs}
	if ascii {
		p.ascii = string(rs)
	}
	return p
}

// CompileAll compiles each of ps.
func CompileAll(ps []string) []Pattern {
	out := make([]Pattern, len(ps))
	for i, s := range ps {
		out[i] = Compile(s)
	}
	return out
}

// All reports the pattern "*", which matches everything.
func (p *Pattern) All() bool { return len(p.runes) == 1 && p.runes[0] == '*' }

// Match reports whether p matches all of s. No allocation.
func (p *Pattern) Match(s string) bool {
	if p.ascii == "*" {
		return true
	}
	if p.ascii != "" {
		if m, ok := matchASCII(p.ascii, s); ok {
			return m // the common case, without decoding runes
		}
	}
	t := text{a: s}
	return p.match(&t)
}

// MatchQualified reports whether p matches db + "." + name, without
// building that string. No allocation.
func (p *Pattern) MatchQualified(db, name string) bool {
	t := text{a: db, b: name, sep: true}
	return p.match(&t)
}

// Any reports whether one of ps matches s.
func Any(ps []Pattern, s string) bool {
	for i := range ps {
		if ps[i].Match(s) {
			return true
		}
	}
	return false
}

// text is the subject of a match: a, or a + "." + b when sep. Methods take
// a pointer: copying the struct into each call costs a store-forwarding
// stall on the hot path.
type text struct {
	a, b string
	sep  bool
}

func (t *text) len() int {
	if t.sep {
		return len(t.a) + 1 + len(t.b)
	}
	return len(t.a)
}

// at decodes the rune at byte offset i (no rune spans a part boundary).
func (t *text) at(i int) (rune, int) {
	s := t.a
	if i >= len(t.a) {
		if i == len(t.a) {
			return '.', 1
		}
		s, i = t.b, i-len(t.a)-1
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func lower(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(r)
}

// match is greedy with backtracking to the last '*': O(len(p)*len(t)) at
// worst.
func (p *Pattern) match(t *text) bool {
	pr := p.runes
	n := t.len()
	pi, ti := 0, 0
	star, starT := -1, 0 // last '*' seen and where its run ends so far
	for ti < n {
		if pi < len(pr) {
			if pr[pi] == '*' {
				if pi == len(pr)-1 {
					return true // a trailing '*' takes the rest
				}
				star, starT = pi, ti
				pi++
				continue
			}
			r, size := t.at(ti)
			if pr[pi] == '?' || pr[pi] == lower(r) {
				pi++
				ti += size
				continue
			}
		}
		if star < 0 {
			return false
		}
		// Let the last '*' swallow one more character and retry.
		_, size := t.at(starT)
		starT += size
		pi, ti = star+1, starT
	}
	for pi < len(pr) && pr[pi] == '*' {
		pi++
	}
	return pi == len(pr)
}

// matchASCII is match for an ASCII pattern p (lower-cased); ok is false
// when s turns out not to be ASCII.
func matchASCII(p, s string) (matched, ok bool) {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		c := s[si]
		if c >= utf8.RuneSelf {
			return false, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == c):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false, true
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p), true
}
