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
	// bytes is the estimated memory of the entries held; budget bounds it
	// (long statements make entries of kilobytes: a count alone let a
	// tenant's cache reach hundreds of MiB).
	bytes  atomic.Int64
	budget int64
	// sameHash makes every hash 0: tests use it to force collisions.
	sameHash bool
}

const ways = 4

type cacheSet [ways]atomic.Pointer[cacheEntry]

type cacheEntry struct {
	hash uint64
	key  string // db, 0, statement key
	info Info
	size int64 // estimated bytes, for the budget
}

// entryOverhead estimates an entry's fixed cost: the struct, its Info and
// the pointers to it.
const entryOverhead = 512

func (e *cacheEntry) estimate() int64 {
	n := entryOverhead + len(e.key) + len(e.info.Fingerprint) + len(e.info.Digest) + len(e.info.SetVar) + len(e.info.Pin)
	for _, t := range e.info.Tables {
		n += 32 + len(t.DB) + len(t.Name)
	}
	return int64(n)
}

// maxKeyLen bounds a cached key: longer texts (bulk inserts) are classified
// without the cache, which bounds its memory to about size*maxKeyLen.
const maxKeyLen = 8 << 10

// DefaultCacheBudget bounds a cache's entries to about 16 MiB: 16,384
// entries of ordinary statements fit, 16,384 of 8 KiB texts would not.
const DefaultCacheBudget = 16 << 20

// NewCache returns a cache of at least size entries (rounded up to a power
// of two, at least 4) within DefaultCacheBudget bytes.
func NewCache(size int) *Cache { return NewCacheBudget(size, DefaultCacheBudget) }

// NewCacheBudget is NewCache with the entries' memory bounded to about
// budget bytes.
func NewCacheBudget(size int, budget int64) *Cache {
	n := 1
	for n*ways < size {
		n *= 2
	}
	return &Cache{seed: maphash.MakeSeed(), sets: make([]cacheSet, n), mask: uint64(n - 1), budget: budget}
}

// Bytes is the estimated memory of the entries held.
func (c *Cache) Bytes() int64 { return c.bytes.Load() }

// ClassifyMode is Classify for a session in SQL mode m, parsing only
// what spend allows (nil: everything): a text the cache does not know is
// parsed when spend(len(sql)) says so, else it gets the lexical reading,
// Throttled. Texts read under NO_BACKSLASH_ESCAPES skip the cache: its key
// is built by a scanner that reads strings the default way.
func (c *Cache) ClassifyMode(sql []byte, currentDB string, m Mode, spend func(int) bool) Info {
	parse := func() Info {
		if spend != nil && !spend(len(sql)) {
			info := lexical(sql)
			info.Throttled = true
			return info
		}
		return ClassifyMode(sql, currentDB, m)
	}
	if m != 0 {
		return parse()
	}
	return c.classify(sql, currentDB, parse)
}

// Classify is the package-level Classify behind the cache. A nil *Cache
// classifies without caching.
func (c *Cache) Classify(sql []byte, currentDB string) Info {
	return c.classify(sql, currentDB, func() Info { return Classify(sql, currentDB) })
}

// classify looks sql up in the cache, parsing it (parse) when missing.
func (c *Cache) classify(sql []byte, currentDB string, parse func() Info) Info {
	if len(sql) > MaxParsed {
		return lexical(sql)
	}
	if c == nil {
		return parse()
	}
	var buf [512]byte
	key, ok := cacheKey(buf[:0], sql, currentDB)
	if !ok || len(key) > maxKeyLen {
		return parse()
	}
	h := maphash.Bytes(c.seed, key)
	if c.sameHash {
		h = 0
	}
	set := &c.sets[h&c.mask]
	if e := set.find(h, key); e != nil {
		return e.info
	}
	info := parse()
	if !info.noCache && !info.Throttled {
		e := &cacheEntry{hash: h, key: string(key), info: info}
		e.size = e.estimate()
		c.add(set, e)
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

// add puts e in a free way of set, or over a random one. Over the byte
// budget it only replaces an entry at least as large, so the cache keeps
// turning over within the budget. Two goroutines missing the same key at
// once may both add it; the copies age out.
func (c *Cache) add(set *cacheSet, e *cacheEntry) {
	if c.bytes.Load()+e.size <= c.budget {
		for w := range set {
			if set[w].Load() == nil && set[w].CompareAndSwap(nil, e) {
				c.bytes.Add(e.size)
				return
			}
		}
	}
	w := rand.IntN(ways)
	old := set[w].Load()
	if c.bytes.Load()+e.size > c.budget && (old == nil || old.size < e.size) {
		return // would grow past the budget
	}
	if set[w].CompareAndSwap(old, e) {
		c.bytes.Add(e.size - sizeOf(old))
	}
}

func sizeOf(e *cacheEntry) int64 {
	if e == nil {
		return 0
	}
	return e.size
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
