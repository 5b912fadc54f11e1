package strategy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/sqlinfo"
)

// Plugins is a listener's statement gate, built once per configuration:
// SQL circuit breaking (reject matching statements before they reach a
// backend) and concurrency control (bound matching statements in flight).
// Immutable; the limiter state lives in one actor per rule.
type Plugins struct {
	breakers []string          // circuit_break patterns as configured, for the error message
	breakRe  *Matcher          // their regexps, in the same order
	digests  map[string]string // fingerprint digest -> the configured sample
	limiters []*Limiter
	limitRe  ruleSet // limiters' regexps
	rates    []rateRule
	rateRe   ruleSet // rate rules' regexps
}

// ruleSet finds which rules, each a list of regexps, match a statement:
// one Matcher over all the rules' regexps in rule order (a statement
// matching no rule, the common case, costs at most one literal scan).
type ruleSet struct {
	m     *Matcher
	rule  []int // regexp index -> rule index
	start []int // rule index -> index of its first regexp; one more entry at the end
}

func newRuleSet(lists [][]*regexp.Regexp) ruleSet {
	var rs ruleSet
	var all []*regexp.Regexp
	for r, res := range lists {
		rs.start = append(rs.start, len(all))
		for _, re := range res {
			all = append(all, re)
			rs.rule = append(rs.rule, r)
		}
	}
	rs.start = append(rs.start, len(all))
	rs.m = NewMatcher(all)
	return rs
}

// next returns the first rule >= from with a regexp matching sql, or -1.
func (rs *ruleSet) next(sql []byte, from int) int {
	if from >= len(rs.start)-1 {
		return -1
	}
	if i := rs.m.FirstFrom(sql, rs.start[from]); i >= 0 {
		return rs.rule[i]
	}
	return -1
}

// Rejected is a statement a plugin refused; the session answers it with
// ERR 1047 / 08S01 as Pisa-Proxy did.
type Rejected struct {
	Plugin string // circuit_break or concurrency_control
	Reason string
}

func (r *Rejected) Error() string { return r.Reason }

// NewPlugins compiles rules (validated by config already) and spawns one
// limiter actor per concurrency rule under parent.
func NewPlugins(sys *actors.System, parent actor.SpawnerContext, tenant string, p *config.Plugin, gen int) (*Plugins, error) {
	out := &Plugins{}
	if p == nil {
		return out, nil
	}
	var breakRes []*regexp.Regexp
	for _, cb := range p.CircuitBreak {
		for _, sample := range cb.Fingerprint {
			_, digest := sqlinfo.Fingerprint(sample)
			if out.digests == nil {
				out.digests = map[string]string{}
			}
			out.digests[digest] = sample
		}
		for _, pat := range cb.Regex {
			src := pat
			if cb.CaseInsensitive {
				src = "(?i)" + pat
			}
			re, err := regexp.Compile(src)
			if err != nil {
				return nil, fmt.Errorf("circuit_break regex %q: %w", pat, err)
			}
			out.breakers = append(out.breakers, pat)
			breakRes = append(breakRes, re)
		}
	}
	out.breakRe = NewMatcher(breakRes)
	var rateRes, limitRes [][]*regexp.Regexp
	for _, rl := range p.RateLimit {
		r, err := newRateRule(rl)
		if err != nil {
			return nil, err
		}
		out.rates = append(out.rates, r)
		rateRes = append(rateRes, r.res)
	}
	out.rateRe = newRuleSet(rateRes)
	for i, cc := range p.ConcurrencyControl {
		l, err := newLimiter(sys, parent, fmt.Sprintf("limiter-%d-%d", gen, i), tenant, cc)
		if err != nil {
			return nil, err
		}
		out.limiters = append(out.limiters, l)
		limitRes = append(limitRes, l.res)
	}
	out.limitRe = newRuleSet(limitRes)
	return out, nil
}

// Stop ends the limiter actors (on reload or tenant stop).
func (p *Plugins) Stop(ctx actor.Context) {
	for _, l := range p.limiters {
		ctx.Stop(l.pid)
	}
}

// Empty reports whether no rule is configured (the session skips the gate).
func (p *Plugins) Empty() bool {
	return p == nil || len(p.breakers)+len(p.digests)+len(p.limiters)+len(p.rates) == 0
}

// Check applies the circuit-break rules only (COM_STMT_PREPARE: a statement
// that would be refused is refused at prepare time). digest is the
// statement's fingerprint digest ("" when unknown).
func (p *Plugins) Check(sql []byte, digest string) error {
	if sample, ok := p.digests[digest]; ok && digest != "" {
		return &Rejected{Plugin: "circuit_break", Reason: fmt.Sprintf("pisa-proxy: statement rejected by circuit_break fingerprint rule %q", sample)}
	}
	if i := p.breakRe.First(sql); i >= 0 {
		return &Rejected{Plugin: "circuit_break", Reason: fmt.Sprintf("pisa-proxy: statement rejected by circuit_break rule %q", p.breakers[i])}
	}
	return nil
}

