// The failover test's checker, kept apart from the cluster driving so that TestCheck can prove it
// counts each kind of damage (failover_test.go has the package documentation).

package cluster

import "fmt"

// stored is a record as read back: its offset and value.
type stored struct {
	offset int64
	value  []byte
}

// ackedRecord is a record the producer saw acknowledged: its sequence number and offset.
type ackedRecord struct {
	seq    int64
	offset int64
}

// verdict counts what the checker found; violations holds the first few descriptions.
type verdict struct {
	acked, present, lost, moved, dups, disorder, misplaced int
	violations                                             []string
}

func (v *verdict) violation(format string, args ...any) {
	if len(v.violations) < 20 {
		v.violations = append(v.violations, fmt.Sprintf(format, args...))
	}
}

func (v *verdict) failed() bool {
	return v.lost+v.moved+v.dups+v.disorder+v.misplaced > 0
}

// check compares one partition's records as read back with what was acknowledged: every
// acknowledged record present at its offset, no sequence twice, sequences ascending in offset
// order, every value naming this partition. Unacknowledged records may or may not be present.
func (v *verdict) check(p int32, read []stored, acked []ackedRecord) {
	where := make(map[int64]int64, len(read)) // seq -> offset
	last := int64(-1)
	for _, r := range read {
		rp, seq, ok := parseValue(r.value)
		if !ok || rp != p {
			v.misplaced++
			v.violation("partition %d offset %d: unexpected value %q", p, r.offset, r.value)
			continue
		}
		v.present++
		if prev, seen := where[seq]; seen {
			v.dups++
			v.violation("partition %d: seq %d at offsets %d and %d (duplicate)", p, seq, prev, r.offset)
			continue
		}
		where[seq] = r.offset
		if seq <= last {
			v.disorder++
			v.violation("partition %d offset %d: seq %d after seq %d (out of order)", p, r.offset, seq, last)
		}
		last = seq
	}
	for _, a := range acked {
		v.acked++
		off, ok := where[a.seq]
		switch {
		case !ok:
			v.lost++
			v.violation("partition %d: acknowledged seq %d (offset %d) is missing (LOST)", p, a.seq, a.offset)
		case off != a.offset:
			v.moved++
			v.violation("partition %d: acknowledged seq %d at offset %d is now at offset %d", p, a.seq, a.offset, off)
		}
	}
}

func parseValue(v []byte) (p int32, seq int64, ok bool) {
	var pp int
	var ss int64
	if n, err := fmt.Sscanf(string(v), "p=%d seq=%d", &pp, &ss); err != nil || n != 2 {
		return 0, 0, false
	}
	return int32(pp), ss, true
}
