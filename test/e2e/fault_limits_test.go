package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Limits of issue 9 against the real `meshwarden serve` process of the suite (its TLS server, as
// assembled by serve): oversized bodies, slow clients and a hung API server.

// apiServerTimeout is the webhook timeoutSeconds the suite registers: an answer later than this
// is as bad as none.
const apiServerTimeout = 10 * time.Second

func TestFaultOversizedBodyRejected(t *testing.T) {
	setup(t, nil)
	body := bytes.Repeat([]byte(" "), 8<<20) // 8 MiB: over the 7 MiB limit
	for _, path := range []string{"/inject", "/validate"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			start := time.Now()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, mesh.URL(path), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := mesh.HTTPClient().Do(req)
			if err != nil {
				// Closing the connection on an oversized upload is a valid refusal too.
				t.Logf("%s: connection ended after %s: %v", path, time.Since(start).Round(time.Millisecond), err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			code := resp.StatusCode
			if code == http.StatusOK {
				// controller-runtime (/validate) answers 200 with the status in the review.
				var review struct {
					Response struct {
						Allowed bool `json:"allowed"`
						Status  struct {
							Code int `json:"code"`
						} `json:"status"`
					} `json:"response"`
				}
				_ = json.Unmarshal(b, &review)
				if review.Response.Allowed {
					t.Fatalf("%s allowed an 8 MiB body: %s", path, b)
				}
				code = review.Response.Status.Code
			}
			if code != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: status %d for an 8 MiB body, want 413; body %s", path, code, b)
			}
			t.Logf("FIGURES oversized body %s: status=%d in %s", path, code, time.Since(start).Round(time.Millisecond))
		})
	}
}

// dialWebhook opens a raw TLS connection to the suite's webhook server.
func dialWebhook(t *testing.T) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(mesh.CA.Cert)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(mesh.WebhookPort),
		&tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cutOffWithin writes the request start, then trickles trickle every interval until the server
// answers or hangs up, and fails unless that happens within limit. It returns how long it took.
func cutOffWithin(t *testing.T, conn net.Conn, start, trickle string, interval, limit time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	if _, err := conn.Write([]byte(start)); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		done <- line
	}()
	for time.Since(begin) < limit+5*time.Second {
		select {
		case line := <-done:
			took := time.Since(begin)
			if took > limit {
				t.Errorf("cut off only after %s, want within %s", took.Round(100*time.Millisecond), limit)
			}
			if line != "" && !strings.Contains(line, " 400 ") && !strings.Contains(line, " 408 ") {
				t.Errorf("answered %q, want 400/408 or a closed connection", line)
			}
			return took
		case <-time.After(interval):
			_, _ = conn.Write([]byte(trickle))
		}
	}
	t.Fatalf("slow client still connected after %s", limit+5*time.Second)
	return 0
}

// TestFaultSlowBodyCutOff: headers sent, then the body trickles; the request must end within the
// handler's 9 s budget, before the API server's 10 s timeout.
func TestFaultSlowBodyCutOff(t *testing.T) {
	setup(t, nil)
	conn := dialWebhook(t)
	took := cutOffWithin(t, conn,
		"POST /inject HTTP/1.1\r\nHost: meshwarden\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
		" ", 250*time.Millisecond, apiServerTimeout)
	t.Logf("FIGURES slow body: cut off after %s", took.Round(100*time.Millisecond))
}

// TestFaultSlowHeadersCutOff (make faults only: it takes the server's 32 s header timeout): a
// client that never finishes its headers, and one that never finishes the TLS handshake, are both
// disconnected by the server.
func TestFaultSlowHeadersCutOff(t *testing.T) {
	setup(t, nil)
	if os.Getenv("MESHWARDEN_FAULT_FULL") != "1" {
		t.Skip("takes ~32 s; `make faults` runs it (MESHWARDEN_FAULT_FULL=1)")
	}
	const limit = 40 * time.Second // controller-runtime's ReadHeaderTimeout is 32 s
	handshake := make(chan time.Duration, 1)
	go func() {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(mesh.WebhookPort))
		if err != nil {
			handshake <- -1
			return
		}
		defer c.Close()
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(limit + 5*time.Second))
		_, _ = io.Copy(io.Discard, c) // never says hello; returns when the server hangs up
		handshake <- time.Since(start)
	}()
	conn := dialWebhook(t)
	took := cutOffWithin(t, conn, "POST /inject HTTP/1.1\r\nHost: meshwarden\r\n", "X-Slow: 1\r\n", time.Second, limit)
	hs := <-handshake
	if hs < 0 || hs > limit {
		t.Errorf("a client that never completes the TLS handshake stayed connected %s, want at most %s", hs, limit)
	}
	t.Logf("FIGURES slow headers: cut off after %s; silent TLS client after %s", took.Round(100*time.Millisecond), hs.Round(100*time.Millisecond))
}

// TestFaultHungAPIServerAnswersInTime freezes kube-apiserver (SIGSTOP) and sends /inject a pod in a
// namespace meshwarden has not cached, so its lookup must go to the frozen API server: meshwarden
// must still answer, with an error, before the API server's 10 s webhook timeout, and inject again
// once the API server runs.
func TestFaultHungAPIServerAnswersInTime(t *testing.T) {
	setup(t, nil)
	b, err := os.ReadFile(filepath.Join(env.Dir(), "kube-apiserver.pid"))
	if err != nil {
		t.Skipf("kube-apiserver pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("kube-apiserver pidfile %q", b)
	}
	review := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"hung-1",`+
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`+
		`"namespace":"fault-never-cached-%d","operation":"CREATE","object":%s}}`, time.Now().UnixNano(), `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app","image":"app:1"}]}}`)

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mesh.URL("/inject"), strings.NewReader(review))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: mesh.HTTPClient().Transport} // no 5 s client timeout here
	resp, err := client.Do(req)
	took := time.Since(start)
	resume()
	resumedAt := time.Now()
	if err != nil {
		t.Fatalf("no answer while the API server is frozen (after %s): %v", took.Round(100*time.Millisecond), err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if took > apiServerTimeout {
		t.Errorf("answered after %s, later than the API server's %s webhook timeout", took.Round(100*time.Millisecond), apiServerTimeout)
	}
	if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"allowed":true`)) {
		t.Errorf("allowed without knowing the namespace: %s", body)
	}
	t.Logf("FIGURES hung API server: /inject answered %d after %s: %.200s", resp.StatusCode, took.Round(100*time.Millisecond), body)
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelWait()
	if err := waitInjecting(waitCtx); err != nil {
		t.Fatalf("not injecting after the API server resumed: %v", err)
	}
	// The freeze may have cost the leader lease (meshwarden then restarts in place); later tests
	// need the guard's reconciler, so wait until a leader renews the lease again.
	for {
		l, err := env.Client().CoordinationV1().Leases(mesh.Namespace).Get(waitCtx, "meshwarden-leader", metav1.GetOptions{})
		if err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(resumedAt) {
			t.Logf("leader lease renewed %s after the API server resumed", time.Since(resumedAt).Round(100*time.Millisecond))
			return
		}
		if waitCtx.Err() != nil {
			t.Fatalf("leader lease not renewed within 2m after the API server resumed (last error %v)", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
