package translate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/kubetest"
)

// catalogueWith is the one-service catalogue input with mut applied to the
// service; Secrets has "users/report" = "r3port".
func catalogueWith(mut func(*v1alpha1.Service)) ProxyInput {
	v := vdb(svc("mysql", "catalogue"))
	mut(&v.Spec.Services[0])
	return ProxyInput{
		VirtualDatabase: v,
		Strategies:      map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
		Endpoints:       []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "")},
		Secrets: func(name, key string) (string, error) {
			if name == "users" && key == "report" {
				return "r3port", nil
			}
			return "", ErrSecretNotFound
		},
	}
}

// Users and audit of a service become the listener's users and audit, the
// user's password read from a Secret, the proxy's defaults filled in.
func TestUsersAndAudit(t *testing.T) {
	in := catalogueWith(func(s *v1alpha1.Service) {
		s.Users = []v1alpha1.ServiceUser{
			{User: "report", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "users", Key: "report"}, ReadOnly: true, AllowedHosts: []string{"10.0.0.0/8", "127.0.0.1"}},
			{User: "shop", Password: "s3cret", Rules: []v1alpha1.AccessRule{
				{Action: v1alpha1.AccessAllow, Databases: []string{"shop", "shop_*"}, Operations: []v1alpha1.AccessOperation{"select", "insert"}},
				{Action: v1alpha1.AccessDeny, Databases: []string{"shop"}, Tables: []string{"card_*"}},
			}},
		}
		s.Audit = &v1alpha1.Audit{
			Path: "/var/log/pisa/audit.log", MaxBackups: 3, Lossless: true, SampleRate: "0.25",
			Users: []string{"report*"}, Kinds: []v1alpha1.AuditKind{"insert", "ddl"}, Tables: []string{"shop.payments"}, ErrorsOnly: true,
		}
	})
	out, p := ProxyConfig(in)
	if p != nil {
		t.Fatal(p)
	}
	l := out.Config.Proxy.Config[0]
	wantUsers := []config.User{
		{User: "report", Password: "r3port", ReadOnly: true, AllowedHosts: []string{"10.0.0.0/8", "127.0.0.1"}},
		{User: "shop", Password: "s3cret", Rules: []config.AccessRule{
			{Action: "allow", Databases: []string{"shop", "shop_*"}, Operations: []string{"select", "insert"}},
			{Action: "deny", Databases: []string{"shop"}, Tables: []string{"card_*"}},
		}},
	}
	if got, want := mustJSON(t, l.Users), mustJSON(t, wantUsers); got != want {
		t.Fatalf("users\ngot:  %s\nwant: %s", got, want)
	}
	rate := 0.25
	wantAudit := &config.Audit{
		Sink: "file", Path: "/var/log/pisa/audit.log", MaxSizeMB: config.DefaultAuditMaxSizeMB, MaxBackups: 3,
		QueueSize: config.DefaultAuditQueueSize, Lossless: true, SampleRate: &rate,
		Users: []string{"report*"}, Kinds: []string{"insert", "ddl"}, Tables: []string{"shop.payments"}, ErrorsOnly: true,
	}
	if got, want := mustJSON(t, l.Audit), mustJSON(t, wantAudit); got != want {
		t.Fatalf("audit\ngot:  %s\nwant: %s", got, want)
	}
	// The served JSON loads in the proxy with the same users and audit.
	c, err := config.ParseJSON([]byte(mustJSON(t, out.Config)), "served")
	if err != nil {
		t.Fatalf("served config does not parse: %v", err)
	}
	if got := mustJSON(t, c.Proxy.Config[0].Users); got != mustJSON(t, wantUsers) {
		t.Fatalf("users after ParseJSON: %s", got)
	}
	if names := SecretNames(in); !slices.Contains(names, "users") {
		t.Fatalf("SecretNames = %v, want the user's Secret (rotation resync)", names)
	}
}

