package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// ProxyTOML is a pisa-proxy configuration with the admin port on admin
// and one listener "app" on listen (user app, password password, schema
// gotest) in front of db as its one node.
func ProxyTOML(admin, listen int, password string, db *Server) string {
	return fmt.Sprintf(`[admin]
host = "127.0.0.1"
port = %d
[[proxy.config]]
name = "app"
listen_addr = "127.0.0.1:%d"
user = "app"
password = %q
db = "gotest"
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["n1"]
[[mysql.node]]
name = "n1"
host = "127.0.0.1"
user = %q
password = %q
db = "gotest"
port = %d
`, admin, listen, password, TestUser, TestPassword, db.Port())
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the caller binds it; callers that start servers
// retry on "address in use".
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is one running child. done is closed when it has exited; err is the
// result of Wait and may be read after done is closed.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts path with args, stdout and stderr appended to logPath.
//
// The child gets SIGKILL when the test binary dies (Pdeathsig), so a crashed
// test leaves no servers behind. Pdeathsig fires when the thread that forked
// the child exits, not the process, so the fork happens on a goroutine that
// keeps its OS thread locked until the child exits.
func StartProcess(path string, args []string, logPath string) (*Process, error) {
	return startProcess(path, args, logPath, nil)
}

// startProcess is StartProcess with files given to the child from fd 3 on.
func startProcess(path string, args []string, logPath string, files []*os.File) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log %s: %w", logPath, err)
	}
	defer logFile.Close()

	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(p.done)
		cmd := exec.Command(path, args...)
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		cmd.ExtraFiles = files
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("starting %s: %w", path, err)
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit status (Wait's result), valid once Done is closed.
func (p *Process) Err() error { return p.err }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Terminate sends SIGTERM and waits for the exit until ctx is done, then kills.
func (p *Process) Terminate(ctx context.Context) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGTERM to pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("pid %d did not exit after SIGTERM, killed: %w", p.cmd.Process.Pid, context.Cause(ctx))
	}
}

// tailFile returns about the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
