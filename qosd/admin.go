package qosd

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pisanix.io/pisanix/admin"
)

// adminHandler serves the daemon's admin endpoints:
//
//	/healthz  200 when the reconcile actor answers and the classifier is loaded
//	/readyz   200 when the current daemon config is applied
//	/status   the Status as JSON (the node's applications, interfaces and
//	          rates): only from the loopback interface or with token, as the
//	          daemon runs on the host network
//	/metrics  Prometheus metrics
func adminHandler(root *actor.RootContext, pid *actor.PID, reg *prometheus.Registry, token string) http.Handler {
	status := func() (Status, bool) {
		res, err := root.RequestFuture(pid, statusRequest{}, 2*time.Second).Result()
		s, ok := res.(Status)
		return s, err == nil && ok
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		s, ok := status()
		switch {
		case !ok:
			http.Error(w, "reconcile actor not answering", http.StatusServiceUnavailable)
		case !s.ClassifierReady:
			http.Error(w, "classifier not loaded: "+s.ClassifierError, http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s, ok := status()
		switch {
		case !ok:
			http.Error(w, "reconcile actor not answering", http.StatusServiceUnavailable)
		case !s.Applied:
			http.Error(w, "daemon config not applied: "+s.LastError, http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("GET /status", admin.Guard(token, "--admin-token", func(w http.ResponseWriter, _ *http.Request) {
		s, ok := status()
		if !ok {
			http.Error(w, "reconcile actor not answering", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}
