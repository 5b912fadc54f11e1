package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// CLIConn says where the mariadb CLI connects: always over TCP.
type CLIConn struct {
	Host     string // default 127.0.0.1
	Port     int
	User     string
	Password string
	Database string // optional
	// SSLCA, when set, makes the CLI use TLS and verify the server against
	// this CA file; otherwise it runs with --skip-ssl.
	SSLCA string
}

// CLIConn returns the connection for user to this server, with TLS
// verification against its CA when the server has TLS.
func (s *Server) CLIConn(user, pass, db string) CLIConn {
	c := CLIConn{Host: "127.0.0.1", Port: s.port, User: user, Password: pass, Database: db}
	if s.tls != nil {
		c.SSLCA = s.tls.CAFile
	}
	return c
}

// Args returns the connection options for the mariadb CLI, starting with
// --defaults-file=/dev/null so no my.cnf interferes.
func (c CLIConn) Args() []string {
	host := c.Host
	if host == "" {
		host = "127.0.0.1"
	}
	a := []string{
		"--defaults-file=/dev/null",
		"--protocol=TCP",
		"-h" + host,
		"-P" + strconv.Itoa(c.Port),
		"-u" + c.User,
		"--password=" + c.Password, // a bare -p would prompt when empty
	}
	if c.SSLCA != "" {
		a = append(a, "--ssl", "--ssl-ca="+c.SSLCA, "--ssl-verify-server-cert")
	} else {
		a = append(a, "--skip-ssl")
	}
	if c.Database != "" {
		a = append(a, c.Database)
	}
	return a
}

// CLICommand returns an exec.Cmd for the real mariadb CLI with conn's
// options followed by args (for example "--batch", "-e", "SELECT 1"). Use it
// when you need stdin or separate stdout and stderr.
func CLICommand(ctx context.Context, conn CLIConn, args ...string) (*exec.Cmd, error) {
	bin, err := lookBin("mariadb")
	if err != nil {
		return nil, fmt.Errorf("mariadb CLI: %w", err)
	}
	return exec.CommandContext(ctx, bin, append(conn.Args(), args...)...), nil
}

// RunCLI runs the mariadb CLI and returns its standard output. On failure the
// error carries the exit status and standard error.
func RunCLI(ctx context.Context, conn CLIConn, args ...string) (string, error) {
	cmd, err := CLICommand(ctx, conn, args...)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("mariadb %s: %w: %s",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
