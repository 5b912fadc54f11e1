package imagebuild

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations naming the image in an archive's index: the OCI key (its tag,
// e.g. "latest", which podman and docker read) and containerd's (the full
// name, which ctr images import reads).
const (
	AnnotationRefName       = "org.opencontainers.image.ref.name"
	AnnotationContainerdRef = "io.containerd.image.name"
)

// Ref is the image reference repo/name:tag, normalized as engines do
// (docker.io/ prefixed to a repository without a registry host).
func Ref(repo, name, tag string) string {
	r := repo + "/" + name
	if first, _, ok := strings.Cut(r, "/"); !ok || !strings.ContainsAny(first, ".:") && first != "localhost" {
		r = "docker.io/" + r
	}
	return r + ":" + tag
}

// WriteArchive writes img as an OCI archive at path (replaced atomically),
// named ref (repository:tag) in the index.
func WriteArchive(path string, img v1.Image, ref string) error {
	tag := ref[strings.LastIndex(ref, ":")+1:]
	work, err := os.MkdirTemp(filepath.Dir(path), ".oci-layout-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.RemoveAll(work)
	lp, err := layout.Write(work, empty.Index)
	if err != nil {
		return fmt.Errorf("write %s: layout: %w", path, err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		AnnotationRefName: tag, AnnotationContainerdRef: ref,
	})); err != nil {
		return fmt.Errorf("write %s: layout: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := tarDir(work, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// tarDir writes the tree under dir into the tar file out, in lexical order.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime = h.ModTime.Truncate(1e9)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Archived is an image read back from an OCI archive.
type Archived struct {
	Image       v1.Image
	Annotations map[string]string // of its index entry
}

// ReadArchive reads the one image of the OCI archive at path, unpacking it
// into dir (which must outlive the use of the image: its layers are read
// from there).
func ReadArchive(path, dir string) (Archived, error) {
	if err := untar(path, dir); err != nil {
		return Archived{}, fmt.Errorf("read %s: %w", path, err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		return Archived{}, fmt.Errorf("read %s: %w", path, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return Archived{}, fmt.Errorf("read %s: index: %w", path, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return Archived{}, fmt.Errorf("read %s: index: %w", path, err)
	}
	if len(m.Manifests) != 1 {
		return Archived{}, fmt.Errorf("read %s: %d manifests in the index, want 1", path, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return Archived{}, fmt.Errorf("read %s: image: %w", path, err)
	}
	return Archived{Image: img, Annotations: m.Manifests[0].Annotations}, nil
}

func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the archive", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}

// Sizes of an image.
type Sizes struct {
	Compressed   int64 // manifest, config and gzip layers: what a registry stores and a pull fetches
	Uncompressed int64 // the layers' tar streams: about what the image takes unpacked
}

// SizeOf measures img.
func SizeOf(img v1.Image) (Sizes, error) {
	var s Sizes
	m, err := img.Manifest()
	if err != nil {
		return s, fmt.Errorf("size: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return s, fmt.Errorf("size: %w", err)
	}
	s.Compressed = int64(len(raw)) + m.Config.Size
	layers, err := img.Layers()
	if err != nil {
		return s, fmt.Errorf("size: %w", err)
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return s, fmt.Errorf("size: %w", err)
		}
		s.Compressed += n
		rc, err := l.Uncompressed()
		if err != nil {
			return s, fmt.Errorf("size: %w", err)
		}
		u, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return s, fmt.Errorf("size: %w", err)
		}
		s.Uncompressed += u
	}
	return s, nil
}

// BuildOptions of Build.
type BuildOptions struct {
	Go       string // go command; "go" when empty
	Root     string // module root
	Out      string // directory of the archives
	Repo     string // image repository prefix, e.g. pisanix
	Tag      string // image tag
	Programs []Program
	Options
}

// Result is one built image.
type Result struct {
	Program Program
	Archive string // path of the OCI archive
	Ref     string
	Digest  v1.Hash // manifest digest
	Sizes
}

// Build builds each program's binary and image and writes the archives
// <Out>/<name>.tar.
func Build(ctx context.Context, o BuildOptions) ([]Result, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	bins, err := os.MkdirTemp(o.Out, ".bin-")
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	defer os.RemoveAll(bins)
	var res []Result
	for _, p := range o.Programs {
		bin, err := BuildBinary(ctx, o.Go, o.Root, bins, p, o.Arch, o.Stamp)
		if err != nil {
			return nil, err
		}
		img, err := Image(p, bin, o.Options)
		if err != nil {
			return nil, err
		}
		r := Result{Program: p, Archive: filepath.Join(o.Out, p.Name+".tar"), Ref: Ref(o.Repo, p.Name, o.Tag)}
		if err := WriteArchive(r.Archive, img, r.Ref); err != nil {
			return nil, err
		}
		if r.Digest, err = img.Digest(); err != nil {
			return nil, fmt.Errorf("%s: digest: %w", p.Name, err)
		}
		if r.Sizes, err = SizeOf(img); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		res = append(res, r)
	}
	return res, nil
}
