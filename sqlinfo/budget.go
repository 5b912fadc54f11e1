package sqlinfo

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Budget bounds, per user, the bytes of statement text the parser reads
// per second: one user sending long statements of new shapes (a parse of
// 64 KiB costs milliseconds) cannot take the CPU every other session's
// statements need. Texts the cache already knows, and short ones, cost
// nothing. A nil *Budget allows everything.
type Budget struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	users map[string]*rate.Limiter
}

// BudgetMin: texts shorter than this parse in microseconds and are not
// counted.
const BudgetMin = 1024

// maxBudgetUsers bounds the users a Budget follows; past it, it starts
// over (every user with a full allowance).
const maxBudgetUsers = 10000

// NewBudget allows each user bytesPerSecond, with bursts of burst bytes;
// nil when bytesPerSecond is 0 (no bound).
func NewBudget(bytesPerSecond, burst int) *Budget {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &Budget{limit: rate.Limit(bytesPerSecond), burst: max(burst, BudgetMin), users: map[string]*rate.Limiter{}}
}

// Spend takes n bytes of user's allowance, reporting whether there were
// enough. A text longer than the burst costs the whole burst.
func (b *Budget) Spend(user string, n int) bool {
	if b == nil || n < BudgetMin {
		return true
	}
	b.mu.Lock()
	l := b.users[user]
	if l == nil {
		if len(b.users) >= maxBudgetUsers {
			clear(b.users)
		}
		l = rate.NewLimiter(b.limit, b.burst)
		b.users[user] = l
	}
	b.mu.Unlock()
	return l.AllowN(time.Now(), min(n, b.burst))
}
