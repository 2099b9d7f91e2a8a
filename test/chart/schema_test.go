package chart

import (
	"path/filepath"
	"strings"
	"testing"
)

// schemaError is how helm reports values that values.schema.json refuses.
const schemaError = "values don't meet the specifications of the schema"

// TestSchemaRefusals: nonsense values fail `helm template` with helm's schema error naming the value.
func TestSchemaRefusals(t *testing.T) {
	cases := map[string]struct {
		set  []string
		want string
	}{
		"replicaCount not a number":      {[]string{"replicaCount=lots"}, "/replicaCount"},
		"zero replicas":                  {[]string{"replicaCount=0"}, "/replicaCount"},
		"unknown cert mode":              {[]string{"certs.mode=vault"}, "/certs/mode"},
		"files mode without Secret":      {[]string{"certs.mode=files"}, "/certs/files/secretName"},
		"failurePolicy":                  {[]string{"webhook.failurePolicy=Sometimes"}, "/webhook/failurePolicy"},
		"timeout over 30s":               {[]string{"webhook.timeoutSeconds=60"}, "/webhook/timeoutSeconds"},
		"reinvocationPolicy":             {[]string{"webhook.reinvocationPolicy=Always"}, "/webhook/reinvocationPolicy"},
		"guard mode":                     {[]string{"guard.defaultMode=loud"}, "/guard/defaultMode"},
		"injection policy":               {[]string{"injection.defaultPolicy=sometimes"}, "/injection/defaultPolicy"},
		"xDS address without port":       {[]string{"injection.xdsAddress=istiod"}, "/injection/xdsAddress"},
		"proxy CPU not a quantity":       {[]string{"injection.proxyResources.requests.cpu=lots"}, "/injection/proxyResources/requests/cpu"},
		"interception mode":              {[]string{"injection.interceptionMode=MAGIC"}, "/injection/interceptionMode"},
		"duration":                       {[]string{"leaderElection.leaseDuration=15"}, "/leaderElection/leaseDuration"},
		"log level":                      {[]string{"log.level=verbose"}, "/log/level"},
		"misspelt top-level key":         {[]string{"replicas=3"}, "additional properties 'replicas'"},
		"misspelt nested key":            {[]string{"webhook.failurePolicyy=Fail"}, "additional properties 'failurePolicyy'"},
		"template name":                  {[]string{"injection.customTemplates.bad/name=x"}, "invalid propertyName 'bad/name'"},
		"no leader election, 2 replicas": {[]string{"leaderElection.enabled=false"}, "/replicaCount"},
		"unknown profile":                {[]string{"injection.profile=linkerd"}, "/injection/profile"},
		"envoy: xDS address without port": {
			[]string{"injection.profile=envoy", "injection.xdsAddress=istiod"}, "/injection/xdsAddress"},
		"xdsTLS Secret name":              {[]string{"injection.xdsTLS.secretName=Not_A_Name"}, "/injection/xdsTLS/secretName"},
		"istio discovery without port":    {[]string{"injection.istio.discoveryAddress=istiod"}, "/injection/istio/discoveryAddress"},
		"istio system namespace":          {[]string{"injection.istio.systemNamespace=Istio_System"}, "/injection/istio/systemNamespace"},
		"istio trust domain with a space": {[]string{"injection.istio.trustDomain=my domain"}, "/injection/istio/trustDomain"},
		"istio proxyConfig not an object": {[]string{"injection.istio.proxyConfig=2"}, "/injection/istio/proxyConfig"},
		"misspelt istio key":              {[]string{"injection.istio.trustdomain=x"}, "additional properties 'trustdomain'"},
		"meshwarden image latest":         {[]string{"image.tag=latest"}, "/image/tag"},
		"init image latest":               {[]string{"injection.initImage.tag=latest"}, "/injection/initImage/tag"},
		"envoy image latest":              {[]string{"injection.proxyImage.tag=latest"}, "/injection/proxyImage/tag"},
		"istio image latest":              {[]string{"injection.istio.proxyImage.tag=latest"}, "/injection/istio/proxyImage/tag"},
		"test image latest":               {[]string{"tests.image.tag=latest"}, "/tests/image/tag"},
		"digest not sha256":               {[]string{"injection.istio.proxyImage.digest=1.31.0"}, "/injection/istio/proxyImage/digest"},
		"repository with a tag":           {[]string{"injection.initImage.repository=ghcr.io/meshwarden/meshwarden-init:0.1.0"}, "/injection/initImage/repository"},
		"misspelt image key":              {[]string{"tests.image.digests=sha256:x"}, "additional properties 'digests'"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runHelm(t, renderCase{set: c.set}.args(t)...)
			if err == nil {
				t.Fatalf("--set %s was accepted", strings.Join(c.set, ","))
			}
			if !strings.Contains(stderr, schemaError) || !strings.Contains(stderr, c.want) {
				t.Errorf("want helm's schema error naming %q, got:\n%s", c.want, stderr)
			}
		})
	}
}

