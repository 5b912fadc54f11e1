package supervisor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// TestBackendKilledUnderWriteLoad: the backend is SIGKILLed while clients
// commit through the proxy, then restarted. Every commit the proxy
// acknowledged is in the table afterwards (it never reports success for a
// commit the server did not make), clients of the dead node get errors
// rather than hangs, and once the node is back the pool heals: commits
// succeed again without restarting the proxy.
func TestBackendKilledUnderWriteLoad(t *testing.T) {
	srv := testenv.MariaDB(t, testenv.WithArgs("--innodb-flush-log-at-trx-commit=1")) // durable commits
	mustExec(t, srv.RootDB(), "CREATE TABLE gotest.commits (w INT, seq INT, PRIMARY KEY (w, seq))")
	p := startProxy(t, listenerTOML("main", []string{"n1"}, "")+nodeTOML("n1", srv, ""))
	db := p.db(t, "main", "")
	db.SetMaxOpenConns(8)

	const writers = 8
	var (
		acked        [writers][]int
		total        atomic.Int64
		failed       atomic.Int64
		restarted    atomic.Bool
		afterRestart atomic.Int64
		stop         = make(chan struct{})
		wg           sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := db.ExecContext(ctx, "INSERT INTO commits (w, seq) VALUES (?, ?)", w, seq)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				acked[w] = append(acked[w], seq)
				total.Add(1)
				if restarted.Load() {
					afterRestart.Add(1)
				}
			}
		}()
	}
	waitFor(t, 20*time.Second, "commits before the kill", func() bool { return total.Load() >= 200 })
	srv.Kill()
	waitFor(t, 20*time.Second, "every writer failing on the dead node", func() bool { return failed.Load() >= writers })
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	waitFor(t, 30*time.Second, "commits after the restart", func() bool { return afterRestart.Load() >= 100 })
	close(stop)
	wg.Wait()

	rows, err := srv.RootDB().Query("SELECT w, seq FROM gotest.commits")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]bool{}
	for rows.Next() {
		var w, seq int
		if err := rows.Scan(&w, &seq); err != nil {
			t.Fatal(err)
		}
		stored[fmt.Sprint(w, "/", seq)] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for w := range writers {
		for _, seq := range acked[w] {
			if !stored[fmt.Sprint(w, "/", seq)] {
				missing++
			}
		}
	}
	t.Logf("%d commits acknowledged (%d after the restart), %d failed, %d rows stored", total.Load(), afterRestart.Load(), failed.Load(), len(stored))
	if missing > 0 {
		t.Fatalf("%d acknowledged commits are missing after the crash", missing)
	}
}
