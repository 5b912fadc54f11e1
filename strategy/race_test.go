//go:build race

package strategy

// raceEnabled: the race detector makes sync.Pool drop objects at random,
// so allocation counts of pooled code do not hold under -race.
const raceEnabled = true
