package session

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
)

// FuzzExecuteParams drives the decoding of a COM_STMT_EXECUTE's parameter
// block under multiplexing (stmtCommand): the statement id swapped for
// the backend's, the new-params-bound types remembered, and types the
// client sent before put back into an execution that relies on them.
// The command and its bytes, the statement's parameter count and the
// types known before come from the fuzzer. Invariants: no panic; the
// command is answered with an unknown-statement error or goes out under
// the backend's id; a rewritten execution is the client's with its types
// inserted after the NULL bitmap and nothing else changed.
func FuzzExecuteParams(f *testing.F) {
	exec := func(flags byte, bitmap []byte, bound byte, types []byte, values []byte) []byte {
		b := []byte{mysql.COM_STMT_EXECUTE, 1, 0, 0, 0, flags, 1, 0, 0, 0}
		b = append(append(b, bitmap...), bound)
		return append(append(b, types...), values...)
	}
	f.Add(uint8(0), uint16(1), []byte(nil), exec(0, []byte{0}, 1, []byte{mysql.MYSQL_TYPE_LONG, 0}, []byte{7, 0, 0, 0}))
	f.Add(uint8(0), uint16(1), []byte{mysql.MYSQL_TYPE_LONG, 0}, exec(0, []byte{0}, 0, nil, []byte{7, 0, 0, 0}))
	f.Add(uint8(0), uint16(9), bytes.Repeat([]byte{mysql.MYSQL_TYPE_VAR_STRING, 0}, 9), exec(1, []byte{0, 0}, 0, nil, []byte{1, 'a'}))
	f.Add(uint8(4), uint16(2), bytes.Repeat([]byte{mysql.MYSQL_TYPE_LONGLONG, 0}, 2), exec(0, []byte{3}, 0, nil, nil))
	f.Add(uint8(1), uint16(0), []byte(nil), []byte{mysql.COM_STMT_FETCH, 1, 0, 0, 0, 10, 0, 0, 0})
	f.Add(uint8(2), uint16(0), []byte(nil), []byte{mysql.COM_STMT_SEND_LONG_DATA, 1, 0, 0, 0, 0, 0, 'x'})
	f.Add(uint8(3), uint16(0), []byte(nil), []byte{mysql.COM_STMT_RESET, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(0), uint16(3), []byte(nil), []byte{mysql.COM_STMT_EXECUTE, 1, 0, 0})
	f.Fuzz(func(t *testing.T, mode uint8, params uint16, known, payload []byte) {
		if len(payload) == 0 {
			return // dispatch answers an empty command before this
		}
		cmds := [...]byte{mysql.COM_STMT_EXECUTE, mysql.COM_STMT_FETCH, mysql.COM_STMT_SEND_LONG_DATA, mysql.COM_STMT_RESET}
		payload = append([]byte(nil), payload...)
		payload[0] = cmds[mode&3]
		more := mode&4 != 0
		// Types known from an earlier execution are 2 bytes a parameter.
		var types string
		if len(known) > 0 && params > 0 {
			types = string(bytes.Repeat(known, 2*int(params)/len(known)+1)[:2*int(params)])
		}
		be := &backend.Conn{}
		bst := &backend.Stmt{ID: 0x0a0b0c0d}
		if mode&8 == 0 {
			bst.Types = types // this connection was given them already
		}
		st := &muxStmt{sql: "SELECT ?", params: int(params), types: types, on: be, gen: be.StmtGen, be: bst}
		s := &Session{env: &Env{Multiplex: true}, stmts: map[uint32]*muxStmt{1: st}, lastPrepared: 1}
		s.primary.conn = be
		sent := append([]byte(nil), payload...)

		out, got, e, err := s.stmtCommand(payload, more)
		id, ok := stmtID(sent)
		switch {
		case err != nil:
			t.Fatalf("no backend I/O, yet %v", err)
		case e != nil && e.Code == mysql.ER_UNKNOWN_STMT_HANDLER:
			if ok && (id == 1 || id == lastStmt) {
				t.Fatalf("statement %d is known, yet %v", id, e)
			}
			return
		case e != nil:
			if !more || payload[0] != mysql.COM_STMT_EXECUTE {
				t.Fatalf("unexpected refusal %v", e)
			}
			return
		case !ok || id != 1 && id != lastStmt || got != st:
			t.Fatalf("command %x ran as statement %v", sent, got)
		}
		if len(out) < 5 || out[0] != sent[0] || binary.LittleEndian.Uint32(out[1:5]) != bst.ID {
			t.Fatalf("command %x went out as %x, not under the backend's id", sent, out)
		}
		if len(out) == len(sent) {
			if !bytes.Equal(out[5:], sent[5:]) {
				t.Fatalf("command %x went out changed: %x", sent, out)
			}
			return
		}
		// Rewritten: the known types inserted, flagged as new-params-bound.
		bound := 1 + 4 + 1 + 4 + (st.params+7)/8
		want := append(append(append(append([]byte(nil), out[:bound]...), 1), types...), sent[bound+1:]...)
		if sent[0] != mysql.COM_STMT_EXECUTE || more || types == "" || !bytes.Equal(out, want) || bst.Types != types {
			t.Fatalf("execution %x of %d parameters (types %x) went out as %x", sent, params, types, out)
		}
	})
}
