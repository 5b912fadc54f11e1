package session

import (
	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/wire"
)

// statusRow corrects a row of SHOW [SESSION] STATUS whose value describes
// the connection the backend sees (the proxy's, or its TLS) rather than
// the client's: Ssl_version, Ssl_cipher and Compression answer for the
// client's connection to the proxy, as on a direct connection.
func (s *Session) statusRow(row []byte) []byte {
	name, rest, ok := wire.LenEncString(row)
	if !ok {
		return row
	}
	var value string
	switch name {
	case "Ssl_version":
		value, _ = wire.SSLStatus(s.tlsState)
	case "Ssl_cipher":
		_, value = wire.SSLStatus(s.tlsState)
	case "Compression":
		value = "OFF"
		if s.hello.Capabilities&mysql.CLIENT_COMPRESS != 0 {
			value = "ON"
		}
	default:
		return row
	}
	if _, after, ok := wire.LenEncString(rest); !ok || len(after) != 0 {
		return row // not a two-column row
	}
	out := make([]byte, 0, len(row)+len(value))
	out = append(out, row[:len(row)-len(rest)]...)
	out = mysql.AppendLengthEncodedInteger(out, uint64(len(value)))
	return append(out, value...)
}
