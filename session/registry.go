package session

import (
	"sync"
	"sync/atomic"

	"pisanix.io/pisanix/backend"
)

// Registry maps the connection ids clients see to live sessions, for KILL
// and the admin API. One per process, so ids are unique across tenants.
type Registry struct {
	next atomic.Uint32
	mu   sync.RWMutex
	m    map[uint32]*Session
	// changed is closed (and replaced) when a session leaves, for WaitEmpty.
	changed chan struct{}
	// globals counts SET GLOBAL statements run through the proxy: pooled
	// backend connections reset before that are reset again when taken, so
	// a new session sees the new values as a new connection would.
	globals atomic.Uint64
	// connGlobals counts SET GLOBAL of what only a new connection takes
	// (max_allowed_packet, net_buffer_length): pooled connections opened
	// before that are closed when taken, not reset.
	connGlobals atomic.Uint64
	// draining: Drain was called; sessions registering later drain too.
	draining atomic.Bool
	gone     goneSweep
}

// Globals is the process-wide count of global-variable changes, for pools.
func (r *Registry) Globals() *atomic.Uint64 { return &r.globals }

// ConnGlobals is the process-wide count of changes to the globals only a
// new connection takes, for pools.
func (r *Registry) ConnGlobals() *atomic.Uint64 { return &r.connGlobals }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{m: map[uint32]*Session{}, changed: make(chan struct{})}
}

// Connection ids are taken from [idBase, 2*idBase): apart from the backend
// thread ids that CONNECTION_ID() answers with (a server reaches 2^30
// connections after years), so that a KILL of either names one session
// (killTarget), and below 2^31 for drivers that keep the id in an int32
// (MySqlConnector, Connector/NET).
const idBase = 1 << 30

// NextID allocates a connection id not in use.
func (r *Registry) NextID() uint32 {
	for {
		id := idBase + r.next.Add(1)%idBase
		if r.get(id) == nil {
			return id
		}
	}
}

func (r *Registry) add(s *Session) {
	r.mu.Lock()
	r.m[s.id] = s
	r.mu.Unlock()
	if r.draining.Load() {
		s.Drain() // logged in while the proxy drains: it ends at once
	}
}

func (r *Registry) remove(id uint32) {
	r.mu.Lock()
	delete(r.m, id)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *Registry) get(id uint32) *Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[id]
}

// byThread returns the session of tenant whose current backend connection
// has thread id on a node (the one named prefer when several nodes have
// it), or nil. CONNECTION_ID() answers with that id.
func (r *Registry) byThread(tenant string, prefer *backend.Endpoint, thread uint32) *Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var found *Session
	n := 0
	for _, s := range r.m {
		be := s.active.Load()
		if s.env.Tenant != tenant || be == nil || be.ThreadID != thread {
			continue
		}
		if be.Endpoint == prefer {
			return s
		}
		found = s
		n++
	}
	if n != 1 {
		return nil // on several other nodes: which one is meant is unknown
	}
	return found
}

// Info describes a session for the admin API.
type Info struct {
	ID       uint32 `json:"id"`
	Tenant   string `json:"tenant"`
	User     string `json:"user"`
	Client   string `json:"client"`
	DB       string `json:"db"`
	Backend  string `json:"backend"`
	ThreadID uint32 `json:"backend_thread_id"`
}

// List returns every live session. Fields may be a moment stale: they are
// read without stopping the sessions.
func (r *Registry) List() []Info {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Info, 0, len(r.m))
	for _, s := range r.m {
		info := Info{ID: s.id, Tenant: s.env.Tenant, Client: s.remote}
		if u := s.userName.Load(); u != nil {
			info.User = *u
		}
		if be := s.active.Load(); be != nil {
			info.Backend, info.ThreadID = be.Endpoint.Name, be.ThreadID
		}
		out = append(out, info)
	}
	return out
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}
