package imagebuild

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layerFiles reads the files of img's single layer: name -> header and content.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = layerFile{h, data}
	}
	return files
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkImage verifies the config and the layer of p's image, whose binary
// has content bin and whose CA bundle is ca.
func checkImage(t *testing.T, img v1.Image, p Program, s Stamp, bin, ca []byte) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != p.User {
		t.Errorf("%s: user %q, want %q", p.Name, c.User, p.User)
	}
	if p.Name != "pisa-daemon" && c.User != NonRootUser {
		t.Errorf("%s: user %q, want non-root %s", p.Name, c.User, NonRootUser)
	}
	if want := BinDir + "/" + p.Name; len(c.Entrypoint) != 1 || c.Entrypoint[0] != want {
		t.Errorf("%s: entrypoint %q, want [%s]", p.Name, c.Entrypoint, want)
	}
	for k, want := range map[string]string{LabelVersion: s.Version, LabelRevision: s.Commit, LabelSource: s.Source, LabelTitle: p.Name} {
		if got := c.Labels[k]; got != want || want == "" {
			t.Errorf("%s: label %s = %q, want %q", p.Name, k, got, want)
		}
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("%s: platform %s/%s", p.Name, cf.OS, cf.Architecture)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("%s: media types %s, %s: want OCI", p.Name, m.MediaType, m.Config.MediaType)
	}

	files := layerFiles(t, img)
	binPath := strings.TrimPrefix(BinDir, "/") + "/" + p.Name
	if f, ok := files[binPath]; !ok {
		t.Errorf("%s: no %s in the layer", p.Name, binPath)
	} else {
		if !bytes.Equal(f.data, bin) {
			t.Errorf("%s: %s differs from the built binary", p.Name, binPath)
		}
		if f.hdr.Mode&0o111 != 0o111 || f.hdr.Uid != 0 {
			t.Errorf("%s: %s mode %o uid %d, want executable by all, owned by root", p.Name, binPath, f.hdr.Mode, f.hdr.Uid)
		}
	}
	if f := files["etc/ssl/certs/ca-certificates.crt"]; !bytes.Equal(f.data, ca) {
		t.Errorf("%s: CA bundle in the image (%d bytes) differs from the build host's (%d bytes)", p.Name, len(f.data), len(ca))
	}
	if f := files["etc/passwd"]; !strings.Contains(string(f.data), "nonroot:x:65532:65532:") || !strings.HasPrefix(string(f.data), "root:x:0:0:") {
		t.Errorf("%s: /etc/passwd = %q", p.Name, f.data)
	}
	if f := files["etc/group"]; !strings.Contains(string(f.data), "nonroot:x:65532:") {
		t.Errorf("%s: /etc/group = %q", p.Name, f.data)
	}
	if f := files["tmp"]; f.hdr == nil || f.hdr.Mode != 0o1777 {
		t.Errorf("%s: /tmp missing or not 1777", p.Name)
	}
	if f := files["home/nonroot"]; f.hdr == nil || f.hdr.Uid != NonRootUID {
		t.Errorf("%s: /home/nonroot missing or not owned by %d", p.Name, NonRootUID)
	}
}

