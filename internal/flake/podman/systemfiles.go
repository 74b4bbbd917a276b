package podman

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/flake/runas"
)

// SystemfilesPath is flake-pilot's host-dependency script in a delta
// image: run with sh on the host, it prints the host paths to copy into
// the new instance.
const SystemfilesPath = "/systemfiles"

// Bounds on what an image's script may be and print.
const (
	MaxSystemfilesScript      = 1 << 20
	MaxSystemfilesOutput      = 1 << 20
	MaxSystemfilesPaths       = 1 << 16
	DefaultSystemfilesTimeout = 2 * time.Minute
	stderrTail                = 2048
)

// secureEnvPath is sudo's secure_path on Debian: flake-pilot runs the
// script through sudo, which resets the environment to it.
const secureEnvPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// errNotInContainer means the path does not exist in the container.
var errNotInContainer = errors.New("not in the container")

// hasSystemfiles reports whether the container's tree has /systemfiles.
func (e *Engine) hasSystemfiles(ctx context.Context, cname string) (bool, error) {
	_, err := e.readFile(ctx, cname, SystemfilesPath, 0)
	switch {
	case errors.Is(err, errNotInContainer):
		return false, nil
	case err != nil && !errors.Is(err, errNotRegular):
		return false, err
	}
	return true, nil
}

var errNotRegular = errors.New("not a regular file")

// readFile reads a regular file of at most max bytes out of a container
// with podman cp, which resolves the path inside the container's own
// tree: a symbolic link is refused, never followed to the host. max 0
// only checks that the path exists.
func (e *Engine) readFile(ctx context.Context, cname, p string, max int64) ([]byte, error) {
	bin, err := e.podman()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	c := e.command(ctx, bin, nil, "cp", cname+":"+p, "-")
	c.Stderr = &stderr
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	data, rerr := readTarFile(out, p, max)
	// Drain rather than kill: podman cp unmounts the container when done.
	_, _ = io.Copy(io.Discard, out)
	werr := c.Wait()
	if rerr == nil && werr == nil {
		return data, nil
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Contains(msg, "no such file") || strings.Contains(msg, "could not be found") {
		return nil, errNotInContainer
	}
	if rerr != nil && (werr == nil || errors.Is(rerr, errNotRegular) || errors.Is(rerr, errTooLarge)) {
		return nil, fmt.Errorf("%s in the image: %w", p, rerr)
	}
	return nil, fmt.Errorf("podman cp %s: %s", p, strings.TrimPrefix(msg, "Error: "))
}

var errTooLarge = errors.New("too large")

// readTarFile reads the single entry podman cp streams for one path.
func readTarFile(r io.Reader, p string, max int64) ([]byte, error) {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return nil, err
	}
	if h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%w (a symbolic link or directory is not followed)", errNotRegular)
	}
	if max == 0 {
		return nil, nil
	}
	if h.Size > max {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errTooLarge, h.Size, max)
	}
	return io.ReadAll(io.LimitReader(tr, max))
}

// Systemfiles carries out flake-pilot's host-dependency step for a new
// instance: the image's /systemfiles runs with sh on the host as the
// podman user (root for rootful flakes), bounded in time, and the host
// paths it prints are copied into the container (podman cp, confined to
// the container's tree; symbolic links are copied as links).
func (e *Engine) Systemfiles(ctx context.Context, s Spec, cname string) error {
	image := s.Container.Name
	script, err := e.readFile(ctx, cname, SystemfilesPath, MaxSystemfilesScript)
	if err != nil {
		return fmt.Errorf("delta image %s: %w", image, err)
	}
	u := runas.Caller()
	if e.User != nil {
		u = *e.User
	}
	timeout := e.SystemfilesTimeout
	if timeout <= 0 {
		timeout = DefaultSystemfilesTimeout
	}
	out, err := RunSystemfiles(ctx, ScriptRun{Script: script, Env: SystemfilesEnv(u, os.Environ()), Timeout: timeout, User: e.User})
	if err != nil {
		return fmt.Errorf("delta image %s: %s: %w", image, SystemfilesPath, err)
	}
	paths, err := SystemfilesList(out)
	if err != nil {
		return fmt.Errorf("delta image %s: %s printed %w", image, SystemfilesPath, err)
	}
	if len(paths) == 0 {
		return nil
	}
	e.log().Debug("systemfiles", "flake", s.Name, "paths", len(paths))
	pr, pw := io.Pipe()
	go func() {
		write := func() error { return writeHostEntries(pw, paths) }
		if e.User != nil {
			// Read the host files with the user's rights, not root's.
			pw.CloseWithError(e.User.Do(write))
			return
		}
		pw.CloseWithError(write())
	}()
	_, err = e.output(ctx, pr, "cp", "-", cname+":/")
	pr.Close()
	if err != nil {
		return fmt.Errorf("delta image %s: host files from %s: %w", image, SystemfilesPath, err)
	}
	return nil
}

