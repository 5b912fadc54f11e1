// Package admin serves pisa-proxy's HTTP admin endpoint: /metrics,
// /healthz, /readyz and /version for anyone who reaches the port (probes,
// Prometheus), and /config (secrets redacted), /sessions, /drain and
// /debug/pprof (when enabled) only to requests from the loopback interface
// or bearing the admin token: they describe every tenant's clients and
// cost CPU on demand.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources is what the endpoints report on.
type Sources struct {
	Registry *prometheus.Registry
	Version  string
	// Ready returns nil when every listener serves, else why not.
	Ready func() error
	// Config returns the active config with secrets redacted.
	Config func() any
	// Sessions lists live sessions.
	Sessions func() any
	// Healthy returns nil unless part of the process stopped for good
	// (nil func: always healthy).
	Healthy func() error
	// Drain starts a graceful shutdown (POST /drain), as SIGTERM does.
	Drain func()
	// FlushHosts unblocks the client addresses blocked for failed logins
	// (POST /flush-hosts, as MySQL's FLUSH HOSTS); it returns how many.
	FlushHosts func() int
	// Token, when set, lets a request from elsewhere than the loopback
	// interface reach the private endpoints with "Authorization: Bearer
	// <Token>".
	Token string
	// Pprof serves /debug/pprof (private, like /config).
	Pprof bool
}

// Handler builds the admin mux.
func Handler(src Sources) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(src.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if src.Healthy != nil {
			if err := src.Healthy(); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := src.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, src.Version)
	})
	private := func(h http.HandlerFunc) http.HandlerFunc { return Guard(src.Token, "admin.token", h) }
	if src.Drain != nil {
		mux.HandleFunc("POST /drain", private(func(w http.ResponseWriter, _ *http.Request) {
			src.Drain()
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("draining\n"))
		}))
	}
	if src.FlushHosts != nil {
		mux.HandleFunc("POST /flush-hosts", private(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "unblocked %d client addresses\n", src.FlushHosts())
		}))
	}
	mux.HandleFunc("GET /config", private(jsonHandler(src.Config)))
	mux.HandleFunc("GET /sessions", private(jsonHandler(src.Sessions)))
	if src.Pprof {
		mux.HandleFunc("GET /debug/pprof/", private(pprof.Index))
		mux.HandleFunc("GET /debug/pprof/cmdline", private(pprof.Cmdline))
		mux.HandleFunc("GET /debug/pprof/profile", private(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", private(pprof.Symbol))
		mux.HandleFunc("GET /debug/pprof/trace", private(pprof.Trace))
	}
	return mux
}

// Guard serves h to requests from the loopback interface, or bearing
// token when one is set; others get 401 (token set) or 403. setting names
// where the token is set, for the message. pisa-daemon's admin port uses
// it too.
func Guard(token, setting string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if fromLoopback(r) || token != "" && bearer(r, token) {
			h(w, r)
			return
		}
		if token != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pisa-proxy admin"`)
			http.Error(w, r.URL.Path+": a bearer token ("+setting+") is required from this address", http.StatusUnauthorized)
			return
		}
		http.Error(w, r.URL.Path+": served only on the loopback interface (set "+setting+" to allow other addresses)", http.StatusForbidden)
	}
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func bearer(r *http.Request, token string) bool {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(prefix):]), []byte(token)) == 1
}

func jsonHandler(f func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(f())
	}
}

// Server is a running admin endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr now, so a bad address fails at start.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve runs until Shutdown.
func (s *Server) Serve(log *slog.Logger) {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("admin server stopped", "err", err)
	}
}

// Shutdown stops serving, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
