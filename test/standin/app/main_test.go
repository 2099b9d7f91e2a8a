package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// The app exits 0 after --exit-after, as a Job's container must for the Job to complete.
func TestExitAfter(t *testing.T) {
	if os.Getenv("MW_APP_CHILD") == "1" {
		os.Args = []string{"app", "-listen", "127.0.0.1:0", "-exit-after", "50ms"}
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestExitAfter$")
	cmd.Env = append(os.Environ(), "MW_APP_CHILD=1")
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("app exited with %v, want 0", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("app took %s to exit", d)
	}
}
