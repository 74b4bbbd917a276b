package sysupdate

import (
	"fmt"
	"testing"
)

// insts builds instances of the given versions ("2.0", "1.0~partial").
func insts(vs ...string) []Instance {
	var out []Instance
	for _, v := range vs {
		st := Final
		switch {
		case len(v) > 8 && v[len(v)-8:] == "~partial":
			v, st = v[:len(v)-8], PartialState
		case len(v) > 8 && v[len(v)-8:] == "~pending":
			v, st = v[:len(v)-8], PendingState
		}
		out = append(out, Instance{Fields: Fields{Version: v}, Name: "x-" + v, State: st})
	}
	return out
}

func flagString(u UpdateSet) string {
	s := ""
	for _, f := range []struct {
		f Flags
		n string
	}{{Installed, "I"}, {Available, "A"}, {Newest, "N"}, {Obsolete, "O"}, {Protected, "P"}, {Incomplete, "C"}, {Partial, "p"}, {Pending, "d"}} {
		if u.Has(f.f) {
			s += f.n
		}
	}
	if u.Candidate {
		s += "*"
	}
	return s
}

func planString(sets []UpdateSet) string {
	s := ""
	for _, u := range sets {
		s += fmt.Sprintf("%s:%s:%s ", u.Version, flagString(u), u.Assessment())
	}
	return s
}

// The update-set flags as systemd-sysupdate's
// context_discover_update_sets_by_flag() computes them.
func TestPlanFlagsLikeSystemd(t *testing.T) {
	tr := func(min string, protect ...string) *Transfer {
		return &Transfer{ID: "t", MinVersion: min, ProtectVersions: protect}
	}
	cases := []struct {
		name string
		ts   []TransferState
		want string
	}{
		{"newest is also current", []TransferState{{T: tr(""), Source: insts("2.0", "1.0"), Target: insts("2.0", "1.0")}},
			"2.0:IAN:current 1.0:IA:installed "},
		{"newest of each pass", []TransferState{{T: tr(""), Source: insts("2.0", "1.0"), Target: insts("1.0")}},
			"2.0:AN*:candidate 1.0:IAN:current "},
		{"lockstep: a version only one source offers is no set", []TransferState{
			{T: tr(""), Source: insts("3.0", "2.0"), Target: insts("1.0")},
			{T: tr(""), Source: insts("2.0"), Target: insts("1.0")}},
			"2.0:AN*:candidate 1.0:IN:current "},
		{"installed in one target only: incomplete, repaired", []TransferState{
			{T: tr(""), Source: insts("2.0"), Target: insts("2.0", "1.0")},
			{T: tr(""), Source: insts("2.0"), Target: insts("1.0")}},
			"2.0:IANC*:current+incomplete 1.0:I:installed "},
		{"protected and obsolete", []TransferState{{T: tr("1.5", "1.0"), Source: insts("2.0", "1.0"), Target: insts("1.2", "1.0")}},
			"2.0:AN*:candidate 1.2:INO:current+obsolete 1.0:IAOP:protected+obsolete "},
		{"newest available already installed: no candidate", []TransferState{{T: tr(""), Source: insts("1.0"), Target: insts("2.0")}},
			"2.0:IN:current 1.0:AN:candidate "},
		{"pending newest installed is finished", []TransferState{{T: tr(""), Source: insts("1.0"), Target: insts("2.0~pending", "1.0")}},
			"2.0:INd*:current+pending 1.0:IA:installed "},
		{"partial newest installed is resumed", []TransferState{{T: tr(""), Source: insts("2.0", "1.0"), Target: insts("2.0~partial", "1.0")}},
			"2.0:IANp*:current+partial 1.0:IA:installed "},
		{"offline: nothing available", []TransferState{{T: tr(""), Target: insts("2.0", "1.0")}},
			"2.0:IN:current 1.0:I:installed "},
	}
	for _, c := range cases {
		if got := planString(Plan(c.ts)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}
