// Package configclient fetches and watches a proxy's configuration from
// pisa-controller's config server (see package configserver for the
// protocol). The proxy's sidecar mode calls Watch and applies every
// configuration it is handed; until the first one arrives the proxy is not
// ready. Errors are retried with capped, jittered exponential backoff; a
// configuration that does not pass config.ParseJSON is never handed over.
package configclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/configserver"
)

// Defaults.
const (
	DefaultPort         = 8080
	DefaultMinBackoff   = 200 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultWatchTimeout = 30 * time.Second
	maxBody             = 16 << 20
)

// ErrNotFound: the controller knows no VirtualDatabase of that name.
var ErrNotFound = errors.New("no configuration for this application")

// NotReadyError: the VirtualDatabase exists but cannot be turned into a
// configuration (no strategy, no endpoint selected, ...).
type NotReadyError struct {
	Reason, Message string
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("configuration not ready: %s: %s", e.Reason, e.Message)
}

// BaseURL builds the controller's base URL from the sidecar settings: host
// (PISA_CONTROLLER_HOST, "host:port" or a URL) wins; otherwise
// service.namespace:8080 (PISA_CONTROLLER_SERVICE, PISA_CONTROLLER_NAMESPACE).
// Without a scheme, it is https when secure, else http.
func BaseURL(host, service, namespace string, secure bool) (string, error) {
	if host == "" {
		if service == "" || namespace == "" {
			return "", errors.New("controller address: set the controller host, or both its service and namespace")
		}
		host = net.JoinHostPort(service+"."+namespace, strconv.Itoa(DefaultPort))
	}
	if !strings.Contains(host, "://") {
		if secure {
			host = "https://" + host
		} else {
			host = "http://" + host
		}
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("controller address %q is not host:port or a URL", host)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Option tunes Fetch and Watch.
type Option func(*options)

type options struct {
	http         *http.Client
	log          *slog.Logger
	minBackoff   time.Duration
	maxBackoff   time.Duration
	watchTimeout time.Duration
	onError      func(error)
}

// WithHTTPClient sets the HTTP client (default: one without overall timeout;
// watch requests are bounded by the server's timeout and ctx).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.http = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithBackoff sets the retry backoff bounds.
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = lo, hi }
}

// WithWatchTimeout sets how long one long-poll may wait on the server.
func WithWatchTimeout(d time.Duration) Option { return func(o *options) { o.watchTimeout = d } }

// WithErrorHandler is called with every failed attempt (e.g. to count it or
// surface it in /readyz).
func WithErrorHandler(f func(error)) Option { return func(o *options) { o.onError = f } }

func build(opts []Option) *options {
	o := &options{
		http:         &http.Client{},
		log:          slog.New(slog.DiscardHandler),
		minBackoff:   DefaultMinBackoff,
		maxBackoff:   DefaultMaxBackoff,
		watchTimeout: DefaultWatchTimeout,
	}
	for _, f := range opts {
		f(o)
	}
	return o
}

// Fetch gets app's current configuration once, validated.
func Fetch(ctx context.Context, baseURL, ns, app string, opts ...Option) (*config.Config, string, error) {
	o := build(opts)
	a, err := get(ctx, o, baseURL, ns, app, "", false)
	if err != nil {
		return nil, "", err
	}
	return a.cfg, a.version, nil
}

// answer is what the server said about its state.
type answer struct {
	cfg         *config.Config
	version     string
	notModified bool
	// known: the server answered about its state (200, 304, 404, 503), as
	// opposed to a transport error or an unexpected status.
	known bool
	// noWatch: the server sent no version (an original Pisanix
	// controller); it cannot long-poll, so the watcher polls.
	noWatch bool
}

// get does one request; with watch it long-polls from version have.
func get(ctx context.Context, o *options, baseURL, ns, app, have string, watch bool) (answer, error) {
	u := strings.TrimRight(baseURL, "/") + configserver.ProxyPath(url.PathEscape(ns), url.PathEscape(app))
	if watch {
		q := url.Values{}
		q.Set("watch", "true")
		q.Set("version", have)
		q.Set("timeoutSeconds", strconv.Itoa(int(o.watchTimeout/time.Second)))
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, fmt.Errorf("config request: %w", err)
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("get config %s/%s: %w", ns, app, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("read config %s/%s: %w", ns, app, err)
	}
	a := answer{version: resp.Header.Get(configserver.VersionHeader), known: true}
	switch resp.StatusCode {
	case http.StatusOK:
		c, err := config.ParseJSON(body, fmt.Sprintf("controller config %s/%s", ns, app))
		if err != nil {
			return a, fmt.Errorf("invalid config from controller: %w", err)
		}
		a.cfg = c
		if a.version == "" {
			a.version, a.noWatch = configserver.Version(body), true
		}
		return a, nil
	case http.StatusNotModified:
		a.notModified = true
		return a, nil
	case http.StatusNotFound:
		return a, fmt.Errorf("%s/%s: %w", ns, app, ErrNotFound)
	case http.StatusServiceUnavailable:
		nr := &NotReadyError{}
		if err := json.Unmarshal(body, &struct {
			Reason  *string `json:"reason"`
			Message *string `json:"message"`
		}{&nr.Reason, &nr.Message}); err != nil {
			nr.Reason, nr.Message = "Unavailable", strings.TrimSpace(string(body))
		}
		return a, fmt.Errorf("%s/%s: %w", ns, app, nr)
	default:
		return answer{}, fmt.Errorf("config %s/%s: controller answered %s: %s", ns, app, resp.Status, strings.TrimSpace(string(body)))
	}
}

// Watch hands apply every new, valid configuration of app, starting with
// the current one, until ctx ends (then it returns ctx's error). apply runs
// on Watch's goroutine, one call at a time. While the controller is
// unreachable, knows no such app (404) or cannot build its configuration
// (503), Watch keeps the last configuration (it never hands over an empty
// one) and retries: with backoff after transport errors, and by long-polling
// for the next change after a 404/503.
func Watch(ctx context.Context, baseURL, ns, app string, apply func(*config.Config), opts ...Option) error {
	o := build(opts)
	have := ""    // the server state we last saw; sent as version
	applied := "" // the version last handed to apply
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		a, err := get(ctx, o, baseURL, ns, app, have, true)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && a.known && a.version != have:
			// 404, 503 or an invalid document: the server told us its
			// state; keep the current config and wait for the next change.
			if o.onError != nil {
				o.onError(err)
			}
			o.log.Warn("controller has no usable config; keeping the current one", "app", ns+"/"+app, "err", err)
			have, failures = a.version, 0
		case err != nil:
			if o.onError != nil {
				o.onError(err)
			}
			failures++
			d := backoff(o, failures)
			o.log.Warn("config fetch failed; retrying", "app", ns+"/"+app, "err", err, "retry_in", d)
			if err := sleep(ctx, d); err != nil {
				return err
			}
		case a.notModified:
			failures = 0
		default:
			failures = 0
			have = a.version
			// After a 404/503 (e.g. a restarting controller) the same
			// configuration may come back: it is not applied twice.
			if a.version != applied {
				applied = a.version
				o.log.Info("config received", "app", ns+"/"+app, "version", a.version)
				apply(a.cfg)
			}
			if a.noWatch {
				if err := sleep(ctx, o.maxBackoff); err != nil {
					return err
				}
			}
		}
	}
}

func backoff(o *options, failures int) time.Duration {
	d := o.minBackoff << min(failures-1, 20)
	if d <= 0 || d > o.maxBackoff {
		d = o.maxBackoff
	}
	// Full jitter over the upper half so many proxies don't retry in step.
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
