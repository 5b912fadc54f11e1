package session

import (
	"context"
	"slices"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/audit"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// audit hands a statement to the listener's audit log when its filters
// want it. backend is the node that ran it; denied the reason the proxy
// refused it ("" when it ran).
// hot path: with no audit log configured, one nil check.
func (s *Session) audit(info *sqlinfo.Info, db string, start time.Time, out wire.Outcome, backend, denied string) {
	lg := s.env.Live.Load().Audit
	if lg == nil {
		return
	}
	if len(info.Executes) > 0 {
		info = s.withExecuted(info)
	}
	kind := info.Kind.String()
	if !lg.Wants(s.user, kind, info.Tables, out.ErrCode) && !s.wantsOtherKind(lg, info, out.ErrCode) {
		return
	}
	lg.Log(context.Background(), audit.Record{
		Time: start, Tenant: s.env.Tenant, User: s.user, Client: s.remote, ConnID: s.id, DB: db,
		Kind: kind, Fingerprint: info.Fingerprint, Digest: info.Digest, Tables: info.Tables,
		Duration: time.Since(start), RowsAffected: out.AffectedRows, RowsSent: out.Rows,
		ErrorCode: out.ErrCode, Denied: denied, Backend: backend,
	})
}

// maxPrepared bounds the statements a session remembers (servers cap
// max_prepared_stmt_count at about 16k per server, in total).
const maxPrepared = 16384

// remember keeps what a prepared statement does, for the metrics and the
// audit records of its executions.
func (s *Session) remember(id uint32, info *sqlinfo.Info) {
	if s.prepared == nil {
		s.prepared = map[uint32]*sqlinfo.Info{}
	}
	if len(s.prepared) < maxPrepared {
		kept := *info
		s.prepared[id] = &kept
	} else {
		s.pin(pinManyPrepared, nil) // its close cannot be followed
	}
	s.lastPrepared = id
}

// stmtID reads the statement id of a COM_STMT_* payload.
func stmtID(payload []byte) (uint32, bool) {
	if len(payload) < 5 {
		return 0, false
	}
	return uint32(payload[1]) | uint32(payload[2])<<8 | uint32(payload[3])<<16 | uint32(payload[4])<<24, true
}

// lastStmt is MariaDB's statement id for "the statement prepared last".
const lastStmt = 0xFFFFFFFF

// execute runs COM_STMT_EXECUTE, described by what was prepared and
// checked again under the current access rules.
func (s *Session) execute(payload []byte, more bool) error {
	id, _ := stmtID(payload)
	if id == lastStmt {
		id = s.lastPrepared
	}
	info := s.prepared[id]
	if u := s.accessUser(); u == nil || u.Restricted {
		check := info
		if check == nil {
			check = &sqlinfo.Info{Unverifiable: true}
		}
		if d := u.Check(check); d != nil {
			return s.deny(d, more, info)
		}
	}
	kind := sqlinfo.KindExecute
	if info != nil {
		kind = info.Kind
	}
	k, isKill := s.killStmts[id]
	if isKill && (k.expr != "" || k.native) {
		if more {
			return s.refuseKill(more)
		}
		if k.native {
			return s.kill(k.id, k.query)
		}
		return s.killByExpression([]byte(k.expr))
	}
	if isKill {
		if e := s.killStillMeant(k); e != nil {
			return s.clientError(e)
		}
	}
	payload, st, done, err := s.readyStmt(payload, more)
	if done {
		return err
	}
	if info != nil && info.ReadsLastInsertID && s.env.Multiplex {
		// The INSERT may have run on another of the pool's connections.
		if err := s.alignLastInsertID(s.primary.conn); err != nil {
			return err
		}
	}
	start, db := time.Now(), s.db
	s.relayMeta = s.meta[id]
	out, err := s.exchange(&s.primary, payload, more, wire.RespResult, kind)
	if isKill && err == nil && out.ErrCode == 0 && !k.query {
		k.target.Close() // as MySQL closes a killed connection's socket
	}
	if st != nil && err == nil {
		s.followCursor(st, len(payload) > 5 && payload[5]&0x07 != 0 && out.ErrCode == 0 && out.Status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0)
	}
	if info != nil {
		if err != nil {
			out.ErrCode = errServerLost
		}
		s.audit(info, db, start, out, s.primary.conn.Endpoint.Name, "")
		if err == nil {
			s.observe(nil, info, out.ErrCode == 0)
			s.afterExecute(info, out)
		}
		if err == nil && (info.SetsSQLMode || info.SetsCharset || info.ChangesState) {
			return s.refreshReading(s.primary.conn)
		}
	}
	return err
}

// closeStmt forgets a statement and forwards COM_STMT_CLOSE (no response);
// with multiplexing the statement stays on its connections (stmts.go).
func (s *Session) closeStmt(payload []byte, more bool) error {
	if id, ok := stmtID(payload); ok {
		delete(s.prepared, id)
		delete(s.killStmts, id)
		delete(s.meta, id)
	}
	if s.muxStmts() {
		s.closeMuxStmt(payload)
		if more {
			if err := s.client.DiscardRest(); err != nil {
				return &wire.IOError{Side: wire.ClientSide, Err: err}
			}
		}
		return nil
	}
	return s.send(&s.primary, payload, more)
}

// withExecuted describes a text running SQL-level EXECUTE with the kinds
// and tables of what it executes, so that the audit log's filters see them.
func (s *Session) withExecuted(info *sqlinfo.Info) *sqlinfo.Info {
	merged := *info
	merged.Tables = slices.Clone(info.Tables)
	for _, name := range info.Executes {
		p, ok := s.sqlPrepared[name]
		if !ok {
			continue
		}
		merged.Kinds |= p.Kinds
		for _, t := range p.Tables {
			if !slices.Contains(merged.Tables, t) {
				merged.Tables = append(merged.Tables, t)
			}
		}
	}
	return &merged
}

// wantsOtherKind: a text is audited when the log wants the kind of any of
// its statements (or of what it prepares or executes), not only the first.
func (s *Session) wantsOtherKind(lg *audit.Logger, info *sqlinfo.Info, errCode uint16) bool {
	if info.Kinds == 1<<info.Kind {
		return false
	}
	for k := 0; k < sqlinfo.NumKinds; k++ {
		if info.Kinds&(1<<k) != 0 && sqlinfo.Kind(k) != info.Kind && lg.Wants(s.user, sqlinfo.Kind(k).String(), info.Tables, errCode) {
			return true
		}
	}
	return false
}
