package sqlinfo

// This file builds the cache key of a statement in one pass over its text,
// without the parser: literals become class placeholders, blanks and plain
// comments fold to one space, reserved keywords are upper-cased. Everything
// else is copied as written (identifiers are case-sensitive).
//
// The key is sound when two texts with the same key differ only in literal
// values: then they parse to the same statements and the TiDB digester gives
// them the same fingerprint. So the scanner mirrors the TiDB lexer wherever
// it replaces something, and copies verbatim wherever it is unsure (a
// verbatim byte can only make keys finer, never merge two statements):
//   - numbers are replaced only when the lexer surely reads the same number
//     (not after "ident." where digits start an identifier, not when glued to
//     identifier bytes, at most maxNumLen bytes so that no value overflows
//     into another token class);
//   - X'..' and B'..' (checked literals) and @'..' (a variable name) stay;
//   - integers after ORDER BY / GROUP BY stay: the digester keeps them;
//   - after an executable comment (/*!, /*M! or /*T!) the rest stays verbatim.
// Placeholders are bytes below '\t'; a text holding such a byte where the
// key would copy it is not cached, so a placeholder always means a literal.

// Literal placeholders.
const (
	phInt   = 1 // decimal integer
	phDec   = 2 // 1.5, .5, 1.
	phFloat = 3 // 1e5
	phHex   = 4 // 0x1f
	phBit   = 5 // 0b01
	phStr   = 6 // '...'
	phDStr  = 7 // "..."
)

// maxNumLen bounds replaced numbers: a longer integer overflows into a
// decimal, which the grammar accepts in fewer places (LIMIT).
const maxNumLen = 18

// keyScan is the state of one key computation.
type keyScan struct {
	src   []byte
	start int  // len(dst) before this text's key
	blank bool // blanks or comments seen since the last emitted token
	prev  byte // last significant source byte (comments and blanks excluded)

	wordStart, wordEnd int // extent of the last word

	identDot bool // after "ident.": digits start an identifier (lexer rule)

	orderGroup bool // the last token was ORDER or GROUP
	ordinal    bool // inside ORDER BY / GROUP BY: keep integers
	ordStart   bool // right after BY (or "BY (")
}

// appendKey appends the key of sql to dst. ok is false when the text must
// not be cached (a control byte outside literals). The key is threaded
// through the scanner's methods rather than kept in keyScan so that a
// caller's stack buffer stays on the stack.
func appendKey(dst, sql []byte) (key []byte, ok bool) {
	k := keyScan{src: sql, start: len(dst), wordEnd: -1}
	s := sql
	for i := 0; i < len(s); {
		c := s[i]
		ok = true
		switch {
		case isBlank(c):
			k.blank = true
			i++
		case isIdentByte(c):
			dst, i = k.word(dst, i)
		case c == '\'' || c == '"':
			dst, i, ok = k.str(dst, i)
		case c == '`':
			dst, i, ok = k.quotedIdent(dst, i)
		case c == '@':
			dst, i = k.variable(dst, i)
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			dst, i, ok = k.comment(dst, i)
		case c == '#' || isDashComment(s, i):
			i = lineEnd(s, i)
			k.blank = true
		case c == '.' && i+1 < len(s) && isDigit(s[i+1]) && !k.identDot && !endsOperand(k.prev):
			dst, i = k.dotNumber(dst, i)
		case c < '\t':
			return dst, false
		default:
			dst = k.punct(dst, c)
			i++
		}
		if !ok {
			return dst, false
		}
	}
	return dst, true
}

// isBlank is the lexer's whitespace at a token start (unicode.IsSpace of a byte).
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0x85 || c == 0xA0
}

func isIdentByte(c byte) bool { return identBytes[c] }

// identBytes is the lexer's identifier bytes: letters, digits, '_', '$'
// and every byte >= 0x80. Read-only after package initialisation.
var identBytes = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$' || c >= 0x80
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// endsOperand: a '.' after such a byte may qualify a name, not start ".5".
func endsOperand(c byte) bool {
	return isIdentByte(c) || c == '`' || c == '\'' || c == '"' || c == ')'
}

