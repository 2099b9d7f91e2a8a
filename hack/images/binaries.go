package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
)

// BuildBinaries builds the programs of ims for linux/arch into dir, in one `go build` so that the
// compiler works on them in parallel. The flags make the binaries static (no cgo, so they need no libc
// in an otherwise empty image) and reproducible: no paths of this machine, no VCS stamp, no symbol
// table, so the same source and toolchain always give the same bytes.
func BuildBinaries(ctx context.Context, arch, dir string, ims ...Image) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", dir + string(os.PathSeparator)}
	for _, im := range ims {
		args = append(args, im.Package)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v (GOARCH=%s): %w\n%s", args, arch, err, out.Bytes())
	}
	return nil
}
