// Package metrics owns the proxy's Prometheus collectors: the
// pisa_proxy_* series, and Pisa-Proxy's own unprefixed sql_processed_total,
// sql_processed_duration and sql_under_processing (domain, type, server)
// beside them, so that existing dashboards keep working.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const ns = "pisa_proxy"

// Statement labels, in order.
var stmtLabels = []string{"domain", "user", "db", "type", "kind", "result", "server"}

// Proxy holds every collector of one pisa-proxy process, registered on its
// own registry (no global state).
type Proxy struct {
	Registry *prometheus.Registry

	SQLProcessed       *prometheus.CounterVec
	SQLDuration        *prometheus.HistogramVec
	SQLUnderProcessing *prometheus.GaugeVec

	// Pisa-Proxy's own series, under its names (no prefix), labels
	// (domain, type, server) and type values (COM_QUERY, COM_PREPARE,
	// COM_EXECUTE, COM_INIT_DB, COM_FIELD_LIST): dashboards built for
	// Pisanix v0.1-v0.3 keep working. sql_processed_total counts commands
	// as they start, as it did.
	LegacyProcessed *prometheus.CounterVec
	LegacyDuration  *prometheus.HistogramVec
	LegacyUnder     *prometheus.GaugeVec

	ConnCurrent  *prometheus.GaugeVec
	ConnAccepted *prometheus.CounterVec
	ConnRejected *prometheus.CounterVec
	SessionPanic *prometheus.CounterVec
	SQLErrors    *prometheus.CounterVec

	PoolIdle       *prometheus.GaugeVec
	PoolInUse      *prometheus.GaugeVec
	PoolWaits      *prometheus.CounterVec
	PoolWaitTime   *prometheus.HistogramVec
	PoolTimeouts   *prometheus.CounterVec
	PoolDials      *prometheus.CounterVec
	PoolDialErrors *prometheus.CounterVec
	TLSFallbacks   *prometheus.CounterVec
	PinnedSessions *prometheus.GaugeVec
	Borrows        *prometheus.CounterVec
	BackendKills   *prometheus.CounterVec

	BreakerState     *prometheus.GaugeVec
	ParseErrors      *prometheus.CounterVec
	ParseThrottled   *prometheus.CounterVec
	FusesOpen        *prometheus.GaugeVec
	RWRouted         *prometheus.CounterVec
	RWRuleHits       *prometheus.CounterVec
	ConcurrencyWait  *prometheus.HistogramVec
	ConcurrencyQueue *prometheus.GaugeVec
	DiscoveryProbes  *prometheus.CounterVec
	ReplicaLag       *prometheus.GaugeVec
	ConfigReloads    *prometheus.CounterVec
	PluginRejections *prometheus.CounterVec
	AccessDenied     *prometheus.CounterVec
	Fingerprints     *Fingerprints

	AuditQueued  *prometheus.GaugeVec
	AuditWritten *prometheus.CounterVec
	AuditDropped *prometheus.CounterVec
	AuditErrors  *prometheus.CounterVec

	ActorRestarts *prometheus.CounterVec
	ActorMailbox  *prometheus.GaugeVec
	ActorMessages *prometheus.CounterVec
	ActorWait     *prometheus.HistogramVec
	ActorReceive  *prometheus.HistogramVec
	DeadLetters   *prometheus.CounterVec
}

// Describe lists what collectors export (for checks of dashboards and
// alerts against the metrics a program really has).
func Describe(cs ...prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc, 1024)
	go func() {
		for _, c := range cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	var descs []*prometheus.Desc
	for d := range ch {
		descs = append(descs, d)
	}
	return descs
}

