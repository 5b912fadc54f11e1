package audit

import (
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"

	"pisanix.io/pisanix/sqlinfo"
)

// pattern is a compiled wildcard pattern: '*' matches any run of
// characters (none included), '?' exactly one, anything else itself
// case-insensitively. Runes are lower-cased at compile time.
type pattern []rune

func compilePatterns(ps []string) []pattern {
	if len(ps) == 0 {
		return nil
	}
	out := make([]pattern, len(ps))
	for i, p := range ps {
		rs := []rune(p)
		for j, r := range rs {
			rs[j] = lower(r)
		}
		out[i] = rs
	}
	return out
}

// text is the subject of a match without building it: a, or a + "." + b
// when sep (a table's "db.name"). Methods take a pointer: copying the
// struct into each call costs a store-forwarding stall on the hot path.
type text struct {
	a, b string
	sep  bool
}

func tableText(t *sqlinfo.Table) text {
	if t.DB == "" {
		return text{a: t.Name}
	}
	return text{a: t.DB, b: t.Name, sep: true}
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

// match reports whether p matches all of t: greedy with backtracking to
// the last '*', O(len(p)*len(t)) at worst, no allocation.
func (p pattern) match(t *text) bool {
	n := t.len()
	pi, ti := 0, 0
	star, starT := -1, 0 // last '*' seen and where its run ends so far
	for ti < n {
		if pi < len(p) {
			if p[pi] == '*' {
				if pi == len(p)-1 {
					return true // a trailing '*' takes the rest
				}
				star, starT = pi, ti
				pi++
				continue
			}
			r, size := t.at(ti)
			if p[pi] == '?' || p[pi] == lower(r) {
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
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func matchAny(ps []pattern, t *text) bool {
	for _, p := range ps {
		if p.match(t) {
			return true
		}
	}
	return false
}

func containsFold(set []string, s string) bool {
	for _, x := range set {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// sample keeps a statement with probability rate.
func sample(rate float64) bool {
	if rate >= 1 {
		return true
	}
	return rate > 0 && rand.Float64() < rate
}
