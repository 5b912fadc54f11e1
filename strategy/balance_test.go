package strategy

import "testing"

func TestRoundRobinFollowsWeights(t *testing.T) {
	s := NewSnapshot(RoundRobin, []Target{{"a", 2}, {"b", 1}, {"c", 0}})
	got := map[int]int{}
	for range 300 {
		got[s.Pick(nil)]++
	}
	if got[0] != 200 || got[1] != 100 || got[2] != 0 {
		t.Fatalf("weighted round robin: %v", got)
	}
	// smooth: never three of the same in a row for 2:1
	seq := smoothWRR([]Target{{"a", 2}, {"b", 1}})
	if len(seq) != 3 || seq[0] == seq[1] && seq[1] == seq[2] {
		t.Fatalf("not smooth: %v", seq)
	}
}

func TestRandomFollowsWeights(t *testing.T) {
	s := NewSnapshot(Random, []Target{{"a", 3}, {"b", 1}})
	got := [2]int{}
	for range 40000 {
		got[s.Pick(nil)]++
	}
	if got[0] < 28000 || got[0] > 32000 {
		t.Fatalf("3:1 random split far off: %v", got)
	}
}

func TestNoEligibleTarget(t *testing.T) {
	if i := NewSnapshot(Random, []Target{{"a", 0}}).Pick(nil); i != -1 {
		t.Fatalf("want -1, got %d", i)
	}
}

func BenchmarkPickRoundRobin(b *testing.B) {
	s := NewSnapshot(RoundRobin, []Target{{"a", 1}, {"b", 1}, {"c", 2}})
	for b.Loop() {
		s.Pick(nil)
	}
}

func BenchmarkPickRandom(b *testing.B) {
	s := NewSnapshot(Random, []Target{{"a", 1}, {"b", 1}, {"c", 2}})
	for b.Loop() {
		s.Pick(nil)
	}
}

func TestLeastConn(t *testing.T) {
	s := NewSnapshot(LeastConn, []Target{{"a", 1}, {"b", 2}, {"c", 0}})
	load := map[string]int64{"a": 3, "b": 5, "c": 0}
	// a: 3 per weight, b: 2.5 per weight, c drained
	if i := s.Pick(func(n string) int64 { return load[n] }); s.Targets[i].Name != "b" {
		t.Fatalf("picked %s", s.Targets[i].Name)
	}
	load["b"] = 8
	if i := s.Pick(func(n string) int64 { return load[n] }); s.Targets[i].Name != "a" {
		t.Fatalf("picked %s", s.Targets[i].Name)
	}
}
