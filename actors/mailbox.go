package actors

import (
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
)

// kindMetrics are the mailbox and receive collectors of one actor kind.
type kindMetrics struct {
	depth     prometheus.Gauge
	processed prometheus.Counter
	wait      prometheus.Observer // post to the start of its receive
	receive   prometheus.Observer // the receive itself
}

// timedMailbox is protoactor's bounded mailbox of size slots, measured:
// the depth of every mailbox of the kind, how long each user message waited
// and how long its receive took. protoactor's own metrics need its
// OpenTelemetry extension and time only the receive, hence this wrapper.
func timedMailbox(size int, m kindMetrics) actor.MailboxProducer {
	return func() actor.Mailbox {
		st := &mailboxStats{kindMetrics: m}
		return &timed{Mailbox: actor.Bounded(size, st)(), stats: st}
	}
}

// timed wraps the mailbox's invoker, which the mailbox calls with each
// user message in the order they were queued.
type timed struct {
	actor.Mailbox
	stats *mailboxStats
}

func (t *timed) RegisterHandlers(invoker actor.MessageInvoker, d actor.Dispatcher) {
	t.Mailbox.RegisterHandlers(&timedInvoker{MessageInvoker: invoker, stats: t.stats}, d)
}

type timedInvoker struct {
	actor.MessageInvoker
	stats *mailboxStats
}

func (ti *timedInvoker) InvokeUserMessage(msg any) {
	start := time.Now()
	if posted, ok := ti.stats.dequeued(); ok {
		ti.stats.wait.Observe(start.Sub(posted).Seconds())
	}
	ti.MessageInvoker.InvokeUserMessage(msg)
	ti.stats.receive.Observe(time.Since(start).Seconds())
}

// mailboxStats counts depth and remembers when each user message was
// posted (a FIFO, as the user queue is one).
type mailboxStats struct {
	kindMetrics
	mu     sync.Mutex
	posted []time.Time
	head   int
}

func (s *mailboxStats) MailboxStarted() {}
func (s *mailboxStats) MailboxEmpty()   {}

func (s *mailboxStats) MessagePosted(msg any) {
	s.depth.Inc()
	if systemQueued(msg) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	if s.head > 0 && s.head*2 >= len(s.posted) { // reuse the consumed front
		n := copy(s.posted, s.posted[s.head:])
		s.posted, s.head = s.posted[:n], 0
	}
	s.posted = append(s.posted, now)
	s.mu.Unlock()
}

func (s *mailboxStats) MessageReceived(any) { s.depth.Dec() }

// dequeued returns when the oldest waiting user message was posted.
func (s *mailboxStats) dequeued() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.posted) {
		return time.Time{}, false
	}
	t := s.posted[s.head]
	s.head++
	return t, true
}

// systemQueued reports whether protoactor posts msg to the system queue,
// which is not timed.
func systemQueued(msg any) bool {
	switch msg.(type) {
	case actor.SystemMessage, actor.MailboxMessage:
		return true
	}
	return false
}

// messageType names a message's Go type, unwrapping an envelope.
func messageType(msg any) string {
	if env, ok := msg.(*actor.MessageEnvelope); ok {
		msg = env.Message
	}
	return fmt.Sprintf("%T", msg)
}
