package inject

import (
	"encoding/json"
	"strconv"
	"testing"
)

// BenchmarkForgedStatus: a pod whose status record (the user's to write) names every one of its
// n containers. With remove and stillPresent searching lists, the work grew as n² (issue 14: 20k
// names took 14.8 s through the webhook); with sets it is linear: compare the two sizes' ns/op.
func BenchmarkForgedStatus(b *testing.B) {
	for _, n := range []int{5000, 20000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			names := make([]string, n)
			containers := make([]map[string]any, n)
			for i := range names {
				names[i] = "c" + strconv.Itoa(i)
				containers[i] = map[string]any{"name": names[i], "image": "app:1"}
			}
			st, _ := json.Marshal(Status{Containers: names, Revision: "forged"})
			raw, _ := json.Marshal(map[string]any{
				"metadata": map[string]any{"name": "forged", "namespace": "shop", "annotations": map[string]string{AnnotationStatus: string(st)}},
				"spec":     map[string]any{"containers": containers},
			})
			in := newInjector(b, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.Inject(Request{Pod: raw, Namespace: enabledNS}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
