package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// StartReplica starts a new instance with replication enabled (on top of
// opts) and makes it a GTID replica of primary, which must have been started
// with Options.Replication. It returns once the replica has caught up.
func StartReplica(ctx context.Context, primary *Server, opts Options) (*Server, error) {
	opts.Replication = true
	r, err := StartMariaDB(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := r.ReplicateFrom(ctx, primary); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// ReplicateFrom makes s a GTID replica of primary (CHANGE MASTER TO ...
// MASTER_USE_GTID=slave_pos; START SLAVE), connecting as the gotest user,
// and waits until it has applied everything primary has binlogged so far.
// Both servers need Options.Replication.
func (s *Server) ReplicateFrom(ctx context.Context, primary *Server) error {
	if !s.opts.Replication || !primary.opts.Replication {
		return errors.New("replication needs both servers started with Options.Replication (WithReplication)")
	}
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, "+
		"MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
		primary.Port(), TestUser, TestPassword)
	if err := s.Exec(ctx, "STOP SLAVE", change, "START SLAVE"); err != nil {
		return fmt.Errorf("setting up replication from %s: %w", primary.Addr(), err)
	}
	return s.WaitCaughtUp(ctx, primary)
}

// WaitCaughtUp waits until s has applied every transaction in primary's
// binary log at the time of the call (MASTER_GTID_WAIT), and its I/O thread
// is connected. It fails early when a replication thread stops.
func (s *Server) WaitCaughtUp(ctx context.Context, primary *Server) error {
	var pos string
	if err := primary.root.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return fmt.Errorf("reading gtid_binlog_pos of %s: %w", primary.Addr(), err)
	}
	for {
		// Wait in one-second slices so replication errors surface quickly.
		var res sql.NullInt64
		if err := s.root.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 1)", pos).Scan(&res); err != nil {
			return fmt.Errorf("waiting for GTID %q on %s: %w", pos, s.Addr(), err)
		}
		st, err := s.ReplicaStatus(ctx)
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("%s is not a replica", s.Addr())
		}
		if st["Slave_SQL_Running"] != "Yes" {
			return fmt.Errorf("replica %s: SQL thread not running: %s", s.Addr(), st["Last_SQL_Error"])
		}
		if ioErr := st["Last_IO_Error"]; st["Slave_IO_Running"] == "No" {
			return fmt.Errorf("replica %s: I/O thread not running: %s", s.Addr(), ioErr)
		}
		if res.Valid && res.Int64 == 0 && st["Slave_IO_Running"] == "Yes" {
			return nil
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("replica %s not caught up with %q: %w (I/O: %s %s)",
				s.Addr(), pos, err, st["Slave_IO_Running"], st["Last_IO_Error"])
		}
	}
}

// ReplicaStatus returns SHOW SLAVE STATUS as column name to value, or nil
// when s is not a replica.
func (s *Server) ReplicaStatus(ctx context.Context) (map[string]string, error) {
	rows, err := s.root.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("SHOW SLAVE STATUS on %s: %w", s.Addr(), err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("SHOW SLAVE STATUS columns: %w", err)
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("scanning SHOW SLAVE STATUS: %w", err)
	}
	st := make(map[string]string, len(cols))
	for i, c := range cols {
		st[c] = vals[i].String
	}
	return st, rows.Err()
}

// StopSQLThread stops applying replicated events (STOP SLAVE SQL_THREAD);
// the I/O thread keeps fetching, so the replica lags on purpose.
func (s *Server) StopSQLThread(ctx context.Context) error {
	return s.Exec(ctx, "STOP SLAVE SQL_THREAD")
}

// StartSQLThread resumes applying replicated events.
func (s *Server) StartSQLThread(ctx context.Context) error {
	return s.Exec(ctx, "START SLAVE SQL_THREAD")
}

// StopReplication stops replication and forgets the primary (STOP SLAVE;
// RESET SLAVE ALL), for promoting a replica.
func (s *Server) StopReplication(ctx context.Context) error {
	return s.Exec(ctx, "STOP SLAVE", "RESET SLAVE ALL")
}

// SetReadOnly sets the global read_only flag. Accounts with the READ_ONLY
// ADMIN privilege (root, gotest) can still write.
func (s *Server) SetReadOnly(ctx context.Context, on bool) error {
	v := "OFF"
	if on {
		v = "ON"
	}
	return s.Exec(ctx, "SET GLOBAL read_only = "+v)
}
