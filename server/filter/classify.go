package filter

import (
	"math"
	"slices"

	"github.com/sealmail/sealmail/policy"
)

// The classifier is Gary Robinson's, as SpamBayes and bogofilter use
// it: each token's spam probability is smoothed towards 0.5 by how
// rarely it was seen, and the strongest clues are combined with
// Fisher's inverse chi-square method, which says "unsure" when the
// clues disagree instead of shouting.
const (
	unknownStrength = 0.45 // s: the weight of the prior for rare tokens
	unknownProb     = 0.5  // x: the prior
	minStrength     = 0.1  // clues closer than this to 0.5 are ignored
	maxClues        = 150
	topReported     = 10 // weights kept for the delivery trace
)

// counts is one model's view of the message's tokens, the models of
// the organisation and of the recipient side by side.
type counts struct {
	spam, ham uint32 // the models' trained messages
	tok       []tokenCount
}

type tokenCount struct {
	class     string
	spam, ham uint32
	known     bool
}

// score combines token counts into a spam probability. ok is false when
// the models have not seen both spam and ham: there is nothing to
// compare a message with yet.
func score(c *counts) (policy.SpamScore, bool) {
	res := policy.SpamScore{Tokens: len(c.tok), TrainedSpam: int(c.spam), TrainedHam: int(c.ham)}
	if c.spam == 0 || c.ham == 0 {
		return res, false
	}
	type clue struct {
		class string
		p     float64
	}
	clues := make([]clue, 0, len(c.tok))
	for _, t := range c.tok {
		if !t.known {
			continue
		}
		res.Known++
		ps := float64(t.spam) / float64(c.spam)
		ph := float64(t.ham) / float64(c.ham)
		if ps+ph == 0 {
			continue
		}
		p := ps / (ps + ph)
		n := float64(t.spam + t.ham)
		f := (unknownStrength*unknownProb + n*p) / (unknownStrength + n)
		if math.Abs(f-0.5) < minStrength {
			continue
		}
		clues = append(clues, clue{t.class, min(max(f, 0.0001), 0.9999)})
	}
	slices.SortStableFunc(clues, func(a, b clue) int {
		da, db := math.Abs(a.p-0.5), math.Abs(b.p-0.5)
		switch {
		case da > db:
			return -1
		case da < db:
			return 1
		}
		return 0
	})
	if len(clues) > maxClues {
		clues = clues[:maxClues]
	}
	if len(clues) == 0 {
		res.Probability = 0.5
		return res, true
	}
	var lnS, lnH float64 // Σ ln(1-f), Σ ln f
	for _, cl := range clues {
		lnS += math.Log(1 - cl.p)
		lnH += math.Log(cl.p)
	}
	n := len(clues)
	s := 1 - chi2Q(-2*lnS, 2*n)
	h := 1 - chi2Q(-2*lnH, 2*n)
	res.Probability = (s - h + 1) / 2
	for _, cl := range clues[:min(len(clues), topReported)] {
		res.Top = append(res.Top, policy.TokenWeight{Class: cl.class, Weight: math.Round(cl.p*1000) / 1000})
	}
	return res, true
}

// chi2Q is the probability that a chi-square variable with v degrees of
// freedom (v even) exceeds x2.
func chi2Q(x2 float64, v int) float64 {
	m := x2 / 2
	sum := math.Exp(-m)
	term := sum
	for i := 1; i < v/2; i++ {
		term *= m / float64(i)
		sum += term
	}
	return min(sum, 1)
}
