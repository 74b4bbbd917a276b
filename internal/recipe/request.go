package recipe

import "github.com/stratalinux/strata/internal/bake"

// Request is the bake of this recipe's build for arch, populated in dir:
// name, version, architecture and class are the recipe's; the recipe's
// release settings (OS, scope, reload manager) apply where user, the
// request made from the command line, leaves them unset; everything else
// (format, output, lint, …) is the user's.
func (r *Recipe) Request(user bake.Request, res Resolved, arch, dir string) bake.Request {
	req := user
	req.Dir, req.Name, req.Version, req.Arch, req.Class = dir, r.Name, res.Version, arch, r.ClassValue()
	if req.OS == "" {
		req.OS = r.Release.OS
	}
	if req.Scope == "" {
		req.Scope = r.Release.Scope
	}
	if req.Reload == nil && r.Release.ReloadManager != nil {
		v := *r.Release.ReloadManager
		req.Reload = &v
	}
	return req
}
