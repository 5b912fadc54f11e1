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
	for _, c := range []prometheus.Collector{m.watchers, m.requests} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register config server metrics: %w", err)
			}
		}
	}
	return m, nil
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
