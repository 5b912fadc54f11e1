package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// environment describes the machine and the versions of what was measured.
type environment struct {
	uname    string
	cpu      string
	sysbench string
	haproxy  string
	mariadb  string
	commit   string
	tiproxy  string // git describe of the TiProxy checkout; "" when tiproxy is not built
}

func collectEnv(ctx context.Context) environment {
	e := environment{
		uname:    firstLine(ctx, "uname", "-a"),
		cpu:      cpuModel(),
		sysbench: firstLine(ctx, "sysbench", "--version"),
		commit:   firstLine(ctx, "git", "rev-parse", "--short", "HEAD"),
	}
	if bin, err := lookBin("haproxy"); err == nil {
		e.haproxy = firstLine(ctx, bin, "-v")
	}
	return e
}

// firstLine runs a command and returns the first line of its output, or a
// note on why it could not.
func firstLine(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return fmt.Sprintf("(%s: %v)", name, err)
	}
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	return string(line)
}

// cpuModel returns "<model name> x <logical CPUs>" from /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return fmt.Sprintf("(unknown: %v) x %d", err, runtime.NumCPU())
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return fmt.Sprintf("%s x %d", strings.TrimSpace(v), runtime.NumCPU())
		}
	}
	return fmt.Sprintf("(unknown model) x %d", runtime.NumCPU())
}
