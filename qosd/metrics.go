package qosd

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"pisanix.io/pisanix/metrics"
)

// daemonMetrics are the daemon's own metrics, registered on a registry of
// its own (never the global one).
type daemonMetrics struct {
	reconciles       *prometheus.CounterVec
	reconcileSeconds prometheus.Histogram
	sourceErrors     prometheus.Counter
	restarts         prometheus.Counter
}

func newDaemonMetrics(reg prometheus.Registerer) *daemonMetrics {
	m := &daemonMetrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pisa_daemon_reconcile_total", Help: "Reconciles of the node's QoS state, by result (ok, error).",
		}, []string{"result"}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pisa_daemon_reconcile_duration_seconds", Help: "Time one reconcile took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		sourceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pisa_daemon_config_errors_total", Help: "Failed or invalid fetches of the daemon config.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pisa_daemon_reconciler_restarts_total", Help: "Restarts of the reconcile actor after a failure.",
		}),
	}
	reg.MustRegister(m.reconciles, m.reconcileSeconds, m.sourceErrors, m.restarts)
	return m
}

// classCollector exports the classifier's per-class counters. It asks the
// reconcile actor on every scrape (the actor owns the BPF maps).
type classCollector struct {
	log     *slog.Logger
	root    *actor.RootContext
	pid     *actor.PID
	timeout time.Duration

	packets, bytes, payload, drops, overlimits, rate, ceil *prometheus.Desc
}

var classLabels = []string{"app", "service", "interface", "classid"}

func newClassCollector(log *slog.Logger, root *actor.RootContext, pid *actor.PID) *classCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, classLabels, nil) }
	return &classCollector{
		log: log, root: root, pid: pid, timeout: 2 * time.Second,
		packets: d("pisa_daemon_qos_packets_total", "Packets the classifier put into the class (GSO packets count once)."),
		bytes:   d("pisa_daemon_qos_bytes_total", "Bytes on the wire the classifier put into the class (L2, what HTB shapes)."),
		payload: d("pisa_daemon_qos_payload_bytes_total", "TCP/UDP payload bytes the classifier put into the class (retransmissions included)."),
		drops:   d("pisa_daemon_qos_drops_total", "Packets the class's queue dropped (HTB class statistics; a counter of the kernel's, reset when the class is re-created)."),
		overlimits: d("pisa_daemon_qos_overlimits_total",
			"Times a packet of the class found it over its rate and had to wait (HTB class statistics)."),
		rate: d("pisa_daemon_qos_rate_bits", "The class's claimed rate, bits per second."),
		ceil: d("pisa_daemon_qos_ceil_bits", "The class's ceiling, bits per second."),
	}
}

func (c *classCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.payload, c.drops, c.overlimits, c.rate, c.ceil} {
		ch <- d
	}
}

func (c *classCollector) Collect(ch chan<- prometheus.Metric) {
	res, err := c.root.RequestFuture(c.pid, countersRequest{}, c.timeout).Result()
	if err != nil {
		c.log.Warn("scrape: reconcile actor did not answer", "err", err)
		return
	}
	reply, _ := res.(countersReply)
	if reply.err != nil {
		c.log.Warn("scrape: read class counters", "err", reply.err)
		return
	}
	for _, k := range reply.counters {
		lv := []string{k.App, k.Service, k.Device, strconv.FormatUint(uint64(k.ClassID>>16), 16) + ":" + strconv.FormatUint(uint64(k.ClassID&0xffff), 16)}
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(k.Packets), lv...)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(k.Bytes), lv...)
		ch <- prometheus.MustNewConstMetric(c.payload, prometheus.CounterValue, float64(k.PayloadBytes), lv...)
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(k.Drops), lv...)
		ch <- prometheus.MustNewConstMetric(c.overlimits, prometheus.CounterValue, float64(k.Overlimits), lv...)
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, float64(k.Rate), lv...)
		ch <- prometheus.MustNewConstMetric(c.ceil, prometheus.GaugeValue, float64(k.Ceil), lv...)
	}
}

// MetricDescs describes every metric pisa-daemon exports on /metrics
// besides the Go and process collectors' (for checks of dashboards and
// alerts against what the daemon really exports).
func MetricDescs() []*prometheus.Desc {
	m := newDaemonMetrics(prometheus.NewRegistry())
	return metrics.Describe(m.reconciles, m.reconcileSeconds, m.sourceErrors, m.restarts, newClassCollector(nil, nil, nil))
}

// newRegistry returns the daemon's registry with Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
