package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/meshwarden/meshwarden/webhook"
)

// The server's own logs (certwatcher, listener) are not measured; say so, or controller-runtime warns.
func init() { crlog.SetLogger(logr.Discard()) }

// full switches the load and guard benchmarks to the scale; without it they run a small
// round, so that `make test` (-benchtime=1x) keeps them compiling and working in well under a second.
var full = flag.Bool("bench.full", false, "run the load and guard benchmarks at full scale (make bench)")

// Load shape. Full: 64 connections, 10 rounds alternating floor and real, 4,000 requests each.
const (
	loadConns    = 64
	roundTimeout = 60 * time.Second // a round that takes longer is cut off and fails the benchmark
)

func loadShape() (rounds, perRound int) {
	if *full {
		return 10, 4000
	}
	return 2, 64
}

// warmup is how many unmeasured requests each handler gets first: one per connection at least.
func warmup() int {
	if *full {
		return 4 * loadConns
	}
	return loadConns
}

// testServer is the server `meshwarden serve` runs (webhook.NewServer, TLS from a cert directory)
// with the real /inject handler and the floor handler on /floor.
type testServer struct {
	addr   string
	client *http.Client
	stop   func()
}

func startServer(tb testing.TB) *testServer {
	tb.Helper()
	dir := tb.TempDir()
	pool := writeCert(tb, dir)
	port := freePort(tb)
	srv := webhook.NewServer(webhook.ServerOptions{Host: "127.0.0.1", Port: port, CertDir: dir})
	srv.Register("/inject", newHandler(tb, false))
	srv.Register("/floor", newHandler(tb, true))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	check := srv.StartedChecker()
	deadline := time.Now().Add(10 * time.Second)
	for check(nil) != nil {
		if time.Now().After(deadline) {
			cancel()
			tb.Fatalf("webhook server on port %d did not start", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		MaxIdleConnsPerHost: loadConns,
		MaxConnsPerHost:     loadConns,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   false,
	}
	s := &testServer{addr: fmt.Sprintf("https://127.0.0.1:%d", port), client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	s.stop = func() {
		tr.CloseIdleConnections()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	return s
}

// writeCert writes a throwaway self-signed ECDSA P-256 certificate for 127.0.0.1 as tls.crt/tls.key.
func writeCert(tb testing.TB, dir string) *x509.CertPool {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshwarden-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return pool
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// round is what one load round measured.
type round struct {
	latencies []time.Duration
	elapsed   time.Duration
}

// run sends n reviews to path over conns keep-alive connections and times every request.
func (s *testServer) run(path string, body []byte, n, conns int) (round, error) {
	url := s.addr + path
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := s.post(ctx, url, body)
				lat[i] = time.Since(t0)
				if err != nil {
					once.Do(func() { firstErr = err })
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	r := round{latencies: lat, elapsed: time.Since(start)}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("round of %d requests to %s not done in %s", n, path, roundTimeout)
	}
	return r, firstErr
}

func (s *testServer) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end so the connection is reused.
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n == 0 {
		return fmt.Errorf("%s: status %d, %d bytes", url, resp.StatusCode, n)
	}
	return nil
}

// loadStats are the numbers of one handler over all its rounds.
type loadStats struct {
	requests  int
	elapsed   time.Duration
	latencies []time.Duration
}

func (l *loadStats) add(r round) {
	l.requests += len(r.latencies)
	l.elapsed += r.elapsed
	l.latencies = append(l.latencies, r.latencies...)
}

func (l *loadStats) perSec() float64 { return float64(l.requests) / l.elapsed.Seconds() }

func (l *loadStats) percentileMs(p float64) float64 {
	s := slices.Clone(l.latencies)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// BenchmarkLoad drives the real HTTPS server with 64 concurrent keep-alive connections, alternating
// rounds of the floor handler and the real one so that machine noise falls on both alike. Every
// request's latency counts. It ignores b.N: the work is a fixed number of requests (see loadShape).
func BenchmarkLoad(b *testing.B) {
	s := startServer(b)
	defer s.stop()
	body := review(b, "typical-review.json")
	rounds, perRound := loadShape()
	// Warm up: open the connections (TLS handshakes) and fill the render cache, unmeasured.
	for _, path := range []string{"/floor", "/inject"} {
		if _, err := s.run(path, body, warmup(), loadConns); err != nil {
			b.Fatal(err)
		}
	}
	var floor, real loadStats
	b.ResetTimer()
	for i := range rounds {
		path, st := "/floor", &floor
		if i%2 == 1 {
			path, st = "/inject", &real
		}
		r, err := s.run(path, body, perRound, loadConns)
		if err != nil {
			b.Fatal(err)
		}
		st.add(r)
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(real.perSec(), "reviews/s")
	b.ReportMetric(real.percentileMs(0.50), "p50-ms")
	b.ReportMetric(real.percentileMs(0.99), "p99-ms")
	b.ReportMetric(floor.perSec(), "floor-reviews/s")
	b.ReportMetric(floor.percentileMs(0.50), "floor-p50-ms")
	b.ReportMetric(floor.percentileMs(0.99), "floor-p99-ms")
}
