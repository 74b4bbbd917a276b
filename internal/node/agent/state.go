package agent

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/version"
)

// Phase is where the agent is in an update.
type Phase string

// Phases, in the order an update goes through them.
const (
	Idle           Phase = "idle"
	Checking       Phase = "checking"
	Downloading    Phase = "downloading"
	Verifying      Phase = "verifying"
	Installing     Phase = "installing"
	RebootPending  Phase = "installed-reboot-pending"
	WaitingForLock Phase = "waiting-for-lock"
	Rebooting      Phase = "rebooting"
	HealthCheck    Phase = "health-check"
)

// update_engine's action codes the agent reports in 3/0 events.
const (
	CodeError               = 1
	CodeFilesystemCopier    = 4
	CodeDownloadTransfer    = 9
	CodePayloadHashMismatch = 10
	CodePayloadSizeMismatch = 11
	CodePayloadVerification = 12
	CodeDownloadWrite       = 14
	// CodePayloadPubKeyVerification (kActionCodeDownloadPayloadPubKeyVerificationError): the
	// payload's root hash is unsigned or signed by a certificate the node does not trust.
	CodePayloadPubKeyVerification = 18
	CodeResponseInvalid           = 34
	CodeRollback                  = omaha.CodeRollback
)

// Package is one payload of an offer.
type Package struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`         // hex
	SHA1   string `json:"sha1,omitempty"` // base64, as Omaha's hash attribute
	// Required extension payloads sink the update when they fail;
	// optional ones (strata serve's required="false") are reported.
	Required bool `json:"required,omitempty"`
}

// Offer is an update the server granted, checked.
type Offer struct {
	Version string    `json:"version"`
	Payload Package   `json:"payload"`
	Extras  []Package `json:"extras,omitempty"`
}

// Outgoing is a journalled event: written before it is sent, removed
// once the server answered 200. WithCheck events ride on the next update
// check (update_engine's 3/2 after an update and its 3/0 rollback).
type Outgoing struct {
	Seq       int         `json:"seq"`
	Event     omaha.Event `json:"event"`
	WithCheck bool        `json:"with_check,omitempty"`
	// AppID and AppVersion are set for an extension app's event; empty
	// is the OS app.
	AppID      string `json:"app_id,omitempty"`
	AppVersion string `json:"app_version,omitempty"`
}

// ExtPending is an extension app's update between its link switch and
// its 3/2.
type ExtPending struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Journal is the agent's state on disk.
type Journal struct {
	Phase Phase  `json:"phase"`
	Offer *Offer `json:"offer,omitempty"`
	// FromVersion is the version that ran when the update began: the
	// previousversion of the 3/2 after the reboot.
	FromVersion string `json:"from_version,omitempty"`
	BootedSlot  string `json:"booted_slot,omitempty"`
	TargetSlot  string `json:"target_slot,omitempty"`
	// ArmedBootID is the boot the target was armed in: a different boot
	// id later means the machine rebooted.
	ArmedBootID string `json:"armed_boot_id,omitempty"`
	LockHeld    bool   `json:"lock_held,omitempty"`
	// LockHolders are who held the reboot lock's slots when it was last
	// seen full (etcd-lock names them), while waiting for it.
	LockHolders []string   `json:"lock_holders,omitempty"`
	Skip        []string   `json:"skip,omitempty"` // rolled back: not retried until something newer
	Outbox      []Outgoing `json:"outbox,omitempty"`
	Seq         int        `json:"seq"`
	Failures    int        `json:"failures,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastCheck   time.Time  `json:"last_check,omitzero"`
	NextCheck   time.Time  `json:"next_check,omitzero"`
	Done        int64      `json:"done,omitempty"`
	Total       int64      `json:"total,omitempty"`
	Aleph       string     `json:"aleph,omitempty"`
	// ExtSent records the events sent for extension apps' offers
	// ("NAME VERSION TYPE/RESULT"), so a restart does not repeat them.
	ExtSent []string `json:"ext_sent,omitempty"`
	// ExtPending are extension apps whose link is being switched, by name.
	ExtPending map[string]ExtPending `json:"ext_pending,omitempty"`
	// ExtrasFailed names optional extension payloads that did not verify.
	ExtrasFailed []string `json:"extras_failed,omitempty"`
}

// Queue journals an event to send.
func (j *Journal) Queue(ev omaha.Event, withCheck bool) {
	j.Seq++
	j.Outbox = append(j.Outbox, Outgoing{Seq: j.Seq, Event: ev, WithCheck: withCheck})
}

// Sent removes the event seq from the outbox.
func (j *Journal) Sent(seq int) {
	j.Outbox = slices.DeleteFunc(j.Outbox, func(o Outgoing) bool { return o.Seq == seq })
}

// CheckEvent is the event the next update check carries: the first
// journalled WithCheck event, else the idle 3/2 with previousversion="".
func (j Journal) CheckEvent() (omaha.Event, int) {
	for _, o := range j.Outbox {
		if o.WithCheck {
			return o.Event, o.Seq
		}
	}
	return IdleEvent(), 0
}

