package testenv

import (
	"log/slog"
	"os"
	"time"
)

// Defaults for [Options].
const (
	DefaultMaxConnections = 500
	DefaultStartTimeout   = 60 * time.Second
)

// Options configure one MariaDB instance. The zero value is a plain server
// with the defaults above.
type Options struct {
	// MaxConnections is the server's max_connections; 0 means
	// DefaultMaxConnections.
	MaxConnections int
	// TLS generates a CA and a server certificate (for 127.0.0.1, ::1 and
	// localhost) and starts the server with ssl-ca/ssl-cert/ssl-key. TLS is
	// offered, not required; see [Server.TLSConfig] and [Server.TLSFiles].
	TLS bool
	// TLSHosts are the addresses and names the server certificate is for
	// (with TLS); empty means 127.0.0.1, ::1 and localhost.
	TLSHosts []string
	// Replication enables the binary log for GTID replication: a server_id
	// unique among running instances, log_bin, binlog_format=ROW,
	// log_slave_updates and gtid_strict_mode.
	Replication bool
	// StartTimeout bounds the time from starting mariadbd to the first
	// successful connection; 0 means DefaultStartTimeout. Installing
	// mariadb-server or building the template is bounded separately.
	StartTimeout time.Duration
	// Datadir is the datadir's path: relative to the instance directory
	// ([Server.Dir]), "" meaning "data", or absolute, in a directory the
	// caller owns and removes (MariaDB's test runner wants it at
	// vardir/mysqld.1/data: tests read files by paths relative to it).
	Datadir string
	// Netns, when set, is a network namespace (an open /proc/.../ns/net or
	// netns handle) the server runs in, entered through nsenter; the
	// caller keeps it open while the server runs. Its unix socket, which
	// the namespace does not hide, still serves RootDB.
	Netns *os.File
	// Args are extra server options ("--name=value"), appended last so they
	// override the defaults.
	Args []string
	// Logger receives lifecycle logs; nil discards them.
	Logger *slog.Logger
}

// Option changes [Options]; used by the test wrappers [MariaDB] and [Replica].
type Option func(*Options)

// WithMaxConnections sets max_connections.
func WithMaxConnections(n int) Option { return func(o *Options) { o.MaxConnections = n } }

// WithTLS starts the server with a generated CA and server certificate.
func WithTLS() Option { return func(o *Options) { o.TLS = true } }

// WithTLSHosts starts the server with TLS and a certificate for hosts
// only, such as a name the tests do not connect by.
func WithTLSHosts(hosts ...string) Option {
	return func(o *Options) { o.TLS, o.TLSHosts = true, hosts }
}

// WithReplication enables the binary log and a unique server_id so the
// instance can be a primary or a replica.
func WithReplication() Option { return func(o *Options) { o.Replication = true } }

// WithStartTimeout bounds the start of mariadbd.
func WithStartTimeout(d time.Duration) Option { return func(o *Options) { o.StartTimeout = d } }

// WithArgs appends extra server options such as "--innodb-buffer-pool-size=256M".
func WithArgs(args ...string) Option {
	return func(o *Options) { o.Args = append(o.Args, args...) }
}

// WithLogger sets the logger for lifecycle messages.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// NewOptions applies opts to the zero Options.
func NewOptions(opts ...Option) Options {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	return o
}

func (o Options) withDefaults() Options {
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Datadir == "" {
		o.Datadir = "data"
	}
	o.Args = append([]string(nil), o.Args...)
	return o
}
