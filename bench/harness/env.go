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
	proxy    string // what the pisa-proxy binary says of its version (the commit it was built from)
	tiproxy  string // git describe of the TiProxy checkout; "" when tiproxy is not built
}

func collectEnv(ctx context.Context, proxyBin string) environment {
	e := environment{
		uname:    firstLine(ctx, "uname", "-a"),
		cpu:      cpuModel(),
		sysbench: firstLine(ctx, "sysbench", "--version"),
		// The binary's own word (make build stamps the commit): the
		// checkout's HEAD may have moved since it was built.
		proxy: firstLine(ctx, proxyBin, "version"),
	}
	if bin, err := lookBin("haproxy"); err == nil {
		e.haproxy = firstLine(ctx, bin, "-v")
	}
	return e
}

// firstLine runs a command and returns the first line of its output, or a
// note on why it could not.
func firstLine(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput() // pisa-proxy prints its version on stderr
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