// SystemfilesEnv is the script's environment, the one sudo gives a
// command (flake-pilot runs it through sudo): sudo's secure PATH, the
// running user's HOME, USER and LOGNAME, and only TERM, TZ and the locale
// variables from the caller.
func SystemfilesEnv(u runas.User, caller []string) []string {
	home := u.Home
	if home == "" {
		home = "/"
	}
	env := []string{"PATH=" + secureEnvPath, "HOME=" + home, "USER=" + u.Name, "LOGNAME=" + u.Name}
	for _, kv := range caller {
		k, _, _ := strings.Cut(kv, "=")
		if k == "TERM" || k == "TZ" || k == "LANG" || k == "LANGUAGE" || strings.HasPrefix(k, "LC_") {
			env = append(env, kv)
		}
	}
	return env
}

// ScriptRun is one run of a /systemfiles script.
type ScriptRun struct {
	Script  []byte
	Env     []string
	Timeout time.Duration
	// User runs the script as that user (nil: as this process).
	User *runas.User
}

// ScriptError is a failed script run.
type ScriptError struct {
	Code     int // exit status; -1 when killed at the timeout
	Stderr   string
	Timeout  time.Duration
	TimedOut bool
}

func (e *ScriptError) Error() string {
	tail := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(e.Stderr), "\n", "; ")), " ")
	if tail == "" {
		tail = "no output on stderr"
	}
	if e.TimedOut {
		return fmt.Sprintf("did not finish within %s and was killed (%s)", e.Timeout, tail)
	}
	return fmt.Sprintf("failed with exit code %d: %s", e.Code, tail)
}

// RunSystemfiles runs the script with "sh FILE" (FILE a private copy of
// the script) in the launcher's working directory, stdin empty, in its
// own process group that is killed at the timeout, and returns its
// stdout. A failure is a *ScriptError with the exit code and the end of
// stderr.
func RunSystemfiles(ctx context.Context, r ScriptRun) ([]byte, error) {
	dir, err := os.MkdirTemp("", "strata-systemfiles-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "systemfiles")
	if err := os.WriteFile(file, r.Script, 0o600); err != nil {
		return nil, err
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if r.User != nil {
		for _, p := range []string{dir, file} {
			if err := r.User.Chown(p); err != nil {
				return nil, err
			}
		}
		attr.Credential = r.User.SysProcAttr().Credential
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, errors.New("sh is not installed")
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	c := exec.CommandContext(ctx, sh, file)
	c.Env = r.Env
	c.SysProcAttr = attr
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 2 * time.Second
	stdout := &boundedBuffer{max: MaxSystemfilesOutput}
	stderr := &tailBuffer{max: stderrTail}
	c.Stdout, c.Stderr = stdout, stderr
	err = c.Run()
	// Whatever the script left running in its group goes too.
	if c.Process != nil {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() == context.DeadlineExceeded {
		return nil, &ScriptError{Code: -1, Stderr: stderr.String(), Timeout: r.Timeout, TimedOut: true}
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &ScriptError{Code: ee.ExitCode(), Stderr: stderr.String()}
		}
		return nil, err
	}
	if stdout.over {
		return nil, fmt.Errorf("printed more than %d bytes", MaxSystemfilesOutput)
	}
	return stdout.Bytes(), nil
}

// boundedBuffer keeps at most max bytes and notes that more came; the
// writer is never failed, so the script is not killed by a broken pipe.
// (No embedded bytes.Buffer: its ReadFrom would bypass the bound.)
type boundedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *boundedBuffer) Bytes() []byte { return b.buf.Bytes() }

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// SystemfilesList reads the script's output as rsync --files-from reads
// it (flake-pilot feeds it to rsync): one host path per line, relative
// to / whether or not it starts with "/", blank lines skipped. A path
// that climbs with ".." is refused (so does rsync), and so is a NUL.
func SystemfilesList(out []byte) ([]string, error) {
	var paths []string
	seen := map[string]bool{}
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("line %d: a NUL byte", i+1)
		}
		for _, el := range strings.Split(line, "/") {
			if el == ".." {
				return nil, fmt.Errorf("line %d: %q climbs with \"..\"", i+1, line)
			}
		}
		p := path.Clean("/" + line)
		if p == "/" || seen[p] {
			continue
		}
		if len(paths) == MaxSystemfilesPaths {
			return nil, fmt.Errorf("more than %d paths", MaxSystemfilesPaths)
		}
		seen[p] = true
		paths = append(paths, p)
	}
	return paths, nil
}

// writeHostEntries writes each host path as one tar entry, as rsync -a
// with --files-from copies it: a file with its content, a symbolic link
// as a link, a directory as the directory alone (no recursion). Missing
// parents are made by the extraction in the container.
func writeHostEntries(w io.Writer, paths []string) error {
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s is not on the host", p)
			}
			return err
		}
		if err := addTar(tw, p, fi); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return tw.Close()
}
