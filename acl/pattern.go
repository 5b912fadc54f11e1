package acl

// pattern is a name pattern: * matches any run of characters, ? one byte,
// anything else itself without regard to ASCII case (MySQL compares
// database and table names case-insensitively on some systems: a rule for
// `orders` should not be escaped by writing `ORDERS`).
//
// path.Match was passed over: it gives [ and \ meanings table names do not
// have here, and folds no case.
type pattern string

func compilePattern(s string) pattern { return pattern(lower(s)) }

func (p pattern) all() bool { return p == "*" }

// match reports whether s matches p.
// hot path: no allocation.
func (p pattern) match(s string) bool {
	// Iterative glob with one backtrack point: linear for patterns like *a*b.
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == fold(s[si])):
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
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func fold(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = fold(c)
	}
	return string(b)
}
