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

// Client-visible codes for proxy-side failures (MySQL client error numbers,
// sent in ERR packets with SQLSTATE HY000, as other MySQL proxies do).
const (
	errConnHost   = 2003 // CR_CONN_HOST_ERROR
	errServerLost = 2013 // CR_SERVER_LOST
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
		return wire.NewError(errConnHost, fmt.Sprintf("pisa-proxy: tenant %q has no available backend node", tenant))
	case errors.Is(err, backend.ErrPoolTimeout), errors.Is(err, backend.ErrPoolQueueFull):
		return wire.NewError(mysql.ER_CON_COUNT_ERROR, fmt.Sprintf("Too many connections: pisa-proxy tenant %q: %v", tenant, err))
	case errors.As(err, &be):
		return wire.NewError(errConnHost, fmt.Sprintf("Can't connect to MySQL server on '%s' (pisa-proxy tenant %q, node %q): %v", be.node.Addr, tenant, be.node.Name, be.err))
	case wire.FailedSide(err) == wire.BackendSide:
		return wire.NewError(errServerLost, fmt.Sprintf("Lost connection to backend server during query (pisa-proxy tenant %q): %v", tenant, errors.Unwrap(err)))
	}
	return wire.NewError(mysql.ER_UNKNOWN_ERROR, fmt.Sprintf("pisa-proxy tenant %q: %v", tenant, err))
}
