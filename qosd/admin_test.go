package qosd

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The daemon runs on the host network: /status answers only the loopback
// interface or a bearer token, /metrics anyone (Prometheus scrapes it).
func TestAdminStatusGuarded(t *testing.T) {
	h := adminHandler(nil, nil, prometheus.NewRegistry(), "s3cret")
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/status", "", http.StatusUnauthorized},
		{"/status", "Bearer wrong", http.StatusUnauthorized},
		{"/metrics", "", http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil) // from 192.0.2.1
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s (%q) = %d %s; want %d", tc.path, tc.auth, w.Code, w.Body, tc.want)
		}
	}
	w := httptest.NewRecorder()
	adminHandler(nil, nil, prometheus.NewRegistry(), "").ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/status", nil))
	if w.Code != http.StatusForbidden {
		t.Errorf("/status without a token set: %d; want 403", w.Code)
	}
}
