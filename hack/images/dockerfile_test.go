package images

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// stage is what a runtime stage of the Dockerfile decides about its image.
type stage struct {
	User       string
	Entrypoint []string
	Copied     []string // destinations of COPY
}

// parseDockerfile reads the FROM … AS <target>, USER, ENTRYPOINT and COPY lines of each stage. It
// knows only what our Dockerfile uses: comments on lines of their own, backslash continuations and
// the exec (JSON) form of ENTRYPOINT.
func parseDockerfile(t *testing.T, path string) map[string]*stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages := map[string]*stage{}
	var cur *stage
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			line += cont + " "
			continue
		}
		line, text = "", line+text
		instr, rest, _ := strings.Cut(text, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			cur = &stage{}
			if f := strings.Fields(rest); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = cur
			}
		case "USER":
			cur.User = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &cur.Entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s: only the exec form is understood: %v", rest, err)
			}
		case "COPY":
			f := strings.Fields(rest)
			cur.Copied = append(cur.Copied, f[len(f)-1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// Docker users and `make images` get the same programs at the same paths, run as the same users.
func TestDockerfileAgrees(t *testing.T) {
	stages := parseDockerfile(t, "../../Dockerfile")
	// Dockerfile targets that are variants of an image: meshwarden-init with iptables-restore, which
	// takes a Debian base that make images does not build.
	variants := map[string]string{"meshwarden-init-iptables": "meshwarden-init"}

	for target, st := range stages {
		if st.Entrypoint == nil {
			continue // a build stage
		}
		name := target
		if v, ok := variants[target]; ok {
			name = v
		}
		im, ok := Lookup(name)
		if !ok || im.Test {
			t.Errorf("Dockerfile target %s has no image in package images (add it to All, or to variants here)", target)
			continue
		}
		want := stage{User: im.User, Entrypoint: im.Entrypoint(), Copied: []string{im.Path()}}
		if diff := cmp.Diff(want, *st); diff != "" {
			t.Errorf("Dockerfile target %s and image %s differ (-images +Dockerfile):\n%s", target, im.Name, diff)
		}
	}
	for _, im := range All {
		if _, ok := stages[im.Name]; !ok && !im.Test {
			t.Errorf("image %s has no Dockerfile target of that name", im.Name)
		}
	}
}
