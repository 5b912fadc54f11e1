package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord appends r as one JSON line (keys in a fixed order, newline
// terminated). Hand-written: about 3x faster than encoding/json on a
// struct and allocation-free (see BenchmarkEncode); the tests decode its
// output with encoding/json.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","tenant":`...)
	b = appendString(b, r.Tenant)
	b = append(b, `,"user":`...)
	b = appendString(b, r.User)
	b = append(b, `,"client":`...)
	b = appendString(b, r.Client)
	b = append(b, `,"conn_id":`...)
	b = strconv.AppendUint(b, uint64(r.ConnID), 10)
	b = append(b, `,"db":`...)
	b = appendString(b, r.DB)
	b = append(b, `,"kind":`...)
	b = appendString(b, r.Kind)
	b = append(b, `,"fingerprint":`...)
	b = appendString(b, r.Fingerprint)
	b = append(b, `,"digest":`...)
	b = appendString(b, r.Digest)
	b = append(b, `,"tables":[`...)
	for i, t := range r.Tables {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		if t.DB != "" {
			b = appendEscaped(b, t.DB)
			b = append(b, '.')
		}
		b = appendEscaped(b, t.Name)
		b = append(b, '"')
	}
	b = append(b, `],"duration_us":`...)
	b = strconv.AppendInt(b, r.Duration.Microseconds(), 10)
	b = append(b, `,"rows_affected":`...)
	b = strconv.AppendUint(b, r.RowsAffected, 10)
	b = append(b, `,"rows_sent":`...)
	b = strconv.AppendUint(b, r.RowsSent, 10)
	b = append(b, `,"error_code":`...)
	b = strconv.AppendUint(b, uint64(r.ErrorCode), 10)
	if r.Denied != "" {
		b = append(b, `,"denied":`...)
		b = appendString(b, r.Denied)
	}
	b = append(b, `,"backend":`...)
	b = appendString(b, r.Backend)
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s JSON-escaped without quotes, as encoding/json
// does minus HTML escaping: control characters as \n, \r, \t or \u00XX,
// invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
