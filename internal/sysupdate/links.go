package sysupdate

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
)

// linkMarkerPrefix names the marker an install leaves while it swaps the
// CurrentSymlink: ".#strata-link.FINAL".
const linkMarkerPrefix = tempPrefix + "strata-link."

func linkMarker(final string) string {
	return filepath.Join(filepath.Dir(final), linkMarkerPrefix+filepath.Base(final))
}

// finishLinks completes symlink swaps of interrupted installs: for every
// marker whose final instance exists, point the CurrentSymlink at it.
// It returns the versions relinked.
func (e *Engine) finishLinks() ([]string, error) {
	var done []string
	for _, t := range e.Defs.EnabledTransfers() {
		if symlinkPath(t) == "" {
			continue
		}
		target, err := e.listTarget(t)
		if err != nil {
			return nil, err
		}
		for _, i := range target {
			if i.State != Final {
				continue
			}
			marker := linkMarker(i.Path)
			if !exists(marker) {
				continue
			}
			j := job{t: t, finalName: i.Name, final: i.Path}
			if _, err := e.linkCurrent(j); err != nil {
				return nil, err
			}
			if err := os.Remove(marker); err != nil {
				return nil, err
			}
			e.log().Info(fmt.Sprintf("Finished installing '%s' (interrupted before its symlink was updated).", i.Version))
			done = append(done, i.Version)
		}
	}
	return done, nil
}

func (e *Engine) links() []string {
	var out []string
	for _, t := range e.Defs.EnabledTransfers() {
		if l := symlinkPath(t); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// linkCurrent points the CurrentSymlink at the installed instance.
func (e *Engine) linkCurrent(j job) (string, error) {
	link := symlinkPath(j.t)
	if link == "" {
		return "", nil
	}
	targetInRoot := path.Join(j.t.Target.Path, filepath.ToSlash(j.finalName))
	rel, err := filepath.Rel(path.Dir(link), targetInRoot)
	if err != nil {
		return "", err
	}
	host := filepath.Join(e.hostPath(path.Dir(link)), path.Base(link))
	if cur, err := os.Readlink(host); err == nil && cur == rel {
		return "", nil
	}
	e.step("symlink")
	if err := replaceSymlink(rel, host); err != nil {
		return "", fmt.Errorf("transfer %s: update %s: %w", j.t.ID, link, err)
	}
	e.step("symlinked")
	return link, nil
}
