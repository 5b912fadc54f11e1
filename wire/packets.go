package wire

import (
	"github.com/go-mysql-org/go-mysql/mysql"
)

// SQLError is an error a client sees as a MySQL ERR packet.
type SQLError = mysql.MyError

// NewError builds an SQLError with the SQLSTATE MySQL uses for code.
func NewError(code uint16, msg string) *SQLError { return mysql.NewError(code, msg) }

// ErrorPayload encodes e as an ERR packet payload (protocol 4.1).
func ErrorPayload(e *SQLError) []byte {
	b := make([]byte, 0, 9+len(e.Message))
	b = append(b, mysql.ERR_HEADER, byte(e.Code), byte(e.Code>>8), '#')
	state := e.State
	if len(state) != 5 {
		state = mysql.DEFAULT_MYSQL_STATE
	}
	b = append(b, state...)
	return append(b, e.Message...)
}

// WriteError writes an ERR packet and flushes.
func (p *PacketIO) WriteError(e *SQLError) error {
	return p.WritePacketFlush(ErrorPayload(e))
}

// OKPayload encodes an OK packet.
func OKPayload(affected, insertID uint64, status, warnings uint16) []byte {
	b := make([]byte, 0, 16)
	b = append(b, mysql.OK_HEADER)
	b = mysql.AppendLengthEncodedInteger(b, affected)
	b = mysql.AppendLengthEncodedInteger(b, insertID)
	return append(b, byte(status), byte(status>>8), byte(warnings), byte(warnings>>8))
}

// WriteOK writes an OK packet and flushes.
func (p *PacketIO) WriteOK(status uint16) error {
	return p.WritePacketFlush(OKPayload(0, 0, status, 0))
}

// ParseError decodes an ERR packet payload.
func ParseError(payload []byte) *SQLError {
	if len(payload) < 3 || payload[0] != mysql.ERR_HEADER {
		return NewError(mysql.ER_UNKNOWN_ERROR, "malformed error packet")
	}
	e := &SQLError{Code: uint16(payload[1]) | uint16(payload[2])<<8, State: mysql.DEFAULT_MYSQL_STATE}
	rest := payload[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}

// GreetingError encodes e as sent in place of a greeting (a server
// refusing a connection): the client has not said it speaks protocol 4.1
// yet, so the packet carries no SQLSTATE.
func GreetingError(e *SQLError) []byte {
	return append([]byte{mysql.ERR_HEADER, byte(e.Code), byte(e.Code >> 8)}, e.Message...)
}
