package configserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultAudience is the audience a proxy's or daemon's projected
// ServiceAccount token is minted for; a token for another audience (the API
// server's own, say) is refused, so a token stolen from this channel cannot
// be replayed against the API server and the other way round.
const DefaultAudience = "pisa-controller"

// Identity is who a token belongs to, as the API server reviewed it.
type Identity struct {
	Namespace, ServiceAccount string
	// PodName and PodUID: the pod a projected token is bound to; empty
	// for a token not bound to a pod.
	PodName, PodUID string
}

func (id Identity) String() string {
	s := "system:serviceaccount:" + id.Namespace + ":" + id.ServiceAccount
	if id.PodName != "" {
		s += " (pod " + id.PodName + ")"
	}
	return s
}

// ErrUnauthenticated wraps every reason a token is not accepted: it is
// missing, malformed, expired, for another audience, or its pod is gone.
var ErrUnauthenticated = errors.New("unauthenticated")

// Reviewer asks the API server who a token belongs to (a TokenReview).
type Reviewer interface {
	Review(ctx context.Context, token string) (Identity, error)
}

// PodApp names the application a running pod belongs to (the name of its
// VirtualDatabase), checking the pod still has uid.
type PodApp func(ctx context.Context, namespace, name, uid string) (string, error)

// Auth decides who may read which configuration: a proxy only its own
// application's, a daemon only with the daemon's ServiceAccount. Reviews
// are cached per token for at most CacheTTL, and never past the token's
// expiry, so long-polling proxies cost the API server one review per
// CacheTTL each.
type Auth struct {
	Reviewer Reviewer
	PodApp   PodApp
	// DaemonNamespace and DaemonServiceAccount identify pisa-daemon.
	DaemonNamespace, DaemonServiceAccount string
	CacheTTL                              time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	id    Identity
	app   string // the pod's application, once looked up
	until time.Time
}

// DefaultCacheTTL bounds how long a reviewed token is trusted without
// asking again (a deleted pod's token stops working within it).
const DefaultCacheTTL = time.Minute

// maxCached bounds the cache; past it, reviews are simply not cached.
const maxCached = 10000

// denied is an answer of 401 or 403.
type denied struct {
	status int
	msg    string
}

func (d *denied) Error() string { return d.msg }

func unauthenticated(format string, args ...any) *denied {
	return &denied{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *denied {
	return &denied{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

// proxy checks that r's token may read k's configuration.
func (a *Auth) proxy(r *http.Request, k Key) *denied {
	tok, c, d := a.identify(r)
	if d != nil {
		return d
	}
	id := c.id
	if id.Namespace != k.Namespace {
		return forbidden("%s may not read the configuration of %s: it is in namespace %q", id, k, id.Namespace)
	}
	if id.PodName == "" {
		return forbidden("%s may not read the configuration of %s: the token is not bound to a pod (mount a projected ServiceAccount token with audience %q, as the injected sidecar does)", id, k, DefaultAudience)
	}
	app := c.app
	if app == "" {
		var err error
		if app, err = a.PodApp(r.Context(), id.Namespace, id.PodName, id.PodUID); err != nil {
			return forbidden("%s may not read the configuration of %s: %v", id, k, err)
		}
		a.remember(tok, cached{id: id, app: app, until: c.until})
	}
	if app != k.App {
		return forbidden("%s may not read the configuration of %s: its pod belongs to application %q", id, k, app)
	}
	return nil
}

// daemon checks that r's token is pisa-daemon's.
func (a *Auth) daemon(r *http.Request) *denied {
	_, c, d := a.identify(r)
	if d != nil {
		return d
	}
	if c.id.Namespace != a.DaemonNamespace || c.id.ServiceAccount != a.DaemonServiceAccount {
		return forbidden("%s may not read the daemon configuration: only system:serviceaccount:%s:%s may", c.id, a.DaemonNamespace, a.DaemonServiceAccount)
	}
	return nil
}

// identify reviews r's bearer token, from the cache when it can.
func (a *Auth) identify(r *http.Request) ([32]byte, cached, *denied) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok := strings.TrimSpace(raw)
	if !ok || tok == "" {
		return [32]byte{}, cached{}, unauthenticated("no bearer token: send the pod's projected ServiceAccount token (audience %q) in the Authorization header", DefaultAudience)
	}
	key := sha256.Sum256([]byte(tok))
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(c.until) {
		return key, c, nil
	}
	id, err := a.Reviewer.Review(r.Context(), tok)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return key, cached{}, unauthenticated("token not accepted: %v", err)
		}
		return key, cached{}, &denied{http.StatusServiceUnavailable, fmt.Sprintf("cannot review the token now: %v", err)}
	}
	ttl := a.CacheTTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	c = cached{id: id, until: now.Add(ttl)}
	if exp, ok := expiry(tok); ok && exp.Before(c.until) {
		c.until = exp
	}
	a.remember(key, c)
	return key, c, nil
}

func (a *Auth) remember(key [32]byte, c cached) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil {
		a.cache = map[[32]byte]cached{}
	}
	if len(a.cache) >= maxCached {
		now := time.Now()
		for k, v := range a.cache {
			if !now.Before(v.until) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCached {
			return
		}
	}
	a.cache[key] = c
}

// expiry reads a JWT's exp claim. It is only called after the API server
// accepted the token, so the payload is trusted; the signature is not
// checked again here.
func expiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}

// ParseUser splits a ServiceAccount user name and the pod-binding extras
// of a reviewed token into an Identity.
func ParseUser(username string, extra map[string][]string) (Identity, error) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" {
		return Identity{}, fmt.Errorf("%w: %q is not a ServiceAccount", ErrUnauthenticated, username)
	}
	id := Identity{Namespace: ns, ServiceAccount: sa}
	if v := extra["authentication.kubernetes.io/pod-name"]; len(v) == 1 {
		id.PodName = v[0]
	}
	if v := extra["authentication.kubernetes.io/pod-uid"]; len(v) == 1 {
		id.PodUID = v[0]
	}
	return id, nil
}

// HasAudience reports whether a review's audiences include want.
func HasAudience(got []string, want string) bool { return slices.Contains(got, want) }
