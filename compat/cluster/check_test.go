package cluster

import (
	"fmt"
	"testing"
)

func rec(p int32, seq, offset int64) stored {
	return stored{offset: offset, value: fmt.Appendf(nil, "p=%d seq=%d", p, seq)}
}

// The checker itself: a clean log passes, and each kind of damage is counted as what it is.
func TestCheck(t *testing.T) {
	acked := []ackedRecord{{0, 0}, {1, 1}, {2, 2}}
	cases := []struct {
		name string
		read []stored
		want verdict
	}{
		{"clean", []stored{rec(3, 0, 0), rec(3, 1, 1), rec(3, 2, 2)}, verdict{acked: 3, present: 3}},
		{"unacked extra is fine", []stored{rec(3, 0, 0), rec(3, 1, 1), rec(3, 2, 2), rec(3, 3, 3)}, verdict{acked: 3, present: 4}},
		{"lost", []stored{rec(3, 0, 0), rec(3, 2, 2)}, verdict{acked: 3, present: 2, lost: 1}},
		{"moved", []stored{rec(3, 0, 0), rec(3, 1, 1), rec(3, 2, 5)}, verdict{acked: 3, present: 3, moved: 1}},
		{"duplicate", []stored{rec(3, 0, 0), rec(3, 1, 1), rec(3, 1, 2), rec(3, 2, 3)}, verdict{acked: 3, present: 4, dups: 1, moved: 1}},
		{"out of order", []stored{rec(3, 0, 0), rec(3, 2, 1), rec(3, 1, 2)}, verdict{acked: 3, present: 3, disorder: 1, moved: 2}},
		{"wrong partition", []stored{rec(3, 0, 0), rec(3, 1, 1), rec(3, 2, 2), rec(4, 9, 3)}, verdict{acked: 3, present: 3, misplaced: 1}},
		{"garbage", []stored{rec(3, 0, 0), rec(3, 1, 1), rec(3, 2, 2), {offset: 3, value: []byte("x")}}, verdict{acked: 3, present: 3, misplaced: 1}},
	}
	for _, c := range cases {
		var v verdict
		v.check(3, c.read, acked)
		wantFail := c.want.failed()
		c.want.violations, v.violations = nil, nil
		if fmt.Sprint(v) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, v, c.want)
		}
		if v.failed() != wantFail {
			t.Errorf("%s: failed() = %v", c.name, v.failed())
		}
	}
}
