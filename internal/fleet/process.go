package fleet

import (
	"fmt"
	"time"

	"github.com/stratalinux/strata/internal/omaha"
)

// CheckRequest is one <app> of an Omaha request, resolved against the
// configuration.
type CheckRequest struct {
	Now     time.Time
	App     *App
	Group   *Group
	Channel *Channel
	Target  *Package
	Floors  []*Package
	// Pinned is true when Target is the instance's pinned version, not
	// the channel's; RolloutTarget is the channel's version, which the
	// group's counters follow either way.
	Pinned        bool
	RolloutTarget string
	Report        Report
	Events        []*omaha.Event
	// UpdateCheck is true when the app asked for an update.
	UpdateCheck bool
}

// Outcome is everything one <app> changes: the instance, the group's
// counters, timeline and activity rows, and the answer.
type Outcome struct {
	Instance Instance
	// Write is true when the instance row must be written.
	Write bool
	// Rollout is the group's counters after this app; RolloutChanged says
	// whether they must be written.
	Rollout        Rollout
	RolloutChanged bool
	Decision       Decision
	Events         []EventRecord
	Activities     []Activity
	// Brake is set when a failed canary pauses the group.
	Brake bool
	// NeedsLock is true when the outcome touches the group's counters and
	// must be recomputed under the group's lock.
	NeedsLock bool
}

// Process runs registration, the events (before the update check, as
// Nebraska does) and the decision for one app. It is pure: given the
// instance and the counters it returns what to write.
func Process(in CheckRequest, inst Instance, found bool, r Rollout) Outcome {
	var out Outcome
	inst, out.Write = Register(inst, found, in.Group.ID, in.Report, in.Now)
	inst.AppID = in.App.ID
	before := r
	target := in.RolloutTarget
	if target == "" && in.Target != nil && !in.Pinned {
		target = in.Target.Version
	}
	r = r.Roll(in.Now, target, in.Group.Policy)
	inst, r = applyEvents(in, inst, r, &out)
	inst, r = releaseStale(in, inst, r, &out)
	if in.UpdateCheck {
		d := Decide(CheckInput{Now: in.Now, Instance: inst, Group: in.Group, Channel: in.Channel, Target: in.Target, Floors: in.Floors,
			Pinned: in.Pinned, Rollout: r})
		out.Decision = d
		switch {
		case d.Verdict == Grant && in.Pinned:
			// A pinned grant takes a slot but is no part of the channel's
			// rollout: its version's counters stay as they are.
			inst = GrantTo(inst, d.Package.Version, in.Now)
			inst.GrantedGroup = in.Group.ID
			r.InProgress++
			out.Write, out.NeedsLock = true, true
		case d.Verdict == Grant:
			inst = GrantTo(inst, d.Package.Version, in.Now)
			inst.GrantedGroup = in.Group.ID
			r = r.RecordGrant()
			out.Write, out.NeedsLock = true, true
			if r.Granted == 1 {
				out.Activities = append(out.Activities, Activity{AppID: in.App.ID, GroupID: in.Group.ID, Version: d.Package.Version,
					Severity: SeverityInfo, Message: fmt.Sprintf("rollout of %s started", d.Package.Version), Created: in.Now})
			}
		case d.Throttled:
			if _, brake := Admit(in.Group.Policy, r, inst.MachineID, target, in.Now); brake {
				out.Brake, out.NeedsLock = true, true
				out.Activities = append(out.Activities, Activity{AppID: in.App.ID, GroupID: in.Group.ID, Version: target,
					Severity: SeverityError, Message: fmt.Sprintf("rollout of %s paused: the safe-mode canary failed", target), Created: in.Now})
			}
			if !inst.InProgress && inst.Status != StatusOnHold {
				inst.Status = StatusOnHold
				out.Write = true
			}
		}
	}
	if in.Target == nil && in.UpdateCheck && found && inst.Status == StatusOnHold {
		inst.Status = StatusUndefined
		out.Write = true
	}
	out.Instance = inst
	out.Rollout = r
	out.RolloutChanged = r != before
	return out
}

// applyEvents runs the request's events against the instance and the
// counters r, recording what they change in out.
func applyEvents(in CheckRequest, inst Instance, r Rollout, out *Outcome) (Instance, Rollout) {
	for _, ev := range in.Events {
		eo := ApplyEvent(inst, ev, in.Now)
		if eo.Instance != inst {
			out.Write = true
		}
		inst = eo.Instance
		if !eo.Delta.Zero() {
			r = r.Apply(eo.Delta)
			out.NeedsLock = true
		}
		if eo.Store {
			out.Events = append(out.Events, EventRecord{AppID: in.App.ID, MachineID: inst.MachineID, Type: ev.Type,
				Result: ev.Result, ErrorCode: ev.ErrorCode, PreviousVersion: ev.PreviousVersion, Version: inst.Version, Created: in.Now})
		}
		if eo.Activity != nil {
			out.Activities = append(out.Activities, *eo.Activity)
		}
	}
	return inst, r
}

// releaseStale frees, before an update check, a grant that no longer
// leads to the request's target.
func releaseStale(in CheckRequest, inst Instance, r Rollout, out *Outcome) (Instance, Rollout) {
	if in.UpdateCheck && StaleGrant(inst, in.Target, in.Floors) {
		inst.InProgress, inst.Status = false, StatusUndefined
		r = r.Apply(Delta{InProgress: -1})
		out.Write, out.NeedsLock = true, true
	}
	return inst, r
}

// SettleNeeded reports whether a request must first be settled against
// the group that granted the instance's update: the node now reports
// another track (in.Group), and its events, or the release of its grant,
// belong to the granting group's counters.
func SettleNeeded(in CheckRequest, inst Instance, found bool) bool {
	if !found || inst.GrantedGroup == "" || inst.GrantedGroup == in.Group.ID {
		return false
	}
	if inst.InProgress {
		return len(in.Events) > 0 || (in.UpdateCheck && StaleGrant(inst, in.Target, in.Floors))
	}
	// Without a grant in progress only a late completion or a rollback
	// still counts for the granting group.
	for _, ev := range in.Events {
		if ev.Type == omaha.EventUpdateComplete && (ev.Result == omaha.ResultError ||
			(ev.Result == omaha.ResultSuccessReboot && ev.PreviousVersion != "" && ev.PreviousVersion != "0.0.0.0")) {
			return true
		}
	}
	return false
}

// Settle applies in's events to an instance whose grant came from the
// group granting, against that group's counters r (which follow
// grantTarget), and before an update check releases the grant if it does
// not lead to in.Target. The instance stays in its stored group; the
// caller then processes the request without its events in the request's
// group, so the slot, the success and the failure are counted where the
// grant was taken and nothing is left "in progress".
func Settle(in CheckRequest, granting *Group, grantTarget string, inst Instance, r Rollout) Outcome {
	var out Outcome
	inst, out.Write = Register(inst, true, inst.GroupID, in.Report, in.Now)
	before := r
	r = r.Roll(in.Now, grantTarget, granting.Policy)
	inst, r = applyEvents(in, inst, r, &out)
	inst, r = releaseStale(in, inst, r, &out)
	for i := range out.Activities {
		out.Activities[i].GroupID = granting.ID
	}
	out.Instance = inst
	out.Rollout = r
	out.RolloutChanged = r != before
	return out
}
