package agent

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/slot"
)

// Agent carries out what Next decides, journalling every change of
// state before it acts on the next one.
type Agent struct {
	Config Config
	Root   rootfs.Root
	// Dir is the state directory (host path); "" is Root's StateDir.
	Dir string
	// Disk is the OS disk (an image file in tests); "" is the booted disk.
	Disk string
	// Booted names the booted slot with Disk ("" as the boot loader picks).
	Booted string
	// Arch is the system's architecture as slot records name it.
	Arch     string
	Omaha    *omaha.Client
	Download *download.Client
	Lock     coord.Lock
	// Reboot reboots the machine (the agent expects not to return from it
	// for long).
	Reboot func(ctx context.Context) error
	// Hook, when set, runs after every journal write and install step; an
	// error stops the agent there as a crash would (fault injection).
	Hook func(step string) error
	// Refresh, when set, refreshes the sysext merge after extensions that
	// rode along with the update were activated.
	Refresh func(ctx context.Context) error
	// Progress, when set, sees the payload download's progress.
	Progress    func(done, total int64)
	Interactive bool // requests say installsource="ondemandupdate"
	// Parallel, when set, hears true before the steps that hash and write a payload (download,
	// verify, install: the verity walk uses every core) and false when Run goes back to sleep, so
	// the daemon can idle on one core (an idle check on one P costs about a third less CPU: no
	// cross-thread wake-ups between net/http's goroutines).
	Parallel func(on bool)
	Log      *slog.Logger
	Now      func() time.Time

	j   Journal
	id  Identity
	obs Observed
	// offered is the version of the extension app being updated.
	offered string
	// payloadSHA1 is the SHA-1 taken while downloading the payload, and
	// payloadChecked says this run's download checked its SHA-256.
	payloadSHA1    string
	payloadChecked bool
	// written is the journal last written durably, check times left out
	// (see saveChecked).
	written []byte
}

// Stopped is a stop by Hook: the simulated crash.
type Stopped struct {
	Step string
	Err  error
}

func (s *Stopped) Error() string { return fmt.Sprintf("agent stopped after %s: %v", s.Step, s.Err) }
func (s *Stopped) Unwrap() error { return s.Err }

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Agent) dir() string {
	if a.Dir != "" {
		return a.Dir
	}
	return a.Root.Join(StateDir)
}

// Journal is the agent's current state.
func (a *Agent) Journal() Journal { return a.j }

// Identity is what the agent reports about the node.
func (a *Agent) Identity() Identity { return a.id }

// save journals the state and then runs the fault-injection hook.
func (a *Agent) save(step string) error {
	if err := SaveJournal(a.dir(), a.j); err != nil {
		return err
	}
	a.written = withoutCheckTimes(a.j)
	return a.step(step)
}

// saveChecked records a check that changed nothing but the check times.
// Then only the small check-times file is replaced, without fsync: a
// power cut that loses it loses nothing the agent acts on (the check
// falls due again), and an idle agent spends no fsync per check. Any
// other change is a durable journal write.
func (a *Agent) saveChecked(step string) error {
	if a.written != nil && bytes.Equal(a.written, withoutCheckTimes(a.j)) {
		if err := SaveCheckTimes(a.dir(), a.j.LastCheck, a.j.NextCheck); err == nil {
			return a.step(step)
		}
	}
	return a.save(step)
}

// step runs the fault-injection hook: a crash point between effects.
func (a *Agent) step(step string) error {
	if a.Hook != nil {
		if err := a.Hook(step); err != nil {
			return &Stopped{Step: step, Err: err}
		}
	}
	return nil
}

