package proxyconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		in          string
		wantFields  []string
		wantErr     string
		wantUnknown string
	}{
		"yaml":            {in: "holdApplicationUntilProxyStarts: true\nterminationDrainDuration: 10s\n", wantFields: []string{"holdApplicationUntilProxyStarts", "terminationDrainDuration"}},
		"json":            {in: `{"concurrency": 2}`, wantFields: []string{"concurrency"}},
		"snake case":      {in: "termination_drain_duration: 10s", wantFields: []string{"terminationDrainDuration"}},
		"unknown field":   {in: "holdApplicationUntilProxyStart: true", wantErr: `unknown ProxyConfig field "holdApplicationUntilProxyStart"`, wantUnknown: "holdApplicationUntilProxyStart"},
		"wrong type":      {in: "concurrency: lots", wantErr: "not a valid ProxyConfig"},
		"bad duration":    {in: "terminationDrainDuration: soon", wantErr: "not a valid ProxyConfig"},
		"not yaml":        {in: "a: [", wantErr: "must be a ProxyConfig in YAML or JSON"},
		"a list":          {in: "- a", wantErr: "not a valid ProxyConfig"},
		"empty object":    {in: "{}", wantFields: nil},
		"null is unset":   {in: "holdApplicationUntilProxyStarts: ~\nstatusPort:\nconcurrency: 2", wantFields: []string{"concurrency"}},
		"nested unknown":  {in: "tracing: {zipkin: {adress: x:9411}}", wantErr: `unknown ProxyConfig field "adress"`, wantUnknown: "adress"},
		"proxy metadata":  {in: "proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}", wantFields: []string{"proxyMetadata"}},
		"image is a type": {in: "image: {imageType: distroless}", wantFields: []string{"image"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("error %T is not *Error", err)
				}
				if tc.wantUnknown != "" && (!pe.Unknown || pe.Field != tc.wantUnknown) {
					t.Fatalf("Field %q Unknown %v, want unknown %q", pe.Field, pe.Unknown, tc.wantUnknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.wantFields) {
				t.Fatalf("fields %v, want %v", got, tc.wantFields)
			}
			for _, f := range tc.wantFields {
				if _, ok := got[f]; !ok {
					t.Fatalf("field %q missing from %v", f, got)
				}
			}
		})
	}
}

// TestMergeReplacesFieldsAndMergesMetadata: a field the overlay sets replaces the base one, except
// proxyMetadata, which merges key by key as in istiod (the overlay wins on a shared key).
func TestMergeReplacesFieldsAndMergesMetadata(t *testing.T) {
	base, err := Parse([]byte(`{"discoveryAddress":"istiod.istio-system.svc:15012","proxyMetadata":{"A":"1","B":"2"}}`))
	if err != nil {
		t.Fatal(err)
	}
	over, err := Parse([]byte("proxyMetadata: {B: \"two\", C: \"3\"}\ndiscoveryAddress: istiod-canary.istio-system.svc:15012\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Merge(base, over)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"discoveryAddress":"istiod-canary.istio-system.svc:15012","proxyMetadata":{"A":"1","B":"two","C":"3"}}`
	if got != want {
		t.Fatalf("Merge = %s, want %s", got, want)
	}
}

func TestFieldNames(t *testing.T) {
	names := FieldNames()
	for _, want := range []string{"holdApplicationUntilProxyStarts", "terminationDrainDuration", "discoveryAddress", "proxyMetadata"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("FieldNames lacks %q", want)
		}
	}
}

func TestMetadataIsSortedByName(t *testing.T) {
	got, err := Metadata(`{"concurrency":2,"proxyMetadata":{"B":"2","A":"1"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != [2]string{"A", "1"} || got[1] != [2]string{"B", "2"} {
		t.Fatalf("Metadata = %v", got)
	}
	if got, _ := Metadata(`{"concurrency":2}`); len(got) != 0 {
		t.Fatalf("Metadata without proxyMetadata = %v", got)
	}
}
