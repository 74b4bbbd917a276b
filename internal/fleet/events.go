package fleet

import (
	"fmt"
	"time"

	"github.com/stratalinux/strata/internal/omaha"
)

// TouchInterval is how stale last_check may get before an otherwise
// unchanged check writes the instance again (Nebraska uses 5 minutes).
const TouchInterval = time.Minute

// Report is what a node says about itself in one <app>.
type Report struct {
	MachineID string
	Version   string
	Alias     string
	OEM       string
	IP        string
}

// Register folds a report into the instance (new when found is false) and
// says whether it must be written.
func Register(inst Instance, found bool, groupID string, r Report, now time.Time) (Instance, bool) {
	if !found {
		return Instance{
			MachineID: r.MachineID, GroupID: groupID, Version: r.Version, Status: StatusUndefined,
			IP: r.IP, Alias: r.Alias, OEM: r.OEM, LastCheck: now, Created: now,
		}, true
	}
	changed := false
	set := func(dst *string, v string, keepEmpty bool) {
		if v == "" && keepEmpty {
			return
		}
		if *dst != v {
			*dst, changed = v, true
		}
	}
	set(&inst.GroupID, groupID, false)
	set(&inst.Version, r.Version, false)
	set(&inst.IP, r.IP, true)
	set(&inst.Alias, r.Alias, true)
	set(&inst.OEM, r.OEM, true)
	if changed || now.Sub(inst.LastCheck) >= TouchInterval {
		inst.LastCheck = now
		changed = true
	}
	return inst, changed
}

// Delta is a change to a group's rollout counters caused by an instance
// transition; Version says which target the success or failure counts for.
type Delta struct {
	InProgress int
	Succeeded  int
	Failed     int
	Version    string
}

// Zero reports whether the delta changes nothing.
func (d Delta) Zero() bool { return d.InProgress == 0 && d.Succeeded == 0 && d.Failed == 0 }

// Apply adds d to the counters; successes and failures count only for the
// version they refer to.
func (r Rollout) Apply(d Delta) Rollout {
	r.InProgress += d.InProgress
	if r.InProgress < 0 {
		r.InProgress = 0
	}
	if d.Version == r.Target {
		r.Succeeded += d.Succeeded
		r.Failed += d.Failed
	}
	return r
}

// EventOutcome is what one event does to an instance.
type EventOutcome struct {
	Instance Instance
	Delta    Delta
	// Store is true when the event is recorded in the instance's timeline.
	Store bool
	// Activity, when set, goes into the activity log.
	Activity *Activity
}

// ApplyEvent runs one reported event against the instance, following
// update_engine's conventions: 3/2 with a previous version completes an
// update after the reboot, 3/2 with an empty or 0.0.0.0 previous version
// resets a stale download (a grant not yet started is kept), 3/0 is a failure (code 44 a GRUB
// rollback). Events outside the whitelist, and repeats that change
// nothing, are dropped so replays cannot skew the counters.
func ApplyEvent(inst Instance, ev *omaha.Event, now time.Time) EventOutcome {
	out := EventOutcome{Instance: inst}
	if !omaha.KnownEvent(ev) {
		return out
	}
	in := &out.Instance
	release := func() {
		if in.InProgress {
			in.InProgress = false
			out.Delta.InProgress = -1
		}
	}
	switch {
	case ev.Type == omaha.EventUpdateComplete && ev.Result == omaha.ResultSuccessReboot:
		if ev.PreviousVersion == "" || ev.PreviousVersion == "0.0.0.0" {
			// An idle check. A node that was granted an update but never
			// started it (update_engine restarted) keeps its grant and is
			// answered with the same update, without taking a second slot;
			// one that stalled mid-download is reset so it is not stuck.
			if in.InProgress && in.Status != StatusGranted {
				release()
				in.Status = StatusUndefined
			}
			return out
		}
		if in.Status == StatusComplete && !in.InProgress {
			return out // replay
		}
		wasActive := in.InProgress || in.Status == StatusInstalled || in.Status == StatusGranted ||
			in.Status == StatusDownloaded || in.Status == StatusDownloading
		// A node whose grant timed out may still finish: it now runs the
		// granted version, so the update did complete.
		lateFinish := in.GrantedVersion != "" && in.Version == in.GrantedVersion
		if !wasActive && !lateFinish {
			return out
		}
		release()
		in.Status = StatusComplete
		out.Store = true
		out.Delta.Version = in.GrantedVersion
		if in.GrantedVersion == "" || in.Version == in.GrantedVersion {
			out.Delta.Succeeded = 1
		} else {
			out.Delta.Failed = 1
		}
	case ev.Type == omaha.EventUpdateComplete && ev.Result == omaha.ResultError:
		code, _, _ := omaha.ErrorCode(ev.ErrorCode)
		if !in.InProgress && code != omaha.CodeRollback {
			if in.Status == StatusError {
				return out // replay
			}
		}
		if in.Status == StatusError && !in.InProgress {
			return out
		}
		counts := in.InProgress || code == omaha.CodeRollback
		release()
		in.Status = StatusError
		out.Store = true
		if counts {
			out.Delta.Failed = 1
			out.Delta.Version = in.GrantedVersion
		}
		msg := fmt.Sprintf("update to %s failed with error code %s", in.GrantedVersion, ev.ErrorCode)
		if code == omaha.CodeRollback {
			msg = fmt.Sprintf("rolled back to %s after updating to %s (code 44)", in.Version, in.GrantedVersion)
		}
		out.Activity = &Activity{AppID: in.AppID, GroupID: in.GroupID, MachineID: in.MachineID,
			Version: in.GrantedVersion, Severity: SeverityError, Message: msg, Created: now}
	default:
		if !in.InProgress {
			return out
		}
		var next Status
		switch ev.Type {
		case omaha.EventUpdateDownloadStarted:
			next = StatusDownloading
		case omaha.EventUpdateDownloadFinished:
			next = StatusDownloaded
		default: // 3/1 and 800/1: installed, waiting for the reboot
			next = StatusInstalled
		}
		if in.Status == next {
			return out
		}
		in.Status = next
		out.Store = true
	}
	return out
}

// GrantTo marks the instance as granted v at now.
func GrantTo(inst Instance, v string, now time.Time) Instance {
	inst.Status = StatusGranted
	inst.GrantedVersion = v
	inst.GrantedAt = now
	inst.InProgress = true
	return inst
}
