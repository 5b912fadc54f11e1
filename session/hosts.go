package session

import (
	"fmt"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/wire"
)

// HostGuard blocks client addresses after too many failed logins in a row,
// as MySQL's max_connect_errors does (1129 "Host is blocked"): a password
// guessed through the proxy costs the guesser its address. Failed means
// refused credentials or a malformed handshake; a client that connects and
// leaves (a TCP health check) does not count, and a successful login from
// the address starts its count again. Safe for concurrent use; a nil
// *HostGuard blocks nobody.
type HostGuard struct {
	mu    sync.Mutex
	max   int
	fails map[string]int
}

// maxGuardedHosts bounds the addresses a guard follows. Past it, an address
// not blocked is forgotten to make room; with every followed address
// blocked, new ones are not followed (they can still fail max times).
const maxGuardedHosts = 65536

// NewHostGuard blocks an address after max failed logins in a row; nil
// when max is 0 (no limit).
func NewHostGuard(max int) *HostGuard {
	if max <= 0 {
		return nil
	}
	return &HostGuard{max: max, fails: map[string]int{}}
}

// SetMax changes the limit (a reload) and keeps the counts.
func (g *HostGuard) SetMax(max int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.max = max
}

// Blocked reports whether host may not log in.
func (g *HostGuard) Blocked(host string) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fails[host] >= g.max
}

// Failed counts a failed login from host.
func (g *HostGuard) Failed(host string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.fails[host]; !ok && len(g.fails) >= maxGuardedHosts && !g.evict() {
		return
	}
	g.fails[host]++
}

// evict forgets an address that is not blocked; false when all are.
func (g *HostGuard) evict() bool {
	for h, n := range g.fails {
		if n < g.max {
			delete(g.fails, h)
			return true
		}
	}
	return false
}

// Succeeded starts host's count again.
func (g *HostGuard) Succeeded(host string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.fails, host)
}

// Flush unblocks every address (the admin API's /flush-hosts, as MySQL's
// FLUSH HOSTS); it returns how many were blocked.
func (g *HostGuard) Flush() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.fails {
		if c >= g.max {
			n++
		}
	}
	clear(g.fails)
	return n
}

// flushHosts unblocks every address once the server has done FLUSH HOSTS
// (a relay's Settled): the proxy's blocks are the server's, as a client
// sees them.
func (s *Session) flushHosts(o wire.Outcome) {
	if o.ErrCode == 0 {
		s.env.Hosts.Flush()
	}
}

// hostBlocked is MySQL's 1129, naming how to unblock through the proxy.
func hostBlocked(host string) *wire.SQLError {
	return wire.NewError(mysql.ER_HOST_IS_BLOCKED, fmt.Sprintf(
		"Host '%s' is blocked because of many connection errors; unblock with pisa-proxy's admin API: POST /flush-hosts", host))
}
