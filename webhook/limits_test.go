package webhook

import (
	"bufio"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowBodyIsCutOff: a client that sends headers and then trickles its body must not hold the
// request past the handler's timeout.
func TestSlowBodyIsCutOff(t *testing.T) {
	h := handler(t)
	h.Timeout = 300 * time.Millisecond
	srv := httptest.NewServer(h)
	defer srv.Close()

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	start := time.Now()
	done := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		done <- line
	}()
	// Keep trickling for longer than the timeout; the server must answer or hang up meanwhile.
	for i := 0; i < 30; i++ {
		select {
		case line := <-done:
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Fatalf("cut off only after %v", elapsed)
			}
			if line != "" && !strings.Contains(line, " 400 ") {
				t.Fatalf("answered %q, want 400 or a closed connection", line)
			}
			return
		case <-time.After(100 * time.Millisecond):
			_, _ = conn.Write([]byte(" "))
		}
	}
	t.Fatal("slow client still connected after 3 s")
}
