// Package testapi starts one real kube-apiserver and etcd per test binary (controller-runtime's
// envtest, with the binaries `make tools` builds into bin/) for the certs integration tests. Without
// the binaries tests skip, except under CI=true where that is a failure.
package testapi

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var (
	once sync.Once
	env  *envtest.Environment
	cfg  *rest.Config
	err  error
)

// Config returns an admin config for the shared API server, starting it (with the CRDs in crdDirs,
// on first use only) if needed. binDir is where kube-apiserver and etcd are: $MESHWARDEN_BIN, else
// the repository's bin/ found from the test's working directory.
func Config(t testing.TB, crdDirs ...string) *rest.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs a real API server (-short given)")
	}
	bin := binDir()
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing from %s: run `make tools` first", b, bin)
			}
			t.Skipf("%s missing from %s: run `make tools` to enable this integration test", b, bin)
		}
	}
	once.Do(func() {
		env = &envtest.Environment{
			BinaryAssetsDirectory:    bin,
			CRDDirectoryPaths:        crdDirs,
			ErrorIfCRDPathMissing:    true,
			ControlPlaneStartTimeout: 3 * time.Minute,
			ControlPlaneStopTimeout:  time.Minute,
		}
		cfg, err = env.Start()
	})
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", bin, err)
	}
	return rest.CopyConfig(cfg)
}

// Stop stops the API server if it was started; call it from TestMain after m.Run.
func Stop() {
	if env != nil {
		_ = env.Stop()
	}
}

func binDir() string {
	if b := os.Getenv("MESHWARDEN_BIN"); b != "" {
		return b
	}
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "bin")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, "bin")
		}
	}
}

// User returns a config for a new user of the shared API server with no permissions of its own, for
// tests of the RBAC rules meshwarden needs.
func User(t testing.TB, name string) *rest.Config {
	t.Helper()
	if env == nil {
		t.Fatal("testapi.User before testapi.Config")
	}
	u, err := env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	return rest.CopyConfig(u.Config())
}
