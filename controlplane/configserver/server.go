package configserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Paths of the Pisanix controller API.
const (
	PathPrefix      = "/apis/configs.database-mesh.io/v1alpha1"
	proxyPattern    = "GET " + PathPrefix + "/namespaces/{ns}/proxyconfigs/{app}"
	daemonPattern   = "GET " + PathPrefix + "/daemonconfigs"
	VersionHeader   = "X-Pisanix-Config-Version"
	DefaultWatch    = 30 * time.Second
	MaxWatch        = 300 * time.Second
	shutdownTimeout = 5 * time.Second
)

// ProxyPath is the URL path of app's proxy configuration.
func ProxyPath(ns, app string) string {
	return PathPrefix + "/namespaces/" + ns + "/proxyconfigs/" + app
}

// DaemonPath is the URL path of the daemon configuration.
func DaemonPath() string { return PathPrefix + "/daemonconfigs" }

// HandlerOption tunes Handler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	metrics *Metrics
	auth    *Auth
}

// WithMetrics counts requests and watchers in m.
func WithMetrics(m *Metrics) HandlerOption { return func(o *handlerOptions) { o.metrics = m } }

// WithAuth makes every configuration request prove who it is (see Auth);
// without it the configurations are served to anyone who asks.
func WithAuth(a *Auth) HandlerOption { return func(o *handlerOptions) { o.auth = a } }

// Handler serves the store. A nil log discards.
func Handler(s *Store, log *slog.Logger, opts ...HandlerOption) http.Handler {
	var o handlerOptions
	for _, f := range opts {
		f(&o)
	}
	m := o.metrics
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(proxyPattern, func(w http.ResponseWriter, r *http.Request) {
		k := Key{Namespace: r.PathValue("ns"), App: r.PathValue("app")}
		if o.auth != nil {
			if d := o.auth.proxy(r, k); d != nil {
				refuse(w, r, d, log.With("app", k.String()), m, "proxy")
				return
			}
		}
		serve(w, r, s, s.proxyGetter(k), log.With("app", k.String()), m, "proxy",
			fmt.Sprintf("no VirtualDatabase %q in namespace %q", k.App, k.Namespace))
	})
	mux.HandleFunc(daemonPattern, func(w http.ResponseWriter, r *http.Request) {
		if o.auth != nil {
			if d := o.auth.daemon(r); d != nil {
				refuse(w, r, d, log.With("config", "daemon"), m, "daemon")
				return
			}
		}
		serve(w, r, s, s.daemonGetter, log.With("config", "daemon"), m, "daemon", "")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func serve(w http.ResponseWriter, r *http.Request, s *Store, get func() *entry, log *slog.Logger, m *Metrics, kind, missing string) {
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	defer func() { m.answered(kind, sw.code) }()
	w = sw
	q := r.URL.Query()
	e, changed := s.snapshot(get)
	if watch, _ := strconv.ParseBool(q.Get("watch")); watch {
		have := q.Get("version")
		timeout := DefaultWatch
		if t := q.Get("timeoutSeconds"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, "", NotReady{Reason: "BadRequest", Message: "timeoutSeconds must be a non-negative integer"})
				return
			}
			timeout = min(time.Duration(n)*time.Second, MaxWatch)
		}
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		m.watching(kind, 1)
		defer m.watching(kind, -1)
		for version(e) == have {
			select {
			case <-r.Context().Done():
				return
			case <-timer.C:
				w.Header().Set(VersionHeader, have)
				w.WriteHeader(http.StatusNotModified)
				return
			case <-changed:
				e, changed = s.snapshot(get)
			}
		}
	} else if inm := r.Header.Get("If-None-Match"); inm != "" && e != nil && strings.Trim(inm, `"`) == e.version {
		w.Header().Set("ETag", `"`+e.version+`"`)
		w.Header().Set(VersionHeader, e.version)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	switch {
	case e == nil && missing == "":
		// Daemons keep their shaping while none was reconciled yet: an empty
		// config would remove it.
		writeJSON(w, http.StatusServiceUnavailable, "", NotReady{Reason: "NotReconciled", Message: "the " + kind + " configuration is not reconciled yet"})
		return
	case e == nil:
		writeJSON(w, http.StatusNotFound, "", NotReady{Reason: "NotFound", Message: missing})
		return
	}
	log.Debug("serving config", "version", e.version, "status", e.status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", `"`+e.version+`"`)
	w.Header().Set(VersionHeader, e.version)
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}

// refuse answers 401, 403 or 503 with the reason, and logs it: a refused
// proxy is a misconfiguration (or an attack) the operator should see.
func refuse(w http.ResponseWriter, r *http.Request, d *denied, log *slog.Logger, m *Metrics, kind string) {
	m.answered(kind, d.status)
	reason := http.StatusText(d.status)
	if d.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pisa-controller"`)
	}
	log.Warn("configuration request refused", "status", d.status, "remote", r.RemoteAddr, "reason", d.msg)
	writeJSON(w, d.status, "", NotReady{Reason: strings.ReplaceAll(reason, " ", ""), Message: d.msg})
}

func version(e *entry) string {
	if e == nil {
		return ""
	}
	return e.version
}

func writeJSON(w http.ResponseWriter, status int, ver string, v any) {
	w.Header().Set("Content-Type", "application/json")
	if ver != "" {
		w.Header().Set(VersionHeader, ver)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusWriter remembers the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Server runs the handler on an address; it is a controller-runtime
// Runnable that serves on every replica, leader or not.
type Server struct {
	Addr  string
	Store *Store
	Log   *slog.Logger
	// Metrics, optional.
	Metrics *Metrics
	// Auth, when set, makes every request prove who it is.
	Auth *Auth
	// TLS, when set, serves HTTPS (its GetCertificate may rotate the pair).
	TLS *tls.Config
	// Listener, when set, is used instead of listening on Addr (tests).
	Listener net.Listener
}

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", s.Addr); err != nil {
			return fmt.Errorf("config server: listen %s: %w", s.Addr, err)
		}
	}
	srv := &http.Server{
		Handler:           Handler(s.Store, log, WithMetrics(s.Metrics), WithAuth(s.Auth)),
		TLSConfig:         s.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      MaxWatch + 30*time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		// TLS handshake failures (a client speaking plain http, a scanner)
		// go to our log, not to stderr.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if s.TLS != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	log.Info("config server listening", "addr", ln.Addr().String(), "tls", s.TLS != nil, "authenticated", s.Auth != nil)
	select {
	case err := <-errc:
		return fmt.Errorf("config server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("config server shutdown: %w", err)
	}
	return nil
}

// NeedLeaderElection is false: every replica serves what it reconciled.
func (s *Server) NeedLeaderElection() bool { return false }
