package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mainModule is the module path RepoRoot looks for.
const mainModule = "github.com/meshwarden/meshwarden"

// RepoRoot finds the meshwarden checkout by walking up from the working directory to the go.mod
// of the main module (tests run in their package directory, `make run` at the root).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			s := bufio.NewScanner(f)
			s.Scan()
			f.Close()
			if strings.TrimSpace(s.Text()) == "module "+mainModule {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the meshwarden checkout (no go.mod of " + mainModule + " above the working directory)")
		}
		dir = parent
	}
}

// BinDir is $MESHWARDEN_BIN if set, else <repo>/bin.
func BinDir() (string, error) {
	if d := os.Getenv("MESHWARDEN_BIN"); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// Kubectl runs bin/kubectl against the cluster as admin.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return c.KubectlInput(ctx, "", args...)
}

// KubectlInput is Kubectl with stdin (for `apply -f -`).
func (c *Cluster) KubectlInput(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "kubectl"), append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}

// IstioCRDFile returns the path of the Istio CRDs shipped in the istio.io/api module that
// meshwarden's go.mod requires.
func IstioCRDFile(ctx context.Context) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate the istio.io/api module (go list -m istio.io/api): %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("istio.io/api is not downloaded; run `go mod download istio.io/api`")
	}
	return filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"), nil
}

// InstallIstioCRDs applies Istio's CRDs and waits until they are served.
func (c *Cluster) InstallIstioCRDs(ctx context.Context) error {
	file, err := IstioCRDFile(ctx)
	if err != nil {
		return err
	}
	// Server-side apply: several Istio CRDs exceed the size limit of the client-side
	// last-applied annotation.
	if _, _, err := c.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-f", file); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, _, err = c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "-f", file)
	return err
}
