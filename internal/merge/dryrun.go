package merge

import (
	"path/filepath"

	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/rootfs"
)

// Assessment is the unprivileged view of every discovered image: what a
// merge would do with it and why.
type Assessment struct {
	Discovery  image.Discovery
	Candidates []Candidate
	Verdicts   []Verdict
	Merged     map[string][]string // extension name → hierarchies it is merged into now
}

// Assess reads every discovered image in user space and evaluates it
// against the host, without mounting anything.
func (e *Engine) Assess() (Assessment, error) {
	var a Assessment
	host, err := e.HostRelease()
	if err != nil {
		return a, err
	}
	a.Discovery, err = e.Discover()
	if err != nil {
		return a, err
	}
	for _, img := range a.Discovery.Images {
		a.Candidates = append(a.Candidates, e.ReadCandidate(img))
	}
	a.Verdicts = Evaluate(a.Candidates, e.Class, host, e.Force)
	a.Merged = map[string][]string{}
	states, err := e.Status()
	if err != nil {
		return a, err
	}
	for _, st := range states {
		for _, n := range st.Extensions {
			a.Merged[n] = append(a.Merged[n], st.Hierarchy)
		}
	}
	return a, nil
}

// DryRun decides the plan a merge would carry out, without privileges
// and without mounting. Layer paths below the staging directory are
// shown as they would be created.
func (e *Engine) DryRun() (Plan, Assessment, error) {
	a, err := e.Assess()
	if err != nil {
		return Plan{}, a, err
	}
	var exts []Extension
	for i, v := range a.Verdicts {
		if v.Fatal != nil {
			return Plan{}, a, v.Fatal
		}
		if v.Use {
			exts = append(exts, extensionOf(a.Candidates[i], e.Class))
		}
	}
	hier, err := e.hierarchyStates()
	if err != nil {
		return Plan{}, a, err
	}
	staging := filepath.Join(rootfs.Join(e.Root, StagingDir), e.Class.String()+".XXXXXX")
	p, err := MakePlan(Input{
		Class: e.Class, Root: e.Root, Staging: staging, Extensions: exts, Hierarchies: hier,
		Mode: e.Mode, Noexec: e.Noexec, OverlayOptions: e.OverlayOptions,
	})
	return p, a, err
}
