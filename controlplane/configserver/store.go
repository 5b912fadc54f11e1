// Package configserver serves translated configuration to proxies and
// daemons over HTTP, in the URL scheme of Pisanix's controller, and adds a
// long-poll watch so a proxy learns of a change at once.
//
// Protocol (JSON bodies, the proxy's TOML keys):
//
//	GET /apis/configs.database-mesh.io/v1alpha1/namespaces/{ns}/proxyconfigs/{app}
//	GET /apis/configs.database-mesh.io/v1alpha1/daemonconfigs
//
// Every answer carries the configuration's version in the ETag and
// X-Pisanix-Config-Version headers (a content hash, so it survives a
// controller restart). 200 is a configuration; 404 means no VirtualDatabase
// of that name exists; 503 means it exists but cannot be translated (the body
// says why: {"reason": ..., "message": ...}). A proxy keeps its last good
// configuration on 404/503.
//
// Watch: add ?watch=true&version=V[&timeoutSeconds=N]. The server answers as
// soon as the current version differs from V, or with 304 Not Modified after
// N seconds (default 30, at most 300). An empty V means "I have nothing".
// A plain GET with If-None-Match: "V" answers 304 when nothing changed.
package configserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"pisanix.io/pisanix/config"
)

// Key identifies one application's proxy configuration.
type Key struct{ Namespace, App string }

func (k Key) String() string { return k.Namespace + "/" + k.App }

// entry is one served document; immutable once stored.
type entry struct {
	status  int    // http.StatusOK or http.StatusServiceUnavailable
	body    []byte // JSON
	version string
}

// Store holds the documents served; safe for concurrent use. Every change
// wakes the watchers.
type Store struct {
	mu      sync.Mutex
	proxies map[Key]*entry
	daemon  *entry
	changed chan struct{} // closed and replaced on every change
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{proxies: map[Key]*entry{}, changed: make(chan struct{})}
}

// Version is the content hash used as a configuration's version.
func Version(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:8])
}

// NotReady is the body of a 503 answer.
type NotReady struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// SetProxy stores app's configuration and returns its version.
func (s *Store) SetProxy(k Key, c *config.Config) (string, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode proxy config %s: %w", k, err)
	}
	v := Version(body)
	s.put(func() bool { return s.swapProxy(k, &entry{status: http.StatusOK, body: body, version: v}) })
	return v, nil
}

// SetProxyNotReady records why app has no configuration. A proxy watching
// it keeps its last good configuration.
func (s *Store) SetProxyNotReady(k Key, reason, message string) {
	body, _ := json.Marshal(NotReady{Reason: reason, Message: message}) // cannot fail: two strings
	v := "not-ready-" + Version(body)
	s.put(func() bool {
		return s.swapProxy(k, &entry{status: http.StatusServiceUnavailable, body: body, version: v})
	})
}

// DeleteProxy forgets app (its VirtualDatabase is gone).
func (s *Store) DeleteProxy(k Key) {
	s.put(func() bool {
		if _, ok := s.proxies[k]; !ok {
			return false
		}
		delete(s.proxies, k)
		return true
	})
}

// Proxies lists the stored keys, sorted.
func (s *Store) Proxies() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]Key, 0, len(s.proxies))
	for k := range s.proxies {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}

// SetDaemon stores the daemon configuration (any JSON-encodable value).
func (s *Store) SetDaemon(v any) (string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode daemon config: %w", err)
	}
	ver := Version(body)
	s.put(func() bool {
		if s.daemon != nil && s.daemon.version == ver {
			return false
		}
		s.daemon = &entry{status: http.StatusOK, body: body, version: ver}
		return true
	})
	return ver, nil
}

// swapProxy is called with mu held.
func (s *Store) swapProxy(k Key, e *entry) bool {
	if old, ok := s.proxies[k]; ok && old.version == e.version {
		return false
	}
	s.proxies[k] = e
	return true
}

// put runs change under the lock and wakes watchers when it changed something.
func (s *Store) put(change func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if change() {
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// snapshot returns the current entry for k (nil when absent) and the channel
// closed at the next change.
func (s *Store) snapshot(get func() *entry) (*entry, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return get(), s.changed
}

func (s *Store) proxyGetter(k Key) func() *entry {
	return func() *entry { return s.proxies[k] }
}

func (s *Store) daemonGetter() *entry { return s.daemon }
