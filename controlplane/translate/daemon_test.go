package translate

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
)

func claim(name, rate, ceil string) *v1alpha1.QoSClaim {
	return &v1alpha1.QoSClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.QoSClaimSpec{TrafficQoS: v1alpha1.TrafficQoS{Name: name,
			QoSGroup: v1alpha1.QoSGroup{Rate: v1alpha1.Rate(rate), Ceil: v1alpha1.Rate(ceil)}}},
	}
}

func TestDaemonConfig(t *testing.T) {
	withClaim := func(c string) v1alpha1.VirtualDatabase {
		v := vdb(svc("mysql", "catalogue"))
		v.Spec.Services[0].QoSClaim = c
		return *v
	}
	global := config.DaemonGlobal{EgressDevice: "eth0"}
	ns := &Namespace{
		VirtualDatabases: []v1alpha1.VirtualDatabase{withClaim("gold")},
		Strategies:       map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
		Endpoints:        []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, ""), endpoint("other", nil, "")},
		Claims:           map[string]*v1alpha1.QoSClaim{"gold": claim("gold", "10mbit", "20mbit"), "bad": claim("bad", "20mbit", "10mbit")},
	}
	cfg, uses := DaemonConfig(global, map[string]*Namespace{"default": ns})
	if err := cfg.Validate(); err != nil {
		t.Fatalf("daemon config invalid: %v", err)
	}
	if len(cfg.App) != 1 || cfg.App[0].Name != "catalogue" || len(cfg.App[0].Service) != 1 {
		t.Fatalf("apps = %+v", cfg.App)
	}
	s := cfg.App[0].Service[0]
	if s.Name != "mysql" || s.QoSGroup.Rate != "10mbit" || s.QoSGroup.Ceil != "20mbit" {
		t.Fatalf("service = %+v", s)
	}
	if len(s.Endpoints) != 1 || s.Endpoints[0] != (config.QoSEndpoint{IP: "db.example", Port: 3306}) {
		t.Fatalf("endpoints = %+v (the selector must be honoured)", s.Endpoints)
	}
	if u := uses["default/gold"]; u.Problem != nil || len(u.Apps) != 1 {
		t.Fatalf("gold use = %+v", u)
	}
	if u := uses["default/bad"]; u.Problem == nil || u.Problem.Reason != v1alpha1.ReasonInvalidConfig {
		t.Fatalf("bad claim (ceil below rate) not reported: %+v", u)
	}

	// Same app name in two namespaces: qualified. A missing claim: left out.
	ns2 := &Namespace{
		VirtualDatabases: []v1alpha1.VirtualDatabase{withClaim("gold")},
		Strategies:       ns.Strategies, Endpoints: ns.Endpoints,
		Claims: map[string]*v1alpha1.QoSClaim{"gold": claim("gold", "1mbit", "")},
	}
	ns3 := &Namespace{VirtualDatabases: []v1alpha1.VirtualDatabase{withClaim("missing")}, Strategies: ns.Strategies, Endpoints: ns.Endpoints}
	cfg, _ = DaemonConfig(global, map[string]*Namespace{"default": ns, "shop": ns2, "zzz": ns3})
	if len(cfg.App) != 2 || cfg.App[0].Name != "default/catalogue" || cfg.App[1].Name != "shop/catalogue" {
		t.Fatalf("apps = %+v", cfg.App)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("daemon config invalid: %v", err)
	}
}
