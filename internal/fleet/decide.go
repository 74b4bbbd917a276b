package fleet

import (
	"slices"
	"time"

	"github.com/stratalinux/strata/internal/version"
)

// Rollout is the per-group state the policy needs, kept up to date
// transactionally on every grant and status change so a check costs O(1)
// instead of an aggregate over the group.
type Rollout struct {
	GroupID string `json:"group_id"`
	// Target is the version the per-version counters refer to.
	Target       string    `json:"target"`
	PeriodStart  time.Time `json:"period_start"`
	PeriodGrants int       `json:"period_grants"`
	InProgress   int       `json:"in_progress"`
	Granted      int       `json:"granted"`
	Succeeded    int       `json:"succeeded"`
	Failed       int       `json:"failed"`
	TimedOut     int       `json:"timed_out"`
}

// Roll moves the counters to now and target: a new period starts a fresh
// grant count, a new target version fresh per-version counters. Grants in
// progress carry over, they still occupy slots.
func (r Rollout) Roll(now time.Time, target string, p Policy) Rollout {
	if p.Period > 0 && !now.Before(r.PeriodStart.Add(p.Period.D())) {
		r.PeriodStart, r.PeriodGrants = now, 0
	}
	if r.PeriodStart.IsZero() {
		r.PeriodStart = now
	}
	if target != "" && r.Target != target {
		r.Target, r.Granted, r.Succeeded, r.Failed, r.TimedOut = target, 0, 0, 0, 0
	}
	return r
}

// Refusal says why a grant was refused; empty means allowed.
type Refusal string

// Reasons the policy refuses a grant.
const (
	RefuseDisabled    Refusal = "updates disabled"
	RefusePaused      Refusal = "rollout paused"
	RefuseWindow      Refusal = "outside update window"
	RefusePercent     Refusal = "not yet in the rollout percentage"
	RefuseCanary      Refusal = "safe mode: waiting for the canary"
	RefuseCanaryFail  Refusal = "safe mode: canary failed"
	RefusePerPeriod   Refusal = "max updates per period reached"
	RefuseConcurrency Refusal = "max concurrent updates reached"
)

// Admit applies the rollout policy in Nebraska's order (enabled, window,
// safe mode, per-period, concurrency, timed-out brake) plus Strata's
// pause and percentage. r must already be rolled to now and the target.
// brake is true when the refusal should pause the group.
func Admit(p Policy, r Rollout, machineID, target string, now time.Time) (refusal Refusal, brake bool) {
	if !p.UpdatesEnabled {
		return RefuseDisabled, false
	}
	if p.Paused {
		return RefusePaused, false
	}
	if p.Window != nil && !p.Window.Contains(now) {
		return RefuseWindow, false
	}
	if !InPercent(machineID, target, p.Percent) {
		return RefusePercent, false
	}
	if p.SafeMode && r.Succeeded == 0 {
		if r.Failed > 0 || r.TimedOut > 0 {
			return RefuseCanaryFail, true
		}
		if r.Granted > 0 || r.InProgress > 0 {
			return RefuseCanary, false
		}
	}
	if p.MaxUpdatesPerPeriod > 0 && r.PeriodGrants >= p.MaxUpdatesPerPeriod {
		return RefusePerPeriod, false
	}
	if p.MaxConcurrent > 0 && r.InProgress >= p.MaxConcurrent {
		return RefuseConcurrency, false
	}
	return "", false
}

// RecordGrant returns the counters after one grant.
func (r Rollout) RecordGrant() Rollout {
	r.PeriodGrants++
	r.InProgress++
	r.Granted++
	return r
}

// Verdict is the outcome of an update check.
type Verdict int

// Verdicts.
const (
	NoUpdate Verdict = iota
	// Regrant repeats an earlier grant without consulting the policy.
	Regrant
	// Grant needs the policy re-checked under the group's lock.
	Grant
)

// Decision is what the server answers one update check with.
type Decision struct {
	Verdict Verdict
	Package *Package
	// Reason explains a noupdate (for logs, metrics and the dashboard).
	Reason string
	// Throttled marks a refusal by the rollout policy; the node gets
	// noupdate and the PollInterval, and its status becomes OnHold.
	Throttled bool
	Refusal   Refusal
	// UsedCounters is true when the decision looked at the group's
	// rollout counters (a server that decided without reading them must
	// read them and decide again).
	UsedCounters bool
}

