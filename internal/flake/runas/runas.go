// Package runas gives a podman flake's runtime.runas its documented
// meaning: which user the container engine runs as. Decide is pure (the
// registration's value, the caller and a user lookup in, a decision out);
// the rest prepares a decided user for a child process or an exec —
// credentials from /etc/passwd and /etc/group, the user's environment and
// its runtime directory /run/user/UID — without sudo.
package runas

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// User is a resolved account.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, the primary one included
	Home   string
}

// Root reports whether u is the superuser.
func (u User) Root() bool { return u.UID == 0 }

// Lookup resolves a runas value the way sudo's -u does: a user name, or
// "#UID". The account must exist in the user database (os/user reads
// /etc/passwd and /etc/group in a CGO_ENABLED=0 binary).
func Lookup(spec string) (User, error) {
	var (
		u   *user.User
		err error
	)
	if id, ok := strings.CutPrefix(spec, "#"); ok {
		if _, perr := strconv.ParseUint(id, 10, 32); perr != nil {
			return User{}, fmt.Errorf("%q is not a user id (want #UID)", spec)
		}
		u, err = user.LookupId(id)
	} else {
		u, err = user.Lookup(spec)
	}
	if err != nil {
		var unknownName user.UnknownUserError
		var unknownID user.UnknownUserIdError
		if errors.As(err, &unknownName) || errors.As(err, &unknownID) {
			return User{}, fmt.Errorf("no user %q in /etc/passwd", spec)
		}
		return User{}, fmt.Errorf("look up user %q: %w", spec, err)
	}
	return fromOS(u)
}

// LookupUID resolves a numeric user id.
func LookupUID(uid int) (User, error) {
	return Lookup("#" + strconv.Itoa(uid))
}

func fromOS(u *user.User) (User, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	out := User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	seen := map[uint32]bool{}
	add := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			out.Groups = append(out.Groups, g)
		}
	}
	add(out.GID)
	ids, err := u.GroupIds()
	if err != nil {
		return User{}, fmt.Errorf("user %s: groups: %w", u.Username, err)
	}
	for _, s := range ids {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil {
			add(uint32(g))
		}
	}
	return out, nil
}

// Caller is the effective user of this process. A uid without a passwd
// entry is still a caller (named "#UID", no home).
func Caller() User {
	uid := os.Geteuid()
	if u, err := LookupUID(uid); err == nil {
		return u
	}
	return User{Name: "#" + strconv.Itoa(uid), UID: uint32(uid), GID: uint32(os.Getegid()), Groups: []uint32{uint32(os.Getegid())}}
}

// CallerValue is what a registration records as runtime.runas when none
// is given: the caller's name ("root" for root), as flake-ctl records it.
func CallerValue() string {
	return Caller().Name
}

// Kind is how the engine runs relative to the launcher.
type Kind int

const (
	// AsCaller: no switch; podman is rootful when the caller is root and
	// rootless as the caller otherwise.
	AsCaller Kind = iota
	// Switch: the launcher (root) runs podman as another user, rootless.
	Switch
)

// Decision is the outcome of Decide.
type Decision struct {
	Kind Kind
	// User is the account podman runs as (the caller for AsCaller).
	User User
}

// Rootful reports whether podman runs as root.
func (d Decision) Rootful() bool { return d.User.Root() }

// Decide applies runtime.runas for a launch by caller:
//
//   - "" : the caller (rootful when the caller is root).
//   - the caller's own name or #UID: the caller, no switch.
//   - another user, caller root: switch to that user (rootless podman).
//   - another user (root included), caller not root: an error naming the
//     flake, the user and the fix.
//
// An unknown user is an error. lookup is Lookup outside tests.
func Decide(flakeName, runas string, caller User, lookup func(string) (User, error)) (Decision, error) {
	spec := strings.TrimSpace(runas)
	if spec == "" {
		return Decision{Kind: AsCaller, User: caller}, nil
	}
	target, err := lookup(spec)
	if err != nil {
		return Decision{}, fmt.Errorf("flake %s: runtime.runas: %v; register it again with --run-as an existing user (or root)", flakeName, err)
	}
	if target.UID == caller.UID {
		return Decision{Kind: AsCaller, User: caller}, nil
	}
	if caller.Root() {
		return Decision{Kind: Switch, User: target}, nil
	}
	if target.Root() {
		return Decision{}, fmt.Errorf("flake %s runs podman as root (runtime.runas: %s) and you are %s: run it as root (e.g. with sudo)", flakeName, spec, caller.Name)
	}
	return Decision{}, fmt.Errorf("flake %s runs podman as user %s (runtime.runas: %s) and you are %s: run it as root (it then switches to %s) or as %s",
		flakeName, target.Name, spec, caller.Name, target.Name, target.Name)
}

// RuntimeDir is the user's XDG_RUNTIME_DIR, /run/user/UID.
func (u User) RuntimeDir() string {
	return filepath.Join("/run/user", strconv.FormatUint(uint64(u.UID), 10))
}

