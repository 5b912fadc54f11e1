package strategy

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"pisanix.io/pisanix/config"
)

// rateRule is one token bucket. golang.org/x/time/rate is used directly
// rather than behind an actor: taking a token is a short critical section
// on every matching statement, and a mailbox round trip would cost ten
// times more. The bucket lives in the immutable Plugins of one
// configuration generation; a reload starts fresh buckets.
type rateRule struct {
	res     []*regexp.Regexp
	user    string
	lim     *rate.Limiter
	maxWait time.Duration
	desc    string
}

func newRateRule(c config.RateLimit) (rateRule, error) {
	burst := c.Burst
	if burst == 0 {
		burst = max(int(c.Rate), 1)
	}
	r := rateRule{user: c.User, lim: rate.NewLimiter(rate.Limit(c.Rate), burst), maxWait: c.MaxWait.D()}
	for _, pat := range c.Regex {
		re, err := regexp.Compile(pat)
		if err != nil {
			return rateRule{}, fmt.Errorf("rate_limit regex %q: %w", pat, err)
		}
		r.res = append(r.res, re)
	}
	r.desc = fmt.Sprintf("%g/s", c.Rate)
	if len(c.Regex) > 0 {
		r.desc += " for " + strings.Join(c.Regex, "|")
	}
	if c.User != "" {
		r.desc += " for user " + c.User
	}
	return r, nil
}

// take consumes a token for a statement of user that matches the rule's
// regexps (the caller's matcher decided that), waiting up to maxWait.
func (r *rateRule) take(ctx context.Context, user string) error {
	if (r.user != "" && r.user != user) || r.lim.Allow() {
		return nil
	}
	if r.maxWait > 0 {
		wctx, cancel := context.WithTimeout(ctx, r.maxWait)
		defer cancel()
		if r.lim.Wait(wctx) == nil {
			return nil
		}
	}
	return &Rejected{Plugin: "rate_limit", Reason: fmt.Sprintf("pisa-proxy: rate_limit %s exceeded", r.desc)}
}