// isDashComment is the lexer's rule: "--" then a blank or the end.
func isDashComment[T string | []byte](s T, i int) bool {
	if s[i] != '-' || i+1 >= len(s) || s[i+1] != '-' {
		return false
	}
	return i+2 == len(s) || isBlank(s[i+2])
}

func lineEnd(s []byte, i int) int {
	for i < len(s) && s[i] != '\n' {
		i++
	}
	return i
}

// blankIf returns dst with the pending blank, if any, appended.
func (k *keyScan) blankIf(dst []byte) []byte {
	if k.blank && len(dst) > k.start {
		dst = append(dst, ' ')
	}
	k.blank = false
	return dst
}

// raw copies s[i:j] verbatim; false if it holds a placeholder byte.
func (k *keyScan) raw(dst []byte, i, j int) ([]byte, bool) {
	for _, c := range k.src[i:j] {
		if c < '\t' {
			return dst, false
		}
	}
	return append(k.blankIf(dst), k.src[i:j]...), true
}

func (k *keyScan) punct(dst []byte, c byte) []byte {
	if c == '.' && (isIdentByte(k.prev) || k.prev == '`') {
		k.identDot = true
	}
	if c != '(' {
		k.ordStart = false
	}
	k.orderGroup = false
	k.prev = c
	return append(k.blankIf(dst), c)
}

// variable handles @name and @@[scope.]name: the lexer reads the name as
// a run of letters, digits, '_', '$', '.' and bytes >= 0x80 (so @1 and
// @.5 are names), copied as written. A quoted name (@'x', @@global.`x`)
// follows; prev = '@' makes str keep it.
func (k *keyScan) variable(dst []byte, i int) ([]byte, int) {
	s := k.src
	j := i + 1
	if j < len(s) && s[j] == '@' {
		j++
	}
	for j < len(s) && (isIdentByte(s[j]) || s[j] == '.') {
		j++
	}
	// The digester matches ORDER/GROUP/BY on a variable's name too
	// ("@group by 1"); @@names keep their "@@" and never match.
	if j-i >= 2 && s[i+1] == '@' {
		k.nameToken(s[i:j])
	} else {
		k.nameToken(s[i+1 : j])
	}
	k.prev = '@'
	if last := s[j-1]; last != '@' && last != '.' {
		k.prev = last
	}
	return append(k.blankIf(dst), s[i:j]...), j
}

// word handles a run of identifier bytes: a number or a name/keyword.
func (k *keyScan) word(dst []byte, i int) ([]byte, int) {
	s := k.src
	j := i
	for j < len(s) && isIdentByte(s[j]) {
		j++
	}
	// After "ident." digits start a name.
	if isDigit(s[i]) && !k.identDot {
		if end, class := scanNumber(s, i, j); class != 0 {
			return k.literal(dst, i, end, class), end
		}
	}
	return k.name(dst, i, j), j
}

// literal emits a replaced literal, or the literal itself where the
// digester keeps it (integers in ORDER BY / GROUP BY).
func (k *keyScan) literal(dst []byte, i, end int, class byte) []byte {
	k.ordStart, k.orderGroup = false, false
	k.prev = k.src[end-1]
	dst = k.blankIf(dst)
	if k.ordinal && class <= phFloat {
		return append(dst, k.src[i:end]...)
	}
	return append(dst, class)
}

// name emits an identifier or keyword s[i:j] and tracks ORDER/GROUP BY.
func (k *keyScan) name(dst []byte, i, j int) []byte {
	w := k.src[i:j]
	k.nameToken(w)
	k.identDot = false // the lexer's rule for identifiers
	dst = k.blankIf(dst)
	if k.prev != '.' && k.prev != '@' && (j == len(k.src) || k.src[j] != '.') {
		dst = appendFolded(dst, w)
	} else {
		dst = append(dst, w...)
	}
	k.prev = w[len(w)-1]
	k.wordStart, k.wordEnd = i, j
	return dst
}

