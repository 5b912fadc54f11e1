package qosd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"pisanix.io/pisanix/config"
)

// DaemonConfigPath is where pisa-controller serves the daemon configuration
// (Pisanix's URL; the original daemon asked for a different one).
const DaemonConfigPath = "/apis/configs.database-mesh.io/v1alpha1/daemonconfigs"

// versionHeader carries the config's content version in the controller's answers.
const versionHeader = "X-Pisanix-Config-Version"

const maxConfigBytes = 16 << 20

// Source delivers daemon configurations. Watch calls emit with the current
// configuration and then with every change (and fail with every error, after
// which the last configuration stays in force) until ctx ends.
type Source interface {
	Watch(ctx context.Context, emit func(cfg *config.DaemonConfig, version string), fail func(error)) error
	String() string
}

// ParseDaemonConfig decodes a daemon config: TOML when name ends in .toml,
// JSON otherwise. It does not validate; Reconciler.Apply does.
func ParseDaemonConfig(data []byte, name string) (*config.DaemonConfig, error) {
	var c config.DaemonConfig
	if strings.EqualFold(filepath.Ext(name), ".toml") {
		d := toml.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		if err := d.Decode(&c); err != nil {
			var de *toml.DecodeError
			if errors.As(err, &de) {
				row, col := de.Position()
				return nil, fmt.Errorf("%s:%d:%d: %w", name, row, col, err)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &c, nil
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

func contentVersion(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// FileSource reads a local JSON or TOML file and re-reads it every Interval.
type FileSource struct {
	Path     string
	Interval time.Duration
}

func (s FileSource) String() string { return "file " + s.Path }

// Watch implements Source.
func (s FileSource) Watch(ctx context.Context, emit func(*config.DaemonConfig, string), fail func(error)) error {
	have := ""
	for {
		data, err := os.ReadFile(s.Path)
		switch {
		case err != nil:
			fail(fmt.Errorf("read daemon config: %w", err))
		case contentVersion(data) != have:
			c, err := ParseDaemonConfig(data, s.Path)
			if err != nil {
				fail(err)
			} else {
				emit(c, contentVersion(data))
			}
			have = contentVersion(data)
		}
		if err := sleep(ctx, s.Interval); err != nil {
			return err
		}
	}
}

// ControllerSource long-polls pisa-controller for the daemon configuration.
// Against a controller without watch support (Pisanix's) it polls every
// Interval.
type ControllerSource struct {
	BaseURL  string // e.g. http://pisa-controller.pisa-system:8080
	Interval time.Duration
	Client   *http.Client
}

func (s ControllerSource) String() string { return "controller " + s.BaseURL }

// Watch implements Source.
func (s ControllerSource) Watch(ctx context.Context, emit func(*config.DaemonConfig, string), fail func(error)) error {
	have := ""
	for {
		start := time.Now()
		cfg, version, err := s.get(ctx, have)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			fail(err)
		case cfg != nil && version != have:
			have = version
			emit(cfg, version)
		}
		// A watch answers when something changed or after its timeout; an
		// immediate answer (an error, or a server that ignores watch) waits.
		if err != nil || cfg != nil && time.Since(start) < s.Interval/2 {
			if err := sleep(ctx, s.Interval); err != nil {
				return err
			}
		}
	}
}

// get does one long-poll request. It returns a nil config when nothing changed.
func (s ControllerSource) get(ctx context.Context, have string) (*config.DaemonConfig, string, error) {
	q := url.Values{}
	q.Set("watch", "true")
	q.Set("version", have)
	q.Set("timeoutSeconds", strconv.Itoa(int(max(s.Interval, 30*time.Second)/time.Second)))
	u := strings.TrimRight(s.BaseURL, "/") + DaemonConfigPath + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("daemon config request: %w", err)
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("get daemon config: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigBytes))
	if err != nil {
		return nil, "", fmt.Errorf("read daemon config: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		version := resp.Header.Get(versionHeader)
		if version == "" {
			version = contentVersion(body)
		}
		c, err := ParseDaemonConfig(body, "daemon config from "+s.BaseURL)
		if err != nil {
			return nil, "", err
		}
		return c, version, nil
	case http.StatusNotModified:
		return nil, have, nil
	default:
		return nil, "", fmt.Errorf("get daemon config: controller answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
