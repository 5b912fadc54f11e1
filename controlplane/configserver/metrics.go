package configserver

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the config server.
type Metrics struct {
	watchers *prometheus.GaugeVec
	requests *prometheus.CounterVec
}

// NewMetrics registers the config server's collectors with reg:
// pisa_controller_config_watchers{kind} (long-polls waiting now) and
// pisa_controller_config_requests_total{kind,code}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pisa_controller_config_watchers",
			Help: "Watch requests waiting for a configuration change.",
		}, []string{"kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pisa_controller_config_requests_total",
			Help: "Configuration requests answered, by kind (proxy, daemon) and HTTP status code.",
		}, []string{"kind", "code"}),
	}
	var err error
	if m.watchers, err = register(reg, m.watchers); err != nil {
		return nil, err
	}
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name (a second server in the same process shares it).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register config server metrics: %w", err)
}

func (m *Metrics) watching(kind string, delta float64) {
	if m != nil {
		m.watchers.WithLabelValues(kind).Add(delta)
	}
}

func (m *Metrics) answered(kind string, code int) {
	if m != nil {
		m.requests.WithLabelValues(kind, strconv.Itoa(code)).Inc()
	}
}
