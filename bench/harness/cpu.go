package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK)). Linux fixes it at 100 in its user ABI on the
// architectures this runs on, whatever the kernel's CONFIG_HZ, so it is not
// read at run time.
const clockTicks = 100

// cpuSpan is the CPU time a process used during one case.
type cpuSpan struct {
	d  time.Duration
	ok bool // false when not measured: no process of ours, or /proc unreadable
}

// perStmt is the CPU per statement in µs, or "–" when not measured.
func (c cpuSpan) perStmt(queries int64) string {
	if !c.ok || queries <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(c.d.Microseconds())/float64(queries))
}

// measureCPU reads pid's CPU time now and returns a function that reads it
// again and gives the difference. pid <= 0 measures nothing.
func measureCPU(pid int) func() cpuSpan {
	if pid <= 0 {
		return func() cpuSpan { return cpuSpan{} }
	}
	start, err := cpuTime(pid)
	if err != nil {
		return func() cpuSpan { return cpuSpan{} }
	}
	return func() cpuSpan {
		end, err := cpuTime(pid)
		if err != nil {
			return cpuSpan{}
		}
		return cpuSpan{d: end - start, ok: true}
	}
}

// cpuTime is the user plus system CPU time of all of pid's threads.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of pid %d: %w", pid, err)
	}
	d, err := parseStatCPU(string(data))
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return d, nil
}

// parseStatCPU takes utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat: no ')' in %.60q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range []string{f[utime], f[stime]} {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat: utime/stime %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