func (j Journal) pendingEvents() []Outgoing {
	var out []Outgoing
	for _, o := range j.Outbox {
		if !o.WithCheck {
			out = append(out, o)
		}
	}
	return out
}

// Failure is a 3/0 event with update_engine's code and its
// TestOmahaURL flag (set for every server but Flatcar's public one).
func Failure(code uint32) omaha.Event {
	return omaha.Event{Type: omaha.EventUpdateComplete, Result: omaha.ResultError, ErrorCode: strconv.FormatUint(uint64(code|omaha.FlagTestOmahaURL), 10)}
}

func success(typ int) omaha.Event { return omaha.Event{Type: typ, Result: omaha.ResultSuccess} }

// Observed is what the agent sees of the running system.
type Observed struct {
	BootID  string
	Booted  string // slot
	Version string // of the booted /usr
}

// Resume reconciles a journal read at start with the running system: a
// reboot into the armed slot goes on to the health check; a reboot that
// came back on the old slot is a rollback, reported as update_engine
// reports it (3/0, code 44, with the next check) and that version is not
// retried. A check in flight is simply forgotten.
func Resume(j Journal, obs Observed) Journal {
	switch j.Phase {
	case Checking:
		j.Phase = Idle
	case RebootPending, WaitingForLock, Rebooting:
		rebooted := j.ArmedBootID != "" && obs.BootID != "" && obs.BootID != j.ArmedBootID || obs.Booted != j.BootedSlot
		if !rebooted {
			if j.Phase == Rebooting {
				// Stopped between journalling the reboot and rebooting:
				// decide again (the lock, if taken, is still held).
				j.Phase = RebootPending
			}
			break
		}
		if obs.Booted == j.TargetSlot {
			j.Phase = HealthCheck
			break
		}
		j.Queue(Failure(CodeRollback), true)
		if j.Offer != nil && !slices.Contains(j.Skip, j.Offer.Version) {
			j.Skip = append(j.Skip, j.Offer.Version)
		}
		j.LastError = fmt.Sprintf("rolled back: slot %s did not stay booted, running %s again", j.TargetSlot, obs.Version)
		j = j.reset()
	}
	if j.Aleph == "" {
		j.Aleph = obs.Version
	}
	return j
}

// reset ends an update attempt (keeping the outbox, skips and the lock,
// which is released by its own step).
func (j Journal) reset() Journal {
	j.Phase, j.Offer, j.TargetSlot, j.ArmedBootID, j.Done, j.Total, j.ExtrasFailed = Idle, nil, "", "", 0, 0, nil
	return j
}

// Fail ends the attempt with a 3/0 event carrying code and the error as
// LastError; the next check backs off.
func Fail(j Journal, code uint32, err error, now time.Time) Journal {
	j.Queue(Failure(code), false)
	j.LastError = err.Error()
	j = j.reset()
	j.Failures++
	j.NextCheck = now.Add(coord.Backoff(j.Failures - 1))
	return j
}

// Action is the next thing the agent does.
type Action int

// Actions Next returns.
const (
	ActWait Action = iota
	ActSendEvents
	ActCheck
	ActDownload
	ActVerify
	ActInstall
	ActTakeLock
	ActReboot
	ActHandOff
	ActHealthCheck
	ActReleaseLock
)

var actionNames = []string{"wait", "send-events", "check", "download", "verify", "install", "take-lock", "reboot", "hand-off", "health-check", "release-lock"}

func (a Action) String() string { return actionNames[a] }

// Next is the state machine: what to do now given the journal, the
// reboot strategy and window, and the time. For ActWait, until is when to
// ask again (zero: nothing to do until something outside changes).
func Next(j Journal, s coord.Strategy, w coord.Window, now time.Time) (Action, time.Time) {
	if len(j.pendingEvents()) > 0 {
		return ActSendEvents, time.Time{}
	}
	switch j.Phase {
	case Downloading:
		return ActDownload, time.Time{}
	case Verifying:
		return ActVerify, time.Time{}
	case Installing:
		return ActInstall, time.Time{}
	case HealthCheck:
		return ActHealthCheck, time.Time{}
	case Rebooting:
		return ActWait, time.Time{}
	case RebootPending, WaitingForLock:
		d := coord.Decide(s, w, now, j.LockHeld || !s.NeedsLock())
		switch d.Action {
		case coord.TakeLock:
			return ActTakeLock, time.Time{}
		case coord.RebootNow:
			return ActReboot, time.Time{}
		case coord.HandOff:
			return ActHandOff, time.Time{}
		case coord.Wait:
			return ActWait, d.Until
		}
		return ActWait, time.Time{} // off: someone else reboots
	}
	// Idle: the 3/2 (or rollback) first, then the lock, then the timer.
	if _, seq := j.CheckEvent(); seq != 0 {
		return ActCheck, time.Time{}
	}
	if j.LockHeld {
		return ActReleaseLock, time.Time{}
	}
	if !now.Before(j.NextCheck) {
		return ActCheck, time.Time{}
	}
	return ActWait, j.NextCheck
}

// MaxPayloadSize bounds an OS payload an offer may announce.
const MaxPayloadSize = 16 << 30

