// Package didyoumean picks the likely intended name for a misspelt key, for messages such as
// `unknown field "x"; did you mean "y"?`. The guard keeps its own rule (guard/suggest.go): it
// suggests names of objects in the cluster, where a case difference is a different object.
package didyoumean

import "strings"

// Closest returns the candidate nearest to s when it is near enough to be a likely typo: the same
// key in another case, or within three edits (or a quarter of s's length, for long keys).
// Its cost is linear in the number of candidates, each compared in O(len(s)·len(candidate)).
func Closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if d := Distance(ls, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= 3 || bestD*4 <= len(s) {
		return best
	}
	return ""
}

// Distance is the Levenshtein distance between a and b, counted in runes.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
