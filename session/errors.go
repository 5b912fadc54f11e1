package session

import (
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/wire"
)

// backendError is a failure to get or use a backend connection.
type backendError struct {
	node *backend.Endpoint
	err  error
}

func (e *backendError) Error() string { return fmt.Sprintf("backend %s: %v", e.node.Name, e.err) }
func (e *backendError) Unwrap() error { return e.err }

// Client-visible codes for proxy-side failures. They are server error
// numbers: MariaDB's client library (the mariadb CLI, Connector/C and what
// is built on it) reports an ERR packet carrying a client-range code
// (2000-2999, such as CR_CONN_HOST_ERROR 2003 or CR_SERVER_LOST 2013) as
// "2027 Received malformed packet", hiding the proxy's message.
const (
	// errConnHost: no backend node could be reached (ER_CONNECT_TO_FOREIGN_DATA_SOURCE).
	errConnHost = 1429
	// errServerLost: the backend connection failed during a command
	// (ER_NET_READ_ERROR, SQLSTATE 08S01: connectors treat the connection
	// as broken, as they do for a lost server).
	errServerLost = 1158
)

// toSQLError maps an internal error to what the MySQL client sees. This is
// the one place that decides codes and texts.
func toSQLError(err error, tenant string) *wire.SQLError {
	var sqlErr *wire.SQLError
	if errors.As(err, &sqlErr) {
		return sqlErr
	}
	var be *backendError
	switch {
	case errors.Is(err, errNoBackend):
		return wire.NewError(errConnHost, fmt.Sprintf("Unable to connect to foreign data source: pisa-proxy tenant %q has no available backend node", tenant))
	case errors.Is(err, backend.ErrPoolTimeout), errors.Is(err, backend.ErrPoolQueueFull):
		return wire.NewError(mysql.ER_CON_COUNT_ERROR, fmt.Sprintf("Too many connections: pisa-proxy tenant %q: %v", tenant, err))
	case errors.As(err, &be):
		return wire.NewError(errConnHost, fmt.Sprintf("Unable to connect to foreign data source: can't connect to MySQL server on '%s' (pisa-proxy tenant %q, node %q): %v", be.node.Addr, tenant, be.node.Name, be.err))
	case wire.FailedSide(err) == wire.BackendSide:
		e := wire.NewError(errServerLost, fmt.Sprintf("Lost connection to backend server during query (pisa-proxy tenant %q): %v", tenant, errors.Unwrap(err)))
		e.State = "08S01"
		return e
	}
	return wire.NewError(mysql.ER_UNKNOWN_ERROR, fmt.Sprintf("pisa-proxy tenant %q: %v", tenant, err))
}
