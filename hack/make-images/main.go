// Command make-images is `make images`: it builds every image of package images for one
// architecture and prints each one's reference and digest. All the work is in package images.
//
//	go run ./hack/make-images [-arch arm64] [-out bin/images] [-only pause,meshwarden]
//
// The arch defaults to $GOARCH, else this machine's. Timestamps are $SOURCE_DATE_EPOCH (the
// reproducible-builds convention), else 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/meshwarden/meshwarden/hack/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "make-images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("make-images", flag.ContinueOnError)
	arch := fs.String("arch", envOr("GOARCH", runtime.GOARCH), "GOARCH to build for")
	out := fs.String("out", "bin/images", "directory for the archives (<out>/linux_<arch>/<name>.tar)")
	only := fs.String("only", "", "comma-separated image names (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	ims, err := selectImages(*only)
	if err != nil {
		return err
	}
	results, err := images.Build(ctx, images.Options{Arch: *arch, Epoch: epoch, OutDir: *out}, ims...)
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Printf("%s\t%s\t%s\n", r.Image.Ref(), r.Digest, r.Path)
	}
	return nil
}

func selectImages(only string) ([]images.Image, error) {
	if only == "" {
		return images.All, nil
	}
	var ims []images.Image
	for name := range strings.SplitSeq(only, ",") {
		im, ok := images.Lookup(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("-only: no image %q", name)
		}
		ims = append(ims, im)
	}
	return ims, nil
}

func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
