package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/wire"
)

// Auth passthrough: the client logs in as one of the backend's own
// accounts. The proxy dials the balancer's pick before greeting the client,
// greets it with that backend's scramble and plugin, and relays the
// authentication exchange (wire.Upstream), so the backend checks the
// credentials and the proxy never learns a password. The connection is
// then the session's own for its life: never pooled, closed at its end.

// upstream dials a node for the client to log in through.
func (s *Session) upstream(ctx context.Context, deadline time.Time) (*wire.Upstream, *backend.Pool, error) {
	var up *wire.Upstream
	var node *backend.Pool
	err := tryNodes(s.env.Balancer, s.env.Live.Load().Pools, func(pool *backend.Pool) error {
		u, err := backend.DialUpstream(ctx, pool.Endpoint(), deadline)
		if err == nil {
			up, node = u, pool
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if up.PlaintextFallback {
		s.env.Metrics.TLSFallbacks.WithLabelValues(s.env.Tenant, node.Endpoint().Name).Inc()
		s.log.Warn("backend offers no TLS: connection in plaintext (tls = \"preferred\")", "node", node.Endpoint().Name)
	}
	up.Keys = s.env.Auth
	return up, node, nil
}

// refuseLogin answers a client no backend could be dialled for, in place
// of the greeting (as a server refusing a connection does).
func (s *Session) refuseLogin(err error) error {
	s.env.Metrics.ConnRejected.WithLabelValues(s.env.Tenant, "backend").Inc()
	s.client.Seq = 0
	_ = s.client.WritePacketFlush(wire.GreetingError(toSQLError(err, s.env.Tenant)))
	return fmt.Errorf("login: %w", err)
}

// adopt makes the connection the client logged in through the session's
// primary. It already has what the client's login asked for: schema,
// character set, capability flags.
func (s *Session) adopt(up *wire.Upstream, node *backend.Pool) {
	be := backend.Adopt(up, node.Endpoint(), s.hello)
	be.ClientFlags = s.hello.Capabilities & clientFlagSettings
	node.Adopted()
	s.primary = leg{bal: s.env.Balancer, pool: node, conn: be, own: true}
}

// readyOwn finishes a passthrough login. A client that named no schema is
// given the listener's (or the node's) default when its account may use
// it: asked for at login, a schema it may not use would refuse a login
// the server itself accepts.
func (s *Session) readyOwn() error {
	be := s.primary.conn
	if def := cmp.Or(s.env.DefaultDB, be.Endpoint.DB); be.DB == "" && def != "" {
		err := be.Command(mysql.COM_INIT_DB, []byte(def))
		var sqlErr *wire.SQLError
		switch {
		case err == nil:
			be.DB = def
		case errors.As(err, &sqlErr):
			s.log.Debug("default schema not given", "db", def, "err", err)
		default:
			return err
		}
	}
	s.db = be.DB
	s.active.Store(be)
	return s.refreshReading(be)
}
