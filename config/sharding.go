package config

import (
	"fmt"
	"strings"
)

// Sharding algorithms: the shard of a key value is value mod count (mod) or
// CRC32 of the value mod count (crc32mod), as Pisa-Proxy v0.3 placed rows.
const (
	ShardingMod      = "mod"
	ShardingCRC32Mod = "crc32mod"
	// shardingCRC32ModDoc is how Pisa-Proxy's standalone guide spelled
	// crc32mod ("mod | crc32_mod"); read as crc32mod.
	shardingCRC32ModDoc = "crc32_mod"
)

// ShardingRule is one `[[proxy.config.sharding]]` table of Pisa-Proxy v0.3:
// a logical table spread over physical tables and nodes by one shard key.
// Exactly one of the three strategies is given:
//
//   - table_strategy: table_name_00000 ... (sharding_count of them) in the
//     database of actual_datanodes[0];
//   - database_strategy: one table per node of actual_datanodes, the node
//     chosen by the key;
//   - database_table_strategy: both, by two columns.
//
// The rules are read and checked so that a Pisa-Proxy file names its
// problems precisely, but a listener with any is refused at load: this
// proxy does not route by them yet, and serving the logical table unsharded
// would read and write the wrong tables.
type ShardingRule struct {
	TableName       string   `toml:"table_name" json:"table_name"`
	ActualDatanodes []string `toml:"actual_datanodes" json:"actual_datanodes"`
	// BindingTables and BroadcastTables are accepted as Pisa-Proxy did
	// (its documentation marks them "not supported yet").
	BindingTables         []string          `toml:"binding_tables,omitempty" json:"binding_tables,omitempty"`
	BroadcastTables       []string          `toml:"broadcast_tables,omitempty" json:"broadcast_tables,omitempty"`
	TableStrategy         *ShardingStrategy `toml:"table_strategy,omitempty" json:"table_strategy,omitempty"`
	DatabaseStrategy      *ShardingStrategy `toml:"database_strategy,omitempty" json:"database_strategy,omitempty"`
	DatabaseTableStrategy *ShardingStrategy `toml:"database_table_strategy,omitempty" json:"database_table_strategy,omitempty"`
}

// ShardingStrategy holds the keys of every strategy; which ones a strategy
// needs depends on where it stands (see ShardingRule): table_* and
// sharding_count for a table strategy, database_* for a database
// strategy, all five for a database-table strategy.
type ShardingStrategy struct {
	DatabaseShardingAlgorithmName string `toml:"database_sharding_algorithm_name,omitempty" json:"database_sharding_algorithm_name,omitempty"`
	DatabaseShardingColumn        string `toml:"database_sharding_column,omitempty" json:"database_sharding_column,omitempty"`
	TableShardingAlgorithmName    string `toml:"table_sharding_algorithm_name,omitempty" json:"table_sharding_algorithm_name,omitempty"`
	TableShardingColumn           string `toml:"table_sharding_column,omitempty" json:"table_sharding_column,omitempty"`
	ShardingCount                 int    `toml:"sharding_count,omitempty" json:"sharding_count,omitempty"`
	// AlgorithmExpression and AllowRangeQueryWithInlineSharding are
	// Pisa-Proxy's inline strategy, which it parsed and never routed by;
	// refused.
	AlgorithmExpression               string `toml:"algorithm_expression,omitempty" json:"algorithm_expression,omitempty"`
	AllowRangeQueryWithInlineSharding bool   `toml:"allow_range_query_with_inline_sharding,omitempty" json:"allow_range_query_with_inline_sharding,omitempty"`
}

// Strategy kinds, as the keys of ShardingRule name them.
const (
	StrategyTable         = "table_strategy"
	StrategyDatabase      = "database_strategy"
	StrategyDatabaseTable = "database_table_strategy"
)

// Strategy returns the rule's strategy and its key ("" and nil when none).
func (r *ShardingRule) Strategy() (string, *ShardingStrategy) {
	switch {
	case r.TableStrategy != nil:
		return StrategyTable, r.TableStrategy
	case r.DatabaseStrategy != nil:
		return StrategyDatabase, r.DatabaseStrategy
	case r.DatabaseTableStrategy != nil:
		return StrategyDatabaseTable, r.DatabaseTableStrategy
	}
	return "", nil
}

