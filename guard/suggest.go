package guard

import (
	"sort"

	"github.com/meshwarden/meshwarden/didyoumean"
)

// closest returns the candidate nearest to s by edit distance (didyoumean.Distance), if it is near enough to be a typo:
// at most a third of s's length, and at least one edit allowed. Ties go to the first candidate, so
// callers list preferred candidates (the same namespace) first.
func closest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := didyoumean.Distance(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, len([]rune(s))/3)
	if bestD < 0 || bestD > limit {
		return "", false
	}
	return best, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
