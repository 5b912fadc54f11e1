package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// ServerCapabilities is what the proxy offers clients. CLIENT_DEPRECATE_EOF
// is the client's side only: backend connections never have it, and the
// relay writes their EOFs as such a client expects (Relay.DeprecateEOF).
// QUERY_ATTRIBUTES is omitted (MariaDB has none); SESSION_TRACK is offered
// when the backend has it (PassthroughCapabilities). CLIENT_SSL is added
// when TLS is configured.
// CLIENT_FOUND_ROWS is honoured by taking the session's backend connections
// from pools dialled with it. CLIENT_COMPRESS is a framing below the
// packets, between the client and the proxy only (PacketIO.Compress).
const ServerCapabilities = mysql.CLIENT_LONG_PASSWORD | mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_LONG_FLAG |
	mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_IGNORE_SPACE | mysql.CLIENT_COMPRESS |
	mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_INTERACTIVE | mysql.CLIENT_TRANSACTIONS |
	mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_MULTI_RESULTS |
	mysql.CLIENT_PS_MULTI_RESULTS | mysql.CLIENT_PLUGIN_AUTH | mysql.CLIENT_CONNECT_ATTRS |
	mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_DEPRECATE_EOF

// DefaultCollationID is utf8mb4_general_ci, announced in the handshake and
// used for backend connections (MariaDB does not know MySQL 8's 255).
const DefaultCollationID = 45

// ClientHello is what a client said in its handshake response.
type ClientHello struct {
	Capabilities uint32
	// ExtCapabilities are MariaDB's extended capabilities (without
	// CLIENT_MYSQL), in the response's last four reserved bytes.
	ExtCapabilities uint32
	MaxPacket       uint32
	Collation       uint8
	User            string
	AuthResponse    []byte
	DB              string
	Plugin          string
	Attributes      map[string]string
	TLS             bool
}

// NewSalt returns a 20-byte scramble of printable bytes without NUL.
func NewSalt() ([]byte, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	for i := range b {
		b[i] = 0x21 + b[i]%0x5e // printable, as MySQL's scramble
	}
	return b, nil
}

// Encode encodes a protocol v10 greeting. MariaDB's extended capabilities
// go in the last four reserved bytes, which its clients read when
// CLIENT_MYSQL (CLIENT_LONG_PASSWORD) is not offered.
func (g *Greeting) Encode() []byte {
	caps, salt := g.Capabilities, g.Salt
	b := make([]byte, 0, 128)
	b = append(b, 10)
	b = append(b, g.Version...)
	b = append(b, 0, byte(g.ConnID), byte(g.ConnID>>8), byte(g.ConnID>>16), byte(g.ConnID>>24))
	b = append(b, salt[:8]...)
	b = append(b, 0, byte(caps), byte(caps>>8), g.Collation)
	b = append(b, byte(g.Status), byte(g.Status>>8), byte(caps>>16), byte(caps>>24))
	b = append(b, byte(len(salt)+1))
	b = append(b, make([]byte, 10)...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], g.ExtCapabilities)
	b = append(b, salt[8:]...)
	b = append(b, 0)
	b = append(b, g.Plugin...)
	return append(b, 0)
}

// MariaDB's extended capabilities (the bits above 32, shifted down).
const (
	// MariaDBProgress: progress reports during long statements, ERR
	// packets with code 0xFFFF that the relay passes on (isProgress), or
	// drops for a client that did not ask for them.
	MariaDBProgress = 1 << 0
	// MariaDBBulkOperations: COM_STMT_BULK_EXECUTE, relayed as
	// COM_STMT_EXECUTE is.
	MariaDBBulkOperations = 1 << 2
	// MariaDBExtendedMetadata: column definitions carry a data type name
	// ("json", "uuid", ...), which the relay cuts out for a client that
	// did not ask for it.
	MariaDBExtendedMetadata = 1 << 3
	// MariaDBCacheMetadata: a column count is followed by a "metadata
	// follows" byte, and a prepared statement's execution may skip its
	// column definitions (Relay.CacheMetadata).
	MariaDBCacheMetadata = 1 << 4
)

// PassthroughExtCapabilities are the extended capabilities offered with
// auth passthrough when the backend has them. Pooled connections have
// those of backend.ExtCapabilities, which the relay can undo for a client
// that did not ask for them (Relay.Undo); metadata caching is not among
// them.
const PassthroughExtCapabilities = MariaDBProgress | MariaDBBulkOperations | MariaDBExtendedMetadata | MariaDBCacheMetadata

// ComStmtBulkExecute is MariaDB's COM_STMT_BULK_EXECUTE.
const ComStmtBulkExecute = 0xfa

// errMalformed is returned for handshake packets that cannot be decoded.
var errMalformed = errors.New("malformed handshake response")

// IsSSLRequest reports whether a handshake response is the short SSL request.
func IsSSLRequest(payload []byte) bool {
	if len(payload) != 32 {
		return false
	}
	caps := uint32(payload[0]) | uint32(payload[1])<<8 | uint32(payload[2])<<16 | uint32(payload[3])<<24
	return caps&mysql.CLIENT_SSL != 0
}

