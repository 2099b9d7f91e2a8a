package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Main is meshwarden-init's whole command line: it parses args, runs, and returns the exit code.
// A failure is reported as one line on stderr and exit code 1 (2 for bad flags), so that the init
// container fails and the pod never starts half-captured.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := ParseArgs(args)
	if errors.Is(err, ErrHelp) {
		fmt.Fprint(stdout, Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshwarden-init: %s\n", oneLine(err))
		return 2
	}
	if err := Run(ctx, c, stdout); err != nil {
		fmt.Fprintf(stderr, "meshwarden-init: %s\n", oneLine(err))
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// Run programs the current network namespace as c says: it applies the ruleset, or removes it
// (c.Cleanup), or prints it (c.DryRun). It writes one summary line to out.
func Run(ctx context.Context, c Config, out io.Writer) error {
	return defaultEngine().run(ctx, c, out)
}

// engine holds the system-facing pieces so that tests can check the decisions without a kernel.
type engine struct {
	nft      nftablesBackend
	ipt      iptablesBackend
	families func() []ipFamily
	routes   func(f ipFamily, add bool) error
	lookPath func(string) (string, error)
}

func defaultEngine() engine {
	return engine{
		nft:      nftablesBackend{dial: dialNftables},
		ipt:      iptablesBackend{run: execRunner},
		families: hostFamilies,
		routes:   tproxyRoutes,
		lookPath: exec.LookPath,
	}
}

// hostFamilies is IPv4 always and IPv6 when it is enabled in this namespace, so a dual-stack pod
// gets both and a pod with IPv6 switched off does not fail on IPv6 routes it cannot have.
func hostFamilies() []ipFamily {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/lo/disable_ipv6")
	if err == nil && strings.TrimSpace(string(b)) == "0" {
		return []ipFamily{ipv4, ipv6}
	}
	return []ipFamily{ipv4}
}

// chooseBackend resolves auto: nftables whenever the kernel answers it (a permission error still
// proves nftables exists), else iptables-restore when it is installed.
func (e engine) chooseBackend(b Backend) (Backend, error) {
	if b != BackendAuto {
		return b, nil
	}
	perr := e.nft.probe()
	if perr == nil || errors.Is(perr, syscall.EPERM) {
		return BackendNftables, nil
	}
	if _, err := e.lookPath("iptables-restore"); err == nil {
		return BackendIptables, nil
	}
	return "", fmt.Errorf("--backend auto: nftables is not available (%v) and iptables-restore is not installed", perr)
}

func (e engine) run(ctx context.Context, c Config, out io.Writer) error {
	if c.Mode == ModeNone && !c.Cleanup {
		fmt.Fprintln(out, "# mode NONE: nothing to program")
		return nil
	}
	backend, err := e.chooseBackend(c.Backend)
	if err != nil {
		return err
	}
	families := e.families()
	var plans []familyPlan
	if !c.Cleanup {
		plans = plan(c, families)
	}
	if c.DryRun {
		if backend == BackendIptables {
			fmt.Fprint(out, renderIptables(plans))
		} else {
			fmt.Fprint(out, renderNft(plans))
		}
		return nil
	}
	if err := e.apply(ctx, backend, families, plans); err != nil {
		if c.Cleanup {
			return fmt.Errorf("could not remove the capture ruleset with %s: %w", backend, err)
		}
		return fmt.Errorf("could not program %s capture with %s (rolled back): %w", c.Mode, backend, err)
	}
	if c.Cleanup {
		fmt.Fprintf(out, "meshwarden-init: removed the capture ruleset (%s)\n", backend)
	} else {
		fmt.Fprintf(out, "meshwarden-init: %s capture programmed with %s for %s\n", c.Mode, backend, familyList(plans))
	}
	return nil
}

func familyList(plans []familyPlan) string {
	var names []string
	for _, p := range plans {
		names = append(names, p.family.String())
	}
	if len(names) == 0 {
		return "no family (nothing is captured)"
	}
	return strings.Join(names, ", ")
}

// apply makes the namespace match plans for every family: the rules, then the TPROXY policy
// routes (added, or removed when no longer wanted). When anything fails, what was already
// changed is removed again.
func (e engine) apply(ctx context.Context, backend Backend, families []ipFamily, plans []familyPlan) error {
	byFamily := map[ipFamily]familyPlan{}
	for _, p := range plans {
		byFamily[p.family] = p
	}
	err := e.applyRules(ctx, backend, families, plans, byFamily)
	for _, f := range families {
		if err != nil {
			break
		}
		err = e.routes(f, byFamily[f].routes)
	}
	if err != nil && len(plans) > 0 {
		e.rollback(ctx, backend, families)
	}
	switch {
	case errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w (meshwarden-init needs CAP_NET_ADMIN)", err)
	case errors.Is(err, syscall.ENETDOWN):
		return fmt.Errorf("%w (the TPROXY route goes through lo, which must be up)", err)
	}
	return err
}

func (e engine) applyRules(ctx context.Context, backend Backend, families []ipFamily, plans []familyPlan, byFamily map[ipFamily]familyPlan) error {
	if backend != BackendIptables {
		return e.nft.apply(families, plans)
	}
	for _, f := range families {
		if err := e.ipt.apply(ctx, f, byFamily[f].chains); err != nil {
			return err
		}
	}
	return nil
}

// rollback removes everything meshwarden may have added; its own errors are dropped because the
// error that caused it is the one worth reporting.
func (e engine) rollback(ctx context.Context, backend Backend, families []ipFamily) {
	for _, f := range families {
		_ = e.routes(f, false)
		if backend == BackendIptables {
			_ = e.ipt.apply(ctx, f, nil)
		}
	}
	if backend != BackendIptables {
		_ = e.nft.apply(families, nil)
	}
}
