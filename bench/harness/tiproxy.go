package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tiproxyTag is the TiProxy release the target was written and checked
// against. The harness builds whatever the checkout holds and reports its
// `git describe`, warning when it is not this tag.
const tiproxyTag = "v26.3.1"

// tiproxyBuildTimeout bounds building TiProxy. A first build downloads its
// modules and compiles TiDB's parser and etcd client: 4m20s on the 2-core
// bench machine; later builds hit Go's build cache and take seconds.
const tiproxyBuildTimeout = 20 * time.Minute

// tiproxyNamespace is the namespace TiProxy creates at start and routes
// every user to when no other namespace claims it.
const tiproxyNamespace = "default"

// errNoTiProxySrc makes the target unavailable rather than the run fail:
// the Go module proxy does not serve TiProxy as a dependency, so the user
// provides a checkout.
var errNoTiProxySrc = errors.New("no checkout given: pass --tiproxy-src DIR with pingcap/tiproxy at " + tiproxyTag)

// tiproxyConfig is TiProxy's TOML: SQL and HTTP API on loopback, no PD (so
// the backends are the namespace's static list), no TLS on either side, no
// graceful waits (the harness stops it at the end of the run; nothing to
// drain), log at warn to stdout, which the harness captures in a file.
func tiproxyConfig(listenPort, apiPort int, workdir string) string {
	return fmt.Sprintf(`workdir = %q

[proxy]
addr = "127.0.0.1:%d"
# Empty: no PD, no TiDB discovery; backends come from the namespace's
# static instance list (posted to the HTTP API after start).
pd-addrs = ""
graceful-wait-before-shutdown = 0
graceful-close-conn-timeout = 0

[api]
addr = "127.0.0.1:%d"

[log]
level = "warn"
encoder = "tidb"
`, workdir, listenPort, apiPort)
}

// tiproxyNamespaceJSON is the namespace that sends every client to the
// backend at addr: TiProxy keeps static backends in a namespace, not in
// the config file.
func tiproxyNamespaceJSON(addr string) ([]byte, error) {
	type backend struct {
		Instances []string `json:"instances"`
	}
	ns := struct {
		Namespace string  `json:"namespace"`
		Backend   backend `json:"backend"`
	}{tiproxyNamespace, backend{[]string{addr}}}
	data, err := json.Marshal(ns)
	if err != nil {
		return nil, fmt.Errorf("encoding tiproxy namespace: %w", err)
	}
	return data, nil
}

// startTiProxy builds TiProxy from src into dir, starts it and points its
// default namespace at the backend.
func startTiProxy(ctx context.Context, dir, src, backendAddr string, log *slog.Logger) *target {
	t := &target{name: targetTiProxy, host: "127.0.0.1"}
	if src == "" {
		t.err = errNoTiProxySrc
		return t
	}
	bin, err := buildTiProxy(ctx, src, dir, log)
	if err != nil {
		t.err = err
		return t
	}
	var apiPort int
	if t.port, apiPort, t.err = freePorts(); t.err != nil {
		return t
	}
	cfgPath := filepath.Join(dir, "tiproxy.toml")
	cfg := tiproxyConfig(t.port, apiPort, filepath.Join(dir, "tiproxy-work"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.err = fmt.Errorf("writing tiproxy config: %w", err)
		return t
	}
	t.proc, t.err = startManaged(targetTiProxy, filepath.Join(dir, "tiproxy.log"), bin, "--config", cfgPath)
	if t.err == nil {
		t.err = setStaticBackend(ctx, t, apiPort, backendAddr)
	}
	if t.err == nil {
		t.err = waitMySQL(ctx, t)
	}
	if t.err == nil {
		log.Info("tiproxy ready", "addr", t.addr(), "pid", t.pid(), "backend", backendAddr)
	}
	return t
}

// tiproxyVersion is `git describe` of the checkout, or a note why not.
func tiproxyVersion(ctx context.Context, src string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", src, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return fmt.Sprintf("(git describe in %s: %v)", src, err)
	}
	return strings.TrimSpace(string(out))
}

// buildTiProxy runs `go build ./cmd/tiproxy` in src with the local
// toolchain (no toolchain download), stamping the version the way TiProxy's
// Makefile does so that `tiproxy -v` and its log say what was measured.
func buildTiProxy(ctx context.Context, src, dir string, log *slog.Logger) (string, error) {
	if st, err := os.Stat(filepath.Join(src, "cmd", "tiproxy")); err != nil || !st.IsDir() {
		return "", fmt.Errorf("--tiproxy-src %s: no cmd/tiproxy in it (want a pingcap/tiproxy checkout at %s)", src, tiproxyTag)
	}
	version := tiproxyVersion(ctx, src)
	if version != tiproxyTag {
		log.Warn("tiproxy checkout is not the release the target was checked against", "have", version, "want", tiproxyTag)
	}
	bin := filepath.Join(dir, "tiproxy")
	ctx, cancel := context.WithTimeout(ctx, tiproxyBuildTimeout)
	defer cancel()
	const pkg = "github.com/pingcap/tiproxy/pkg/util/versioninfo"
	cmd := exec.CommandContext(ctx, "go", "build",
		"-ldflags", fmt.Sprintf("-X %s.TiProxyVersion=%s", pkg, version),
		"-o", bin, "./cmd/tiproxy")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	log.Info("building tiproxy (minutes the first time)", "src", src, "version", version)
	started := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building tiproxy in %s: %w; output tail:\n%s", src, err, tail(out, 20))
	}
	log.Info("tiproxy built", "took", time.Since(started).Round(time.Second))
	return bin, nil
}

// setStaticBackend puts the backend into TiProxy's default namespace and
// commits it. The API answers 500 until the server has started, so the
// upsert is retried until then.
func setStaticBackend(ctx context.Context, t *target, apiPort int, backendAddr string) error {
	body, err := tiproxyNamespaceJSON(backendAddr)
	if err != nil {
		return err
	}
	base := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)) + "/api/admin/namespace/"
	err = pollReady(ctx, t, "its HTTP API", func(ctx context.Context) error {
		return tiproxyAPI(ctx, http.MethodPut, base+tiproxyNamespace, body)
	})
	if err != nil {
		return err
	}
	if err := tiproxyAPI(ctx, http.MethodPost, base+"commit", nil); err != nil {
		return fmt.Errorf("committing the tiproxy namespace: %w", err)
	}
	return nil
}

// tiproxyAPI sends one request to TiProxy's HTTP API and wants 200.
func tiproxyAPI(ctx context.Context, method, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
