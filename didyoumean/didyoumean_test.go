package didyoumean

import "testing"

func TestClosest(t *testing.T) {
	keys := []string{"holdApplicationUntilProxyStarts", "statusPort", "proxyMetadata"}
	cases := []struct{ in, want string }{
		{"holdApplicationUntilProxyStart", "holdApplicationUntilProxyStarts"}, // one edit
		{"STATUSPORT", "statusPort"},                                          // case only
		{"statusPrt", "statusPort"},                                           // within three edits
		{"zzzzzzzz", ""},                                                      // nothing near
		{"proxyMetaDataz", "proxyMetadata"},
	}
	for _, c := range cases {
		if got := Closest(c.in, keys); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDistanceCountsRunes(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"gateway", "gatway", 1}, {"kitten", "sitting", 3}, {"héllo", "hello", 1}, {"abc", "", 3}} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