// TestSchemaAccepts: reasonable settings outside the golden cases pass the schema.
func TestSchemaAccepts(t *testing.T) {
	cases := map[string][]string{
		"files mode":               {"certs.mode=files", "certs.files.secretName=my-tls"},
		"one replica, no election": {"replicaCount=1", "leaderElection.enabled=false"},
		"ClusterIssuer":            {"certs.mode=cert-manager", "certs.certManager.issuerRef.name=corp-ca", "certs.certManager.issuerRef.kind=ClusterIssuer"},
		"percent PDB":              {"podDisruptionBudget.maxUnavailable=50%"},
		"guard off":                {"guard.enabled=false"},
		"numeric proxy CPU":        {"injection.proxyResources.requests.cpu=0.5"},
		"out-of-cluster webhook":   {"webhook.url=https://127.0.0.1:9443", "certs.extraSANs={127.0.0.1}"},
		"envoy profile":            {"injection.profile=envoy", "injection.xdsAddress=xds.my-mesh.svc:18000"},
		"envoy with TLS":           {"injection.profile=envoy", "injection.xdsAddress=10.0.0.7:18000", "injection.xdsTLS.secretName=xds-tls", "injection.xdsTLS.serverName=xds.my-mesh.example"},
		"templates set":            {"injection.templates={istio}"},
		"revisioned istiod":        {"injection.istio.discoveryAddress=istiod-canary.istio-system.svc:15012", "injection.istio.network=net-1"},
		"digest without a tag":     {"injection.istio.proxyImage.tag=", "injection.istio.proxyImage.digest=sha256:" + strings.Repeat("0", 64)},
		"registry with a port":     {"image.repository=registry.example:5000/meshwarden/meshwarden"},
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			render(t, renderCase{set: set})
		})
	}
}

// TestLint: `helm lint --strict` passes with the default values and every golden case's values.
func TestLint(t *testing.T) {
	for _, name := range caseNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"lint", "--strict", chartDir(t), "--namespace", releaseNS, "--kube-version", kubeVersion}
			for _, v := range goldenCases[name].values {
				args = append(args, "--values", filepath.Join("testdata", "values", v))
			}
			out, stderr, err := runHelm(t, args...)
			if err != nil || strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Errorf("helm lint: %v\n%s%s", err, out, stderr)
			}
		})
	}
}

// TestKubeVersion: native sidecars need Kubernetes 1.29; older clusters get a message saying what to set.
func TestKubeVersion(t *testing.T) {
	args := func(version string, set ...string) []string {
		a := []string{"template", releaseName, chartDir(t), "--namespace", releaseNS, "--kube-version", version}
		for _, s := range set {
			a = append(a, "--set", s)
		}
		return a
	}
	if _, stderr, err := runHelm(t, args("1.28.3")...); err == nil || !strings.Contains(stderr, "set injection.nativeSidecar=false") {
		t.Errorf("Kubernetes 1.28 with native sidecars: err %v, stderr:\n%s", err, stderr)
	}
	for _, a := range [][]string{args("1.28.3", "injection.nativeSidecar=false"), args("1.29.0")} {
		if _, stderr, err := runHelm(t, a...); err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(a, " "), err, stderr)
		}
	}
}
