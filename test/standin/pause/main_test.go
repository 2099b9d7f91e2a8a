package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is the program too: started with this variable set, it runs main.
func TestMain(m *testing.M) {
	if os.Getenv("PAUSE_TEST_RUN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// SIGCHLD only reaps; the first other signal ends the wait.
func TestPauseWaitsForStop(t *testing.T) {
	sigs := make(chan os.Signal, 3)
	sigs <- syscall.SIGCHLD
	sigs <- syscall.SIGCHLD
	done := make(chan int)
	go func() { done <- pause(sigs) }()
	select {
	case code := <-done:
		t.Fatalf("returned %d on SIGCHLD", code)
	case <-time.After(100 * time.Millisecond):
	}
	sigs <- syscall.SIGTERM
	if code := <-done; code != 0 {
		t.Errorf("exit code %d on SIGTERM, want 0", code)
	}
}

// The process waits until told to stop, then exits 0, as the kubelet expects of a sandbox.
func TestExitsZeroOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "PAUSE_TEST_RUN_MAIN=1")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				t.Fatalf("exited before any signal: %v", err)
			case <-time.After(time.Second): // time to reach signal.Notify, before which a signal kills
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("after %s: %v, want exit 0", sig, err)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 10s after %s", sig)
			}
		})
	}
}

// --exit completes at once, for init containers.
func TestExitFlag(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--exit")
	cmd.Env = append(os.Environ(), "PAUSE_TEST_RUN_MAIN=1")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause --exit: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause --exit still running after 10s")
	}
}

// reap collects exited children, which would otherwise stay zombies of PID 1.
func TestReapCollectsZombies(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stat := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat"
	deadline := time.Now().Add(10 * time.Second)
	for !isZombie(t, stat) {
		if time.Now().After(deadline) {
			t.Fatal("child never exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	reap()
	if _, err := os.Stat(stat); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("child still in the process table after reap (stat: %v)", err)
	}
}

func isZombie(t *testing.T, stat string) bool {
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	// The state follows the command name in parentheses: "pid (comm) Z ...".
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}
