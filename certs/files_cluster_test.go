package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshwarden/meshwarden/certs/pki"
	"github.com/meshwarden/meshwarden/config"
)

// writeFiles writes a serving pair signed by ca and the trust bundle into dir, as a mounted Secret.
func writeFiles(t *testing.T, dir string, ca *pki.KeyPair, bundle []byte) *pki.KeyPair {
	t.Helper()
	s, err := ca.IssueServing("meshwarden-webhook", pki.ServiceNames("meshwarden-webhook", "ns", []string{"127.0.0.1"}), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"ca.crt": bundle, "tls.crt": s.CertPEM, "tls.key": s.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func servedLeaf(p *Provider) []byte {
	c, err := p.GetCertificate(nil)
	if err != nil {
		return nil
	}
	return c.Certificate[0]
}

func TestFilesModeKeepsCABundleAndReloads(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "files")
	dir := t.TempDir()
	ca1, _ := pki.NewCA("ca1", 24*time.Hour, time.Now())
	writeFiles(t, dir, ca1, ca1.CertPEM)
	f.registerWebhooks([]byte("stale"))
	cfg := f.config(func(c *config.Certs) { c.Mode, c.Dir = config.CertFiles, dir })
	r := f.startReplica(cfg, "a", false)
	eventually(t, 30*time.Second, "ready", func() error { return r.p.Ready(nil) })
	if err := f.createConfigMap(ctx); err != nil {
		t.Fatalf("webhook not callable with the mounted certificate: %v", err)
	}

	// The user rotates the mounted Secret: a bundle with both CAs, then a pair from the new CA.
	ca2, _ := pki.NewCA("ca2", 24*time.Hour, time.Now())
	both := append(bytes.Clone(ca2.CertPEM), ca1.CertPEM...)
	next := writeFiles(t, dir, ca2, both)
	took := eventually(t, 30*time.Second, "new certificate served and trusted", func() error {
		if !bytes.Equal(servedLeaf(r.p), next.Cert.Raw) {
			return errors.New("old certificate still served")
		}
		bs, err := f.caBundles(ctx)
		if err != nil {
			return err
		}
		for _, b := range bs {
			if !bytes.Equal(b, both) {
				return errors.New("caBundle not updated from ca.crt")
			}
		}
		if err := r.p.Ready(nil); err != nil {
			return err
		}
		return f.createConfigMap(ctx)
	})
	t.Logf("rotated files picked up in %s without restart", took)
}

func TestCertManagerModeServesFilesOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "cert-manager")
	dir := t.TempDir()
	ca, _ := pki.NewCA("ca", 24*time.Hour, time.Now())
	writeFiles(t, dir, ca, ca.CertPEM)
	f.registerWebhooks(ca.CertPEM) // cert-manager's cainjector keeps it
	cfg := f.config(func(c *config.Certs) { c.Mode, c.Dir, c.PatchCABundle = config.CertCertManager, dir, nil })
	r := f.startReplica(cfg, "a", false)
	eventually(t, 30*time.Second, "ready", func() error { return r.p.Ready(nil) })
	if err := f.createConfigMap(ctx); err != nil {
		t.Fatal(err)
	}
	// meshwarden must leave caBundle alone in this mode, even when it is wrong.
	f.clobber(ctx, []byte("left alone"))
	time.Sleep(2 * time.Second)
	bs, err := f.caBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(bs[0]) != "left alone" {
		t.Errorf("cert-manager mode touched caBundle")
	}
}

func TestFilesModeMissingFiles(t *testing.T) {
	cfg := &config.Config{Certs: config.Certs{Mode: config.CertFiles, Dir: t.TempDir()}}
	cfg.Default()
	_, err := New(cfg, testLogger())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("mount the certificate Secret at certs.dir")) {
		t.Errorf("New without files: err = %v, want a hint to mount the Secret", err)
	}
}

func TestTLSOptions(t *testing.T) {
	tests := map[string]struct {
		http2     bool
		wantProto []string
	}{
		"HTTP/2 off by default": {wantProto: []string{"http/1.1"}},
		"HTTP/2 when enabled":   {http2: true, wantProto: []string{"h2"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := &config.Config{Server: config.Server{EnableHTTP2: tc.http2}}
			cfg.Default()
			p, err := New(cfg, testLogger())
			if err != nil {
				t.Fatal(err)
			}
			c := &tls.Config{NextProtos: []string{"h2"}} // what controller-runtime starts from
			for _, o := range p.TLSOptions() {
				o(c)
			}
			if c.MinVersion != tls.VersionTLS12 || c.GetCertificate == nil || !slicesEqual(c.NextProtos, tc.wantProto) {
				t.Errorf("MinVersion %x, NextProtos %v, GetCertificate set %v", c.MinVersion, c.NextProtos, c.GetCertificate != nil)
			}
			if _, err := c.GetCertificate(nil); err == nil {
				t.Errorf("GetCertificate before any certificate: want an error saying what it waits for")
			}
			if err := p.Ready(nil); err == nil {
				t.Errorf("Ready before any certificate: want not ready")
			}
		})
	}
}
