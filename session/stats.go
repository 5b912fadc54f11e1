package session

import (
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// stmtStats caches this session's metric handles, so a statement costs two
// atomic adds and one histogram observation, not a label lookup.
type stmtStats struct {
	m map[statsKey]*stmtHandles
}

// statsKey: the node (its server label) and replica<<16 | command<<8 | kind.
type statsKey struct {
	node *backend.Endpoint
	k    uint32
}

type stmtHandles struct {
	ok, failed         prometheus.Counter
	okTime, failedTime prometheus.Observer
	inflight           prometheus.Gauge
	legacy             *legacyHandles // nil for commands Pisa-Proxy did not count
}

// legacyHandles are Pisa-Proxy's own series (metrics.Proxy.Legacy*).
type legacyHandles struct {
	processed prometheus.Counter
	duration  prometheus.Observer
	under     prometheus.Gauge
}

func (st *stmtStats) reset() { st.m = nil }

func (st *stmtStats) handles(s *Session, l *leg, cmd byte, kind sqlinfo.Kind) *stmtHandles {
	key := statsKey{l.conn.Endpoint, uint32(cmd)<<8 | uint32(kind)}
	if l != &s.primary {
		key.k |= 1 << 16
	}
	if h, ok := st.m[key]; ok {
		return h
	}
	if st.m == nil {
		st.m = map[statsKey]*stmtHandles{}
	}
	m := s.env.Metrics
	typ := commandName(cmd)
	server := l.conn.Endpoint.Addr
	// The client names user and schema: any bytes, and a label value that
	// is not UTF-8 makes WithLabelValues panic.
	user, db := strings.ToValidUTF8(s.user, "\uFFFD"), strings.ToValidUTF8(s.db, "\uFFFD")
	lv := func(result string) []string {
		return []string{s.env.Tenant, user, db, typ, kind.String(), result, server}
	}
	h := &stmtHandles{
		ok:         m.SQLProcessed.WithLabelValues(lv("ok")...),
		failed:     m.SQLProcessed.WithLabelValues(lv("error")...),
		okTime:     m.SQLDuration.WithLabelValues(lv("ok")...),
		failedTime: m.SQLDuration.WithLabelValues(lv("error")...),
		inflight:   m.SQLUnderProcessing.WithLabelValues(s.env.Tenant, typ, server),
	}
	if lt := legacyType(cmd); lt != "" {
		h.legacy = &legacyHandles{
			processed: m.LegacyProcessed.WithLabelValues(s.env.Tenant, lt, server),
			duration:  m.LegacyDuration.WithLabelValues(s.env.Tenant, lt, server),
			under:     m.LegacyUnder.WithLabelValues(s.env.Tenant, lt, server),
		}
	}
	st.m[key] = h
	return h
}

// begin counts a command in flight (and, as Pisa-Proxy did, processed).
func (h *stmtHandles) begin() {
	h.inflight.Inc()
	if h.legacy != nil {
		h.legacy.processed.Inc()
		h.legacy.under.Inc()
	}
}

func (h *stmtHandles) end() {
	h.inflight.Dec()
	if h.legacy != nil {
		h.legacy.under.Dec()
	}
}

func (h *stmtHandles) record(ok bool, d time.Duration) {
	if h.legacy != nil {
		h.legacy.duration.Observe(d.Seconds())
	}
	if ok {
		h.ok.Inc()
		h.okTime.Observe(d.Seconds())
		return
	}
	h.failed.Inc()
	h.failedTime.Observe(d.Seconds())
}

// legacyType is Pisa-Proxy's type label for the commands it counted ("" for
// the others): its prepare and execute names differ from the protocol's.
func legacyType(cmd byte) string {
	switch cmd {
	case mysql.COM_QUERY:
		return "COM_QUERY"
	case mysql.COM_STMT_PREPARE:
		return "COM_PREPARE"
	case mysql.COM_STMT_EXECUTE:
		return "COM_EXECUTE"
	case mysql.COM_INIT_DB:
		return "COM_INIT_DB"
	case mysql.COM_FIELD_LIST:
		return "COM_FIELD_LIST"
	}
	return ""
}

func commandName(cmd byte) string {
	switch cmd {
	case mysql.COM_QUERY:
		return "COM_QUERY"
	case mysql.COM_STMT_EXECUTE:
		return "COM_STMT_EXECUTE"
	case mysql.COM_STMT_PREPARE:
		return "COM_STMT_PREPARE"
	case mysql.COM_STMT_FETCH:
		return "COM_STMT_FETCH"
	case mysql.COM_STMT_RESET:
		return "COM_STMT_RESET"
	case mysql.COM_FIELD_LIST:
		return "COM_FIELD_LIST"
	case mysql.COM_INIT_DB:
		return "COM_INIT_DB"
	case mysql.COM_PING:
		return "COM_PING"
	case mysql.COM_STATISTICS:
		return "COM_STATISTICS"
	case mysql.COM_SET_OPTION:
		return "COM_SET_OPTION"
	case mysql.COM_RESET_CONNECTION:
		return "COM_RESET_CONNECTION"
	case mysql.COM_DEBUG:
		return "COM_DEBUG"
	case mysql.COM_REFRESH:
		return "COM_REFRESH"
	case wire.ComStmtBulkExecute:
		return "COM_STMT_BULK_EXECUTE"
	}
	return "COM_OTHER"
}