// New creates and registers all collectors.
func New() *Proxy {
	m := &Proxy{
		Registry: prometheus.NewRegistry(),
		SQLProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "sql_processed_total", Help: "Statements processed, by listener (domain), user, db, command type, statement kind, result and backend server.",
		}, stmtLabels),
		SQLDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "sql_processed_duration", Help: "Statement latency through the proxy in seconds, until the last response packet was relayed.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, stmtLabels),
		SQLUnderProcessing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "sql_under_processing", Help: "Statements in flight.",
		}, []string{"domain", "type", "server"}),
		ConnCurrent:  gauge("connections_current", "Open client sessions.", "domain"),
		ConnAccepted: counter("connections_accepted_total", "Client connections accepted.", "domain"),
		ConnRejected: counter("connections_rejected_total", "Client connections rejected, by reason (max_connections, auth, handshake, backend).", "domain", "reason"),
		SessionPanic: counter("session_panics_total", "Sessions ended by a panic (the rest of the process kept serving).", "domain"),
		SQLErrors:    counter("sql_errors_total", "Error packets sent to clients, by listener, MySQL error code and origin: backend (the server's, relayed) or proxy (the proxy's own answer).", "domain", "code", "origin"),
		PoolIdle:     gauge("pool_idle_connections", "Idle backend connections.", "domain", "node"),
		PoolInUse:    gauge("pool_in_use_connections", "Backend connections held by sessions.", "domain", "node"),
		PoolWaits:    counter("pool_waits_total", "Acquires that had to wait for a connection.", "domain", "node"),
		PoolWaitTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "pool_wait_seconds", Help: "Time spent waiting for a backend connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"domain", "node"}),
		PoolTimeouts:   counter("pool_timeouts_total", "Acquires that gave up waiting.", "domain", "node"),
		PoolDials:      counter("pool_dials_total", "Backend connections dialled.", "domain", "node"),
		PoolDialErrors: counter("pool_dial_errors_total", "Backend dials that failed.", "domain", "node"),
		TLSFallbacks:   counter("backend_tls_fallbacks_total", "Backend connections made in plaintext because the node's tls = \"preferred\" and the server offered no TLS.", "domain", "node"),
		PinnedSessions: gauge("pinned_sessions", "Multiplexing sessions holding their backend connection between statements, by reason (transaction, prepared_statement, temporary_table, lock_tables, named_lock, user_variable, ...).", "domain", "reason"),
		Borrows:        counter("backend_borrows_total", "Backend connections a multiplexing session borrowed for a statement (or transaction), by whether its session state had to be given (aligned) or already matched (reused).", "domain", "state"),
		BackendKills:   counter("backend_statements_killed_total", "Backend statements the proxy stopped with KILL QUERY, by reason (client_gone: the client disconnected while its statement ran).", "domain", "reason"),
		RWRuleHits:     counter("rw_rule_hits_total", "Reads decided by a read/write splitting rule, by rule name.", "domain", "rule"),
		RWRouted:       counter("rw_routed_total", "COM_QUERY statements routed by read/write splitting, by target (read, readwrite).", "domain", "target"),
		ConcurrencyWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "concurrency_wait_seconds", Help: "Time statements matching a concurrency_control rule waited for admission.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}, []string{"domain"}),
		ConcurrencyQueue: gauge("concurrency_waiting", "Statements waiting for admission under concurrency_control rules.", "domain"),
		FusesOpen:        gauge("statement_fuses_tripped", "Statement fingerprints whose fuse is open or half-open.", "domain"),
		ParseErrors:      counter("sql_parse_errors_total", "Statements the SQL parser could not read (proxied anyway, to the primary).", "domain"),
		ParseThrottled:   counter("sql_parse_throttled_total", "Statements not parsed because their user's parse budget was spent (read lexically; refused for users with access rules).", "domain"),
		BreakerState:     gauge("backend_breaker_state", "Per backend node circuit breaker: 0 closed (healthy), 1 half-open (probing), 2 open (no new sessions).", "domain", "node"),
		DiscoveryProbes:  counter("discovery_probes_total", "Read/write splitting discovery probes by node and result.", "domain", "node", "result"),
		ReplicaLag:       gauge("replica_lag_seconds", "Replication lag of replicas seen by discovery.", "domain", "node"),
		PluginRejections: counter("plugin_rejections_total", "Statements refused by circuit_break or concurrency_control rules.", "domain", "plugin"),
		Fingerprints:     newFingerprints(),
		AccessDenied:     counter("access_denied_total", "Logins and statements refused by access control, by user and reason (host, database, table, read_only, unverifiable).", "domain", "user", "reason"),
		AuditQueued:      gauge("audit_queue_depth", "Audit records waiting for the writer.", "domain"),
		AuditWritten:     counter("audit_records_written_total", "Audit records written to the sink.", "domain"),
		AuditDropped:     counter("audit_records_dropped_total", "Audit records dropped because the queue was full (not in lossless mode).", "domain"),
		AuditErrors:      counter("audit_write_errors_total", "Audit sink write failures.", "domain"),
		ConfigReloads:    counter("config_reloads_total", "Configuration changes applied live (ok) or rejected (error).", "result"),
		ActorRestarts:    counter("actor_failures_total", "Actor failures by actor kind and the supervisor's directive.", "kind", "directive"),
		ActorMailbox:     gauge("actor_mailbox_depth", "Messages waiting in mailboxes, by actor kind.", "kind"),
		ActorMessages:    counter("actor_messages_total", "Messages processed, by actor kind.", "kind"),
		ActorWait:        histogram("actor_mailbox_wait_seconds", "Time a message waited in an actor's mailbox before its receive began, by actor kind.", "kind"),
		ActorReceive:     histogram("actor_receive_seconds", "Time an actor spent receiving one message, by actor kind.", "kind"),
		DeadLetters:      counter("actor_dead_letters_total", "Messages sent to actors that no longer exist, by message type.", "message"),
	}
	legacy := []string{"domain", "type", "server"}
	m.LegacyProcessed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sql_processed_total", Help: "Pisa-Proxy's series: commands processed."}, legacy)
	m.LegacyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sql_processed_duration", Help: "Pisa-Proxy's series: the duration of processed commands, seconds.", Buckets: prometheus.DefBuckets}, legacy)
	m.LegacyUnder = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sql_under_processing", Help: "Pisa-Proxy's series: commands in flight."}, legacy)
	m.Registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.SQLProcessed, m.SQLDuration, m.SQLUnderProcessing, m.LegacyProcessed, m.LegacyDuration, m.LegacyUnder,
		m.ConnCurrent, m.ConnAccepted, m.ConnRejected, m.SessionPanic, m.SQLErrors,
		m.PoolIdle, m.PoolInUse, m.PoolWaits, m.PoolWaitTime, m.PoolTimeouts, m.PoolDials, m.PoolDialErrors, m.TLSFallbacks, m.PinnedSessions, m.Borrows, m.BackendKills,
		m.BreakerState, m.ParseErrors, m.ParseThrottled, m.FusesOpen, m.RWRouted, m.RWRuleHits, m.ConcurrencyWait, m.ConcurrencyQueue, m.DiscoveryProbes, m.ReplicaLag, m.ConfigReloads, m.PluginRejections, m.AccessDenied, m.Fingerprints,
		m.AuditQueued, m.AuditWritten, m.AuditDropped, m.AuditErrors, m.ActorRestarts, m.ActorMailbox, m.ActorMessages,
		m.ActorWait, m.ActorReceive, m.DeadLetters,
	)
	return m
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
}

// histogram is a latency histogram from 1 µs to ~4 s.
func histogram(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: name, Help: help, Buckets: prometheus.ExponentialBuckets(0.000001, 4, 12),
	}, labels)
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)
}
