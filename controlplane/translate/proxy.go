// Package translate turns Pisanix custom resources into the proxy's and the
// daemon's configuration models. Everything here is a pure function of its
// inputs; the reconcilers fetch the objects and Secrets and call it.
package translate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
)

// Problem says why an object cannot be turned into configuration. Reason is
// one of the v1alpha1.Reason* constants and goes into the Ready condition.
type Problem struct {
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Reason + ": " + p.Message }

func problem(reason, format string, args ...any) *Problem {
	return &Problem{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrSecretNotFound is returned (wrapped) by a SecretLookup when the Secret
// or its key does not exist.
var ErrSecretNotFound = errors.New("secret not found")

// SecretOptInLabel must be on a Secret, set to "true", for a
// passwordSecretRef to read it: without it, anyone allowed to create a
// VirtualDatabase could read any Secret of the namespace back through the
// served configuration.
const SecretOptInLabel = "pisanix.io/credentials"

// ErrSecretNotAllowed is returned (wrapped) by a SecretLookup when the
// Secret lacks SecretOptInLabel.
var ErrSecretNotAllowed = errors.New("secret not opted in")

// SecretLookup returns the value of key in the Secret name (in the namespace
// of the object being translated).
type SecretLookup func(name, key string) (string, error)

// ProxyInput is everything one VirtualDatabase's configuration depends on.
type ProxyInput struct {
	VirtualDatabase *v1alpha1.VirtualDatabase
	// Strategies in the VirtualDatabase's namespace, by name.
	Strategies map[string]*v1alpha1.TrafficStrategy
	// Endpoints are all DatabaseEndpoints in the namespace; each strategy's
	// selector picks among them.
	Endpoints []v1alpha1.DatabaseEndpoint
	// Secrets resolves every passwordSecretRef (the services', their
	// users', the endpoints' and MHA's); nil means no Secret can be read.
	Secrets SecretLookup
}

// ProxyOutput is the translated configuration.
type ProxyOutput struct {
	// Config has defaults applied and passed config.Validate.
	Config *config.Config
	// Endpoints is the number of distinct backends.
	Endpoints int
}

// SelectEndpoints returns the endpoints ts's selector picks, sorted by name.
func SelectEndpoints(ts *v1alpha1.TrafficStrategy, all []v1alpha1.DatabaseEndpoint) ([]v1alpha1.DatabaseEndpoint, error) {
	if ts.Spec.Selector == nil {
		return nil, nil // a strategy without selector picks nothing
	}
	sel, err := metav1.LabelSelectorAsSelector(ts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("trafficstrategy %s: selector: %w", ts.Name, err)
	}
	var out []v1alpha1.DatabaseEndpoint
	for _, ep := range all {
		if sel.Matches(labels.Set(ep.Labels)) {
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, func(a, b v1alpha1.DatabaseEndpoint) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// EndpointRole reads the role annotation: read or readwrite (default).
func EndpointRole(ep *v1alpha1.DatabaseEndpoint) (string, error) {
	switch r := ep.Annotations[v1alpha1.RoleAnnotation]; r {
	case "":
		return config.RoleReadWrite, nil
	case v1alpha1.RoleRead, v1alpha1.RoleReadWrite:
		return r, nil
	default:
		return "", fmt.Errorf("annotation %s=%q is not one of read, readwrite", v1alpha1.RoleAnnotation, r)
	}
}

// ProxyConfig translates one VirtualDatabase. Each service becomes a
// listener; each endpoint its strategy's selector picks becomes a
// [[mysql.node]] named after the endpoint.
func ProxyConfig(in ProxyInput) (*ProxyOutput, *Problem) {
	vdb := in.VirtualDatabase
	cfg := &config.Config{}
	nodes := map[string]bool{}
	for i := range vdb.Spec.Services {
		svc := &vdb.Spec.Services[i]
		field := fmt.Sprintf("spec.services[%d] (%s)", i, svc.Name)
		ts, ok := in.Strategies[svc.TrafficStrategy]
		if !ok || ts == nil {
			return nil, problem(v1alpha1.ReasonStrategyMissing, "%s: TrafficStrategy %q not found", field, svc.TrafficStrategy)
		}
		eps, err := SelectEndpoints(ts, in.Endpoints)
		if err != nil {
			return nil, problem(v1alpha1.ReasonInvalidSelector, "%s: %v", field, err)
		}
		if len(eps) == 0 {
			return nil, problem(v1alpha1.ReasonNoEndpointSelected, "%s: TrafficStrategy %q selects no DatabaseEndpoint", field, ts.Name)
		}
		l, p := listener(svc, ts, eps, in.Secrets)
		if p != nil {
			p.Message = field + ": " + p.Message
			return nil, p
		}
		cfg.Proxy.Config = append(cfg.Proxy.Config, *l)
		for j := range eps {
			if nodes[eps[j].Name] {
				continue
			}
			n, p := node(&eps[j], in.Secrets)
			if p != nil {
				return nil, p
			}
			nodes[n.Name] = true
			cfg.MySQL.Node = append(cfg.MySQL.Node, n)
		}
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, problem(v1alpha1.ReasonInvalidConfig, "%v", err)
	}
	return &ProxyOutput{Config: cfg, Endpoints: len(nodes)}, nil
}

func listener(svc *v1alpha1.Service, ts *v1alpha1.TrafficStrategy, eps []v1alpha1.DatabaseEndpoint, secrets SecretLookup) (*config.Listener, *Problem) {
	fe := svc.DatabaseMySQL
	if fe == nil {
		return nil, problem(v1alpha1.ReasonInvalidConfig, "databaseMySQL is required")
	}
	pw, p := password(fe.Password, fe.PasswordSecretRef, secrets, "databaseMySQL.passwordSecretRef")
	if p != nil {
		return nil, p
	}
	host := fe.Host
	if host == "" {
		host = "0.0.0.0"
	}
	port := int(fe.Port)
	if port == 0 {
		port = config.DefaultNodePort
	}
	l := &config.Listener{
		Name:           svc.Name,
		ListenAddr:     net.JoinHostPort(host, strconv.Itoa(port)),
		User:           fe.User,
		Password:       pw,
		DB:             fe.DB,
		BackendType:    config.DefaultBackendType,
		PoolSize:       int(fe.PoolSize),
		ServerVersion:  fe.ServerVersion,
		Multiplex:      fe.Multiplex,
		MaxConnections: int(fe.MaxConnections),
	}
	if lb := ts.Spec.LoadBalance; lb != nil {
		if s := lb.SimpleLoadBalance; s != nil {
			names := make([]string, len(eps))
			for i := range eps {
				names[i] = eps[i].Name
			}
			l.SimpleLoadBalance = &config.SimpleLoadBalance{BalanceType: string(s.Kind), Nodes: names}
		}
		if rw := lb.ReadWriteSplitting; rw != nil {
			out, p := readWriteSplitting(rw, secrets)
			if p != nil {
				return nil, p
			}
			l.ReadWriteSplitting = out
		}
	}
	plugin, p := plugins(ts)
	if p != nil {
		return nil, p
	}
	l.Plugin = plugin
	if l.Users, p = users(svc.Users, secrets); p != nil {
		return nil, p
	}
	if l.Audit, p = audit(svc.Audit); p != nil {
		return nil, p
	}
	return l, nil
}

// users maps spec.services[].users to the listener's [[proxy.config.users]];
// passwords come from Secrets like the listener's own.
func users(in []v1alpha1.ServiceUser, secrets SecretLookup) ([]config.User, *Problem) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]config.User, len(in))
	for i := range in {
		u := &in[i]
		pw, p := password(u.Password, u.PasswordSecretRef, secrets, fmt.Sprintf("users[%d] (%s).passwordSecretRef", i, u.User))
		if p != nil {
			return nil, p
		}
		out[i] = config.User{
			User:         u.User,
			Password:     pw,
			ReadOnly:     u.ReadOnly,
			AllowedHosts: slices.Clone(u.AllowedHosts),
		}
		for _, r := range u.Rules {
			out[i].Rules = append(out[i].Rules, config.AccessRule{
				Action:     string(r.Action),
				Databases:  slices.Clone(r.Databases),
				Tables:     slices.Clone(r.Tables),
				Operations: strs(r.Operations),
			})
		}
	}
	return out, nil
}

// audit maps spec.services[].audit to [proxy.config.audit]; the proxy's
// defaults fill what is not set.
func audit(a *v1alpha1.Audit) (*config.Audit, *Problem) {
	if a == nil {
		return nil, nil
	}
	out := &config.Audit{
		Sink:       string(a.Sink),
		Path:       a.Path,
		MaxSizeMB:  int(a.MaxSizeMB),
		MaxBackups: int(a.MaxBackups),
		QueueSize:  int(a.QueueSize),
		Lossless:   a.Lossless,
		Users:      slices.Clone(a.Users),
		Kinds:      strs(a.Kinds),
		Tables:     slices.Clone(a.Tables),
		ErrorsOnly: a.ErrorsOnly,
	}
	if a.SampleRate != "" {
		r, err := strconv.ParseFloat(a.SampleRate, 64)
		if err != nil || r <= 0 || r > 1 {
			return nil, problem(v1alpha1.ReasonInvalidConfig, "audit.sampleRate: %q is not a number in (0, 1]", a.SampleRate)
		}
		out.SampleRate = &r
	}
	return out, nil
}

// strs converts a list of a string type; nil stays nil.
func strs[S ~string](in []S) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

func readWriteSplitting(rw *v1alpha1.ReadWriteSplitting, secrets SecretLookup) (*config.ReadWriteSplitting, *Problem) {
	out := &config.ReadWriteSplitting{}
	if s := rw.Static; s != nil {
		out.Static = &config.RWStatic{DefaultTarget: target(s.DefaultTarget), Rules: rules(s.Rules)}
	}
	if d := rw.Dynamic; d != nil {
		dyn := &config.RWDynamic{DefaultTarget: target(d.DefaultTarget), Rules: rules(d.Rules)}
		if mha := d.Discovery.MasterHighAvailability; mha != nil {
			pw, p := password(mha.Password, mha.PasswordSecretRef, secrets, "masterHighAvailability.passwordSecretRef")
			if p != nil {
				return nil, p
			}
			dyn.Discovery = discovery(mha, pw)
		}
		out.Dynamic = dyn
	}
	return out, nil
}

func target(t v1alpha1.Target) string {
	if t == "" {
		return config.RoleReadWrite
	}
	return string(t)
}

func rules(in []v1alpha1.ReadWriteSplittingRule) []config.RWRule {
	if len(in) == 0 {
		return nil
	}
	out := make([]config.RWRule, len(in))
	for i, r := range in {
		out[i] = config.RWRule{
			Name:          r.Name,
			Type:          r.Type,
			Regex:         slices.Clone(r.Regex),
			Target:        string(r.Target),
			AlgorithmName: string(r.AlgorithmName),
		}
	}
	return out
}

func discovery(mha *v1alpha1.MasterHighAvailability, pw string) config.RWDiscovery {
	d := config.RWDiscovery{
		Type:          "mha",
		User:          mha.User,
		Password:      pw,
		MonitorPeriod: int(cmp.Or(mha.MonitorInterval, mha.MonitorPeriod)),
	}
	if p := mha.ConnectionProbe; p != nil {
		d.ConnectPeriod, d.ConnectTimeout, d.ConnectFailureThreshold = int(p.PeriodMilliseconds), int(p.TimeoutMilliseconds), int(p.FailureThreshold)
	}
	if p := mha.PingProbe; p != nil {
		d.PingPeriod, d.PingTimeout, d.PingFailureThreshold = int(p.PeriodMilliseconds), int(p.TimeoutMilliseconds), int(p.FailureThreshold)
	}
	enabled := func(b bool) *bool { return &b }
	d.ReadOnlyEnabled = enabled(mha.ReadOnlyProbe != nil)
	if p := mha.ReadOnlyProbe; p != nil {
		d.ReadOnlyPeriod, d.ReadOnlyTimeout, d.ReadOnlyFailureThreshold = int(p.PeriodMilliseconds), int(p.TimeoutMilliseconds), int(p.FailureThreshold)
	}
	d.ReplicationLagEnabled = enabled(mha.ReplicationLagProbe != nil)
	if p := mha.ReplicationLagProbe; p != nil {
		d.ReplicationLagPeriod, d.ReplicationLagTimeout, d.ReplicationLagFailureThreshold = int(p.PeriodMilliseconds), int(p.TimeoutMilliseconds), int(p.FailureThreshold)
		d.MaxReplicationLag = int(p.MaxReplicationLag) // milliseconds on both sides
	}
	return d
}

func plugins(ts *v1alpha1.TrafficStrategy) (*config.Plugin, *Problem) {
	if len(ts.Spec.CircuitBreaks) == 0 && len(ts.Spec.ConcurrencyControls) == 0 {
		return nil, nil
	}
	p := &config.Plugin{}
	for _, cb := range ts.Spec.CircuitBreaks {
		p.CircuitBreak = append(p.CircuitBreak, config.CircuitBreak{Regex: slices.Clone(cb.Regex)})
	}
	for i, cc := range ts.Spec.ConcurrencyControls {
		d, err := cc.Duration.ParseDuration()
		if err != nil {
			return nil, problem(v1alpha1.ReasonInvalidConfig, "TrafficStrategy %s: concurrencyControls[%d].duration: %v", ts.Name, i, err)
		}
		p.ConcurrencyControl = append(p.ConcurrencyControl, config.ConcurrencyControl{
			Regex:          slices.Clone(cc.Regex),
			MaxConcurrency: int(cc.MaxConcurrency),
			Duration:       Seconds(d),
		})
	}
	return p, nil
}

// Seconds converts to the proxy model's whole seconds, rounding a partial
// second up so a positive window never becomes zero.
func Seconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(s)
}

func node(ep *v1alpha1.DatabaseEndpoint, secrets SecretLookup) (config.Node, *Problem) {
	field := fmt.Sprintf("DatabaseEndpoint %s", ep.Name)
	m := ep.Spec.Database.MySQL
	if m == nil {
		return config.Node{}, problem(v1alpha1.ReasonInvalidConfig, "%s: spec.database.MySQL is required", field)
	}
	role, err := EndpointRole(ep)
	if err != nil {
		return config.Node{}, problem(v1alpha1.ReasonInvalidRole, "%s: %v", field, err)
	}
	pw, p := password(m.Password, m.PasswordSecretRef, secrets, "spec.database.MySQL.passwordSecretRef")
	if p != nil {
		p.Message = field + ": " + p.Message
		return config.Node{}, p
	}
	return config.Node{
		Name:     ep.Name,
		DB:       m.DB,
		User:     m.User,
		Password: pw,
		Host:     m.Host,
		Port:     int(m.Port),
		Weight:   config.DefaultNodeWeight,
		Role:     role,
	}, nil
}

func password(inline string, ref *v1alpha1.SecretKeyRef, secrets SecretLookup, field string) (string, *Problem) {
	if ref == nil {
		return inline, nil
	}
	key := ref.Key
	if key == "" {
		key = "password"
	}
	if secrets == nil {
		return "", problem(v1alpha1.ReasonSecretMissing, "%s: Secret %q cannot be read", field, ref.Name)
	}
	v, err := secrets(ref.Name, key)
	if errors.Is(err, ErrSecretNotAllowed) {
		return "", problem(v1alpha1.ReasonSecretNotAllowed, "%s: %v", field, err)
	}
	if err != nil {
		return "", problem(v1alpha1.ReasonSecretMissing, "%s: %v", field, err)
	}
	return v, nil
}

// SecretNames lists the Secrets a VirtualDatabase's translation may read.
func SecretNames(in ProxyInput) []string {
	var names []string
	add := func(r *v1alpha1.SecretKeyRef) {
		if r != nil && !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	for _, svc := range in.VirtualDatabase.Spec.Services {
		if svc.DatabaseMySQL != nil {
			add(svc.DatabaseMySQL.PasswordSecretRef)
		}
		for _, u := range svc.Users {
			add(u.PasswordSecretRef)
		}
		ts := in.Strategies[svc.TrafficStrategy]
		if ts == nil {
			continue
		}
		if lb := ts.Spec.LoadBalance; lb != nil && lb.ReadWriteSplitting != nil && lb.ReadWriteSplitting.Dynamic != nil {
			add(lb.ReadWriteSplitting.Dynamic.Discovery.MasterHighAvailability.PasswordSecretRefOrNil())
		}
	}
	for _, ep := range in.Endpoints {
		if ep.Spec.Database.MySQL != nil {
			add(ep.Spec.Database.MySQL.PasswordSecretRef)
		}
	}
	return names
}