// CheckResult is a parsed answer to an update check.
type CheckResult struct {
	Offer *Offer        // nil: no update
	Poll  time.Duration // the server's PollInterval, 0 if none
	// Skipped is set when the offer was a version this node rolled back from.
	Skipped string
}

// ParseAnswer checks the server's answer for the node's app: status,
// manifest, package, hashes, sizes, URLs (the payload name may not leave
// the codebase), and that the version is newer than running.
func ParseAnswer(resp *omaha.Response, appID, running string, skip []string) (CheckResult, error) {
	var res CheckResult
	if resp == nil {
		return res, fmt.Errorf("empty answer")
	}
	var app *omaha.ResponseApp
	for _, a := range resp.Apps {
		if a != nil && omaha.NormalizeAppID(a.ID) == omaha.NormalizeAppID(appID) {
			app = a
		}
	}
	if app == nil {
		return res, fmt.Errorf("the answer has no app %s", appID)
	}
	if app.Status != "" && app.Status != "ok" {
		return res, fmt.Errorf("the server answered app status %q for app %s", app.Status, appID)
	}
	uc := app.UpdateCheck
	if uc == nil {
		return res, fmt.Errorf("the answer has no updatecheck")
	}
	if uc.PollInterval != "" {
		if n, err := strconv.Atoi(uc.PollInterval); err == nil && n > 0 && n <= 7*24*3600 {
			res.Poll = time.Duration(n) * time.Second
		}
	}
	switch uc.Status {
	case omaha.StatusNoUpdate:
		return res, nil
	case omaha.StatusOK:
	default:
		return res, fmt.Errorf("updatecheck status %q (want ok or noupdate)", uc.Status)
	}
	if len(uc.Manifests) == 0 || uc.Manifests[0] == nil || len(uc.Manifests[0].Packages) == 0 {
		return res, fmt.Errorf("update offered without a manifest and package")
	}
	if len(uc.URLs) == 0 {
		return res, fmt.Errorf("update offered without a codebase URL")
	}
	m := uc.Manifests[0]
	if m.Version == "" || !version.IsValid(m.Version) || m.Version[0] < '0' || m.Version[0] > '9' {
		return res, fmt.Errorf("offered version %q is not a version", m.Version)
	}
	if running != "" && version.Compare(m.Version, running) <= 0 {
		return res, fmt.Errorf("offered version %s is not newer than the running %s (refusing a downgrade)", m.Version, running)
	}
	if slices.Contains(skip, m.Version) {
		res.Skipped = m.Version
		return res, nil
	}
	base := uc.URLs[0].Codebase
	var sum string
	for _, a := range m.Actions {
		if a.Event == "postinstall" {
			sum = a.SHA256
		}
	}
	raw, err := base64.StdEncoding.DecodeString(sum)
	if err != nil || len(raw) != 32 {
		return res, fmt.Errorf("the postinstall action's sha256 %q is not base64 of a SHA-256", sum)
	}
	p := m.Packages[0]
	main, err := packageOf(base, p, hex.EncodeToString(raw))
	if err != nil {
		return res, err
	}
	o := &Offer{Version: m.Version, Payload: main}
	for _, x := range m.Packages[1:] {
		if x.HashSHA256 == "" {
			continue // not an extension payload (update_engine ignores them too)
		}
		b, err := hex.DecodeString(x.HashSHA256)
		if err != nil || len(b) != 32 {
			return res, fmt.Errorf("package %q: hash_sha256 %q is not 64 hex digits", x.Name, x.HashSHA256)
		}
		ep, err := packageOf(base, x, strings.ToLower(x.HashSHA256))
		if err != nil {
			return res, err
		}
		o.Extras = append(o.Extras, ep)
	}
	res.Offer = o
	return res, nil
}

func packageOf(base string, p omaha.Package, sha256hex string) (Package, error) {
	if p.Size <= 0 || p.Size > MaxPayloadSize {
		return Package{}, fmt.Errorf("package %q: size %d is not within 1 byte … 16 GiB", p.Name, p.Size)
	}
	if p.Hash != "" {
		if b, err := base64.StdEncoding.DecodeString(p.Hash); err != nil || len(b) != 20 {
			return Package{}, fmt.Errorf("package %q: hash %q is not base64 of a SHA-1", p.Name, p.Hash)
		}
	}
	u, err := PackageURL(base, p.Name)
	if err != nil {
		return Package{}, err
	}
	return Package{Name: p.Name, URL: u, Size: p.Size, SHA256: sha256hex, SHA1: p.Hash, Required: p.Required}, nil
}

// PackageURL is update_engine's codebase + name, refusing a name that
// would leave the codebase (a path, "..", a query, another host) and
// codebases that are not http or https.
func PackageURL(codebase, name string) (string, error) {
	b, err := url.Parse(codebase)
	if err != nil || (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" {
		return "", fmt.Errorf("codebase %q is not an http(s) URL", codebase)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\?#%:") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return "", fmt.Errorf("package name %q is not a plain file name inside the codebase %s", name, codebase)
	}
	if !strings.HasSuffix(codebase, "/") {
		codebase += "/"
	}
	return codebase + name, nil
}
