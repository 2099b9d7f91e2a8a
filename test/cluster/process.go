package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one child program. Each runs in its own process group so Stop reaches everything it
// forked, and leaves a pidfile so the next run can clean up after a crash of this one.
type process struct {
	name    string
	path    string
	args    []string
	dir     string   // run directory: <name>.log and <name>.pid live here
	workDir string   // working directory; default dir
	env     []string // KEY=value added to this program's environment (later ones win)
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

func (p *process) logFile() string { return filepath.Join(p.dir, p.name+".log") }
func (p *process) pidFile() string { return filepath.Join(p.dir, p.name+".pid") }

func (p *process) start() error {
	logf, err := os.OpenFile(p.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = p.dir
	if p.workDir != "" {
		cmd.Dir = p.workDir
	}
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	// Pdeathsig kills the child if this program dies without running Stop (e.g. SIGKILL of the test
	// binary); the pidfile sweep in Start covers whatever survives anyway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return nil
}

// running reports whether the process was started and has not exited.
func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// Children that ignored SIGTERM in the same group must not outlive their leader.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = os.Remove(p.pidFile())
	p.cmd = nil
}

// exitError describes why a process ended early, with the tail of its log.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited (%v); last log lines from %s:\n%s", p.name, p.waitErr, p.logFile(), tail(p.logFile(), 15))
}

func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killStale kills the process groups recorded in pidfiles under dir by an earlier run that did not
// stop cleanly. A pid is only trusted if its executable lives in binDir, so a recycled pid that now
// belongs to an unrelated program is left alone.
func killStale(dir, binDir string) {
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, f := range pidfiles {
		b, err := os.ReadFile(f)
		_ = os.Remove(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !strings.HasPrefix(exe, binDir+string(os.PathSeparator)) {
			continue
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment ago. They come from
// below Linux's ephemeral range (32768+), so that while a component restarts on the same port
// (API server, meshwarden's webhook) no outgoing connection can take it as its local port.
// Holding all listeners until the end keeps them distinct from each other.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for attempt := 0; len(ports) < n; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", lowPortBase+rand.IntN(lowPortSpan))
		if attempt > 1000 {
			addr = "127.0.0.1:0" // the low range is crowded; any free port will do
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if attempt > 1000 {
				return nil, fmt.Errorf("find a free port: %w", err)
			}
			continue
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

const lowPortBase, lowPortSpan = 20000, 12000

// poll calls check every interval until it returns nil, ctx ends, or timeout passes. If watch exits
// meanwhile, polling stops early with that process's log tail.
func poll(ctx context.Context, timeout time.Duration, watch *process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		if watch != nil && !watch.running() {
			return watch.exitError()
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