// EnsureRuntimeDir creates /run/user/UID (0700, owned by the user) when
// it is missing, as a login manager would, and refuses one that is not a
// directory of the user's.
func (u User) EnsureRuntimeDir() error {
	dir := u.RuntimeDir()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("runtime directory for %s: %w", u.Name, err)
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		if err := os.Chown(dir, int(u.UID), int(u.GID)); err != nil {
			os.Remove(dir)
			return fmt.Errorf("runtime directory %s: %w", dir, err)
		}
		return nil
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("runtime directory %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("runtime directory %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != u.UID {
		return fmt.Errorf("runtime directory %s is not a directory owned by %s; remove it or fix its owner", dir, u.Name)
	}
	return nil
}

// Chown gives path to the user (state files the launcher makes on the
// user's behalf); a no-op for root.
func (u User) Chown(path string) error {
	if u.Root() {
		return nil
	}
	return os.Lchown(path, int(u.UID), int(u.GID))
}

// dropped are variables of the launching user that must not reach
// another user's podman: its identity, its directories and its podman
// storage (root's storage is not usable rootless).
var dropped = map[string]bool{
	"HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "MAIL": true,
	"XDG_RUNTIME_DIR": true, "XDG_CONFIG_HOME": true, "XDG_DATA_HOME": true, "XDG_CACHE_HOME": true, "XDG_STATE_HOME": true,
	"CONTAINERS_STORAGE_CONF": true, "CONTAINERS_REGISTRIES_CONF": true, "REGISTRY_AUTH_FILE": true,
	"DBUS_SESSION_BUS_ADDRESS": true, "SUDO_USER": true, "SUDO_UID": true, "SUDO_GID": true, "SUDO_COMMAND": true,
	"TMPDIR": true,
}

// Env is base with the launching user's identity and directories
// replaced by u's: HOME, USER, LOGNAME and XDG_RUNTIME_DIR=/run/user/UID.
func (u User) Env(base []string) []string {
	out := make([]string, 0, len(base)+4)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !dropped[k] {
			out = append(out, kv)
		}
	}
	return append(out, "HOME="+u.Home, "USER="+u.Name, "LOGNAME="+u.Name, "XDG_RUNTIME_DIR="+u.RuntimeDir())
}

// SysProcAttr makes a child process run as u.
func (u User) SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}}
}

// Become switches this whole process to u (groups, then gid, then uid,
// real, effective and saved), for an exec that must keep the process's
// id. It cannot be undone.
func (u User) Become() error {
	groups := make([]int, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("switch to user %s: groups: %w", u.Name, err)
	}
	if err := syscall.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("switch to user %s: gid: %w", u.Name, err)
	}
	if err := syscall.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("switch to user %s: uid: %w", u.Name, err)
	}
	return nil
}

// Do runs fn on an OS thread of its own whose credentials are u's, so the
// files fn opens are checked by the kernel as u (permissions, ACLs) while
// the rest of the process keeps its own. The thread gets its own
// credentials back before Do returns: a thread left as u (the runtime does
// not always end a locked thread, e.g. the main one) would make a later
// Become, which changes every thread at once, fail on it and take the
// process down. If they cannot be restored, the thread is never handed
// back to the scheduler.
func (u User) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := u.setThreadCredentials()
		if err != nil {
			if restore() == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		err = fn()
		if rerr := restore(); rerr != nil {
			// Locked for good: the thread ends (or is parked) with fn.
			errc <- errors.Join(err, rerr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// setThreadCredentials changes only the calling thread: the raw system
// calls, unlike syscall.Setresuid, are not applied to every thread (the
// 32-bit uid calls of amd64 and arm64). The saved uid stays the thread's
// own, so that restore can switch back.
func (u User) setThreadCredentials() (restore func() error, err error) {
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	oldGroups, err := unix.Getgroups()
	if err != nil {
		return func() error { return nil }, fmt.Errorf("switch to user %s: groups: %w", u.Name, err)
	}
	restore = func() error {
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(ruid), uintptr(euid), uintptr(suid)); e != 0 {
			return fmt.Errorf("switch back from user %s: uid: %w", u.Name, e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(rgid), uintptr(egid), uintptr(sgid)); e != 0 {
			return fmt.Errorf("switch back from user %s: gid: %w", u.Name, e)
		}
		if err := unix.Setgroups(oldGroups); err != nil {
			return fmt.Errorf("switch back from user %s: groups: %w", u.Name, err)
		}
		return nil
	}
	groups := []int{int(u.GID)}
	for _, g := range u.Groups {
		groups = append(groups, int(g))
	}
	// unix.Setgroups is the raw, per-thread system call.
	if err := unix.Setgroups(groups); err != nil {
		return restore, fmt.Errorf("switch to user %s: groups: %w", u.Name, err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return restore, fmt.Errorf("switch to user %s: gid: %w", u.Name, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(suid)); e != 0 {
		return restore, fmt.Errorf("switch to user %s: uid: %w", u.Name, e)
	}
	return restore, nil
}

// RootlessReady tells why rootless podman cannot run as u on this host,
// or returns nil: podman maps the container's users through newuidmap
// and newgidmap (Debian package uidmap) into u's ranges in /etc/subuid
// and /etc/subgid.
func (u User) RootlessReady(lookPath func(string) (string, error)) error {
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("rootless podman for user %s needs %s (apt-get install uidmap)", u.Name, tool)
		}
	}
	for _, f := range []struct{ path, flag string }{{"/etc/subuid", "--add-subuids"}, {"/etc/subgid", "--add-subgids"}} {
		data, err := os.ReadFile(f.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rootless podman for user %s: %w", u.Name, err)
		}
		if !HasRange(string(data), u.Name, u.UID) {
			return fmt.Errorf("rootless podman for user %s needs a range in %s (usermod %s 100000-165535 %s)", u.Name, f.path, f.flag, u.Name)
		}
	}
	return nil
}

// HasRange reports whether an /etc/subuid or /etc/subgid text grants a
// non-empty range to the user (by name or by numeric id).
func HasRange(text, name string, id uint32) bool {
	ids := strconv.FormatUint(uint64(id), 10)
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != name && f[0] != ids) {
			continue
		}
		if n, err := strconv.ParseUint(f[2], 10, 32); err == nil && n > 0 {
			return true
		}
	}
	return false
}
