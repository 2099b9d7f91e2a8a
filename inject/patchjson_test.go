package inject

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
)

// TestMarshalPatchMatchesEncodingJSON: the fast serialisation means exactly what encoding/json says.
func TestMarshalPatchMatchesEncodingJSON(t *testing.T) {
	in := newInjector(t, nil)
	for name, raw := range map[string][]byte{
		"plain":     podJSON(nil, nil),
		"overrides": podJSON(map[string]string{"a/b~c": "x"}, map[string]string{AnnProxyCPU: "1", "k/with~slash": "v\"q"}),
		"escapes":   podJSON(map[string]string{"über/ö": "x"}, map[string]string{"a<b>&c": "tab\there\x01\\ \u2028 ü <script>", "plain": "ascii only"}),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
			if err != nil || len(res.Patch) == 0 {
				t.Fatal(err, res)
			}
			res.Patch = append(res.Patch, jsonpatch.NewOperation("remove", "/spec/x", nil))
			fast, err := MarshalPatch(res.Patch)
			if err != nil {
				t.Fatal(err)
			}
			slow, _ := json.Marshal(res.Patch)
			var a, b any
			if err := json.Unmarshal(fast, &a); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			_ = json.Unmarshal(slow, &b)
			if diff := cmp.Diff(b, a); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

// FuzzAppendString: every string, quoted by the fast path or the fallback, decodes to what
// encoding/json's quoting of it decodes to.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "/spec/containers/-", "a\"b", "\\", "<&>", "\x00\x1f", "ü", "\u2028", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("appendString(%q) is not a JSON string: %v", s, err)
		}
		var want string // encoding/json's meaning, invalid UTF-8 included
		slow, _ := json.Marshal(s)
		_ = json.Unmarshal(slow, &want)
		if got != want {
			t.Fatalf("appendString(%q) decodes to %q", s, got)
		}
	})
}
