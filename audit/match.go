package audit

import (
	"math/rand/v2"
	"strings"

	"pisanix.io/pisanix/glob"
	"pisanix.io/pisanix/sqlinfo"
)

// matchTable: a table pattern matches "db.name", or "name" when the
// statement's table has no database.
func matchTable(ps []glob.Pattern, t *sqlinfo.Table) bool {
	for i := range ps {
		if p := &ps[i]; t.DB == "" && p.Match(t.Name) || t.DB != "" && p.MatchQualified(t.DB, t.Name) {
			return true
		}
	}
	return false
}

func containsFold(set []string, s string) bool {
	for _, x := range set {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// sample keeps a statement with probability rate.
func sample(rate float64) bool {
	if rate >= 1 {
		return true
	}
	return rate > 0 && rand.Float64() < rate
}