// Admit checks sql against every rule. It returns a release function to
// call when the statement finished (nil when no limiter matched), or a
// *Rejected error. Only statements matching a concurrency rule pay for an
// actor round trip.
func (p *Plugins) Admit(ctx context.Context, user string, sql []byte, digest string) (release func(), err error) {
	if err := p.Check(sql, digest); err != nil {
		return nil, err
	}
	// Rules apply in order (an earlier rejection takes no later token):
	// a rule without regexps applies to every statement, one with them
	// when the matcher says so.
	nextRate := -1
	for i := range p.rates {
		if len(p.rates[i].res) > 0 {
			if nextRate < i {
				if nextRate = p.rateRe.next(sql, i); nextRate < 0 {
					nextRate = len(p.rates)
				}
			}
			if nextRate != i {
				continue
			}
		}
		if err := p.rates[i].take(ctx, user); err != nil {
			return nil, err
		}
	}
	var held []*Limiter
	for i := p.limitRe.next(sql, 0); i >= 0; i = p.limitRe.next(sql, i+1) {
		l := p.limiters[i]
		if err := l.acquire(ctx); err != nil {
			for _, h := range held {
				h.release()
			}
			return nil, err
		}
		held = append(held, l)
	}
	if len(held) == 0 {
		return nil, nil
	}
	return func() {
		for _, h := range held {
			h.release()
		}
	}, nil
}

// Limiter bounds in-flight statements matching one concurrency rule across
// the tenant. Its actor owns the count and the bounded queue.
type Limiter struct {
	sys      *actors.System
	pid      *actor.PID
	res      []*regexp.Regexp
	rule     string
	max      int
	wait     time.Duration
	maxQueue int
	waited   prometheus.Observer // admission time, queueing included
	waiting  prometheus.Gauge    // statements in the queue
	// stopped is closed when the actor stops: a request it never received
	// (sent after it stopped) gets no answer, so waiters watch this too.
	stopped chan struct{}
}

// limiter messages
type (
	admitReq   struct{ reply chan error }
	admitDone  struct{}
	admitAbort struct{ reply chan error }
)

// maxQueuePerSlot bounds a limiter's queue relative to its concurrency.
const maxQueuePerSlot = 64

func newLimiter(sys *actors.System, parent actor.SpawnerContext, name, tenant string, cc config.ConcurrencyControl) (*Limiter, error) {
	l := &Limiter{sys: sys, rule: strings.Join(cc.Regex, "|"), max: cc.MaxConcurrency, stopped: make(chan struct{}),
		waited: sys.Metrics.ConcurrencyWait.WithLabelValues(tenant), waiting: sys.Metrics.ConcurrencyQueue.WithLabelValues(tenant),
		wait: time.Duration(cc.Duration) * time.Second, maxQueue: maxQueuePerSlot * cc.MaxConcurrency}
	if l.wait == 0 {
		l.wait = time.Second
	}
	for _, pat := range cc.Regex {
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("concurrency_control regex %q: %w", pat, err)
		}
		l.res = append(l.res, re)
	}
	pid, err := parent.SpawnNamed(sys.Props("limiter", func() actor.Actor { return &limiterActor{l: l} }), name)
	if err != nil {
		return nil, fmt.Errorf("spawn limiter: %w", err)
	}
	l.pid = pid
	return l, nil
}

// ErrLimiterGone: the limiter stopped (a reload replaced its rules, or it
// restarted) while the statement waited in its queue. The statement was
// not admitted; it may try again under the rules in force.
var ErrLimiterGone = errors.New("concurrency limiter restarted")

func (l *Limiter) acquire(ctx context.Context) error {
	start := time.Now()
	defer func() { l.waited.Observe(time.Since(start).Seconds()) }()
	reply := make(chan error, 1)
	l.sys.Root.Send(l.pid, &admitReq{reply: reply})
	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	select {
	case err := <-reply:
		return err
	case <-l.stopped:
		select {
		case err := <-reply: // answered before it stopped
			return err
		default:
			return ErrLimiterGone
		}
	case <-timer.C:
	case <-ctx.Done():
	}
	l.sys.Root.Send(l.pid, &admitAbort{reply: reply})
	select {
	case err := <-reply:
		if err == nil {
			return nil // admitted just in time; the abort was ignored
		}
	case <-time.After(time.Second): // the limiter is gone (reload): no answer comes
	}
	return &Rejected{Plugin: "concurrency_control", Reason: fmt.Sprintf("pisa-proxy: concurrency_control rule %q: more than %d statements in flight for %s", l.rule, l.max, l.wait)}
}

func (l *Limiter) release() { l.sys.Root.Send(l.pid, &admitDone{}) }

// limiterActor owns one rule's in-flight count and FIFO queue.
type limiterActor struct {
	l        *Limiter
	inflight int
	queue    []chan error
}

func (a *limiterActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *admitReq:
		switch {
		case a.inflight < a.l.max:
			a.inflight++
			m.reply <- nil
		case len(a.queue) < a.l.maxQueue:
			a.queue = append(a.queue, m.reply)
			a.l.waiting.Inc()
		default:
			m.reply <- errQueueFull
		}
	case *admitDone:
		if len(a.queue) > 0 {
			next := a.queue[0]
			a.queue = a.queue[1:]
			a.l.waiting.Dec()
			next <- nil // the slot passes straight to the next waiter
			return
		}
		a.inflight = max(a.inflight-1, 0) // a restart forgot earlier holders
	case *admitAbort:
		for i, w := range a.queue {
			if w == m.reply {
				a.queue = append(a.queue[:i], a.queue[i+1:]...)
				a.l.waiting.Dec()
				m.reply <- ErrLimiterGone // never admitted
				return
			}
		}
		// Already admitted (its grant sits in the channel): keep the grant.
	case *actor.Restarting, *actor.Stopping:
		for _, w := range a.queue {
			w <- ErrLimiterGone
		}
		a.l.waiting.Sub(float64(len(a.queue)))
		a.queue = nil
		if _, stopping := m.(*actor.Stopping); stopping {
			close(a.l.stopped)
		}
	case *actors.Failure:
		actors.Reraise(m)
	}
}

var errQueueFull = &Rejected{Plugin: "concurrency_control", Reason: "pisa-proxy: concurrency_control queue is full"}
