//go:build !race

package strategy

// raceEnabled: see race_test.go.
const raceEnabled = false
