package conformance

import "strings"

// summaryLines is how many output lines a difference shows.
const summaryLines = 6

// Difference is one test whose outcome is listed in a comparison.
type Difference struct {
	ID      TestID
	Direct  Status // "" when the test did not run directly
	Proxy   Status // "" when the test did not run through the proxy
	Summary []string
}

// Comparison sets the proxy run of a suite against its direct run.
type Comparison struct {
	// Regressions pass directly and fail through the proxy: the
	// differences. A parent test is left out when one of its subtests is
	// listed (its failure is the subtest's).
	Regressions []Difference
	// Skipped pass directly and are skipped through the proxy.
	Skipped []Difference
	// Missing pass directly and did not run through the proxy (a parent
	// stopped early); only the outermost such test is listed.
	Missing []Difference
	// Fixed fail directly and pass through the proxy.
	Fixed []Difference
	// DirectFailures fail directly whatever the proxy does: problems of the
	// environment or the suite, not differences. Leaves only.
	DirectFailures []Difference
}

// Compare sets proxy against direct. Either may be nil (the run could not
// start), which yields no differences for it.
func Compare(direct, proxy *TestRun) Comparison {
	var c Comparison
	if direct == nil {
		return c
	}
	for _, id := range direct.Order {
		d := direct.Tests[id]
		var p *TestResult
		if proxy != nil {
			p = proxy.Tests[id]
		}
		pStatus := Status("")
		if p != nil {
			pStatus = p.Status
		}
		diff := Difference{ID: id, Direct: d.Status, Proxy: pStatus}
		switch {
		case d.Status == StatusFail:
			diff.Summary = d.Summary(summaryLines)
			c.DirectFailures = append(c.DirectFailures, diff)
			if pStatus == StatusPass {
				c.Fixed = append(c.Fixed, diff)
			}
		case d.Status != StatusPass || proxy == nil:
		case p == nil:
			c.Missing = append(c.Missing, diff)
		case pStatus == StatusFail:
			diff.Summary = p.Summary(summaryLines)
			c.Regressions = append(c.Regressions, diff)
		case pStatus == StatusSkip:
			diff.Summary = p.Summary(summaryLines)
			c.Skipped = append(c.Skipped, diff)
		}
	}
	c.Regressions = leaves(c.Regressions)
	c.DirectFailures = leaves(c.DirectFailures)
	c.Missing = roots(c.Missing)
	return c
}

// isAncestor reports whether a is a parent (at any depth) of b.
func isAncestor(a, b TestID) bool {
	return a.Package == b.Package && strings.HasPrefix(b.Name, a.Name+"/")
}

// leaves drops the tests that have a descendant in ds.
func leaves(ds []Difference) []Difference {
	return without(ds, func(d, e TestID) bool { return isAncestor(d, e) })
}

// roots drops the tests that have an ancestor in ds.
func roots(ds []Difference) []Difference {
	return without(ds, func(d, e TestID) bool { return isAncestor(e, d) })
}

// without drops each d of ds related to some other e of ds.
func without(ds []Difference, related func(d, e TestID) bool) []Difference {
	var out []Difference
	for _, d := range ds {
		keep := true
		for _, e := range ds {
			if related(d.ID, e.ID) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, d)
		}
	}
	return out
}
