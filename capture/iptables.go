package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// The iptables backend reads the current state with iptables-save and changes it with one
// iptables-restore --noflush run per family: each table is committed atomically and rules that
// are not meshwarden's are never touched.

// iptChainPrefix marks every chain meshwarden owns.
const iptChainPrefix = "MESHWARDEN_"

// runner runs a command with stdin and returns its stdout; tests replace it.
type runner func(ctx context.Context, stdin string, name string, args ...string) (string, error)

func execRunner(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg != "" {
			return "", fmt.Errorf("%s: %v: %s", name, err, msg)
		}
		return "", fmt.Errorf("%s: %v", name, err)
	}
	return out.String(), nil
}

type iptablesBackend struct{ run runner }

func iptBinaries(f ipFamily) (save, restore string) {
	if f == ipv6 {
		return "ip6tables-save", "ip6tables-restore"
	}
	return "iptables-save", "iptables-restore"
}

// apply makes meshwarden's chains of one family exactly chains (nil removes them all).
func (b iptablesBackend) apply(ctx context.Context, f ipFamily, chains []chain) error {
	save, restore := iptBinaries(f)
	cur, err := b.run(ctx, "", save)
	if err != nil {
		return err
	}
	input := restoreInput(f, parseSave(cur), chains)
	if input == "" {
		return nil
	}
	if _, err := b.run(ctx, input, restore, "--noflush", "--wait"); err != nil {
		return err
	}
	return nil
}

// savedTable is what iptables-save reports for one table.
type savedTable struct {
	chains map[string]bool
	rules  [][2]string // chain, spec
}

func parseSave(s string) map[string]*savedTable {
	tables := map[string]*savedTable{}
	var cur *savedTable
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &savedTable{chains: map[string]bool{}}
			tables[line[1:]] = cur
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			cur.chains[strings.Fields(line[1:])[0]] = true
		case strings.HasPrefix(line, "-A "):
			if name, spec, ok := strings.Cut(line[3:], " "); ok {
				cur.rules = append(cur.rules, [2]string{name, spec})
			}
		}
	}
	return tables
}

// restoreInput returns the iptables-restore --noflush input that turns the saved state into one
// where meshwarden's chains are exactly want; "" when there is nothing to change.
func restoreInput(f ipFamily, saved map[string]*savedTable, want []chain) string {
	var b strings.Builder
	for _, table := range []string{tableNAT, tableMangle} {
		st := saved[table]
		if st == nil {
			st = &savedTable{chains: map[string]bool{}}
		}
		var desired []chain
		wanted := map[string]bool{}
		for _, c := range want {
			if c.table == table {
				desired = append(desired, c)
				wanted[iptChainName(c.name)] = true
			}
		}
		var stale []string
		for name := range st.chains {
			if strings.HasPrefix(name, iptChainPrefix) && !wanted[name] {
				stale = append(stale, name)
			}
		}
		slices.Sort(stale)
		type jump struct{ builtin, spec string }
		var wantJumps []jump
		for _, c := range desired {
			if c.hook != "" {
				wantJumps = append(wantJumps, jump{strings.ToUpper(c.hook), "-p tcp -j " + iptChainName(c.name)})
			}
		}
		var lines []string
		have := map[jump]bool{}
		for _, r := range st.rules {
			if strings.HasPrefix(r[0], iptChainPrefix) || !strings.Contains(r[1], "-j "+iptChainPrefix) {
				continue
			}
			j := jump{r[0], r[1]}
			if slices.Contains(wantJumps, j) && !have[j] {
				have[j] = true
				continue
			}
			lines = append(lines, fmt.Sprintf("-D %s %s", r[0], r[1]))
		}
		if len(desired) == 0 && len(stale) == 0 && len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range desired {
			// With --noflush, declaring an existing chain flushes it: the rules below replace it.
			fmt.Fprintf(&b, ":%s - [0:0]\n", iptChainName(c.name))
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		for _, name := range stale {
			fmt.Fprintf(&b, "-F %s\n", name)
		}
		for _, name := range stale {
			fmt.Fprintf(&b, "-X %s\n", name)
		}
		for _, c := range desired {
			for _, r := range c.rules {
				for _, spec := range iptRuleSpecs(f, r) {
					fmt.Fprintf(&b, "-A %s %s\n", iptChainName(c.name), spec)
				}
			}
		}
		for _, j := range wantJumps {
			if !have[j] {
				fmt.Fprintf(&b, "-A %s %s\n", j.builtin, j.spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// renderIptables is the --dry-run output of the iptables backend: the input it would feed to
// iptables-restore in a namespace without meshwarden's chains.
func renderIptables(plans []familyPlan) string {
	var b strings.Builder
	for i, fp := range plans {
		if i > 0 {
			b.WriteString("\n")
		}
		renderRoutes(&b, fp)
		_, restore := iptBinaries(fp.family)
		fmt.Fprintf(&b, "# %s --noflush\n", restore)
		b.WriteString(restoreInput(fp.family, nil, fp.chains))
	}
	return b.String()
}
