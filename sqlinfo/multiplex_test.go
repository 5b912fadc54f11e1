package sqlinfo

import "testing"

func TestMultiplexClassification(t *testing.T) {
	cases := []struct {
		sql               string
		pin               string
		replay, oneShot   bool
		setVar            string
		readsLastInsertID bool
	}{
		{sql: "SELECT * FROM t WHERE id = 1"},
		{sql: "SELECT @x, @@sql_mode"},
		{sql: "SELECT @x := 1", pin: PinUserVariable},
		{sql: "SELECT 1 INTO @x", pin: PinUnparsed}, // the parser reads only SELECT ... INTO @x FROM
		{sql: "SELECT CONNECTION_ID()", pin: PinConnectionID},
		{sql: "SELECT GET_LOCK('a', 1)", pin: PinNamedLock},
		{sql: "SELECT LAST_INSERT_ID()", readsLastInsertID: true},
		{sql: "SELECT @@identity", readsLastInsertID: true},
		{sql: "SELECT LAST_INSERT_ID(5)", pin: PinLastInsertID},
		{sql: "CREATE TEMPORARY TABLE t (a int)", pin: PinTemporaryTable},
		{sql: "LOCK TABLES t READ", pin: PinLockTables},
		{sql: "FLUSH TABLES WITH READ LOCK", pin: PinLockTables},
		{sql: "CALL p()", pin: PinCall},
		{sql: "SET autocommit = 0", replay: true, setVar: "autocommit"},
		{sql: "SET SESSION sql_mode = 'ANSI'", replay: true, setVar: "sql_mode"},
		{sql: "SET @@session.time_zone = '+00:00'", replay: true, setVar: "time_zone"},
		{sql: "SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", replay: true},
		{sql: "SET @x = 1", replay: true},
		{sql: "SET @x = @x + 1", replay: true},
		{sql: "SET @x = NOW()", pin: PinSet},
		{sql: "SET @save = @@max_allowed_packet", pin: PinSet}, // another connection may have another
		{sql: "SET @save = @@sql_mode, sql_mode = ''", replay: true},
		{sql: "SET @w = CONCAT(@v, '-', @@time_zone)", replay: true},
		{sql: "SET @x = (SELECT a FROM t)", pin: PinSet},
		{sql: "SET @x = f()", pin: PinSet},
		{sql: "SET GLOBAL max_connections = 10"},
		{sql: "SET GLOBAL max_connections = 10, SESSION sql_mode = ''", pin: PinSet},
		{sql: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", oneShot: true},
		{sql: "SET TRANSACTION READ ONLY", oneShot: true},
		{sql: "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", replay: true, setVar: "tx_isolation"},
		{sql: "SET a = 1; SELECT 1", pin: PinSet},
		{sql: "SET NAMES utf8mb4", replay: true},
		{sql: "SET PASSWORD = PASSWORD('x')"},
		{sql: "HANDLER t OPEN", pin: PinUnparsed},
		{sql: "SELECT 1 FROM t WHERE a = 'x' ORDER BY 1 LIMIT 1 PROCEDURE ANALYSE()", pin: ""},
	}
	for _, c := range cases {
		i := Classify([]byte(c.sql), "db")
		if i.Pin != c.pin || i.Replay != c.replay || i.OneShot != c.oneShot || i.SetVar != c.setVar || i.ReadsLastInsertID != c.readsLastInsertID {
			t.Errorf("%s: pin %q replay %v oneShot %v setVar %q readsLastID %v; want %q %v %v %q %v", c.sql,
				i.Pin, i.Replay, i.OneShot, i.SetVar, i.ReadsLastInsertID, c.pin, c.replay, c.oneShot, c.setVar, c.readsLastInsertID)
		}
	}
}
