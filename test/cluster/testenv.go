package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// MissingHelm lists helm when bin/ lacks it.
func MissingHelm(binDir string) []string {
	if _, err := os.Stat(filepath.Join(binDir, "helm")); err != nil {
		return []string{"helm"}
	}
	return nil
}

// RequireTools skips a test that needs what is missing, or fails it under CI, where make test has
// built everything first. how says how to get it.
func RequireTools(t testing.TB, binDir string, missing []string, how string) {
	t.Helper()
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("needs %v in %s: %s (make test does)", missing, binDir, how)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestRunDir makes a fresh run directory <repo>/_run/<prefix>-*, after stopping what crashed runs of
// the same prefix left behind.
func TestRunDir(t testing.TB, binDir, prefix string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(root, "_run")
	SweepStale(filepath.Join(parent, prefix+"-*"), binDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(parent, prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
