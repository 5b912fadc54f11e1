package acl

import (
	"net/netip"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/sqlinfo"
)

func policy(t *testing.T, users ...config.User) *Policy {
	t.Helper()
	p, err := New("root", "rootpw", users, false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// check classifies sql in database shop and returns the denial reason.
func check(u *User, sql string) string {
	info := sqlinfo.Classify([]byte(sql), "shop")
	if d := u.Check(&info); d != nil {
		return d.Reason
	}
	return ""
}

func TestRules(t *testing.T) {
	p := policy(t,
		config.User{User: "app", Password: "a", Rules: []config.AccessRule{
			{Action: "deny", Databases: []string{"shop"}, Tables: []string{"secret", "card_*"}, Operations: []string{"select"}},
		}},
		config.User{User: "clerk", Password: "c", Rules: []config.AccessRule{
			{Action: "allow", Databases: []string{"shop"}, Tables: []string{"orders"}, Operations: []string{"select", "insert"}},
			{Action: "allow", Databases: []string{"shop"}, Tables: []string{"items"}, Operations: []string{"select"}},
		}},
		config.User{User: "reader", Password: "r", ReadOnly: true},
	)
	if u := p.User("root"); u.Restricted || check(u, "DROP DATABASE shop") != "" {
		t.Fatal("the listener's own user is unrestricted")
	}
	cases := []struct{ user, sql, want string }{
		{"app", "SELECT * FROM orders", ""},
		{"app", "SELECT * FROM SECRET", ReasonTable},
		{"app", "SELECT * FROM card_numbers", ReasonTable},
		{"app", "INSERT INTO secret VALUES (1)", ""},
		{"app", "RENAME TABLE secret TO open", ReasonTable}, // DDL on a denied table
		{"app", "SELECT * FROM other.secret", ""},
		{"app", "SELECT * FROM other.orders", ""},      // no allow rule: what is not denied is allowed...
		{"app", "GRANT ALL ON *.* TO x", ReasonServer}, // ...but server-wide statements need an allow rule
		{"app", "SHOW TABLES", ""},                     // one denied table does not hide the catalogue
		{"app", "SHOW TABLE STATUS FROM shop", ""},
		{"app", "DROP DATABASE shop", ReasonDatabase}, // it would drop the denied tables
		{"app", "ALTER DATABASE shop CHARACTER SET utf8mb4", ReasonDatabase},
		{"app", "DROP DATABASE other", ""},
		{"clerk", "SELECT table_name FROM information_schema.TABLES WHERE table_schema = DATABASE()", ""}, // as on MySQL
		{"clerk", "SHOW TABLES FROM information_schema", ""},
		{"clerk", "SELECT info FROM information_schema.PROCESSLIST", ReasonServer},
		{"clerk", "SELECT * FROM orders o JOIN items i ON o.id = i.order_id", ""},
		{"clerk", "INSERT INTO orders SELECT * FROM items", ""},
		{"clerk", "INSERT INTO items SELECT * FROM orders", ReasonTable},
		{"clerk", "UPDATE orders SET a = 1", ReasonTable},
		{"clerk", "SELECT * FROM customers", ReasonTable},
		{"clerk", "SHOW TABLES FROM shop", ""}, // names only, as information_schema shows them
		{"clerk", "SHOW TABLES FROM other", ReasonDatabase},
		{"clerk", "DROP DATABASE shop", ReasonDatabase}, // no rule covers every table
		{"clerk", "USE shop", ""},
		{"clerk", "USE other", ReasonDatabase},
		{"clerk", "FLUSH TABLES", ReasonServer},
		{"clerk", "SELECT 1", ""},
		{"clerk", "PREPARE s FROM @q", ReasonUnverifiable},
		{"reader", "SELECT * FROM anything.at_all", ""},
		{"reader", "SELECT * FROM t FOR UPDATE", ""},
		{"reader", "DELETE FROM t", ReasonReadOnly},
		{"reader", "CREATE DATABASE x", ReasonReadOnly},
		{"reader", "SET GLOBAL x = 1", ReasonReadOnly},
		{"reader", "SELECT * FROM t INTO OUTFILE '/tmp/x'", ReasonReadOnly},
		{"reader", "SET NAMES utf8mb4", ""},
	}
	for _, c := range cases {
		if got := check(p.User(c.user), c.sql); got != c.want {
			t.Errorf("%s: %q: got %q, want %q", c.user, c.sql, got, c.want)
		}
	}
	if d := p.User("clerk").CheckDB("other"); d == nil || d.Reason != ReasonDatabase {
		t.Errorf("CheckDB(other) = %+v", d)
	}
	if d := (*User)(nil).Check(&sqlinfo.Info{}); d == nil || d.Reason != ReasonRemoved {
		t.Errorf("a removed user must be refused: %+v", d)
	}
}

func TestSQLError(t *testing.T) {
	table := (&Denial{Reason: ReasonTable, Access: sqlinfo.Access{Table: sqlinfo.Table{DB: "shop", Name: "secret"}, Op: sqlinfo.OpSelect}}).SQLError("app", "10.0.0.1")
	if table.Code != mysql.ER_TABLEACCESS_DENIED_ERROR || table.State != "42000" ||
		table.Message != "SELECT command denied to user 'app'@'10.0.0.1' for table `shop`.`secret`" {
		t.Errorf("table: %+v", table)
	}
	db := (&Denial{Reason: ReasonDatabase, Access: sqlinfo.Access{Table: sqlinfo.Table{DB: "other"}, Op: sqlinfo.OpUse}}).SQLError("app", "h")
	if db.Code != mysql.ER_DBACCESS_DENIED_ERROR || db.State != "42000" || db.Message != "Access denied for user 'app'@'h' to database 'other'" {
		t.Errorf("db: %+v", db)
	}
	srv := (&Denial{Reason: ReasonServer, Access: sqlinfo.Access{Op: sqlinfo.OpOther}}).SQLError("app", "h")
	if srv.Code != mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR || srv.State != "42000" {
		t.Errorf("server: %+v", srv)
	}
}

func TestHosts(t *testing.T) {
	p := policy(t, config.User{User: "u", AllowedHosts: []string{"10.1.0.0/16", "127.0.0.1"}})
	u := p.User("u")
	for addr, want := range map[string]bool{"10.1.2.3": true, "10.2.0.1": false, "127.0.0.1": true, "::ffff:127.0.0.1": true, "127.0.0.2": false} {
		if got := u.HostAllowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
	if _, ok := p.Password("nobody"); ok {
		t.Error("unknown user has a password")
	}
}

func BenchmarkCheck(b *testing.B) {
	p, _ := New("root", "", []config.User{{User: "app", Rules: []config.AccessRule{
		{Action: "deny", Databases: []string{"shop"}, Tables: []string{"secret", "card_*"}},
		{Action: "allow", Databases: []string{"shop", "shop_*"}, Tables: []string{"*"}, Operations: []string{"select", "insert", "update"}},
	}}}, false)
	u := p.User("app")
	info := sqlinfo.Classify([]byte("SELECT * FROM orders o JOIN items i ON o.id = i.order_id WHERE o.id = 5"), "shop")
	b.ReportAllocs()
	for b.Loop() {
		if u.Check(&info) != nil {
			b.Fatal("denied")
		}
	}
}
