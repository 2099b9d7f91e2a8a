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
