// Package imagebuild makes the container images of pisa-proxy,
// pisa-controller and pisa-daemon without a container engine or a base
// image: each is one layer on an empty (scratch) base holding the
// statically linked binary, the build host's CA certificates and an
// /etc/passwd and /etc/group naming root and nonroot (65532), with OCI
// labels for the version, the commit and the source. Images are written as
// OCI archives (a tar of an OCI image layout), which podman load, docker
// load and ctr images import read.
//
// pisa-proxy and pisa-controller run as 65532:65532. pisa-daemon's
// default user is root: it loads BPF programs and changes qdiscs, which
// takes CAP_BPF and CAP_NET_ADMIN, and Kubernetes gives added capabilities
// to root only (a container of another user gets none in its effective
// set, there being no ambient capabilities in a pod spec). Its DaemonSet
// still drops every other capability.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Users of the images (Config.User) and the non-root uid and gid.
const (
	NonRootUID  = 65532
	NonRootUser = "65532:65532"
	RootUser    = "0:0"
)

// BinDir is where the binary sits in the image.
const BinDir = "/usr/local/bin"

// DefaultCACerts is Debian's CA bundle (package ca-certificates), the
// file Go's crypto/x509 reads first on Linux.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// OCI label keys.
const (
	LabelVersion     = "org.opencontainers.image.version"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelSource      = "org.opencontainers.image.source"
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
)

// Program is one image to build.
type Program struct {
	Name        string   // binary and image name, e.g. pisa-proxy
	Package     string   // Go package to build, relative to the module root
	Description string   // the description label
	User        string   // Config.User
	Cmd         []string // default arguments after the entrypoint
	Ports       []string // exposed ports, e.g. "3306/tcp"
}

// Programs returns the three images of the project.
func Programs() []Program {
	return []Program{
		{
			Name: "pisa-proxy", Package: "./cmd/pisa-proxy",
			Description: "Pisanix MySQL-protocol proxy (sidecar or standalone)",
			User:        NonRootUser, Cmd: []string{"sidecar"},
			Ports: []string{"3306/tcp", "5591/tcp"},
		},
		{
			Name: "pisa-controller", Package: "./cmd/pisa-controller",
			Description: "Pisanix control plane: CRD reconcilers, config server, sidecar-injection webhook",
			User:        NonRootUser,
			Ports:       []string{"8080/tcp", "8081/tcp", "8082/tcp", "9443/tcp"},
		},
		{
			Name: "pisa-daemon", Package: "./cmd/pisa-daemon",
			Description: "Pisanix node agent: eBPF and tc traffic QoS (needs root with CAP_BPF and CAP_NET_ADMIN)",
			User:        RootUser,
			Ports:       []string{"5592/tcp"},
		},
	}
}

// Stamp is what the binaries and the labels say about the build.
type Stamp struct {
	Version string // main.version and the version label
	Commit  string // main.commit and the revision label
	Source  string // the source label
}

// Options of an image.
type Options struct {
	Stamp
	CACerts string    // CA bundle to copy; DefaultCACerts when empty
	Arch    string    // GOARCH of the binary; runtime.GOARCH when empty
	Created time.Time // file times and the config's created; the Unix epoch when zero (reproducible)
}

func (o Options) withDefaults() Options {
	if o.CACerts == "" {
		o.CACerts = DefaultCACerts
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0).UTC()
	}
	return o
}

// BuildBinary builds p statically (CGO_ENABLED=0, -trimpath, stripped of
// the symbol table, version and commit stamped) for linux/arch into
// outDir, from the module at root, and returns the binary's path.
func BuildBinary(ctx context.Context, goCmd, root, outDir string, p Program, arch string, s Stamp) (string, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	out := filepath.Join(outDir, p.Name)
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", s.Version, s.Commit)
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", ldflags, "-o", out, p.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", p.Name, err, b)
	}
	return out, nil
}

// Image makes p's image from its binary.
func Image(p Program, binary string, o Options) (v1.Image, error) {
	o = o.withDefaults()
	layer, err := Layer(p, binary, o)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("%s: append layer: %w", p.Name, err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", p.Name, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Author = ""
	cf.History = []v1.History{{Created: v1.Time{Time: o.Created}, CreatedBy: "pisanix internal/imagebuild", Comment: p.Name + " " + o.Version}}
	cf.Config = v1.Config{
		User:       p.User,
		Entrypoint: []string{BinDir + "/" + p.Name},
		Cmd:        p.Cmd,
		WorkingDir: "/",
		Env:        []string{"PATH=" + BinDir, "SSL_CERT_FILE=" + DefaultCACerts},
		Labels: map[string]string{
			LabelTitle:       p.Name,
			LabelDescription: p.Description,
			LabelVersion:     o.Version,
			LabelRevision:    o.Commit,
			LabelSource:      o.Source,
		},
	}
	if len(p.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range p.Ports {
			cf.Config.ExposedPorts[port] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("%s: set config: %w", p.Name, err)
	}
	return img, nil
}

// Layer is the image's one layer (gzip-compressed, OCI media type).
func Layer(p Program, binary string, o Options) (v1.Layer, error) {
	o = o.withDefaults()
	tarBytes, err := layerTar(p, binary, o)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("%s: layer: %w", p.Name, err)
	}
	return l, nil
}

// Passwd and Group are the images' /etc/passwd and /etc/group.
const (
	Passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	Group  = "root:x:0:\nnonroot:x:65532:\n"
)

type entry struct {
	name     string
	mode     int64
	uid      int
	data     []byte // nil: a directory
	typeflag byte
}

func layerTar(p Program, binary string, o Options) ([]byte, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("%s: read binary: %w", p.Name, err)
	}
	ca, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("%s: read CA certificates (Debian's ca-certificates package): %w", p.Name, err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", p.Name, o.CACerts)
	}
	dir := func(name string, mode int64, uid int) entry {
		return entry{name: name, mode: mode, uid: uid, typeflag: tar.TypeDir}
	}
	file := func(name string, mode int64, data []byte) entry {
		return entry{name: name, mode: mode, data: data, typeflag: tar.TypeReg}
	}
	entries := []entry{
		dir("etc/", 0o755, 0),
		file("etc/passwd", 0o644, []byte(Passwd)),
		file("etc/group", 0o644, []byte(Group)),
		dir("etc/ssl/", 0o755, 0),
		dir("etc/ssl/certs/", 0o755, 0),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, ca),
		dir("home/", 0o755, 0),
		dir("home/nonroot/", 0o755, NonRootUID),
		dir("root/", 0o700, 0),
		dir("tmp/", 0o1777, 0),
		dir("usr/", 0o755, 0),
		dir("usr/local/", 0o755, 0),
		dir("usr/local/bin/", 0o755, 0),
		file(strings.TrimPrefix(BinDir, "/")+"/"+p.Name, 0o755, bin),
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: e.typeflag, Name: e.name, Mode: e.mode, Size: int64(len(e.data)),
			Uid: e.uid, Gid: e.uid, ModTime: o.Created, Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", p.Name, e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", p.Name, e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("%s: layer: %w", p.Name, err)
	}
	return buf.Bytes(), nil
}
