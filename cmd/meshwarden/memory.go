package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// tuneMemory sets the garbage collector for a process whose live heap is mostly caches that change
// slowly: with Go's default GOGC=100 the heap grows to twice the live size before a collection, which
// at cluster scale is most of the resident memory. GOGC=50 halves that headroom for little CPU (the
// admission path allocates ~50 KB a review). A container memory limit (cgroup v2) becomes a soft limit
// at 90 %, so the collector works harder before the kernel kills. Explicit GOGC / GOMEMLIMIT win.
func tuneMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if limit := cgroupMemoryLimit("/sys/fs/cgroup/memory.max"); limit > 0 {
			debug.SetMemoryLimit(limit / 10 * 9)
		}
	}
}

// cgroupMemoryLimit reads a cgroup v2 memory.max; 0 when there is none.
func cgroupMemoryLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0 // "max": no limit
	}
	return n
}