func (s *ShardingStrategy) applyDefaults() {
	if s.DatabaseShardingAlgorithmName == shardingCRC32ModDoc {
		s.DatabaseShardingAlgorithmName = ShardingCRC32Mod
	}
	if s.TableShardingAlgorithmName == shardingCRC32ModDoc {
		s.TableShardingAlgorithmName = ShardingCRC32Mod
	}
}

// validateSharding checks every rule of the listener, then refuses the
// listener: routing by the rules does not exist yet.
func (c *Config) validateSharding(key string, l *Listener, add addFunc) {
	if len(l.Sharding) == 0 {
		return
	}
	nodes := map[string]bool{}
	for _, n := range c.BackendNodes(l) {
		nodes[n.Name] = true
	}
	tables := map[string]bool{}
	names := make([]string, 0, len(l.Sharding))
	for i := range l.Sharding {
		r := &l.Sharding[i]
		rk := fmt.Sprintf("%s.sharding[%d]", key, i)
		if r.TableName == "" {
			add(rk+".table_name", "required")
		} else if t := strings.ToLower(r.TableName); tables[t] {
			add(rk+".table_name", "table %q has another rule already", r.TableName)
		} else {
			tables[t] = true
			names = append(names, r.TableName)
		}
		if len(r.ActualDatanodes) == 0 {
			add(rk+".actual_datanodes", "at least one node is required")
		}
		for j, n := range r.ActualDatanodes {
			if !nodes[n] {
				add(fmt.Sprintf("%s.actual_datanodes[%d]", rk, j), "node %q is not defined by any %s", n, nodeListName(l))
			}
		}
		given := 0
		for _, s := range []struct {
			kind string
			s    *ShardingStrategy
		}{{StrategyTable, r.TableStrategy}, {StrategyDatabase, r.DatabaseStrategy}, {StrategyDatabaseTable, r.DatabaseTableStrategy}} {
			if s.s != nil {
				given++
				s.s.validate(rk+"."+s.kind, s.kind, add)
			}
		}
		if given != 1 {
			add(rk, "needs exactly one of table_strategy, database_strategy, database_table_strategy, got %d", given)
		}
	}
	add(key+".sharding", "data sharding is not supported yet: this proxy cannot route %s by shard key, "+
		"and serving it unsharded would read and write the wrong tables; the listener is refused", quoteList(names))
}

// validate checks one strategy standing at key (of the given kind): the
// keys that kind needs are required, the others refused.
func (s *ShardingStrategy) validate(key, kind string, add addFunc) {
	if s.AlgorithmExpression != "" || s.AllowRangeQueryWithInlineSharding {
		add(key+".algorithm_expression", "inline sharding is not supported (Pisa-Proxy read it but never routed by it)")
	}
	db := kind == StrategyDatabase || kind == StrategyDatabaseTable
	table := kind == StrategyTable || kind == StrategyDatabaseTable
	for _, f := range []struct {
		name, value string
		needed      bool
	}{
		{"database_sharding_algorithm_name", s.DatabaseShardingAlgorithmName, db},
		{"database_sharding_column", s.DatabaseShardingColumn, db},
		{"table_sharding_algorithm_name", s.TableShardingAlgorithmName, table},
		{"table_sharding_column", s.TableShardingColumn, table},
	} {
		switch {
		case f.needed && f.value == "":
			add(key+"."+f.name, "required")
		case !f.needed && f.value != "":
			add(key+"."+f.name, "not a key of %s", kind)
		case f.needed && strings.HasSuffix(f.name, "_algorithm_name") && f.value != ShardingMod && f.value != ShardingCRC32Mod:
			add(key+"."+f.name, "%q is not one of %s, %s", f.value, ShardingMod, ShardingCRC32Mod)
		}
	}
	switch {
	case table && s.ShardingCount < 1:
		add(key+".sharding_count", "must be at least 1, got %d", s.ShardingCount)
	case !table && s.ShardingCount != 0:
		add(key+".sharding_count", "not a key of %s (the shards are the actual_datanodes)", kind)
	}
}

func nodeListName(l *Listener) string {
	if l.BackendType == BackendShardingSphereProxy {
		return "[[shardingsphere_proxy.node]]"
	}
	return "[[mysql.node]]"
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "its tables"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return "table " + q[0]
	}
	return "tables " + strings.Join(q, ", ")
}