// nameToken updates the ORDER BY state for a name token w (its text
// without quotes). The digester keeps an integer after
// "(ORDER|GROUP) BY [(] (X ,)*": two names in a row without a comma between
// end that pattern for good. Other tokens never end it here: keeping
// integers verbatim is always safe.
func (k *keyScan) nameToken(w []byte) {
	if k.ordinal && !k.ordStart && endsOperand(k.prev) {
		k.ordinal = false
	}
	isBy := len(w) == 2 && equalFold(w, "BY")
	k.ordStart = false
	if isBy && k.orderGroup {
		k.ordinal, k.ordStart = true, true
	}
	k.orderGroup = len(w) == 5 && (equalFold(w, "ORDER") || equalFold(w, "GROUP"))
}

// appendFolded appends w, upper-cased if it is a reserved word, which
// cannot be a name (next to a '.' it can, hence the caller's check).
func appendFolded(dst, w []byte) []byte {
	if len(w) < 2 || len(w) > 9 {
		return append(dst, w...)
	}
	var up [9]byte
	lower := false
	for n, c := range w {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
			lower = true
		}
		up[n] = c
	}
	if lower && isFoldedKeyword(up[:len(w)]) {
		return append(dst, up[:len(w)]...)
	}
	return append(dst, w...)
}

// isFoldedKeyword lists common reserved words (checked against the
// parser's reserved list in the tests). Words not listed are kept as
// written: a different case then only costs another cache entry.
func isFoldedKeyword(up []byte) bool {
	switch string(up) {
	case "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE",
		"BETWEEN", "ORDER", "BY", "GROUP", "HAVING", "LIMIT", "INSERT", "INTO",
		"VALUES", "UPDATE", "SET", "DELETE", "JOIN", "INNER", "LEFT", "RIGHT",
		"OUTER", "CROSS", "ON", "AS", "ASC", "DESC", "DISTINCT", "UNION", "ALL",
		"EXISTS", "CASE", "WHEN", "THEN", "ELSE", "FOR", "REPLACE", "WITH",
		"USING", "LOCK", "DEFAULT", "KEY":
		return true
	}
	return false
}

// scanNumber reports the end and class of a number starting at s[i] (a
// digit; j ends the identifier-byte run), or class 0 when the lexer would
// not surely read one number there.
func scanNumber(s []byte, i, j int) (end int, class byte) {
	if j-i > 2 && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'b') {
		return radixNumber(s, i, j)
	}
	d := i
	for d < len(s) && isDigit(s[d]) {
		d++
	}
	if d == j && (d == len(s) || s[d] != '.') {
		return numberEnd(s, i, d, phInt)
	}
	return fraction(s, i, d)
}

// radixNumber: 0x1f or 0b01, filling the whole run.
func radixNumber(s []byte, i, j int) (int, byte) {
	class := byte(phHex)
	valid := isHexDigit
	if s[i+1] == 'b' {
		class, valid = phBit, func(c byte) bool { return c == '0' || c == '1' }
	}
	for _, c := range s[i+2 : j] {
		if !valid(c) {
			return 0, 0
		}
	}
	return numberEnd(s, i, j, class)
}

