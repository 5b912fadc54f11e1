// Command imagebuild builds the OCI images of pisa-proxy, pisa-controller
// and pisa-daemon (make images): static binaries on an empty base, written
// as OCI archives <out>/<name>.tar. No container engine or base image is
// needed. Run it from the module root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"pisanix.io/pisanix/internal/imagebuild"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	var o imagebuild.BuildOptions
	var only string
	fs.StringVar(&o.Out, "out", "bin/images", "`dir` of the OCI archives")
	fs.StringVar(&o.Repo, "repo", "pisanix", "image `repository` prefix (e.g. registry.example.com/pisanix)")
	fs.StringVar(&o.Tag, "tag", "latest", "image `tag`")
	fs.StringVar(&o.Version, "version", "dev", "`version` stamped into the binaries and the version label")
	fs.StringVar(&o.Commit, "commit", "", "`commit` stamped into the binaries and the revision label")
	fs.StringVar(&o.Source, "source", "https://pisanix.io/pisanix", "source label (`URL` of the source code)")
	fs.StringVar(&o.CACerts, "ca-certs", imagebuild.DefaultCACerts, "CA bundle `file` copied into the images")
	fs.StringVar(&o.Arch, "arch", "", "GOARCH of the images (default: this machine's)")
	fs.StringVar(&o.Go, "go", "go", "go `command`")
	fs.StringVar(&only, "only", "", "comma-separated program `names` (default: all)")
	created := fs.String("created", "", "RFC 3339 `time` of the files and the image (default: the Unix epoch; make images gives the commit's time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, p := range imagebuild.Programs() {
		if only == "" || slices.Contains(strings.Split(only, ","), p.Name) {
			o.Programs = append(o.Programs, p)
		}
	}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return fmt.Errorf("-created: %w", err)
		}
		o.Created = t.UTC()
	}
	if len(o.Programs) == 0 {
		return fmt.Errorf("-only %q names no program", only)
	}
	var err error
	if o.Root, err = os.Getwd(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := imagebuild.Build(ctx, o)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tARCHIVE\tCOMPRESSED\tUNCOMPRESSED\tDIGEST")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%.1f MB\t%s\n", r.Ref, r.Archive, mb(r.Compressed), mb(r.Uncompressed), r.Digest)
	}
	return tw.Flush()
}

func mb(n int64) float64 { return float64(n) / 1e6 }