// CheckInput is everything Decide looks at.
type CheckInput struct {
	Now      time.Time
	Instance Instance
	Group    *Group
	Channel  *Channel
	// Target is the channel's package (or the pinned version's).
	Target *Package
	// Floors are the channel's floor packages, ascending by version.
	Floors []*Package
	// Pinned marks Target as the instance's pin: an administrator chose
	// this machine and version, so only "updates disabled" and "paused"
	// hold it back, not the channel rollout's window, percentage, canary
	// or limits.
	Pinned  bool
	Rollout Rollout
}

// Decide runs the update decision in Nebraska's documented order, in
// O(1) given the group's counters. A Grant verdict must be confirmed
// with Admit under the group's lock before it is recorded.
func Decide(in CheckInput) Decision {
	inst := in.Instance
	switch inst.Status {
	case StatusDownloading, StatusDownloaded, StatusInstalled:
		return Decision{Reason: "update in progress on instance"}
	}
	if in.Channel == nil || in.Target == nil {
		return Decision{Reason: "no package for this group"}
	}
	if inst.Status == StatusGranted && inst.InProgress {
		if blacklisted(in.Target, in.Channel.ID) || inst.GrantedVersion == "" || version.Compare(inst.Version, inst.GrantedVersion) >= 0 {
			return Decision{Reason: "granted version already installed"}
		}
		if p := stepTo(inst.GrantedVersion, in.Target, in.Floors); p != nil {
			if blacklisted(p, in.Channel.ID) {
				return Decision{Reason: "package blacklisted on this channel"}
			}
			return Decision{Verdict: Regrant, Package: p}
		}
		return Decision{Reason: "granted version no longer available"}
	}
	if version.Compare(inst.Version, in.Target.Version) >= 0 {
		return Decision{Reason: "already at the channel's version"}
	}
	next := nextStep(inst.Version, in.Target, in.Floors)
	if blacklisted(next, in.Channel.ID) {
		return Decision{Reason: "package blacklisted on this channel"}
	}
	if in.Pinned {
		p := in.Group.Policy
		switch {
		case !p.UpdatesEnabled:
			return Decision{Reason: string(RefuseDisabled), Throttled: true, Refusal: RefuseDisabled}
		case p.Paused:
			return Decision{Reason: string(RefusePaused), Throttled: true, Refusal: RefusePaused}
		}
		return Decision{Verdict: Grant, Package: next}
	}
	r := in.Rollout.Roll(in.Now, in.Target.Version, in.Group.Policy)
	if refusal, _ := Admit(in.Group.Policy, r, inst.MachineID, in.Target.Version, in.Now); refusal != "" {
		return Decision{Reason: string(refusal), Throttled: true, Refusal: refusal, UsedCounters: true}
	}
	return Decision{Verdict: Grant, Package: next, UsedCounters: true}
}

// StaleGrant reports whether an instance holds a grant that is no longer a
// step towards its target (the channel was repointed, or the instance
// pinned elsewhere): the grant must be released before deciding again.
func StaleGrant(inst Instance, target *Package, floors []*Package) bool {
	if !inst.InProgress || inst.Status != StatusGranted || target == nil {
		return false
	}
	return stepTo(inst.GrantedVersion, target, floors) == nil
}

// nextStep is the first floor above the instance's version, or the target.
func nextStep(current string, target *Package, floors []*Package) *Package {
	for _, f := range floors {
		if version.Compare(f.Version, current) > 0 && version.Compare(f.Version, target.Version) <= 0 {
			return f
		}
	}
	return target
}

func stepTo(v string, target *Package, floors []*Package) *Package {
	if target.Version == v {
		return target
	}
	for _, f := range floors {
		if f.Version == v {
			return f
		}
	}
	return nil
}

func blacklisted(p *Package, channelID string) bool { return p.BlacklistedOn(channelID) }

// BlacklistedOn reports whether p must never be served on the channel.
func (p *Package) BlacklistedOn(channelID string) bool {
	return slices.Contains(p.Blacklist, channelID)
}
