package translate

import (
	"encoding/json"
	"fmt"
	"testing"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
)

// fuzzObjects is what FuzzProxyConfig decodes its bytes into: the objects
// of one namespace, as the reconcilers would have read them, and the
// Secrets' values by "name/key".
type fuzzObjects struct {
	VirtualDatabase v1alpha1.VirtualDatabase             `json:"virtualDatabase"`
	Strategies      map[string]*v1alpha1.TrafficStrategy `json:"strategies"`
	Endpoints       []v1alpha1.DatabaseEndpoint          `json:"endpoints"`
	Claims          map[string]*v1alpha1.QoSClaim        `json:"claims"`
	Secrets         map[string]string                    `json:"secrets"`
}

func (o *fuzzObjects) secret(name, key string) (string, error) {
	v, ok := o.Secrets[name+"/"+key]
	if !ok {
		return "", fmt.Errorf("%w: %s/%s", ErrSecretNotFound, name, key)
	}
	return v, nil
}

// FuzzProxyConfig decodes arbitrary bytes (JSON) into a VirtualDatabase,
// TrafficStrategies, DatabaseEndpoints, QoSClaims and Secrets, and
// translates them (ProxyConfig, SecretNames, DaemonConfig). Invariant: no
// panic; ProxyConfig returns a Problem, or a config that validates and
// reaches a proxy unchanged through the JSON the controller serves.
func FuzzProxyConfig(f *testing.F) {
	rw := strategy("rw", catalogue, func(s *v1alpha1.TrafficStrategySpec) {
		s.LoadBalance = &v1alpha1.LoadBalance{ReadWriteSplitting: &v1alpha1.ReadWriteSplitting{
			Static: &v1alpha1.ReadWriteSplittingStatic{DefaultTarget: "readwrite",
				Rules: []v1alpha1.ReadWriteSplittingRule{{Name: "reads", Type: "regex", Regex: []string{"^SELECT"}, Target: "read"}}},
		}}
		s.CircuitBreaks = []v1alpha1.CircuitBreak{{Regex: []string{"^DELETE"}}}
		s.ConcurrencyControls = []v1alpha1.ConcurrencyControl{{Regex: []string{"^SELECT"}, MaxConcurrency: 5, Duration: "1s"}}
	})
	withSecret := svc("mysql", "rw")
	withSecret.DatabaseMySQL.Password = ""
	withSecret.DatabaseMySQL.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "app"}
	withSecret.Users = []v1alpha1.ServiceUser{{User: "ro", Password: "pw", ReadOnly: true}}
	for _, o := range []fuzzObjects{
		{VirtualDatabase: *vdb(svc("mysql", "catalogue")),
			Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
			Endpoints:  []v1alpha1.DatabaseEndpoint{endpoint("catalogue-db", catalogue, "")}},
		{VirtualDatabase: *vdb(withSecret),
			Strategies: map[string]*v1alpha1.TrafficStrategy{"rw": rw},
			Endpoints:  []v1alpha1.DatabaseEndpoint{endpoint("primary", catalogue, "readwrite"), endpoint("replica", catalogue, "read")},
			Secrets:    map[string]string{"app/password": "s3cret"}},
	} {
		b, err := json.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var o fuzzObjects
		if json.Unmarshal(data, &o) != nil {
			return
		}
		in := ProxyInput{VirtualDatabase: &o.VirtualDatabase, Strategies: o.Strategies, Endpoints: o.Endpoints, Secrets: o.secret}
		_ = SecretNames(in)
		_, _ = DaemonConfig(config.DaemonGlobal{}, map[string]*Namespace{"default": {
			VirtualDatabases: []v1alpha1.VirtualDatabase{o.VirtualDatabase}, Strategies: o.Strategies, Endpoints: o.Endpoints, Claims: o.Claims}})
		out, p := ProxyConfig(in)
		if p != nil {
			return
		}
		if err := out.Config.Validate(); err != nil {
			t.Fatalf("translated config does not validate: %v", err)
		}
		served, err := json.Marshal(out.Config)
		if err != nil {
			t.Fatalf("translated config does not encode: %v", err)
		}
		back, err := config.ParseJSON(served, "served.json")
		if err != nil {
			t.Fatalf("a proxy refuses the translated config: %v\n%s", err, served)
		}
		if b, _ := json.Marshal(back); string(b) != string(served) {
			t.Fatalf("the proxy reads another config than the one translated:\n%s\n%s", served, b)
		}
	})
}