// A fake binary: the layer, config and archive round trip, quickly.
func TestImageFromFakeBinary(t *testing.T) {
	dir := t.TempDir()
	bin := writeFile(t, filepath.Join(dir, "pisa-proxy"), "\x7fELF not really")
	ca := writeFile(t, filepath.Join(dir, "ca.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	p := Programs()[0]
	s := Stamp{Version: "v9.9.9", Commit: "0123456789abcdef0123456789abcdef01234567", Source: "https://example.com/pisanix"}
	img, err := Image(p, bin, Options{Stamp: s, CACerts: ca})
	if err != nil {
		t.Fatal(err)
	}
	binData, _ := os.ReadFile(bin)
	caData, _ := os.ReadFile(ca)
	checkImage(t, img, p, s, binData, caData)

	archive := filepath.Join(dir, "pisa-proxy.tar")
	ref := Ref("pisanix", p.Name, "t1")
	if err := WriteArchive(archive, img, ref); err != nil {
		t.Fatal(err)
	}
	back, err := ReadArchive(archive, filepath.Join(dir, "unpacked"))
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, back.Image, p, s, binData, caData)
	if back.Annotations[AnnotationRefName] != "t1" || back.Annotations[AnnotationContainerdRef] != "docker.io/pisanix/pisa-proxy:t1" {
		t.Errorf("annotations %v", back.Annotations)
	}
	d1, _ := img.Digest()
	d2, _ := back.Image.Digest()
	if d1 != d2 {
		t.Errorf("digest after the round trip %s, before %s", d2, d1)
	}
	// Reproducible: the same inputs give the same digest.
	again, err := Image(p, bin, Options{Stamp: s, CACerts: ca})
	if err != nil {
		t.Fatal(err)
	}
	if d3, _ := again.Digest(); d3 != d1 {
		t.Errorf("rebuilt image digest %s, first %s", d3, d1)
	}
}

func TestImageRefusesBadCABundle(t *testing.T) {
	dir := t.TempDir()
	bin := writeFile(t, filepath.Join(dir, "b"), "x")
	if _, err := Image(Programs()[0], bin, Options{CACerts: writeFile(t, filepath.Join(dir, "ca"), "nothing")}); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
	if _, err := Image(Programs()[0], bin, Options{CACerts: filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func TestRef(t *testing.T) {
	for _, c := range []struct{ repo, want string }{
		{"pisanix", "docker.io/pisanix/pisa-proxy:v1"},
		{"registry.example.com/team", "registry.example.com/team/pisa-proxy:v1"},
		{"localhost:5000/p", "localhost:5000/p/pisa-proxy:v1"},
		{"localhost", "localhost/pisa-proxy:v1"},
	} {
		if got := Ref(c.repo, "pisa-proxy", "v1"); got != c.want {
			t.Errorf("Ref(%q) = %q, want %q", c.repo, got, c.want)
		}
	}
}

// maxProxyImage is the goal for the proxy image, unpacked.
const maxProxyImage = 40_000_000

// builtImages builds the three real images as make images does, into a
// temporary directory.
func builtImages(t *testing.T) (map[string]Result, Stamp) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	s := Stamp{Version: "test-" + t.Name(), Commit: "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed", Source: "https://example.com/pisanix"}
	res, err := Build(t.Context(), BuildOptions{Root: root, Out: t.TempDir(), Repo: "pisanix", Tag: "test", Programs: Programs(), Options: Options{Stamp: s}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Result{}
	for _, r := range res {
		byName[r.Program.Name] = r
	}
	return byName, s
}

// The real images, as make images builds them, read back from their archives.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the three programs statically")
	}
	images, s := builtImages(t)
	ca, err := os.ReadFile(DefaultCACerts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Programs() {
		r, ok := images[p.Name]
		if !ok {
			t.Fatalf("no image for %s", p.Name)
		}
		t.Run(p.Name, func(t *testing.T) {
			back, err := ReadArchive(r.Archive, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if got := back.Annotations[AnnotationContainerdRef]; got != "docker.io/pisanix/"+p.Name+":test" {
				t.Errorf("ref %q", got)
			}
			files := layerFiles(t, back.Image)
			bin := files[strings.TrimPrefix(BinDir, "/")+"/"+p.Name].data
			checkImage(t, back.Image, p, s, bin, ca)
			checkStatic(t, p.Name, bin)
			if !bytes.Contains(bin, []byte(s.Version)) || !bytes.Contains(bin, []byte(s.Commit)) {
				t.Errorf("%s: version %q or commit %q not stamped in the binary", p.Name, s.Version, s.Commit)
			}
			t.Logf("%s: %.1f MB compressed, %.1f MB unpacked, %s", p.Name, float64(r.Compressed)/1e6, float64(r.Uncompressed)/1e6, r.Digest)
			if p.Name == "pisa-proxy" && r.Uncompressed >= maxProxyImage {
				t.Errorf("pisa-proxy image is %d bytes unpacked, the goal is under %d", r.Uncompressed, maxProxyImage)
			}
		})
	}
	t.Run("engine", func(t *testing.T) { testInEngine(t, images, s) })
}

// checkStatic fails unless bin is an ELF executable without an interpreter
// or shared libraries (it must run on the empty base).
func checkStatic(t *testing.T, name string, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Errorf("%s: not an ELF binary: %v", name, err)
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked (has an ELF interpreter)", name)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: needs shared libraries %v", name, libs)
	}
}
