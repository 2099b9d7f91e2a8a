package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// requireIstioTools returns BinDir when the control-plane and Istio tools are built. Otherwise the
// test skips, except under CI, where a missing tool is a failure, as in test/e2e.
func requireIstioTools(t *testing.T) string {
	t.Helper()
	binDir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if missing := append(MissingTools(binDir), MissingIstioTools(binDir)...); len(missing) > 0 {
		msg := fmt.Sprintf("tools missing from %s: %v; run `make tools istio-tools` (make test does)", binDir, missing)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return binDir
}

func TestIstiod(t *testing.T) {
	binDir := requireIstioTools(t)
	if v, err := IstioVersion(binDir); err == nil {
		t.Logf("istio.io/istio %s", v)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)

	start := time.Now()
	ist, err := StartIstiod(ctx, c, IstiodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("istiod log %s:\n%s", ist.LogFile(), tail(ist.LogFile(), 40))
		}
	})
	t.Logf("istiod ready in %s", time.Since(start).Round(100*time.Millisecond))

	// A namespace created after istiod started gets the root certificate too.
	if err := c.CreateNamespace(ctx, "late", nil); err != nil {
		t.Fatal(err)
	}
	rootPEM, err := ist.RootCertPEM(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(rootPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("root-cert.pem is not a PEM certificate:\n%s", rootPEM)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("root certificate is not a CA: IsCA=%v BasicConstraintsValid=%v KeyUsage=%v",
			root.IsCA, root.BasicConstraintsValid, root.KeyUsage)
	}

	// The TLS xDS/CA listener serves a certificate from that root for istiod's host name.
	pool := x509.NewCertPool()
	pool.AddCert(root)
	conn, err := tls.Dial("tcp", ist.SecureGRPCAddr(), &tls.Config{
		RootCAs: pool, ServerName: "istiod." + IstioNamespace + ".svc", NextProtos: []string{"h2"},
	})
	if err != nil {
		t.Fatalf("TLS to %s with istiod's root: %v", ist.SecureGRPCAddr(), err)
	}
	conn.Close()

	pgid := ist.proc.cmd.Process.Pid
	ist.Stop()
	if ist.Running() {
		t.Error("istiod still running after Stop")
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d survived Stop (kill 0: %v)", pgid, err)
	}
	if _, err := os.Stat(ist.proc.pidFile()); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	ist.Stop() // a second Stop is harmless
}
