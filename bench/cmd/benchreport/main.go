// Command benchreport runs meshwarden's benchmarks (package bench) the way `make bench` wants them:
// the per-review benchmark in several rounds, floor and injected alternating within each round; the
// load and guard benchmarks once at full scale. It writes bench-results.json with the keys
// and prints a table with the goals.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	pkg := flag.String("pkg", "./bench", "package directory of the benchmarks")
	rounds := flag.Int("rounds", 5, "rounds of BenchmarkReviewPair (floor and injected in turn, typical and large pod)")
	benchtime := flag.String("benchtime", "1s", "benchtime of each per-review measurement")
	out := flag.String("o", "bench-results.json", "results file")
	apiserver := flag.Bool("apiserver", false, "also measure `meshwarden serve`'s RSS on a local control plane holding the cluster (needs bin/, ~15 min); guard.rss_mib then comes from it")
	flag.Parse()
	if err := run(*pkg, *rounds, *benchtime, *out, *apiserver, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// metrics are one benchmark's results by unit ("ns/op", "B/op", "reviews/s", ...).
type metrics map[string]float64

func run(pkg string, rounds int, benchtime, outFile string, apiserver bool, stdout io.Writer) error {
	tmp, err := os.MkdirTemp("", "benchreport")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bench.test")
	build := exec.Command("go", "test", "-c", "-o", bin, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the benchmarks: %w", err)
	}

	// Per review: time from BenchmarkReviewPair, which answers with the floor and the injector in turn
	// every iteration; its rounds' medians are reported, ratios taken within each round. Bytes and
	// allocations (deterministic) from one run of BenchmarkReview with -benchmem.
	var perRound []map[string]metrics
	for i := range rounds {
		fmt.Fprintf(os.Stderr, "review round %d/%d\n", i+1, rounds)
		res, err := bench(bin, pkg, "^BenchmarkReviewPair$", "-test.benchtime", benchtime)
		if err != nil {
			return err
		}
		perRound = append(perRound, res)
	}
	fmt.Fprintln(os.Stderr, "allocations per review")
	mem, err := bench(bin, pkg, "^BenchmarkReview$", "-test.benchmem", "-test.benchtime", benchtime)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "load (real HTTPS server, floor and real rounds alternating)")
	load, err := bench(bin, pkg, "^BenchmarkLoad$", "-test.benchtime", "1x", "-bench.full")
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "guard at scale")
	guard, err := bench(bin, pkg, "^BenchmarkGuard$", "-test.benchtime", "1x", "-test.timeout", "30m", "-bench.full")
	if err != nil {
		return err
	}

	r := report{rounds: perRound, mem: mem, load: load["BenchmarkLoad"], guard: guard["BenchmarkGuard"]}
	if apiserver {
		fmt.Fprintln(os.Stderr, "meshwarden serve on a local control plane holding the cluster")
		res, err := bench(bin, pkg, "^BenchmarkGuardAPIServer$", "-test.benchtime", "1x", "-test.timeout", "40m", "-bench.apiserver")
		if err != nil {
			return err
		}
		if m, ok := res["BenchmarkGuardAPIServer"]; ok && m["rss-MiB"] > 0 {
			r.apiserver = m
		}
	}
	results, err := r.results()
	if err != nil {
		return err
	}
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(outFile, append(js, '\n'), 0o644); err != nil {
		return err
	}
	r.table(stdout, results)
	fmt.Fprintf(stdout, "\nwrote %s\n", outFile)
	return nil
}

// bench runs the test binary in the package directory (testdata paths are relative) and parses it.
func bench(bin, dir, pattern string, args ...string) (map[string]metrics, error) {
	cmd := exec.Command(bin, append([]string{"-test.run", "^$", "-test.bench", pattern}, args...)...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w", pattern, err)
	}
	res := parse(&buf)
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results in the output", pattern)
	}
	return res, nil
}