// Start reads the node's identity, the booted slot and the journal, and
// reconciles them (Resume): after a reboot this is where the health check
// or the rollback report begins.
func (a *Agent) Start(ctx context.Context) error {
	if a.Omaha == nil {
		if a.Config.Disabled() {
			return fmt.Errorf("updates are disabled: no SERVER= in %v (set SERVER=https://HOST/v1/update/ in /etc/strata/update.conf)", ConfigFiles)
		}
		a.Omaha = &omaha.Client{URL: a.Config.Server, HTTP: download.DefaultHTTPClient()}
	}
	if a.Download == nil {
		a.Download = &download.Client{UserAgent: ClientVersion}
	}
	if a.Lock == nil {
		a.Lock = coord.NoLock{}
	}
	id, err := LoadIdentity(a.Root, a.Config, runtime.GOARCH)
	if err != nil {
		return err
	}
	f, size, booted, err := a.openDisk(false)
	if err != nil {
		return err
	}
	a.obs = Observed{BootID: id.BootID, Booted: booted}
	if t, err := gpt.Read(f, size); err == nil {
		for _, s := range osimage.Slots(f, t) {
			if s.Name == booted && s.Record != nil {
				a.obs.Version = s.Record.Version
			}
		}
	}
	f.Close()
	if a.obs.Version != "" {
		// The booted slot's record is the /usr that runs.
		id.Version = a.obs.Version
	}
	a.obs.Version = id.Version
	if id.Version == "" {
		return fmt.Errorf("no version for the running /usr: no slot record, no VERSION_ID in %s", a.Root.Join("/usr/lib/os-release"))
	}
	j, err := LoadJournal(a.dir())
	if err != nil {
		return err
	}
	a.j = Resume(j, a.obs)
	id.Aleph = a.j.Aleph
	a.id = id
	return a.save("start")
}

