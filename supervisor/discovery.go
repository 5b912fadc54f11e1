package supervisor

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/strategy"
)

// Discovery defaults (Pisa-Proxy's; periods and timeouts in milliseconds).
const (
	defaultMonitorPeriod    = 1000
	defaultProbeTimeout     = 1000
	defaultFailureThreshold = 3
	defaultMaxLag           = 10000
)

// discoveryConfig maps `[...dynamic.discovery]` to the monitor. The lag
// threshold is milliseconds and is compared in milliseconds (the original
// compared seconds against it).
//
// Pisa-Proxy ran each check at its own period (connect_period, ping_period,
// read_only_period, replication_lag_period) and took its decisions every
// monitor_period; here one probe per node makes every check, every
// monitor_period but not more often than the most frequent check asked:
// Pisa-Proxy's guide sets monitor_period = 1 with checks every 100 ms,
// which probes every 100 ms, not every millisecond.
func discoveryConfig(tenant string, d config.RWDiscovery, nodes []config.Node) strategy.DiscoveryConfig {
	ms := func(v, def int) time.Duration {
		if v <= 0 {
			v = def
		}
		return time.Duration(v) * time.Millisecond
	}
	threshold := max(d.ConnectFailureThreshold, d.PingFailureThreshold, d.ReadOnlyFailureThreshold, d.ReplicationLagFailureThreshold)
	if threshold <= 0 {
		threshold = defaultFailureThreshold
	}
	timeout := max(ms(d.ConnectTimeout, defaultProbeTimeout), ms(d.PingTimeout, defaultProbeTimeout), ms(d.ReadOnlyTimeout, defaultProbeTimeout))
	period := ms(d.MonitorPeriod, defaultMonitorPeriod)
	if checks := slices.DeleteFunc([]int{d.ConnectPeriod, d.PingPeriod, d.ReadOnlyPeriod, d.ReplicationLagPeriod}, func(p int) bool { return p <= 0 }); len(checks) > 0 {
		period = max(period, time.Duration(slices.Min(checks))*time.Millisecond)
	}
	cfg := strategy.DiscoveryConfig{
		Tenant: tenant, Period: period, Timeout: timeout,
		FailureThreshold: threshold,
		ReadOnlyEnabled:  d.ReadOnlyEnabled == nil || *d.ReadOnlyEnabled,
		LagEnabled:       d.ReplicationLagEnabled == nil || *d.ReplicationLagEnabled,
		MaxLag:           ms(d.MaxReplicationLag, defaultMaxLag),
	}
	for _, n := range nodes {
		cfg.Nodes = append(cfg.Nodes, strategy.Target{Name: n.Name, Weight: n.Weight})
	}
	addrs := map[string]string{}
	for _, n := range nodes {
		addrs[n.Name] = n.Addr()
	}
	cfg.Probe = func(ctx context.Context, node string) (strategy.NodeStatus, error) {
		return probeNode(ctx, addrs[node], d.User, d.ResolvedPassword())
	}
	return cfg
}

// probeNode connects with the monitor account and reads read_only and the
// replica status.
func probeNode(ctx context.Context, addr, user, password string) (strategy.NodeStatus, error) {
	var st strategy.NodeStatus
	dialer := func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err == nil {
			if dl, ok := ctx.Deadline(); ok {
				_ = c.SetDeadline(dl)
			}
		}
		return c, err
	}
	c, err := client.ConnectWithDialer(ctx, "tcp", addr, user, password, "", dialer)
	if err != nil {
		return st, fmt.Errorf("connect %s: %w", addr, err)
	}
	defer c.Close()
	r, err := c.Execute("SELECT @@global.read_only")
	if err != nil {
		return st, fmt.Errorf("read_only on %s: %w", addr, err)
	}
	ro, _ := r.GetInt(0, 0)
	st.ReadOnly = ro != 0
	r, err = c.Execute("SHOW SLAVE STATUS")
	if err != nil {
		return st, fmt.Errorf("replica status on %s: %w", addr, err)
	}
	if r.RowNumber() > 0 {
		running, _ := r.GetStringByName(0, "Slave_SQL_Running")
		lag, lagErr := r.GetIntByName(0, "Seconds_Behind_Master")
		isNull, _ := r.IsNullByName(0, "Seconds_Behind_Master")
		st.Replicating = running == "Yes" && lagErr == nil && !isNull
		st.Lag = time.Duration(lag) * time.Second
	}
	return st, nil
}
