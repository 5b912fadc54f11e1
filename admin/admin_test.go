package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func handler(token string, pprof bool) http.Handler {
	return Handler(Sources{
		Registry: prometheus.NewRegistry(), Version: "test",
		Ready:    func() error { return nil },
		Config:   func() any { return map[string]string{"listener": "main"} },
		Sessions: func() any { return []any{} },
		Drain:    func() {}, FlushHosts: func() int { return 0 },
		Token: token, Pprof: pprof,
	})
}

func status(h http.Handler, method, path, remote, auth string) int {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// The private endpoints answer the loopback interface, or a request with
// the token; the public ones (probes, metrics) answer everyone; pprof is
// off unless enabled.
func TestAdminAccess(t *testing.T) {
	const local, local6, pod = "127.0.0.1:40000", "[::1]:40000", "10.1.2.3:40000"
	withToken, noToken := handler("s3cret", true), handler("", false)
	cases := []struct {
		name         string
		h            http.Handler
		method, path string
		remote, auth string
		want         int
	}{
		{"metrics from the pod network", noToken, "GET", "/metrics", pod, "", 200},
		{"readyz from the pod network", noToken, "GET", "/readyz", pod, "", 200},
		{"healthz from the pod network", withToken, "GET", "/healthz", pod, "", 200},
		{"config from loopback", noToken, "GET", "/config", local, "", 200},
		{"config from IPv6 loopback", noToken, "GET", "/config", local6, "", 200},
		{"config from the pod network, no token configured", noToken, "GET", "/config", pod, "", 403},
		{"sessions from the pod network, no token configured", noToken, "GET", "/sessions", pod, "Bearer anything", 403},
		{"drain from the pod network, no token configured", noToken, "POST", "/drain", pod, "", 403},
		{"config from the pod network without the token", withToken, "GET", "/config", pod, "", 401},
		{"config from the pod network, wrong token", withToken, "GET", "/config", pod, "Bearer s3cre", 401},
		{"config from the pod network, token not as bearer", withToken, "GET", "/config", pod, "s3cret", 401},
		{"config from the pod network with the token", withToken, "GET", "/config", pod, "Bearer s3cret", 200},
		{"drain with the token", withToken, "POST", "/drain", pod, "Bearer s3cret", 202},
		{"flush-hosts from the pod network without the token", withToken, "POST", "/flush-hosts", pod, "", 401},
		{"flush-hosts from loopback", noToken, "POST", "/flush-hosts", local, "", 200},
		{"pprof off by default", noToken, "GET", "/debug/pprof/", local, "", 404},
		{"pprof on, from the pod network without the token", withToken, "GET", "/debug/pprof/", pod, "", 401},
		{"pprof on, from loopback", withToken, "GET", "/debug/pprof/", local, "", 200},
	}
	for _, c := range cases {
		if got := status(c.h, c.method, c.path, c.remote, c.auth); got != c.want {
			t.Errorf("%s: %s %s from %s: status %d, want %d", c.name, c.method, c.path, c.remote, got, c.want)
		}
	}
}
