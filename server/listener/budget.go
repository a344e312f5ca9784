package listener

import "math"

// Reserve is how many descriptors ConnectionBudget keeps out of the
// listeners' reach: for the control socket and its clients, files the
// store opens as it grows (tables, value logs), certificates, DNS.
const Reserve = 32

// ConnectionBudget returns how many connections the guarded listeners may
// hold together: the descriptor limit, less those open now (call it once
// the store and listeners are open), less Reserve. It is at least 1.
func ConnectionBudget(limit uint64, open int) int {
	b := int64(min(limit, math.MaxInt32)) - int64(open) - Reserve
	return int(max(b, 1))
}

// Share fits the total caps in want into budget: unchanged if their sum
// fits, otherwise each scaled down in proportion (at least 1 each, so no
// listener is shut off). It reports whether anything was scaled.
func Share(budget int, want []int) ([]int, bool) {
	sum := 0
	for _, w := range want {
		sum += w
	}
	out := make([]int, len(want))
	if sum <= budget {
		copy(out, want)
		return out, false
	}
	for i, w := range want {
		out[i] = max(1, int(int64(w)*int64(budget)/int64(sum)))
	}
	return out, true
}