func TestUsersAndAuditDefaultsAndProblems(t *testing.T) {
	tests := []struct {
		name       string
		mut        func(*v1alpha1.Service)
		wantReason string // "" = accepted
		wantIn     string
		check      func(t *testing.T, l config.Listener)
	}{
		{
			name: "none: no users, no audit",
			mut:  func(*v1alpha1.Service) {},
			check: func(t *testing.T, l config.Listener) {
				if l.Users != nil || l.Audit != nil {
					t.Fatalf("users %v audit %v", l.Users, l.Audit)
				}
			},
		},
		{
			name: "empty audit: stdout, every statement",
			mut:  func(s *v1alpha1.Service) { s.Audit = &v1alpha1.Audit{} },
			check: func(t *testing.T, l config.Listener) {
				if a := l.Audit; a.Sink != config.AuditSinkStdout || *a.SampleRate != 1 || a.QueueSize != config.DefaultAuditQueueSize {
					t.Fatalf("audit %s", mustJSON(t, a))
				}
			},
		},
		{
			name: "sample rate 1",
			mut:  func(s *v1alpha1.Service) { s.Audit = &v1alpha1.Audit{SampleRate: "1.0"} },
			check: func(t *testing.T, l config.Listener) {
				if *l.Audit.SampleRate != 1 {
					t.Fatalf("sample rate %v", *l.Audit.SampleRate)
				}
			},
		},
		{
			name: "user secret missing",
			mut: func(s *v1alpha1.Service) {
				s.Users = []v1alpha1.ServiceUser{{User: "report", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "gone"}}}
			},
			wantReason: v1alpha1.ReasonSecretMissing, wantIn: "spec.services[0] (mysql): users[0] (report).passwordSecretRef",
		},
		{
			name: "user named like the listener's user",
			mut: func(s *v1alpha1.Service) {
				s.Users = []v1alpha1.ServiceUser{{User: s.DatabaseMySQL.User, Password: "x"}}
			},
			wantReason: v1alpha1.ReasonInvalidConfig, wantIn: "users[0].user",
		},
		{
			name: "allowed host not an address",
			mut: func(s *v1alpha1.Service) {
				s.Users = []v1alpha1.ServiceUser{{User: "u", AllowedHosts: []string{"10.0.0.300"}}}
			},
			wantReason: v1alpha1.ReasonInvalidConfig, wantIn: "users[0].allowed_hosts[0]",
		},
		{
			name:       "file sink without path",
			mut:        func(s *v1alpha1.Service) { s.Audit = &v1alpha1.Audit{Sink: v1alpha1.AuditFile} },
			wantReason: v1alpha1.ReasonInvalidConfig, wantIn: "audit.path",
		},
		{
			name:       "sample rate out of range",
			mut:        func(s *v1alpha1.Service) { s.Audit = &v1alpha1.Audit{SampleRate: "1.5"} },
			wantReason: v1alpha1.ReasonInvalidConfig, wantIn: "audit.sampleRate",
		},
		{
			name:       "sample rate not a number",
			mut:        func(s *v1alpha1.Service) { s.Audit = &v1alpha1.Audit{SampleRate: "half"} },
			wantReason: v1alpha1.ReasonInvalidConfig, wantIn: "audit.sampleRate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, p := ProxyConfig(catalogueWith(tt.mut))
			if !wantProblem(t, out, p, tt.wantReason, tt.wantIn) {
				return
			}
			tt.check(t, out.Config.Proxy.Config[0])
		})
	}
}

// The CRD's enums are the proxy's lists: a value the schema admits is one
// the proxy accepts, and the other way round.
func TestCRDEnumsMatchProxy(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "crd", "core.database-mesh.io_virtualdatabases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	service := dig(t, crd, "spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "properties", "services", "items", "properties")
	rule := dig(t, service, "users", "items", "properties", "rules", "items", "properties")
	for _, tt := range []struct {
		name   string
		schema any
		want   []string
	}{
		{"users[].rules[].action", dig(t, rule, "action", "enum"), []string{config.ActionAllow, config.ActionDeny}},
		{"users[].rules[].operations[]", dig(t, rule, "operations", "items", "enum"),
			[]string{config.OpSelect, config.OpInsert, config.OpUpdate, config.OpDelete, config.OpDDL, config.OpOther, config.OpAll}},
		{"audit.sink", dig(t, service, "audit", "properties", "sink", "enum"), []string{config.AuditSinkStdout, config.AuditSinkFile}},
		{"audit.kinds[]", dig(t, service, "audit", "properties", "kinds", "items", "enum"), config.AuditKinds},
	} {
		var got []string
		for _, v := range tt.schema.([]any) {
			got = append(got, v.(string))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: CRD enum %v, proxy %v", tt.name, got, tt.want)
		}
	}
}

// dig walks maps by key and lists by index.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok || m[k] == nil {
				t.Fatalf("CRD: no %v", path[:i+1])
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || len(l) <= k {
				t.Fatalf("CRD: no %v", path[:i+1])
			}
			v = l[k]
		}
	}
	return v
}
