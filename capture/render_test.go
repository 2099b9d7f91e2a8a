package capture

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestDryRunGolden pins the --dry-run output of both backends; go test -run TestDryRunGolden
// -update rewrites the files after an intended change.
func TestDryRunGolden(t *testing.T) {
	tests := map[string][]string{
		"defaults": nil,
		"narrowed": {
			"--include-outbound-cidrs", "10.0.0.0/8,fd00::/8", "--exclude-outbound-cidrs", "10.96.0.10/32",
			"--include-outbound-ports", "80,443", "--exclude-outbound-ports", "22",
			"--include-inbound-ports", "8080", "--exclude-inbound-ports", "9090",
		},
		"ipv4-only-outbound-no-inbound": {"--include-outbound-cidrs", "10.0.0.0/8", "--include-inbound-ports", ""},
		"tproxy":                        {"--mode", "TPROXY", "--exclude-inbound-ports", "9090"},
		"custom-proxy":                  {"--proxy-uid", "101", "--proxy-gid", "102", "--outbound-port", "16001", "--inbound-port", "16006", "--proxy-ports", "15021"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseArgs(args)
			if err != nil {
				t.Fatal(err)
			}
			plans := plan(c, []ipFamily{ipv4, ipv6})
			golden(t, filepath.Join("testdata", name+".nft"), renderNft(plans))
			golden(t, filepath.Join("testdata", name+".iptables"), renderIptables(plans))
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./capture -run TestDryRunGolden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s is stale (-want +got); rerun with -update if intended:\n%s", path, diff)
	}
}

func TestPlanNoneProgramsNothing(t *testing.T) {
	c, err := ParseArgs([]string{"--mode", "NONE"})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan(c, []ipFamily{ipv4, ipv6}); len(got) != 0 {
		t.Errorf("plan for NONE = %d families, want none", len(got))
	}
}