// parse reads `go test -bench` lines: name, iterations, then value-unit pairs. The -GOMAXPROCS suffix
// is dropped from names.
func parse(r io.Reader) map[string]metrics {
	out := map[string]metrics{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := metrics{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m[f[i+1]] = v
		}
		out[name] = m
	}
	return out
}

type report struct {
	rounds      []map[string]metrics // BenchmarkReviewPair
	mem         map[string]metrics   // BenchmarkReview -benchmem
	load, guard metrics
	apiserver   metrics // BenchmarkGuardAPIServer, when run
}

// pair returns the median over rounds of one BenchmarkReviewPair metric.
func (r report) pair(pod, unit string) (float64, error) {
	var vs []float64
	for _, rd := range r.rounds {
		m, ok := rd["BenchmarkReviewPair/"+pod]
		if !ok {
			return 0, fmt.Errorf("BenchmarkReviewPair/%s missing from a round", pod)
		}
		v, ok := m[unit]
		if !ok {
			return 0, fmt.Errorf("BenchmarkReviewPair/%s: %s missing", pod, unit)
		}
		vs = append(vs, v)
	}
	return median(vs), nil
}

// ratio is the median over rounds of the injected side's unit over the floor's, in the same round.
func (r report) ratio(pod, unit string) float64 {
	var vs []float64
	for _, rd := range r.rounds {
		m := rd["BenchmarkReviewPair/"+pod]
		vs = append(vs, m[unit]/m["floor-"+unit])
	}
	return median(vs)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// results are the keys, exactly, as flat dotted names.
func (r report) results() (map[string]float64, error) {
	out := map[string]float64{}
	for _, k := range []struct{ key, pod, unit string }{
		{"floor.ns_per_review", "typical", "floor-ns/review"},
		{"typical.ns_per_review", "typical", "ns/review"},
		{"floor_large.ns_per_review", "large", "floor-ns/review"},
		{"large.ns_per_review", "large", "ns/review"},
	} {
		v, err := r.pair(k.pod, k.unit)
		if err != nil {
			return nil, err
		}
		out[k.key] = v
	}
	typical, ok := r.mem["BenchmarkReview/typical"]
	if !ok {
		return nil, fmt.Errorf("BenchmarkReview/typical missing")
	}
	out["typical.bytes_per_review"] = typical["B/op"]
	out["typical.allocs_per_review"] = typical["allocs/op"]
	for key, m := range map[string]struct {
		from metrics
		unit string
	}{
		"load.reviews_per_sec":       {r.load, "reviews/s"},
		"load.p50_ms":                {r.load, "p50-ms"},
		"load.p99_ms":                {r.load, "p99-ms"},
		"load_floor.reviews_per_sec": {r.load, "floor-reviews/s"},
		"load_floor.p99_ms":          {r.load, "floor-p99-ms"},
		"guard.full_eval_ms":         {r.guard, "full-ms"},
		"guard.incremental_ms":       {r.guard, "incremental-ms"},
		"guard.rss_mib":              {r.guard, "rss-MiB"},
	} {
		if key == "guard.rss_mib" && r.apiserver != nil {
			m.from = r.apiserver
		}
		v, ok := m.from[m.unit]
		if !ok {
			return nil, fmt.Errorf("%s: metric %s missing", key, m.unit)
		}
		out[key] = v
	}
	return out, nil
}

func (r report) table(w io.Writer, res map[string]float64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	row := func(name string, v float64, unit string) { fmt.Fprintf(tw, "%s\t%s\t%s\t\n", name, num(v), unit) }
	cpu := func(pod, unit string) float64 { v, _ := r.pair(pod, unit); return v / 1e3 }
	fmt.Fprintf(w, "per review: wall clock (and CPU of the benchmark thread), median of %d rounds, floor and injected in turn\n", len(r.rounds))
	fmt.Fprintf(tw, "floor\t%s µs\t(cpu %s µs)\t\n", num(res["floor.ns_per_review"]/1e3), num(cpu("typical", "floor-cpu-ns/review")))
	fmt.Fprintf(tw, "typical\t%s µs\t(cpu %s µs)\t\n", num(res["typical.ns_per_review"]/1e3), num(cpu("typical", "cpu-ns/review")))
	fmt.Fprintf(tw, "floor_large\t%s µs\t(cpu %s µs)\t\n", num(res["floor_large.ns_per_review"]/1e3), num(cpu("large", "floor-cpu-ns/review")))
	fmt.Fprintf(tw, "large\t%s µs\t(cpu %s µs)\t\n", num(res["large.ns_per_review"]/1e3), num(cpu("large", "cpu-ns/review")))
	for _, sub := range []string{"floor", "typical", "floor_large", "large"} {
		m := r.mem["BenchmarkReview/"+sub]
		fmt.Fprintf(tw, "%s memory\t%s B\t%s allocs\t\n", sub, num(m["B/op"]), num(m["allocs/op"]))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nload: HTTPS, 64 keep-alive connections, floor and real rounds alternating")
	row("real reviews/s", res["load.reviews_per_sec"], "/s")
	row("real p50", res["load.p50_ms"], "ms")
	row("real p99", res["load.p99_ms"], "ms")
	row("floor reviews/s", res["load_floor.reviews_per_sec"], "/s")
	row("floor p50", r.load["floor-p50-ms"], "ms")
	row("floor p99", res["load_floor.p99_ms"], "ms")
	tw.Flush()
	fmt.Fprintln(w, "\nguard: 10,000 Services, 5,000 VirtualServices, 5,000 DestinationRules, 500 Gateways, 20,000 pods")
	row("full evaluation", res["guard.full_eval_ms"], "ms")
	row("incremental (one Service deleted)", res["guard.incremental_ms"], "ms")
	row("  (snapshot built from scratch, for scale)", r.guard["snapshot-ms"], "ms")
	row("  the same re-checks on an up-to-date snapshot", r.guard["incremental-checks-ms"], "ms")
	row("  objects re-checked", r.guard["queued-keys"], "")
	if r.apiserver != nil {
		row("RSS of meshwarden serve (real API server)", res["guard.rss_mib"], "MiB")
		row("  its peak RSS (VmHWM)", r.apiserver["peak-rss-MiB"], "MiB")
		row("  reconciles until settled", r.apiserver["reconciles"], "")
	}
	row("RSS in-process (store + snapshot)", r.guard["rss-MiB"], "MiB")
	row("  RSS before filling", r.guard["rss-before-MiB"], "MiB")
	row("  Go heap in use", r.guard["heap-MiB"], "MiB")
	tw.Flush()

	fmt.Fprintln(w, "\ngoals")
	goal := func(name string, got float64, op string, limit float64) {
		ok := (op == "<=" && got <= limit) || (op == ">=" && got >= limit)
		verdict := "MET"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t\n", name, num(got), op, num(limit), verdict)
	}
	goal("typical / floor (wall)", r.ratio("typical", "ns/review"), "<=", 1.5)
	goal("  same, CPU time", r.ratio("typical", "cpu-ns/review"), "<=", 1.5)
	goal("large / floor_large (wall)", r.ratio("large", "ns/review"), "<=", 1.5)
	goal("  same, CPU time", r.ratio("large", "cpu-ns/review"), "<=", 1.5)
	goal("typical bytes/review", res["typical.bytes_per_review"], "<=", 100_000)
	goal("typical allocs/review", res["typical.allocs_per_review"], "<=", 1000)
	goal("load throughput / floor's", res["load.reviews_per_sec"]/res["load_floor.reviews_per_sec"], ">=", 0.5)
	goal("load p99 / floor's", res["load.p99_ms"]/res["load_floor.p99_ms"], "<=", 3)
	goal("guard full / incremental", res["guard.full_eval_ms"]/res["guard.incremental_ms"], ">=", 50)
	goal("guard RSS MiB", res["guard.rss_mib"], "<=", 300)
	tw.Flush()
}

func num(v float64) string {
	switch {
	case v >= 100 || v == float64(int64(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
