package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/repo"
)

// ExtensionApp is an extension the fleet server governs as its own app
// (STRATA_EXTENSION_APPS="NAME[=APPID] …"; without =APPID the name is sent
// as the app id, which strata serve resolves as the app's product id).
type ExtensionApp struct {
	Name  string
	AppID string
}

// ParseExtensionApps reads STRATA_EXTENSION_APPS.
func ParseExtensionApps(v string) ([]ExtensionApp, error) {
	var out []ExtensionApp
	for _, f := range strings.Fields(v) {
		name, id, _ := strings.Cut(f, "=")
		if _, err := repo.ParseImageName(name + "-0-x86-64.raw"); err != nil || strings.ContainsAny(name, "/.") || name == "" {
			return nil, fmt.Errorf("STRATA_EXTENSION_APPS: %q is not an extension name", name)
		}
		if id == "" {
			id = name
		}
		out = append(out, ExtensionApp{Name: name, AppID: id})
	}
	return out, nil
}

// installedExtension reads which version of name /etc/extensions/NAME.raw
// points at ("0" when none: the server may offer a first install).
func (a *Agent) installedExtension(name string) string {
	l := repo.NodeLayout(name)
	target, err := os.Readlink(a.Root.Join(l.Link))
	if err != nil {
		return "0"
	}
	n, err := repo.ParseImageName(path.Base(target))
	if err != nil || n.Name != name {
		return "0"
	}
	return n.Version
}

// checkExtensions updates the extensions that are their own apps, one
// request each, while the OS is idle (an OS update carries its own). The
// update is atomic by itself: the image is verified in the state
// directory, then the link is switched and the merge refreshed, no
// reboot. Events go through the journal like the OS app's: 13/1, 14/1,
// 3/1 once the link points at the new image, 3/2 once the merge has it.
func (a *Agent) checkExtensions(ctx context.Context) error {
	var first error
	for _, x := range a.Config.ExtensionApps {
		if err := a.checkExtension(ctx, x); err != nil {
			a.log().Warn("agent: extension update failed", "extension", x.Name, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

func (a *Agent) extIdentity(x ExtensionApp, ver string) Identity {
	id := a.id
	id.AppID, id.Version, id.Aleph = x.AppID, ver, ""
	return id
}

func (a *Agent) checkExtension(ctx context.Context, x ExtensionApp) error {
	a.offered = ""
	ver := a.installedExtension(x.Name)
	if p, ok := a.j.ExtPending[x.Name]; ok && p.To == ver {
		// Stopped after the link switch: finish the report.
		a.offered = p.To
		return a.extFinish(ctx, x, p)
	}
	id := a.extIdentity(x, ver)
	// No event on the check: a 3/2 would complete a grant in progress
	// for an app that is not the OS (Nebraska's rule).
	req := CheckRequest(id, IdleEvent(), a.Interactive)
	req.Apps[0].Events = nil
	resp, err := a.Omaha.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("update check for extension %s: %w", x.Name, err)
	}
	res, err := ParseAnswer(resp, x.AppID, ver, nil)
	if err != nil {
		return a.extFail(ctx, x, ver, CodeResponseInvalid, fmt.Errorf("answer for extension %s: %w", x.Name, err))
	}
	if res.Offer == nil {
		return nil
	}
	o := res.Offer
	a.offered = o.Version
	n, err := repo.ParseImageName(o.Payload.Name)
	if err != nil || n.Name != x.Name {
		return a.extFail(ctx, x, ver, CodeResponseInvalid, fmt.Errorf("extension %s offered as %q, want %s-VERSION-ARCH.raw", x.Name, o.Payload.Name, x.Name))
	}
	a.j.ExtSent = slices.DeleteFunc(a.j.ExtSent, func(k string) bool {
		return strings.HasPrefix(k, x.Name+" ") && !strings.HasPrefix(k, x.Name+" "+o.Version+" ")
	})
	if err := a.extEvent(ctx, x, ver, success(omaha.EventUpdateDownloadStarted)); err != nil {
		return err
	}
	staged := filepath.Join(a.dir(), "apps", x.Name, o.Payload.Name)
	if err := a.fetch(ctx, o.Payload, staged, nil, nil); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return a.extFail(ctx, x, ver, failCode(err), fmt.Errorf("download extension %s %s: %w", x.Name, o.Version, err))
	}
	if err := a.extEvent(ctx, x, ver, success(omaha.EventUpdateDownloadFinished)); err != nil {
		return err
	}
	// Journal the switch before making it, so a restart after it still
	// reports 3/1 and 3/2 (the node then already runs the new version and
	// the server would not offer it again).
	p := ExtPending{From: ver, To: o.Version}
	if a.j.ExtPending == nil {
		a.j.ExtPending = map[string]ExtPending{}
	}
	a.j.ExtPending[x.Name] = p
	if err := a.save("ext-" + x.Name + "-switching"); err != nil {
		return err
	}
	if err := a.activateExtension(staged, o.Payload.Name); err != nil {
		delete(a.j.ExtPending, x.Name)
		return a.extFail(ctx, x, ver, CodeFilesystemCopier, fmt.Errorf("activate extension %s %s: %w", x.Name, o.Version, err))
	}
	if err := a.step("ext-" + x.Name + "-switched"); err != nil {
		return err
	}
	return a.extFinish(ctx, x, p)
}

// extFinish reports an extension whose link points at p.To: 3/1, the
// merge refresh (this app's reboot), then 3/2 with the previous version.
func (a *Agent) extFinish(ctx context.Context, x ExtensionApp, p ExtPending) error {
	if err := a.extEvent(ctx, x, p.To, success(omaha.EventUpdateComplete)); err != nil {
		return err
	}
	if a.Refresh != nil {
		if err := a.Refresh(ctx); err != nil {
			// Installed, not merged: the server sees 3/1 (installed); the
			// 3/2 follows once a refresh works.
			return fmt.Errorf("extension %s %s installed, merge refresh failed: %w", x.Name, p.To, err)
		}
	}
	a.log().Info("agent: extension updated", "extension", x.Name, "version", p.To, "from", p.From)
	delete(a.j.ExtPending, x.Name)
	return a.extEvent(ctx, x, p.To, omaha.Event{Type: omaha.EventUpdateComplete, Result: omaha.ResultSuccessReboot, PreviousVersion: p.From, HasPrevious: true})
}

// extEvent journals an extension app's event and sends it. An event
// already journalled for this offer (a restart repeats the steps of an
// extension update, which keep no phase of their own) is not sent again.
func (a *Agent) extEvent(ctx context.Context, x ExtensionApp, ver string, ev omaha.Event) error {
	key := fmt.Sprintf("%s %s %d/%d", x.Name, a.offered, ev.Type, ev.Result)
	if a.offered != "" && ev.Result != omaha.ResultError {
		if slices.Contains(a.j.ExtSent, key) {
			return nil
		}
		a.j.ExtSent = append(a.j.ExtSent, key)
	}
	a.j.Seq++
	a.j.Outbox = append(a.j.Outbox, Outgoing{Seq: a.j.Seq, Event: ev, AppID: x.AppID, AppVersion: ver})
	if err := a.save(fmt.Sprintf("ext-%s-%d/%d", x.Name, ev.Type, ev.Result)); err != nil {
		return err
	}
	return a.sendEvents(ctx)
}

func (a *Agent) extFail(ctx context.Context, x ExtensionApp, ver string, code uint32, err error) error {
	if serr := a.extEvent(ctx, x, ver, Failure(code)); serr != nil {
		var st *Stopped
		if errors.As(serr, &st) {
			return serr
		}
	}
	return err
}
