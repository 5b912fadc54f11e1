package supervisor

import (
	"testing"
	"time"

	"pisanix.io/pisanix/config"
)

// The probe period: monitor_period, but not more often than the most
// frequent of Pisa-Proxy's per-check periods; the lag threshold in
// milliseconds.
func TestDiscoveryPeriod(t *testing.T) {
	for _, tc := range []struct {
		d    config.RWDiscovery
		want time.Duration
	}{
		{config.RWDiscovery{}, time.Second},
		{config.RWDiscovery{MonitorPeriod: 250}, 250 * time.Millisecond},
		// Pisa-Proxy's guide: monitor_period = 1, checks every 100 ms.
		{config.RWDiscovery{MonitorPeriod: 1, ConnectPeriod: 100, PingPeriod: 100, ReadOnlyPeriod: 100, ReplicationLagPeriod: 100}, 100 * time.Millisecond},
		{config.RWDiscovery{MonitorPeriod: 1, PingPeriod: 300, ReadOnlyPeriod: 200}, 200 * time.Millisecond},
		{config.RWDiscovery{MonitorPeriod: 2000, PingPeriod: 100}, 2 * time.Second},
	} {
		c := discoveryConfig("t", tc.d, nil)
		if c.Period != tc.want {
			t.Errorf("%+v: period %s, want %s", tc.d, c.Period, tc.want)
		}
	}
	if c := discoveryConfig("t", config.RWDiscovery{MaxReplicationLag: 3}, nil); c.MaxLag != 3*time.Millisecond {
		t.Errorf("max_replication_lag 3: %s", c.MaxLag)
	}
}
