package sqlinfo

import (
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
)

// Cache remembers Classify results so that repeated statements skip the
// parser. It is keyed by the statement's literal-free key (see key.go) and
// the current database, so "... WHERE id=1" and "... WHERE id=2" share an
// entry. The current database is always part of the key: simpler than
// knowing, before the lookup, whether the text has unqualified names, at the
// cost of one entry per database for the same text.
//
// It is a set-associative array of immutable entries behind atomic
// pointers: a hit takes no lock and allocates nothing; a miss parses and
// replaces a random way of its set. Entries compare the full key, so a hash
// collision costs a miss, never a wrong Info. Safe for concurrent use.
//
// The Info returned shares its Tables slice with every caller of the same
// entry: callers must not modify it.
type Cache struct {
	seed maphash.Seed
	sets []cacheSet
	mask uint64
	// sameHash makes every hash 0: tests use it to force collisions.
	sameHash bool
}

const ways = 4

type cacheSet [ways]atomic.Pointer[cacheEntry]

type cacheEntry struct {
	hash uint64
	key  string // db, 0, statement key
	info Info
}

// maxKeyLen bounds a cached key: longer texts (bulk inserts) are classified
// without the cache, which bounds its memory to about size*maxKeyLen.
const maxKeyLen = 8 << 10

// NewCache returns a cache of at least size entries (rounded up to a power
// of two, at least 4).
func NewCache(size int) *Cache {
	n := 1
	for n*ways < size {
		n *= 2
	}
	return &Cache{seed: maphash.MakeSeed(), sets: make([]cacheSet, n), mask: uint64(n - 1)}
}

// ClassifyMode is Classify for a session in SQL mode m. Texts read under
// NO_BACKSLASH_ESCAPES skip the cache: its key is built by a scanner that
// reads strings the default way.
func (c *Cache) ClassifyMode(sql []byte, currentDB string, m Mode) Info {
	if m != 0 {
		return ClassifyMode(sql, currentDB, m)
	}
	return c.Classify(sql, currentDB)
}

// Classify is the package-level Classify behind the cache. A nil *Cache
// classifies without caching.
func (c *Cache) Classify(sql []byte, currentDB string) Info {
	if len(sql) > MaxParsed {
		return lexical(sql)
	}
	if c == nil {
		return Classify(sql, currentDB)
	}
	var buf [512]byte
	key, ok := cacheKey(buf[:0], sql, currentDB)
	if !ok || len(key) > maxKeyLen {
		return Classify(sql, currentDB)
	}
	h := maphash.Bytes(c.seed, key)
	if c.sameHash {
		h = 0
	}
	set := &c.sets[h&c.mask]
	if e := set.find(h, key); e != nil {
		return e.info
	}
	info := Classify(sql, currentDB)
	if !info.noCache {
		set.add(&cacheEntry{hash: h, key: string(key), info: info})
	}
	return info
}

// cacheKey is currentDB, a zero byte (no identifier holds one), then the
// statement key.
func cacheKey(dst, sql []byte, currentDB string) ([]byte, bool) {
	for i := 0; i < len(currentDB); i++ {
		if currentDB[i] == 0 {
			return dst, false
		}
	}
	dst = append(dst, currentDB...)
	dst = append(dst, 0)
	return appendKey(dst, sql)
}

func (s *cacheSet) find(h uint64, key []byte) *cacheEntry {
	for w := range s {
		if e := s[w].Load(); e != nil && e.hash == h && e.key == string(key) {
			return e
		}
	}
	return nil
}

// add puts e in a free way, or over a random one. Two goroutines missing
// the same key at once may both add it; the copies age out.
func (s *cacheSet) add(e *cacheEntry) {
	for w := range s {
		if s[w].Load() == nil && s[w].CompareAndSwap(nil, e) {
			return
		}
	}
	s[rand.IntN(ways)].Store(e)
}

// Len reports the number of entries held (for tests and metrics; it walks
// the whole cache).
func (c *Cache) Len() int {
	n := 0
	for i := range c.sets {
		for w := range c.sets[i] {
			if c.sets[i][w].Load() != nil {
				n++
			}
		}
	}
	return n
}
