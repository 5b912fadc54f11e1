package strategy

import (
	"math/bits"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Matcher answers "which is the first of these regexps that matches this
// statement" with the same answer as trying each in order, but without
// running most of them: each regexp is reduced (from its syntax tree) to
// literal substrings it cannot match without (a conjunction of clauses,
// each a set of alternatives one of which must occur). One pass of an
// Aho–Corasick automaton finds which literals occur; only regexps whose
// every clause is satisfied run, in order. A regexp with no required
// literal always runs.
//
// Literals are searched ASCII-lowercased (the fold is built into the
// automaton's byte classes, so nothing is copied or allocated per
// statement): a case-sensitive literal then only over-approximates, and a
// (?i) literal keeps only runes whose whole case-fold orbit is ASCII (not
// k or s: (?i)k also matches U+212A KELVIN SIGN).
//
// Third-party Aho–Corasick packages were passed over: cloudflare's
// mutates the matcher during Match (not safe for concurrent sessions)
// and returns a fresh slice, petar-dambovaliev's returns allocated
// matches; neither folds case in the automaton. This one is ~150 lines
// and allocation-free.
//
// Immutable after NewMatcher; safe for concurrent use.
type Matcher struct {
	res []*regexp.Regexp

	// Aho–Corasick DFA over byte classes. delta[s+class[b]] is the next
	// state, premultiplied by stride, negated when that state ends a
	// literal (the root, 0, never does). nil: no prefilter.
	class  [256]uint8
	starts [256]bool // bytes that begin a literal (either ASCII case)
	stride int
	delta  []int32
	out    [][]int32 // state/stride -> literal ids ending there (suffixes included)

	// Patterns anchored at the start of text (^DELETE, \A(drop|truncate))
	// are nominated by their possible prefixes instead, through a trie
	// over its own byte classes (node 0 is the root; a 0 child, none):
	// the regexp rejects such a statement in O(1), so must the matcher,
	// or a 16 MiB INSERT would pay a full scan for ^DELETE rules.
	pclass  [256]uint8
	pstride int
	pnext   []int32    // node*pstride + class -> child
	ppats   [][]uint64 // node -> anchored patterns whose prefix ends there (bitset; nil: none)
	anch    []uint64   // anchored patterns (bitset)
	scanAll bool       // an unanchored pattern has clauses: always scan

	nlit    int
	litPats [][]int32   // literal id -> patterns whose first (nominating) clause names it
	clauses [][][]int32 // pattern -> clauses -> literal ids
	always  []uint64    // patterns with no clause (bitset)
}

const (
	maxExact   = 16 // a node's set of exact strings is dropped above this
	maxAlt     = 64 // literals in one alternation clause
	maxClauses = 8  // per pattern, the longest literals kept
	maxLitLen  = 16 // literals are cut to a prefix (still required): bounds the automaton
	maxDFA     = 1 << 20
	stackWords = 8 // bitsets up to 512 literals / patterns live on the stack
)

// NewMatcher builds a matcher for res, which must come from
// regexp.Compile (Perl syntax: each is re-parsed from its String()).
func NewMatcher(res []*regexp.Regexp) *Matcher {
	m := &Matcher{res: res, clauses: make([][][]int32, len(res)), always: make([]uint64, words(len(res))),
		anch: make([]uint64, words(len(res)))}
	all := make([][][]string, len(res))
	prefixes := make([][]string, len(res))
	users := map[string]int{} // literal -> patterns requiring it
	for i, re := range res {
		if tree, err := syntax.Parse(re.String(), syntax.Perl); err == nil {
			tree = tree.Simplify()
			all[i] = required(tree)
			if prefixes[i] = anchoredPrefix(tree); prefixes[i] != nil && len(all[i]) == 0 {
				all[i] = [][]string{prefixes[i]} // a prefix is also a required literal
			}
		}
		seen := map[string]bool{}
		for _, c := range all[i] {
			for _, s := range c {
				if !seen[s] {
					seen[s] = true
					users[s]++
				}
			}
		}
	}
	ids := map[string]int32{}
	var lits []string
	for i, cs := range all {
		if len(cs) == 0 {
			m.always[i/64] |= 1 << (i % 64)
			continue
		}
		if prefixes[i] != nil {
			m.anch[i/64] |= 1 << (i % 64)
		} else {
			m.scanAll = true
		}
		// One clause nominates the pattern as a candidate (the others are
		// checked after): the one whose literals the fewest patterns of
		// the set share. Words common to many rules (DELETE, FROM) are
		// likely common in statements too, and would nominate them all.
		best, cost := 0, -1
		for ci, c := range cs {
			n := 0
			for _, s := range c {
				n += users[s]
			}
			if cost < 0 || n < cost {
				best, cost = ci, n
			}
		}
		cs[0], cs[best] = cs[best], cs[0]
		for ci, c := range cs {
			var cl []int32
			for _, s := range c {
				id, ok := ids[s]
				if !ok {
					id = int32(len(lits))
					ids[s] = id
					lits = append(lits, s)
					m.litPats = append(m.litPats, nil)
				}
				if ci == 0 && !slices.Contains(m.litPats[id], int32(i)) {
					m.litPats[id] = append(m.litPats[id], int32(i))
				}
				if !slices.Contains(cl, id) {
					cl = append(cl, id)
				}
			}
			m.clauses[i] = append(m.clauses[i], cl)
		}
	}
	m.nlit = len(lits)
	m.buildPrefixes(prefixes)
	if !m.build(lits) {
		// Too large an automaton: every regexp runs, as before.
		m.delta, m.clauses, m.litPats = nil, nil, nil
		for i := range res {
			m.always[i/64] |= 1 << (i % 64)
		}
	}
	return m
}

func words(n int) int { return (n + 63) / 64 }

// build compiles the folded literals into the DFA; false when too large.
func (m *Matcher) build(lits []string) bool {
	if len(lits) == 0 {
		return true
	}
	// Byte classes: 0 for bytes in no literal, one per other folded byte.
	var classOf [256]uint8
	n := 1
	for _, s := range lits {
		for i := range len(s) {
			if classOf[s[i]] == 0 {
				if n == 256 {
					return false
				}
				classOf[s[i]] = uint8(n)
				n++
			}
		}
	}
	var first [256]bool
	for _, s := range lits {
		first[s[0]] = true
	}
	for b := range 256 {
		m.class[b] = classOf[lower(byte(b))]
		m.starts[b] = first[lower(byte(b))]
	}
	m.stride = n
	// Trie; goto holds child+1 (0: none) per state and class.
	type node struct {
		next []int32
		fail int32
		out  []int32
	}
	nodes := []node{{next: make([]int32, n)}}
	for id, s := range lits {
		cur := int32(0)
		for i := range len(s) {
			c := classOf[s[i]]
			if nodes[cur].next[c] == 0 {
				nodes = append(nodes, node{next: make([]int32, n)})
				nodes[cur].next[c] = int32(len(nodes) - 1)
			}
			cur = nodes[cur].next[c]
		}
		nodes[cur].out = append(nodes[cur].out, int32(id))
		if len(nodes)*n > maxDFA {
			return false
		}
	}
	// Breadth-first: fail links, inherited outputs, full transitions.
	queue := []int32{}
	for c := range n {
		if s := nodes[0].next[c]; s != 0 {
			queue = append(queue, s) // fail = root
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		nodes[s].out = append(nodes[s].out, nodes[f].out...)
		for c := range n {
			t := nodes[s].next[c]
			if t == 0 {
				nodes[s].next[c] = nodes[f].next[c]
				continue
			}
			nodes[t].fail = nodes[f].next[c]
			queue = append(queue, t)
		}
	}
	m.delta = make([]int32, len(nodes)*n)
	m.out = make([][]int32, len(nodes))
	for s := range nodes {
		for c, t := range nodes[s].next {
			v := t * int32(n)
			if len(nodes[t].out) > 0 {
				v = -v
			}
			m.delta[s*n+c] = v
		}
		m.out[s] = nodes[s].out
	}
	return true
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

var bitsetPool = sync.Pool{New: func() any { return new([]uint64) }}

// First returns the index of the first regexp matching b, or -1.
func (m *Matcher) First(b []byte) int { return m.FirstFrom(b, 0) }

// FirstFrom returns the smallest index >= from whose regexp matches b, or
// -1. Hot path: no allocation for up to 512 literals and 512 patterns.
// A nil Matcher has no patterns.
func (m *Matcher) FirstFrom(b []byte, from int) int {
	from = max(from, 0)
	if m == nil || from >= len(m.res) {
		return -1
	}
	var litBuf, candBuf, prefBuf [stackWords]uint64
	lw, cw := words(m.nlit), len(m.always)
	var lits, cand, pref []uint64
	if lw <= stackWords && cw <= stackWords {
		lits, cand, pref = litBuf[:lw], candBuf[:cw], prefBuf[:cw]
	} else {
		p := bitsetPool.Get().(*[]uint64)
		defer bitsetPool.Put(p)
		if cap(*p) < lw+2*cw {
			*p = make([]uint64, lw+2*cw)
		}
		buf := (*p)[:lw+2*cw]
		clear(buf)
		lits, cand, pref = buf[:lw], buf[lw:lw+cw], buf[lw+cw:]
	}
	copy(cand, m.always)
	// An anchored pattern is a candidate when b starts with its prefix and
	// its nominating clause occurs; the scan is skipped when no pattern
	// can pass (every rule ^-anchored and no prefix fits: the usual case).
	if (m.walkPrefixes(b, pref) || m.scanAll) && m.delta != nil && m.scan(b, lits) {
		for w, x := range lits {
			for ; x != 0; x &= x - 1 {
				for _, p := range m.litPats[w*64+bits.TrailingZeros64(x)] {
					if m.anch[p/64]&^pref[p/64]&(1<<(p%64)) == 0 {
						cand[p/64] |= 1 << (p % 64)
					}
				}
			}
		}
	}
	for w := from / 64; w < cw; w++ {
		x := cand[w]
		if w == from/64 {
			x &^= 1<<(from%64) - 1
		}
		for ; x != 0; x &= x - 1 {
			i := w*64 + bits.TrailingZeros64(x)
			if m.satisfied(i, lits) && m.res[i].Match(b) {
				return i
			}
		}
	}
	return -1
}

// walkPrefixes sets the bits of the anchored patterns whose prefix b
// starts with; it reports whether there were any.
func (m *Matcher) walkPrefixes(b []byte, pref []uint64) bool {
	if m.pnext == nil {
		return false
	}
	var n int32
	hit := false
	for _, c := range b {
		if n = m.pnext[int(n)*m.pstride+int(m.pclass[c])]; n == 0 {
			break
		}
		if set := m.ppats[n]; set != nil {
			for w, x := range set {
				pref[w] |= x
			}
			hit = true
		}
	}
	return hit
}

// buildPrefixes builds the trie of anchored patterns' (folded) prefixes.
func (m *Matcher) buildPrefixes(prefixes [][]string) {
	var classOf [256]uint8
	n := 1
	for _, ps := range prefixes {
		for _, s := range ps {
			for i := range len(s) {
				if classOf[s[i]] == 0 {
					classOf[s[i]] = uint8(n) // < 256: bytes are folded
					n++
				}
			}
		}
	}
	if n == 1 {
		return
	}
	for b := range 256 {
		m.pclass[b] = classOf[lower(byte(b))]
	}
	m.pstride = n
	m.pnext = make([]int32, n)
	m.ppats = [][]uint64{nil}
	for i, ps := range prefixes {
		for _, s := range ps {
			var cur int32
			for j := range len(s) {
				at := int(cur)*n + int(classOf[s[j]])
				if m.pnext[at] == 0 {
					m.pnext[at] = int32(len(m.ppats))
					m.pnext = append(m.pnext, make([]int32, n)...)
					m.ppats = append(m.ppats, nil)
				}
				cur = m.pnext[at]
			}
			if m.ppats[cur] == nil {
				m.ppats[cur] = make([]uint64, words(len(prefixes)))
			}
			m.ppats[cur][i/64] |= 1 << (i % 64)
		}
	}
}

// scan sets the bit of every literal occurring in b (ASCII case folded);
// it reports whether any did.
func (m *Matcher) scan(b []byte, lits []uint64) bool {
	var s int32
	hit := false
	delta, class, stride := m.delta, &m.class, int32(m.stride)
	for i := 0; i < len(b); i++ {
		if s == 0 {
			// At the root most bytes start no literal: skipping them does
			// not wait on the previous state load (2-3x faster on SQL).
			for i < len(b) && !m.starts[b[i]] {
				i++
			}
			if i == len(b) {
				break
			}
		}
		s = delta[s+int32(class[b[i]])]
		if s < 0 { // rare: divide only here
			s = -s
			hit = true
			for _, id := range m.out[s/stride] {
				lits[id/64] |= 1 << (id % 64)
			}
		}
	}
	return hit
}

func (m *Matcher) satisfied(i int, lits []uint64) bool {
	if m.clauses == nil {
		return true
	}
next:
	for _, cl := range m.clauses[i] {
		for _, id := range cl {
			if lits[id/64]&(1<<(id%64)) != 0 {
				continue next
			}
		}
		return false
	}
	return true
}

// info is what literal analysis knows of a syntax node: exact != nil
// means the node matches exactly one of those (folded) strings ("" when
// it may match empty); and lists clauses that any match must satisfy.
// A node with exact set has no clauses.
type info struct {
	exact []string
	and   [][]string
}

var unknown = info{}

// required returns the clauses of re, the most selective first, with
// literals cut to maxLitLen; none when nothing is required.
func required(re *syntax.Regexp) [][]string {
	in := analyze(re)
	cs := in.and
	if in.exact != nil {
		cs = addClause(nil, in.exact)
	}
	for i, c := range cs {
		cut := make([]string, 0, len(c))
		for _, s := range c {
			if len(s) > maxLitLen {
				s = s[:maxLitLen]
			}
			if !slices.Contains(cut, s) {
				cut = append(cut, s)
			}
		}
		cs[i] = cut
	}
	slices.SortStableFunc(cs, func(a, b []string) int { return score(b) - score(a) })
	if len(cs) > maxClauses {
		cs = cs[:maxClauses]
	}
	return cs
}

// anchoredPrefix returns the strings (folded, cut to maxLitLen) one of
// which every match of re starts the text with, when re is anchored at
// the start of text (^ without (?m), or \A) and followed by exact parts;
// nil otherwise.
func anchoredPrefix(re *syntax.Regexp) []string {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpConcat || re.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	cur := []string{""}
	for _, sub := range re.Sub[1:] {
		in := analyze(sub)
		if in.exact == nil || len(cur)*len(in.exact) > maxExact {
			break
		}
		cur = cross(cur, in.exact)
	}
	var out []string
	for _, s := range cur {
		if s == "" {
			return nil
		}
		if s = s[:min(len(s), maxLitLen)]; !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// cross is every a+b, deduplicated.
func cross(as, bs []string) []string {
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			if s := a + b; !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// score ranks a clause: longer shortest literal, fewer alternatives.
func score(c []string) int {
	short := maxLitLen
	for _, s := range c {
		short = min(short, len(s))
	}
	return short*maxAlt - len(c)
}

// addClause adds set as a clause unless it allows the empty string.
func addClause(cs [][]string, set []string) [][]string {
	if len(set) == 0 || slices.Contains(set, "") {
		return cs
	}
	return append(cs, slices.Clone(set))
}

func analyze(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return info{exact: []string{""}}
	case syntax.OpLiteral:
		return literal(re.Rune, re.Flags&syntax.FoldCase != 0)
	case syntax.OpCharClass:
		return charClass(re.Rune)
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpQuest:
		sub := analyze(re.Sub[0])
		if sub.exact == nil || len(sub.exact) >= maxExact {
			return unknown
		}
		if slices.Contains(sub.exact, "") {
			return sub
		}
		return info{exact: append(slices.Clone(sub.exact), "")}
	case syntax.OpPlus:
		return atLeastOnce(analyze(re.Sub[0]))
	case syntax.OpRepeat:
		if re.Min == 0 {
			return unknown
		}
		return atLeastOnce(analyze(re.Sub[0]))
	case syntax.OpConcat:
		parts := make([]info, len(re.Sub))
		for i, s := range re.Sub {
			parts[i] = analyze(s)
		}
		return concat(parts)
	case syntax.OpAlternate:
		parts := make([]info, len(re.Sub))
		for i, s := range re.Sub {
			parts[i] = analyze(s)
		}
		return alternate(parts)
	}
	// OpStar, OpAnyChar, OpAnyCharNotNL, OpNoMatch: nothing required.
	return unknown
}

// atLeastOnce: x+ requires what one x requires, but is not exact.
func atLeastOnce(sub info) info {
	if sub.exact != nil {
		return info{and: addClause(nil, sub.exact)}
	}
	return info{and: sub.and}
}

// literal splits runs at runes the ASCII-folded search cannot vouch for.
func literal(rs []rune, fold bool) info {
	var parts []info
	var run strings.Builder
	for _, r := range rs {
		if safeRune(r, fold) {
			if r < utf8.RuneSelf {
				run.WriteByte(lower(byte(r)))
			} else {
				run.WriteRune(r)
			}
			continue
		}
		parts = append(parts, info{exact: []string{run.String()}}, unknown)
		run.Reset()
	}
	if len(parts) == 0 {
		return info{exact: []string{run.String()}}
	}
	parts = append(parts, info{exact: []string{run.String()}})
	return concat(parts)
}

// safeRune: r occurs in any match as its own UTF-8 bytes (ASCII letters
// in either case). Not U+FFFD, which also matches invalid UTF-8; under
// fold, only runes whose whole fold orbit is ASCII.
func safeRune(r rune, fold bool) bool {
	if !fold || r >= utf8.RuneSelf {
		return !fold && r != utf8.RuneError && utf8.ValidRune(r)
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// charClass: a small all-ASCII class ([Dd], [-_]) is a set of 1-byte strings.
func charClass(ranges []rune) info {
	var set []string
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if hi >= utf8.RuneSelf || hi-lo >= maxExact {
			return unknown
		}
		for r := lo; r <= hi; r++ {
			s := string(rune(lower(byte(r))))
			if !slices.Contains(set, s) {
				set = append(set, s)
			}
		}
		if len(set) > 4 {
			return unknown // too common to filter on
		}
	}
	if len(set) == 0 {
		return unknown
	}
	return info{exact: set}
}

// concat joins adjacent exact parts by cross product while small; a
// part that is not exact ends the run, which becomes a clause.
func concat(parts []info) info {
	var out info
	cur := []string{""}
	exact := true
	for _, p := range parts {
		if p.exact != nil && len(cur)*len(p.exact) <= maxExact {
			cur = cross(cur, p.exact)
			continue
		}
		exact = false
		out.and = addClause(out.and, cur)
		out.and = append(out.and, p.and...)
		cur = []string{""}
		if p.exact != nil {
			cur = p.exact
		}
	}
	if exact {
		return info{exact: cur}
	}
	out.and = addClause(out.and, cur)
	return out
}

// alternate: exact when all branches are; otherwise one clause made of
// each branch's most selective clause (a branch without one: nothing).
func alternate(parts []info) info {
	var union []string
	exact := true
	for _, p := range parts {
		if p.exact == nil {
			exact = false
			break
		}
		for _, s := range p.exact {
			if !slices.Contains(union, s) {
				union = append(union, s)
			}
		}
	}
	if exact && len(union) <= maxExact {
		return info{exact: union}
	}
	var clause []string
	for _, p := range parts {
		cs := p.and
		if p.exact != nil {
			cs = addClause(nil, p.exact)
		}
		if len(cs) == 0 {
			return unknown
		}
		best := slices.MaxFunc(cs, func(a, b []string) int { return score(a) - score(b) })
		for _, s := range best {
			if !slices.Contains(clause, s) {
				clause = append(clause, s)
			}
		}
	}
	if len(clause) > maxAlt {
		return unknown
	}
	return info{and: [][]string{clause}}
}