// ParseHandshakeResponse decodes a HandshakeResponse41.
func ParseHandshakeResponse(b []byte) (*ClientHello, error) {
	if len(b) < 32 {
		return nil, errMalformed
	}
	h := &ClientHello{
		Capabilities: uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24,
		MaxPacket:    uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24,
		Collation:    b[8],
	}
	if h.Capabilities&mysql.CLIENT_PROTOCOL_41 == 0 {
		return nil, errors.New("client does not speak protocol 4.1")
	}
	if h.Capabilities&mysql.CLIENT_LONG_PASSWORD == 0 { // CLIENT_MYSQL unset: a MariaDB client
		h.ExtCapabilities = uint32(b[28]) | uint32(b[29])<<8 | uint32(b[30])<<16 | uint32(b[31])<<24
	}
	pos := 32
	var ok bool
	if h.User, pos, ok = nulString(b, pos); !ok {
		return nil, errMalformed
	}
	if h.AuthResponse, pos, ok = authResponse(b, pos, h.Capabilities); !ok {
		return nil, errMalformed
	}
	if h.Capabilities&mysql.CLIENT_CONNECT_WITH_DB != 0 && pos < len(b) {
		if h.DB, pos, ok = nulString(b, pos); !ok {
			return nil, errMalformed
		}
	}
	if h.Capabilities&mysql.CLIENT_PLUGIN_AUTH != 0 && pos < len(b) {
		if h.Plugin, pos, ok = nulString(b, pos); !ok {
			// Some clients omit the final NUL.
			h.Plugin, pos = string(b[pos:]), len(b)
		}
	}
	if h.Capabilities&mysql.CLIENT_CONNECT_ATTRS != 0 && pos < len(b) {
		if h.Attributes, ok = attributes(b[pos:]); !ok {
			return nil, errMalformed
		}
	}
	return h, nil
}

func authResponse(b []byte, pos int, caps uint32) ([]byte, int, bool) {
	switch {
	case caps&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		n, sz, ok := lenEncInt(b[pos:])
		if !ok || uint64(len(b)-pos-sz) < n {
			return nil, 0, false
		}
		start := pos + sz
		return b[start : start+int(n)], start + int(n), true
	case caps&mysql.CLIENT_SECURE_CONNECTION != 0:
		if pos >= len(b) || len(b)-pos-1 < int(b[pos]) {
			return nil, 0, false
		}
		n := int(b[pos])
		return b[pos+1 : pos+1+n], pos + 1 + n, true
	}
	s, next, ok := nulString(b, pos)
	return []byte(s), next, ok
}

func attributes(b []byte) (map[string]string, bool) {
	total, sz, ok := lenEncInt(b)
	if !ok || uint64(len(b)-sz) < total {
		return nil, false
	}
	b = b[sz : sz+int(total)]
	attrs := map[string]string{}
	for len(b) > 0 {
		k, rest, ok := LenEncString(b)
		if !ok {
			return nil, false
		}
		v, rest, ok := LenEncString(rest)
		if !ok {
			return nil, false
		}
		attrs[k] = v
		b = rest
	}
	return attrs, true
}

// LenEncString reads a length-encoded string at the start of b and returns
// the rest.
func LenEncString(b []byte) (string, []byte, bool) {
	n, sz, ok := lenEncInt(b)
	if !ok || uint64(len(b)-sz) < n {
		return "", nil, false
	}
	return string(b[sz : sz+int(n)]), b[sz+int(n):], true
}

func nulString(b []byte, pos int) (string, int, bool) {
	if pos > len(b) {
		return "", 0, false
	}
	i := bytes.IndexByte(b[pos:], 0)
	if i < 0 {
		return "", 0, false
	}
	return string(b[pos : pos+i]), pos + i + 1, true
}

// AuthSwitchRequest encodes a request to continue with plugin and salt.
func AuthSwitchRequest(plugin string, salt []byte) []byte {
	b := make([]byte, 0, 2+len(plugin)+len(salt)+1)
	b = append(b, mysql.EOF_HEADER)
	b = append(b, plugin...)
	b = append(b, 0)
	b = append(b, salt...)
	return append(b, 0)
}

// ChangeUser is a decoded COM_CHANGE_USER.
type ChangeUser struct {
	User         string
	AuthResponse []byte
	DB           string
	Collation    uint8
	Plugin       string
	Attributes   map[string]string
}

// ParseChangeUser decodes a COM_CHANGE_USER payload (including the command byte).
func ParseChangeUser(b []byte, caps uint32) (*ChangeUser, error) {
	cu := &ChangeUser{}
	var ok bool
	pos := 1
	if cu.User, pos, ok = nulString(b, pos); !ok {
		return nil, errors.New("malformed COM_CHANGE_USER: user")
	}
	if pos >= len(b) || len(b)-pos-1 < int(b[pos]) {
		return nil, errors.New("malformed COM_CHANGE_USER: auth response")
	}
	n := int(b[pos])
	cu.AuthResponse, pos = b[pos+1:pos+1+n], pos+1+n
	if cu.DB, pos, ok = nulString(b, pos); !ok {
		return nil, errors.New("malformed COM_CHANGE_USER: schema")
	}
	if pos+2 <= len(b) {
		cu.Collation = b[pos]
		pos += 2
	}
	if caps&mysql.CLIENT_PLUGIN_AUTH != 0 && pos < len(b) {
		if cu.Plugin, pos, ok = nulString(b, pos); !ok {
			cu.Plugin, pos = string(b[pos:]), len(b)
		}
	}
	if caps&mysql.CLIENT_CONNECT_ATTRS != 0 && pos < len(b) {
		if cu.Attributes, ok = attributes(b[pos:]); !ok {
			return nil, errors.New("malformed COM_CHANGE_USER: attributes")
		}
	}
	return cu, nil
}
