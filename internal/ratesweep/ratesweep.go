// Package ratesweep holds what make bench's rate sweep and cmd/surge-ratesim
// share, so that the two report the same figures: the limits to run, the
// users in each run, and the least time a run can take.
package ratesweep

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseLimits reads a comma-separated list of the rates Surge allows, one
// run each.
func ParseLimits(list string) ([]float64, error) {
	var limits []float64
	for field := range strings.SplitSeq(list, ",") {
		limit, err := strconv.ParseFloat(strings.TrimSpace(field), 64)
		if err != nil || limit <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", field)
		}
		limits = append(limits, limit)
	}
	return limits, nil
}

// Users sizes a run so that its floor is about floor, between a few dozen
// users and maxUsers: large enough for the client to find the limit, small
// enough that the whole sweep takes minutes.
func Users(limit float64, floor time.Duration, maxUsers int) int {
	return min(max(int(math.Round(limit*floor.Seconds()/2)), 50), maxUsers)
}

// Floor is the least time limit allows for the calls users need, a create
// and a token each, when Surge lets burst of them through at once:
// (2N − burst) / limit.
func Floor(users, burst int, limit float64) time.Duration {
	return time.Duration(max(0, float64(2*users-burst)) / limit * float64(time.Second))
}
