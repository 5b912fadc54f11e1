package sqlinfo

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
)

// The TiDB parser builds literal nodes through hooks its user must set
// (ast.NewValueExpr and friends). Its module ships only test_driver, a
// test double whose decimal panics on literals of more than 81 digits
// ("This branch is not implemented"); TiDB's own driver pulls in its whole
// type system. The proxy never evaluates a literal (it classifies
// statements), so this driver keeps each value as the lexer read it. The
// hooks are process-wide by the parser's design: set once, never changed.
func init() {
	ast.NewValueExpr = newLiteral
	ast.NewParamMarkerExpr = func(offset int) ast.ParamMarkerExpr {
		return &paramMarker{literal: literal{offset: -1}, Offset: offset}
	}
	ast.NewDecimal = func(s string) (any, error) { return decimalLiteral(s), nil }
	ast.NewHexLiteral = parseHexLiteral
	ast.NewBitLiteral = parseBitLiteral
}

// decimalLiteral is a numeric literal too long for an integer, kept as text.
type decimalLiteral string

// binaryLiteral is the value of x'..', 0x.., b'..' or 0b.. (ast.BinaryLiteral).
type binaryLiteral []byte

// ToString is the literal's bytes as a string, as the parser asks of it.
func (b binaryLiteral) ToString() string { return string(b) }

func parseHexLiteral(s string) (any, error) {
	var digits string
	switch {
	case len(s) >= 3 && (s[0] == 'x' || s[0] == 'X'):
		digits = strings.Trim(s[1:], "'")
		if len(digits)%2 != 0 {
			return nil, fmt.Errorf("hexadecimal literal %s: an odd number of digits", s)
		}
	case strings.HasPrefix(s, "0x"):
		digits = s[2:]
		if len(digits)%2 != 0 {
			digits = "0" + digits
		}
	default:
		return nil, fmt.Errorf("hexadecimal literal %q: unknown form", s)
	}
	b, err := hex.DecodeString(digits)
	if err != nil {
		return nil, fmt.Errorf("hexadecimal literal %s: %w", s, err)
	}
	return binaryLiteral(b), nil
}

func parseBitLiteral(s string) (any, error) {
	var digits string
	switch {
	case len(s) >= 3 && (s[0] == 'b' || s[0] == 'B'):
		digits = strings.Trim(s[1:], "'")
	case strings.HasPrefix(s, "0b"):
		digits = s[2:]
	default:
		return nil, fmt.Errorf("bit literal %q: unknown form", s)
	}
	b := make([]byte, (len(digits)+7)/8)
	for i, shift := len(digits)-1, 0; i >= 0; i, shift = i-1, shift+1 {
		switch digits[i] {
		case '1':
			b[len(b)-1-shift/8] |= 1 << (shift % 8)
		case '0':
		default:
			return nil, errors.New("bit literal " + s + ": not a binary digit")
		}
	}
	return binaryLiteral(b), nil
}

// literal is the parser's value node (ast.ValueExpr).
type literal struct {
	ast.TexprNode
	value  any
	offset int // projection offset, -1 when unset
}

func newLiteral(value any, charset, collate string) ast.ValueExpr {
	if l, ok := value.(*literal); ok {
		return l
	}
	l := &literal{value: value, offset: -1}
	if charset != "" {
		l.Type.SetCharset(charset)
		l.Type.SetCollate(collate)
	}
	return l
}

func (l *literal) SetValue(v any)                 { l.value = v }
func (l *literal) GetValue() any                  { return l.value }
func (l *literal) GetDatumString() string         { return l.GetString() }
func (l *literal) GetProjectionOffset() int       { return l.offset }
func (l *literal) SetProjectionOffset(offset int) { l.offset = offset }

// GetString is the value as text: strings and binary literals as their
// bytes, numbers in decimal.
func (l *literal) GetString() string {
	switch v := l.value.(type) {
	case nil:
		return ""
	case string:
		return v
	case binaryLiteral:
		return string(v)
	case decimalLiteral:
		return string(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(l.value)
}

// Restore writes the literal back as SQL.
func (l *literal) Restore(ctx *format.RestoreCtx) error {
	switch v := l.value.(type) {
	case nil:
		ctx.WriteKeyWord("NULL")
	case string:
		ctx.WriteString(v)
	case binaryLiteral:
		ctx.WritePlainf("x'%x'", []byte(v))
	case bool:
		ctx.WriteKeyWord(strings.ToUpper(strconv.FormatBool(v)))
	default:
		ctx.WritePlain(l.GetString())
	}
	return nil
}

// Format writes the literal as Restore does.
func (l *literal) Format(w io.Writer) {
	var b strings.Builder
	_ = l.Restore(format.NewRestoreCtx(format.DefaultRestoreFlags, &b))
	_, _ = io.WriteString(w, b.String())
}

// Accept implements ast.Node.
func (l *literal) Accept(v ast.Visitor) (ast.Node, bool) {
	n, _ := v.Enter(l) // no children to skip
	return v.Leave(n)
}

// paramMarker is a ? in a prepared statement's text (ast.ParamMarkerExpr).
type paramMarker struct {
	literal
	Offset, Order int
}

func (p *paramMarker) SetOrder(order int) { p.Order = order }

// Restore writes the marker.
func (p *paramMarker) Restore(ctx *format.RestoreCtx) error {
	ctx.WritePlain("?")
	return nil
}

// Format writes the marker.
func (p *paramMarker) Format(w io.Writer) { _, _ = io.WriteString(w, "?") }

// Accept implements ast.Node.
func (p *paramMarker) Accept(v ast.Visitor) (ast.Node, bool) {
	n, _ := v.Enter(p)
	return v.Leave(n)
}
