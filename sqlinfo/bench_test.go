package sqlinfo

import "testing"

const (
	pointSelect = "SELECT c FROM sbtest1 WHERE id=4711"
	join5       = "SELECT a.id, b.x, c.y, d.z, e.w FROM t1 a JOIN t2 b ON a.id=b.aid " +
		"JOIN t3 c ON b.id=c.bid LEFT JOIN t4 d ON c.id=d.cid JOIN t5 e ON d.id=e.did " +
		"WHERE a.k BETWEEN 10 AND 20 AND e.s='x' ORDER BY a.id LIMIT 10"
)

func BenchmarkCacheHitPointSelect(b *testing.B) {
	c := NewCache(1024)
	c.Classify([]byte("SELECT c FROM sbtest1 WHERE id=1"), "sbtest")
	sql := []byte(pointSelect)
	b.ReportAllocs()
	for b.Loop() {
		c.Classify(sql, "sbtest")
	}
}

func BenchmarkCacheHitPointSelectParallel(b *testing.B) {
	c := NewCache(1024)
	c.Classify([]byte("SELECT c FROM sbtest1 WHERE id=1"), "sbtest")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		sql := []byte(pointSelect)
		for pb.Next() {
			c.Classify(sql, "sbtest")
		}
	})
}

func BenchmarkCacheKeyPointSelect(b *testing.B) {
	sql := []byte(pointSelect)
	var buf [512]byte
	b.ReportAllocs()
	for b.Loop() {
		cacheKey(buf[:0], sql, "sbtest")
	}
}

func BenchmarkClassifyPointSelect(b *testing.B) {
	sql := []byte(pointSelect)
	b.ReportAllocs()
	for b.Loop() {
		Classify(sql, "sbtest")
	}
}

func BenchmarkClassifyJoin5(b *testing.B) {
	sql := []byte(join5)
	b.ReportAllocs()
	for b.Loop() {
		Classify(sql, "db")
	}
}

func BenchmarkCacheHitJoin5(b *testing.B) {
	c := NewCache(1024)
	sql := []byte(join5)
	c.Classify(sql, "db")
	b.ReportAllocs()
	for b.Loop() {
		c.Classify(sql, "db")
	}
}
