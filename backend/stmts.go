package backend

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/wire"
)

// MaxStmtsPerConn bounds the server-side prepared statements the proxy
// keeps on one backend connection for multiplexing sessions: with the
// default pool_size of 64 a node holds at most 8,192, half of MariaDB's
// default max_prepared_stmt_count.
const MaxStmtsPerConn = 128

// stmtCache is the prepared statements of one connection by key (the
// session layer's: the text and the state it was prepared in), least
// recently used first out.
type stmtCache struct {
	m     map[string]*list.Element
	order list.List // of *Stmt, most recent at the front
}

// Stmt is a statement prepared on one connection.
type Stmt struct {
	key string
	ID  uint32 // the backend's
	// Types are the parameter types last sent to it (COM_STMT_EXECUTE's
	// new-params-bound types), which the server keeps for later executions.
	Types string
}

// Stmt returns the statement prepared here under key, or nil.
func (c *Conn) Stmt(key string) *Stmt {
	e, ok := c.stmts.m[key]
	if !ok {
		return nil
	}
	c.stmts.order.MoveToFront(e)
	return e.Value.(*Stmt)
}

// AddStmt records a statement prepared here under key. The least recently
// used one past MaxStmtsPerConn (or an older one under the same key) is
// closed: COM_STMT_CLOSE has no response, so it goes out with the next
// command.
func (c *Conn) AddStmt(key string, id uint32) *Stmt {
	if c.stmts.m == nil {
		c.stmts.m = map[string]*list.Element{}
	}
	if e, ok := c.stmts.m[key]; ok {
		c.closeStmt(c.stmts.order.Remove(e).(*Stmt))
	}
	st := &Stmt{key: key, ID: id}
	c.stmts.m[key] = c.stmts.order.PushFront(st)
	if c.stmts.order.Len() > MaxStmtsPerConn {
		c.closeStmt(c.stmts.order.Remove(c.stmts.order.Back()).(*Stmt))
	}
	c.StmtGen++
	return st
}

func (c *Conn) closeStmt(st *Stmt) {
	delete(c.stmts.m, st.key)
	var p [5]byte
	p[0] = mysql.COM_STMT_CLOSE
	binary.LittleEndian.PutUint32(p[1:], st.ID)
	c.IO.Seq = 0
	_ = c.IO.WritePacket(p[:]) // an error shows on the next command
	c.StmtGen++
}

// ForgetStmts: the server dropped them (COM_RESET_CONNECTION).
func (c *Conn) ForgetStmts() {
	c.stmts = stmtCache{}
	c.StmtGen++
}

// Prepare prepares sql on the proxy's behalf (a statement a multiplexing
// session prepared on another connection) and returns its id here. The
// response's definitions are read and dropped: the client has them.
func (c *Conn) Prepare(sql string) (uint32, error) {
	c.Issued++
	c.IO.Seq = 0
	if err := c.IO.WritePacketFlush(append([]byte{mysql.COM_STMT_PREPARE}, sql...)); err != nil {
		return 0, &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	p, err := c.IO.ReadPacket(nil, 1<<20)
	if err != nil {
		return 0, &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	switch {
	case len(p) > 0 && p[0] == mysql.ERR_HEADER:
		return 0, wire.ParseError(p)
	case len(p) < 9 || p[0] != mysql.OK_HEADER:
		return 0, &wire.IOError{Side: wire.BackendSide, Err: errors.New("malformed COM_STMT_PREPARE response")}
	}
	id := binary.LittleEndian.Uint32(p[1:5])
	cols, params := int(binary.LittleEndian.Uint16(p[5:7])), int(binary.LittleEndian.Uint16(p[7:9]))
	for _, n := range []int{params, cols} {
		if n == 0 {
			continue
		}
		for i := 0; i <= n; i++ { // the definitions, then EOF
			if _, err := c.IO.ReadPacket(nil, 1<<20); err != nil {
				return 0, &wire.IOError{Side: wire.BackendSide, Err: fmt.Errorf("reading prepare definitions: %w", err)}
			}
		}
	}
	return id, nil
}