func isHexDigit(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fraction scans [.digits][e[+-]digits] after the integer part s[i:d].
func fraction(s []byte, i, d int) (int, byte) {
	class := byte(phDec)
	if d < len(s) && s[d] == '.' {
		d++
		for d < len(s) && isDigit(s[d]) {
			d++
		}
	}
	if d < len(s) && (s[d] == 'e' || s[d] == 'E') {
		d++
		if d < len(s) && (s[d] == '+' || s[d] == '-') {
			d++
		}
		if d == len(s) || !isDigit(s[d]) {
			return 0, 0
		}
		for d < len(s) && isDigit(s[d]) {
			d++
		}
		class = phFloat
	}
	return numberEnd(s, i, d, class)
}

// numberEnd accepts s[i:end] as a number if nothing glues onto it.
func numberEnd(s []byte, i, end int, class byte) (int, byte) {
	if end-i > maxNumLen || end < len(s) && (isIdentByte(s[end]) || s[end] == '.') {
		return 0, 0
	}
	return end, class
}

// dotNumber handles ".5": a literal, or the '.' alone when it is not one.
func (k *keyScan) dotNumber(dst []byte, i int) ([]byte, int) {
	if end, class := fraction(k.src, i, i); class != 0 {
		return k.literal(dst, i, end, class), end
	}
	return k.punct(dst, '.'), i + 1
}

// str handles a '...' or "..." string.
func (k *keyScan) str(dst []byte, i int) ([]byte, int, bool) {
	s := k.src
	q := s[i]
	j := i + 1
	for ; j < len(s); j++ {
		if s[j] == '\\' {
			j++
		} else if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			break
		}
	}
	if j >= len(s) { // unterminated: a lexer error; keep it all
		dst, ok := k.raw(dst, i, len(s))
		return dst, len(s), ok
	}
	end := j + 1
	checked := k.wordEnd == i && k.wordStart == i-1 && isRadixPrefix(s[i-1])
	if k.prev == '@' || checked {
		// @'name' names a variable; X'..' and B'..' fail on bad digits.
		dst, ok := k.raw(dst, i, end)
		if k.prev == '@' {
			// The name may be ORDER, GROUP or BY: assume it is.
			k.ordStart, k.ordinal = k.orderGroup || k.ordinal, k.orderGroup || k.ordinal
			k.orderGroup, k.prev = true, q
			return dst, end, ok
		}
		k.afterToken(q)
		return dst, end, ok
	}
	ph := byte(phStr)
	if q == '"' {
		ph = phDStr
	}
	k.afterToken(q)
	return append(k.blankIf(dst), ph), end, true
}

func isRadixPrefix(c byte) bool { return c == 'x' || c == 'X' || c == 'b' || c == 'B' }

func (k *keyScan) afterToken(last byte) {
	k.ordStart, k.orderGroup = false, false
	k.prev = last
}

// quotedIdent handles `name`, copied as written.
func (k *keyScan) quotedIdent(dst []byte, i int) ([]byte, int, bool) {
	s := k.src
	j := i + 1
	for ; j < len(s); j++ {
		if s[j] == '`' {
			if j+1 < len(s) && s[j+1] == '`' {
				j++
				continue
			}
			break
		}
	}
	if j >= len(s) {
		dst, ok := k.raw(dst, i, len(s))
		return dst, len(s), ok
	}
	k.nameToken(s[i+1 : j])
	k.identDot = false
	k.prev = '`'
	dst, ok := k.raw(dst, i, j+1)
	return dst, j + 1, ok
}

// comment handles /* ... */: plain comments fold to a blank, optimizer
// hints are kept, executable comments keep the rest of the text.
func (k *keyScan) comment(dst []byte, i int) ([]byte, int, bool) {
	s := k.src
	end := indexFrom(s, i+2, "*/")
	// /*! (MySQL, MariaDB), /*M! (MariaDB), /*T! (TiDB) hold code.
	executable := i+2 < len(s) && (s[i+2] == '!' || (s[i+2] == 'T' || s[i+2] == 'M') && i+3 < len(s) && s[i+3] == '!')
	if executable || end < 0 {
		dst, ok := k.raw(dst, i, len(s))
		return dst, len(s), ok
	}
	end += 2
	if s[i+2] == '+' {
		// A hint is one token to the lexer; it leaves the ORDER BY state
		// alone, as the digester may or may not see it.
		k.prev = '/'
		dst, ok := k.raw(dst, i, end)
		return dst, end, ok
	}
	k.blank = true
	return dst, end, true
}