// openDisk opens the OS disk and names the booted slot.
func (a *Agent) openDisk(write bool) (*os.File, int64, string, error) {
	path, idx, booted := a.Disk, 0, a.Booted
	if path == "" {
		var err error
		if path, idx, err = osimage.RunningDisk("/"); err != nil {
			return nil, 0, "", err
		}
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, "", fmt.Errorf("open OS disk: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		var t *gpt.Table
		if t, err = gpt.Read(f, size); err == nil {
			for _, s := range slot.Slots(t) {
				if idx > 0 && s.Index == idx {
					booted = s.Name
				}
			}
			booted, err = osimage.Booted(t, booted)
		}
	}
	if err != nil {
		f.Close()
		return nil, 0, "", fmt.Errorf("OS disk %s: %w", path, err)
	}
	return f, size, booted, nil
}

// RunOnce runs the state machine until it has to wait: with force, a
// check happens now whatever the timer says. It returns when to run
// again, and the first error met (journalled and reported already).
func (a *Agent) RunOnce(ctx context.Context, force bool) (time.Time, error) {
	if force && a.j.Phase == Idle {
		a.j.NextCheck = time.Time{}
	}
	var first error
	for range 64 {
		act, until := Next(a.j, a.Config.Strategy, a.Config.Window, a.now())
		if act == ActWait {
			if until.IsZero() || first != nil && until.After(a.j.NextCheck) && !a.j.NextCheck.IsZero() {
				until = a.j.NextCheck
			}
			return until, first
		}
		err := a.do(ctx, act)
		if err == nil {
			continue
		}
		a.log().Warn("agent: "+act.String()+" failed", "err", err)
		var st *Stopped
		if errors.As(err, &st) || ctx.Err() != nil {
			return time.Time{}, err
		}
		if first == nil {
			first = err
		}
		if len(a.j.pendingEvents()) > 0 && act != ActSendEvents {
			continue // report the failure now (a refused answer's 3/0)
		}
		switch act {
		case ActSendEvents, ActCheck, ActTakeLock, ActReleaseLock, ActReboot, ActHealthCheck:
			// The server, the lock or the machine is not cooperating: try
			// again later rather than now.
			return a.j.NextCheck, first
		}
	}
	return a.j.NextCheck, first
}

// Run is the daemon: RunOnce, then sleep until the next check (pinging
// the server while an installed update waits for its reboot).
func (a *Agent) Run(ctx context.Context) error {
	a.delayFirstCheck(a.now())
	for {
		until, err := a.RunOnce(ctx, false)
		if a.Parallel != nil {
			a.Parallel(false)
		}
		var st *Stopped
		if errors.As(err, &st) || ctx.Err() != nil {
			return err
		}
		now := a.now()
		if !until.After(now) || until.Sub(now) > a.Config.PollInterval {
			// Nothing due (rebooting, strategy off) or due far away: look
			// again, and ping, at the poll interval.
			until = now.Add(a.Config.PollInterval)
		}
		if p := a.j.Phase; (p == RebootPending || p == WaitingForLock) && now.Sub(a.j.LastCheck) >= a.Config.PollInterval {
			if _, err := a.Omaha.Do(ctx, PingRequest(a.id)); err == nil {
				a.j.LastCheck = now
			}
		}
		t := time.NewTimer(until.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (a *Agent) do(ctx context.Context, act Action) error {
	switch act {
	case ActDownload, ActVerify, ActInstall:
		if a.Parallel != nil {
			a.Parallel(true)
		}
	}
	switch act {
	case ActSendEvents:
		return a.sendEvents(ctx)
	case ActCheck:
		return a.check(ctx)
	case ActDownload:
		return a.download(ctx)
	case ActVerify:
		return a.verify(ctx)
	case ActInstall:
		return a.install(ctx)
	case ActTakeLock:
		return a.takeLock(ctx)
	case ActReboot:
		return a.reboot(ctx)
	case ActHandOff:
		return a.handOff(ctx)
	case ActHealthCheck:
		return a.healthCheck(ctx)
	case ActReleaseLock:
		return a.releaseLock(ctx)
	}
	return fmt.Errorf("agent: no effect for action %s", act)
}

func (a *Agent) sendEvents(ctx context.Context) error {
	for _, o := range a.j.pendingEvents() {
		id := a.id
		if o.AppID != "" {
			id = a.extIdentity(ExtensionApp{AppID: o.AppID}, o.AppVersion)
		}
		if _, err := a.Omaha.Do(ctx, EventRequest(id, o.Event)); err != nil {
			a.j.NextCheck = a.now().Add(coord.Backoff(a.j.Failures))
			a.j.Failures++
			return fmt.Errorf("report event %d/%d to %s: %w", o.Event.Type, o.Event.Result, a.Omaha.URL, err)
		}
		a.j.Sent(o.Seq)
		if err := a.save(fmt.Sprintf("sent-%d/%d", o.Event.Type, o.Event.Result)); err != nil {
			return err
		}
	}
	return nil
}

// interval is the next regular check: the server's PollInterval or the
// configured one, fuzzed by ±1/9 of it: update_engine's ±5 min around its
// 45 min, so a fleet does not check in step.
func (a *Agent) interval(server time.Duration) time.Duration {
	d := a.Config.PollInterval
	if server > 0 {
		d = server
	}
	if d <= 0 {
		d = DefaultPollInterval
	}
	return fuzz(d, d/9)
}

// delayFirstCheck puts the daemon's first regular check InitialDelay
// after its start, fuzzed by ±5/7 of it (update_engine's 7 min ±5), unless
// the journal has it later already: a fleet that boots at once, after a
// power cut, does not check in at once. Events to report (the 3/2 after
// a reboot, a rollback) and an update in progress do not wait.
func (a *Agent) delayFirstCheck(now time.Time) {
	d := a.Config.InitialDelay
	if d <= 0 || a.j.Phase != Idle {
		return
	}
	a.j.NextCheck = later(a.j.NextCheck, now.Add(fuzz(d, d*5/7)))
}

// fuzz is d ± spread, uniformly.
func fuzz(d, spread time.Duration) time.Duration {
	return d - spread + time.Duration(rand.Int64N(int64(2*spread)+1))
}

func (a *Agent) check(ctx context.Context) error {
	now := a.now()
	// Checking is not journalled: Resume forgets a check in flight anyway,
	// and an idle check then costs one journal write instead of two.
	a.j.Phase = Checking
	ev, seq := a.j.CheckEvent()
	resp, err := a.Omaha.Do(ctx, CheckRequest(a.id, ev, a.Interactive))
	if err != nil {
		a.j.Phase = Idle
		a.j.LastError = fmt.Sprintf("update check at %s: %v", a.Omaha.URL, err)
		a.j.NextCheck = now.Add(coord.Backoff(a.j.Failures))
		a.j.Failures++
		if serr := a.save("check-failed"); serr != nil {
			return serr
		}
		return errors.New(a.j.LastError)
	}
	if seq != 0 {
		a.j.Sent(seq)
	}
	a.j.LastCheck = now
	res, err := ParseAnswer(resp, a.id.AppID, a.id.Version, a.j.Skip)
	if err != nil {
		a.j = Fail(a.j, CodeResponseInvalid, fmt.Errorf("answer from %s: %w", a.Omaha.URL, err), now)
		if serr := a.save("check-refused"); serr != nil {
			return serr
		}
		return errors.New(a.j.LastError)
	}
	a.j.Phase = Idle
	if res.Offer == nil {
		a.j.Failures, a.j.LastError = 0, ""
		if res.Skipped != "" {
			a.j.LastError = fmt.Sprintf("%s offered again, not retried: this node rolled back from it", res.Skipped)
			a.log().Info("agent: not retrying the version this node rolled back from", "version", res.Skipped)
		}
		a.j.NextCheck = now.Add(a.interval(res.Poll))
		if err := a.saveChecked("noupdate"); err != nil || len(a.Config.ExtensionApps) == 0 {
			return err
		}
		// The OS is idle: the extensions that are their own apps now.
		err := a.checkExtensions(ctx)
		var st *Stopped
		if errors.As(err, &st) {
			return err
		}
		if err != nil && a.j.LastError == "" {
			a.j.LastError = err.Error()
			return a.save("extensions-checked")
		}
		return nil
	}
	a.log().Info("agent: update granted", "version", res.Offer.Version, "from", a.id.Version)
	a.dropStaged(res.Offer.Version)
	a.j.Offer, a.j.FromVersion, a.j.BootedSlot = res.Offer, a.id.Version, a.obs.Booted
	a.j.Phase, a.j.LastError, a.j.ExtrasFailed = Downloading, "", nil
	a.j.Queue(success(omaha.EventUpdateDownloadStarted), false)
	return a.save("granted")
}

func (a *Agent) payloadPath() string {
	return filepath.Join(a.dir(), "payload", a.j.Offer.Version+".part")
}

func (a *Agent) extrasDir(ver string) string { return filepath.Join(a.dir(), "extensions", ver) }

// dropStaged removes extension payloads staged for any version but keep
// (a rolled back or superseded update's) and their partial OS payloads.
func (a *Agent) dropStaged(keep string) {
	for _, sub := range []string{"extensions", "payload"} {
		ents, _ := os.ReadDir(filepath.Join(a.dir(), sub))
		for _, e := range ents {
			if e.Name() != keep && e.Name() != keep+".part" {
				os.RemoveAll(filepath.Join(a.dir(), sub, e.Name()))
			}
		}
	}
}

// fetch downloads p into path, resuming what is there.
func (a *Agent) fetch(ctx context.Context, p Package, path string, progress func(done, total int64), also hash.Hash) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = a.Download.Resume(ctx, p.URL, f, p.SHA256, download.Options{Size: p.Size, MaxSize: MaxPayloadSize, Progress: progress, Also: also})
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != p.Size {
		return &sizeError{name: p.Name, got: fi.Size(), want: p.Size}
	}
	return nil
}

type sizeError struct {
	name      string
	got, want int64
}

func (e *sizeError) Error() string {
	return fmt.Sprintf("%s is %d bytes, the server announced %d", e.name, e.got, e.want)
}

// failCode maps a download error to update_engine's code.
func failCode(err error) uint32 {
	var mm *download.MismatchError
	var tl *download.TooLargeError
	var se *sizeError
	switch {
	case errors.As(err, &mm):
		return CodePayloadHashMismatch
	case errors.As(err, &tl), errors.As(err, &se):
		return CodePayloadSizeMismatch
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EIO):
		return CodeDownloadWrite // a full disk is the node's fault, not the server's
	}
	return CodeDownloadTransfer
}

func (a *Agent) download(ctx context.Context) error {
	o := a.j.Offer
	last := time.Time{}
	progress := func(done, total int64) {
		a.j.Done, a.j.Total = done, total
		if a.Progress != nil {
			a.Progress(done, total)
		}
		// Status readers see progress; at most a journal write a second.
		if now := time.Now(); now.Sub(last) >= time.Second {
			last = now
			_ = SaveJournal(a.dir(), a.j)
		}
	}
	// The SHA-1 Omaha announces is taken in the download's pass, not in
	// a second read of the payload (kept in memory: after a restart,
	// verify reads it again).
	var sha hash.Hash
	if o.Payload.SHA1 != "" {
		sha = sha1.New()
	}
	a.payloadSHA1, a.payloadChecked = "", false
	if err := a.fetch(ctx, o.Payload, a.payloadPath(), progress, sha); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return a.fail(failCode(err), fmt.Errorf("download %s %s: %w", o.Payload.Name, o.Version, err), "download-failed")
	}
	if sha != nil {
		a.payloadSHA1 = base64.StdEncoding.EncodeToString(sha.Sum(nil))
	}
	a.payloadChecked = o.Payload.SHA256 != ""
	a.j.Phase = Verifying
	return a.save("downloaded")
}

// fail journals a failed attempt (3/0 with code) and returns err.
func (a *Agent) fail(code uint32, err error, step string) error {
	a.j = Fail(a.j, code, err, a.now())
	if a.j.Failures > 3 {
		// The same bad payload again and again: no faster than the poll
		// interval (coord.Backoff alone stops at 5 min, a payload may be
		// a GiB).
		a.j.NextCheck = later(a.j.NextCheck, a.now().Add(a.interval(0)))
	}
	if serr := a.save(step); serr != nil {
		return serr
	}
	return err
}

func (a *Agent) verify(ctx context.Context) error {
	o := a.j.Offer
	f, err := os.Open(a.payloadPath())
	if err != nil {
		return a.fail(CodePayloadVerification, fmt.Errorf("verify %s: %w", o.Payload.Name, err), "verify-failed")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && fi.Size() != o.Payload.Size {
		err = &sizeError{name: o.Payload.Name, got: fi.Size(), want: o.Payload.Size}
	}
	if err == nil && o.Payload.SHA1 != "" {
		got := a.payloadSHA1
		if got == "" {
			h := sha1.New()
			if _, err = io.Copy(h, f); err == nil {
				got = base64.StdEncoding.EncodeToString(h.Sum(nil))
			}
		}
		a.payloadSHA1 = ""
		if err == nil && got != o.Payload.SHA1 {
			err = fmt.Errorf("%s: SHA-1 %s, the server announced %s", o.Payload.Name, got, o.Payload.SHA1)
		}
	}
	if err == nil {
		var rec osimage.Record
		if rec, err = osimage.ReadPayloadRecord(f, fi.Size()); err == nil && rec.Version != o.Version {
			err = fmt.Errorf("%s holds /usr %s, the server offered %s", o.Payload.Name, rec.Version, o.Version)
		}
	}
	if err != nil {
		os.Remove(a.payloadPath()) // not worth resuming
		return a.fail(CodePayloadVerification, fmt.Errorf("verify %s: %w", o.Payload.Name, err), "verify-failed")
	}
	// Extension payloads riding along are fetched and verified before
	// the slot is armed, staged to be activated once the new slot booted.
	a.j.ExtrasFailed = nil
	for _, x := range o.Extras {
		if err := a.fetch(ctx, x, filepath.Join(a.extrasDir(o.Version), x.Name), nil, nil); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = fmt.Errorf("extension %s for %s: %w", x.Name, o.Version, err)
			if x.Required {
				return a.fail(failCode(err), err, "verify-failed")
			}
			a.log().Warn("agent: optional extension failed; the update goes on without it", "err", err)
			a.j.ExtrasFailed = append(a.j.ExtrasFailed, x.Name)
			os.Remove(filepath.Join(a.extrasDir(o.Version), x.Name))
		}
	}
	a.j.Phase = Installing
	a.j.Queue(success(omaha.EventUpdateDownloadFinished), false)
	return a.save("verified")
}

func (a *Agent) install(ctx context.Context) error {
	o := a.j.Offer
	p, err := os.Open(a.payloadPath())
	if err != nil {
		return a.fail(CodeFilesystemCopier, fmt.Errorf("install %s: %w", o.Version, err), "install-failed")
	}
	defer p.Close()
	psize, err := p.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	// The booted slot is the one seen at start, never re-guessed from the
	// table: after a crash past the arm step the boot loader's pick is
	// the new slot, and Install would then write over the running one.
	booted := a.obs.Booted
	if a.j.BootedSlot != "" && booted != a.j.BootedSlot {
		return a.fail(CodeFilesystemCopier, fmt.Errorf("install %s: the booted slot is %s, the update began on %s; not writing either", o.Version, booted, a.j.BootedSlot), "install-failed")
	}
	disk, size, _, err := a.openDisk(true)
	if err != nil {
		return a.fail(CodeFilesystemCopier, fmt.Errorf("install %s: %w", o.Version, err), "install-failed")
	}
	defer disk.Close()
	// A payload signed by a certificate the system does not trust (verity.d under Root) is refused
	// here, not at boot; a signed booted slot requires a signed successor (osimage.CheckSignature).
	certs, _, err := ddi.TrustedCertificates(a.Root.Path())
	if err != nil {
		return a.fail(CodeFilesystemCopier, fmt.Errorf("install %s: trusted certificates: %w", o.Version, err), "install-failed")
	}
	opt := osimage.InstallOptions{Booted: booted, Arch: a.Arch, SHA256: o.Payload.SHA256, Trusted: ddi.Certs(certs)}
	if a.payloadChecked {
		// This run's download hashed these bytes as they were written
		// (and fsynced them); a restart hashes the file again.
		opt.SHA256 = ""
	}
	if a.Hook != nil {
		opt.AfterStep = func(step string) error {
			if err := a.Hook("install-" + step); err != nil {
				return &Stopped{Step: "install-" + step, Err: err}
			}
			return nil
		}
	}
	res, err := osimage.Install(ctx, disk, size, p, psize, opt)
	if err != nil {
		var st *Stopped
		if errors.As(err, &st) || ctx.Err() != nil {
			return err
		}
		code := uint32(CodeFilesystemCopier)
		if errors.Is(err, osimage.ErrUnsigned) || errors.Is(err, osimage.ErrUntrusted) {
			code = CodePayloadPubKeyVerification
		}
		return a.fail(code, fmt.Errorf("install %s into slot %s: %w", o.Version, res.Target, err), "install-failed")
	}
	a.j.TargetSlot, a.j.BootedSlot, a.j.ArmedBootID = res.Target, res.Booted, a.id.BootID
	a.j.Phase = RebootPending
	a.j.Queue(success(omaha.EventUpdateComplete), false)
	if err := a.save("armed"); err != nil {
		return err
	}
	os.Remove(a.payloadPath()) // the slot holds it now
	a.log().Info("agent: update installed, reboot pending", "version", o.Version, "slot", res.Target)
	return nil
}

// lockErrorPrefix starts the LastError of a reboot lock that could not
// be taken; taking the lock clears such an error (and only such).
const lockErrorPrefix = "reboot lock ("

func (a *Agent) takeLock(ctx context.Context) error {
	a.j.Phase = WaitingForLock
	if err := a.save("waiting-for-lock"); err != nil {
		return err
	}
	// Acquire retries inside; each failed attempt is shown in the status
	// and the log while it does: the backend's error as the last error,
	// or, when the lock is merely full, who holds it (no error).
	var saveErr error
	logged := ""
	observed := coord.WithObserver(ctx, func(at coord.Attempt) {
		msg, holders := "", at.Holders
		if at.Err != nil {
			msg = fmt.Sprintf("%s%s): %v (retrying in %s)", lockErrorPrefix, a.Config.Strategy, at.Err, at.Wait.Round(time.Second))
			holders = a.j.LockHolders // unknown now: keep what was seen
		} else if !strings.HasPrefix(a.j.LastError, lockErrorPrefix) {
			msg = a.j.LastError // not the lock's: leave it
		}
		if at.Err != nil && at.Err.Error() != logged {
			// Once per distinct error: the backend logs its retries itself.
			logged = at.Err.Error()
			a.log().Warn("agent: reboot lock unavailable, retrying", "strategy", a.Config.Strategy, "err", at.Err, "retry_in", at.Wait)
		}
		if msg == a.j.LastError && slices.Equal(holders, a.j.LockHolders) {
			return // a watch woke, nothing new to show
		}
		a.j.LastError, a.j.LockHolders = msg, slices.Clone(holders)
		if err := SaveJournal(a.dir(), a.j); err != nil && saveErr == nil {
			saveErr = err
		}
	})
	if err := a.Lock.Acquire(observed); err != nil {
		a.j.LastError = fmt.Sprintf("%s%s): %v", lockErrorPrefix, a.Config.Strategy, err)
		a.j.NextCheck = a.now().Add(coord.Backoff(a.j.Failures))
		a.j.Failures++
		_ = a.save("lock-failed")
		return errors.New(a.j.LastError)
	}
	if saveErr != nil {
		a.log().Warn("agent: could not journal the reboot lock's state while waiting", "err", saveErr)
	}
	if strings.HasPrefix(a.j.LastError, lockErrorPrefix) {
		a.j.LastError = ""
	}
	a.j.LockHeld, a.j.LockHolders, a.j.Failures = true, nil, 0
	return a.save("lock-taken")
}

func (a *Agent) reboot(ctx context.Context) error {
	a.j.Phase = Rebooting
	if err := a.save("rebooting"); err != nil {
		return err
	}
	if a.Reboot == nil {
		return errors.New("no way to reboot configured")
	}
	if err := a.warnLogins(ctx); err != nil {
		return err
	}
	if err := a.Reboot(ctx); err != nil {
		a.j.Phase = RebootPending
		a.j.LastError = fmt.Sprintf("reboot: %v", err)
		a.j.NextCheck = a.now().Add(coord.Backoff(a.j.Failures))
		a.j.Failures++
		_ = a.save("reboot-failed")
		return errors.New(a.j.LastError)
	}
	return nil
}

// handOff gives the reboot to the lock backend (kured: its sentinel
// makes kured drain and reboot the node).
func (a *Agent) handOff(ctx context.Context) error {
	if err := a.Lock.Acquire(ctx); err != nil {
		return fmt.Errorf("hand the reboot off: %w", err)
	}
	a.j.Phase = Rebooting
	return a.save("handed-off")
}

func (a *Agent) healthCheck(ctx context.Context) error {
	var checks []osimage.Check
	for _, c := range a.Config.HealthChecks {
		checks = append(checks, osimage.CommandCheck(c))
	}
	for _, u := range a.Config.HealthUnits {
		checks = append(checks, osimage.UnitCheck(u))
	}
	booted := a.obs.Booted
	disk, size, _, err := a.openDisk(true)
	if err != nil {
		return err
	}
	defer disk.Close()
	if cerr := osimage.RunChecks(ctx, checks); cerr != nil {
		// Not marked good: make the old slot boot next and reboot into
		// it; the next start reports the rollback.
		err := osimage.Update(disk, size, func(_ *gpt.Table, s []slot.Slot) ([]slot.Slot, error) {
			if err := slot.CanRollback(s, booted); err != nil {
				return nil, err
			}
			return slot.Rollback(s, booted), nil
		})
		a.j.LastError = fmt.Sprintf("slot %s (%s) failed its health check, rolling back: %v", booted, a.id.Version, cerr)
		if err != nil {
			a.j.LastError += fmt.Sprintf(" (rollback impossible: %v)", err)
			_ = a.save("health-check-failed")
			return errors.New(a.j.LastError)
		}
		a.j.Phase, a.j.BootedSlot, a.j.ArmedBootID = Rebooting, booted, a.id.BootID
		if err := a.save("health-check-failed"); err != nil {
			return err
		}
		return a.Reboot(ctx)
	}
	err = osimage.Update(disk, size, func(_ *gpt.Table, s []slot.Slot) ([]slot.Slot, error) {
		return slot.MarkGood(s, booted), nil
	})
	if err != nil {
		return fmt.Errorf("mark slot %s good: %w", booted, err)
	}
	ver := ""
	if a.j.Offer != nil {
		ver = a.j.Offer.Version
	}
	a.activateExtensions(ctx, ver)
	a.j.Queue(omaha.Event{Type: omaha.EventUpdateComplete, Result: omaha.ResultSuccessReboot, PreviousVersion: a.j.FromVersion, HasPrevious: true}, true)
	a.j = a.j.reset()
	a.j.FromVersion, a.j.LastError, a.j.Failures = "", "", 0
	a.log().Info("agent: slot marked good", "slot", booted, "version", a.id.Version)
	return a.save("marked-good")
}

// activateExtensions installs the extension payloads staged with version
// the way `strata ext` lays them out: the image into
// /opt/extensions/NAME/, then the /etc/extensions/NAME.raw link switched
// to it atomically, then a merge refresh. Nothing of this happens before
// the new slot booted and passed its health check, so a rollback keeps
// the old set, and the old images stay next to the new ones.
func (a *Agent) activateExtensions(ctx context.Context, ver string) {
	if ver == "" {
		return
	}
	dir := a.extrasDir(ver)
	ents, _ := os.ReadDir(dir)
	activated := 0
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := a.activateExtension(filepath.Join(dir, e.Name()), e.Name()); err != nil {
			a.log().Warn("agent: cannot activate extension", "name", e.Name(), "err", err)
			a.j.ExtrasFailed = append(a.j.ExtrasFailed, e.Name())
			continue
		}
		activated++
	}
	os.RemoveAll(dir)
	if activated > 0 && a.Refresh != nil {
		if err := a.Refresh(ctx); err != nil {
			a.log().Warn("agent: merge refresh after activating extensions failed; they merge on the next refresh", "err", err)
		}
	}
}

func (a *Agent) activateExtension(staged, file string) error {
	n, err := repo.ParseImageName(file)
	if err != nil {
		return err
	}
	l := repo.NodeLayout(n.Name)
	target := a.Root.Join(l.TargetDir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	img := filepath.Join(target, file)
	if err := os.Rename(staged, img); err != nil {
		return err
	}
	link := a.Root.Join(l.Link)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	tmp := link + ".strata-agent"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join(l.TargetDir, file), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(link)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (a *Agent) releaseLock(ctx context.Context) error {
	if err := a.Lock.Release(ctx); err != nil {
		a.j.LastError = fmt.Sprintf("release reboot lock (%s): %v", a.Config.Strategy, err)
		a.j.NextCheck = a.now().Add(coord.Backoff(a.j.Failures))
		a.j.Failures++
		_ = a.save("release-failed")
		return errors.New(a.j.LastError)
	}
	a.j.LockHeld = false
	return a.save("lock-released")
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
