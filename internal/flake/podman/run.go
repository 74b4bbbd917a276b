package podman

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/runas"
	"golang.org/x/sys/unix"
)

// Engine carries out a launch with the podman binary.
type Engine struct {
	// Podman is the podman binary (found on PATH when empty).
	Podman string
	// StateDir holds per-instance locks and state files.
	StateDir string
	// Env is podman's environment (os.Environ when nil).
	Env                   []string
	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
	// Progress reports slow steps (delta assembly) on stderr: set when
	// stderr is a terminal or %progress is given, so pipes stay quiet.
	Progress bool
	// NoExec runs podman's final step as a child instead of replacing the
	// process (tests, and %remove).
	NoExec bool
	// User is the account podman runs as when the launcher (root)
	// switches to runtime.runas; nil runs podman as this process. Env
	// must then already be that user's (runas.User.Env).
	User *runas.User
	// SystemfilesTimeout bounds a delta image's /systemfiles script
	// (DefaultSystemfilesTimeout when zero).
	SystemfilesTimeout time.Duration
}

// attr makes podman's child processes run as e.User.
func (e *Engine) attr() *syscall.SysProcAttr {
	if e.User == nil {
		return nil
	}
	return e.User.SysProcAttr()
}

// asUser runs fn with e.User's file-system rights (on a thread of its
// own): the state directory is the user's, so the launcher (root) must
// not follow links the user planted there, and what it creates there is
// the user's, for the user's own later launches.
func (e *Engine) asUser(fn func() error) error {
	if e.User == nil {
		return fn()
	}
	return e.User.Do(fn)
}

func (e *Engine) podman() (string, error) {
	if e.Podman != "" {
		return e.Podman, nil
	}
	p, err := exec.LookPath("podman")
	if err != nil {
		return "", errors.New("podman is not installed (apt-get install podman): the flake's engine needs it")
	}
	return p, nil
}

func (e *Engine) env() []string {
	if e.Env != nil {
		return e.Env
	}
	return os.Environ()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

// output runs a podman command and returns its stdout; a failure carries
// podman's own message.
func (e *Engine) output(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	bin, err := e.podman()
	if err != nil {
		return "", err
	}
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = e.env()
	c.SysProcAttr = e.attr()
	c.Stdin = stdin
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &out, &stderr
	e.log().Debug("podman " + strings.Join(args, " "))
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.TrimPrefix(msg, "Error: ")
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("podman %s: %s", args[0], msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// Launch runs the flake and returns the application's exit code. Unless
// NoExec is set, the final podman call replaces this process and Launch
// returns only on error.
func (e *Engine) Launch(ctx context.Context, s Spec) (int, error) {
	bin, err := e.podman()
	if err != nil {
		return 0, err
	}
	mode := ModeOf(s.Container)
	allowSystemfiles := s.Container.Strata != nil && s.Container.Strata.AllowSystemfiles
	if s.Image == "" {
		s.Image = s.Container.Name
		if s.Container.BaseContainer != "" {
			d, err := e.DeltaImage(ctx, s.Name, s.Container.BaseContainer, append(append([]string(nil), s.Container.Layers...), s.Container.Name), allowSystemfiles)
			if err != nil {
				return 0, fmt.Errorf("flake %s: %w", s.Name, err)
			}
			s.Image, s.Systemfiles = d.Tag, d.Systemfiles
		}
	}
	if s.Exists == nil {
		s.Exists = Exists
	}
	id := InstanceID(s.Instance, mode, randomID())
	cname := ContainerName(s.Name, id)
	runSystemfiles := s.Systemfiles && allowSystemfiles
	provision := len(s.Include.Tar)+len(s.Include.Path) > 0 || runSystemfiles
	_, remove := s.Options["remove"]

	if mode == OneShot {
		if !provision {
			return e.final(bin, CreateArgs("run", s, mode, cname), false, "")
		}
		if _, err := e.output(ctx, nil, CreateArgs("create", s, mode, cname)...); err != nil {
			return 0, fmt.Errorf("flake %s: %w", s.Name, err)
		}
		if err := e.provision(ctx, s, cname, runSystemfiles); err != nil {
			_, _ = e.output(context.Background(), nil, "rm", "--force", cname)
			return 0, err
		}
		return e.final(bin, e.startArgs(s, cname), false, "")
	}

	// Resume and attach: one container per instance, set up under a lock
	// so concurrent first launches do not race.
	base := filepath.Join(e.StateDir, stateName(s.Name, s.Instance))
	var lock *os.File
	var st State
	err = e.asUser(func() error {
		if err := os.MkdirAll(e.StateDir, 0o700); err != nil {
			return fmt.Errorf("flake state directory: %w", err)
		}
		var err error
		if lock, err = flake.LockInstance(ctx, base+".lock"); err != nil {
			return err
		}
		st, _ = readState(base + ".json")
		return nil
	})
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	running := st.alive(cname)
	exists := running
	if !running {
		state, err := e.output(ctx, nil, "container", "inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.Id}}", cname)
		switch {
		case err != nil && strings.Contains(err.Error(), "no such"):
		case err != nil:
			return 0, fmt.Errorf("flake %s: %w", s.Name, err)
		default:
			exists = true
			running = strings.HasPrefix(state, "true ")
		}
	}
	if !exists {
		if _, err := e.output(ctx, nil, CreateArgs("create", s, mode, cname)...); err != nil {
			return 0, fmt.Errorf("flake %s: %w", s.Name, err)
		}
		if err := e.provision(ctx, s, cname, runSystemfiles); err != nil {
			_, _ = e.output(context.Background(), nil, "rm", "--force", cname)
			return 0, err
		}
	}
	var final []string
	switch {
	case mode == Resume:
		if !running {
			if _, err := e.output(ctx, nil, "start", cname); err != nil {
				return 0, fmt.Errorf("flake %s: %w", s.Name, err)
			}
		}
		if final, err = ExecArgs(s, cname); err != nil {
			return 0, err
		}
	case running:
		final = []string{"attach", cname}
	default:
		final = e.startArgs(s, cname)
	}
	if mode == Resume && !st.alive(cname) {
		// Record the running container once; later launches then need
		// no podman call before the exec.
		if err := e.saveState(ctx, base+".json", cname, s); err != nil {
			e.log().Debug("flake state not saved", "err", err)
		}
	}
	lock.Close()
	rmAfter := ""
	if remove {
		rmAfter = cname
	}
	return e.final(bin, final, remove, rmAfter)
}

// provision fills a created container before its first start, in
// flake-pilot's order: the host files a delta image's /systemfiles script
// names (with the opt-in), then the includes.
func (e *Engine) provision(ctx context.Context, s Spec, cname string, systemfiles bool) error {
	if systemfiles {
		if err := e.Systemfiles(ctx, s, cname); err != nil {
			_, ignore := s.Options["ignore_sync_error"]
			if !ignore {
				return fmt.Errorf("flake %s: %w", s.Name, err)
			}
			e.log().Warn(fmt.Sprintf("flake %s: %v (ignored: %%ignore_sync_error)", s.Name, err))
		}
	}
	if err := e.CopyIncludes(ctx, cname, s.Include); err != nil {
		return fmt.Errorf("flake %s: %w", s.Name, err)
	}
	return nil
}

func (e *Engine) startArgs(s Spec, cname string) []string {
	return []string{"start", "--attach", "--interactive", cname}
}

// final hands over to podman: exec, or a child with signals forwarded
// when something must happen afterwards.
func (e *Engine) final(bin string, args []string, child bool, rmAfter string) (int, error) {
	argv := append([]string{"podman"}, args...)
	e.log().Debug(strings.Join(argv, " "))
	if !child && !e.NoExec {
		if e.User != nil {
			// podman keeps the launcher's process id, so the process
			// itself becomes the user.
			if err := e.User.Become(); err != nil {
				return 0, err
			}
		}
		err := unix.Exec(bin, argv, e.env())
		return 0, fmt.Errorf("exec %s: %w", bin, err)
	}
	code, err := RunChild(bin, argv, e.env(), e.Stdin, e.Stdout, e.Stderr, e.attr())
	if rmAfter != "" {
		_, _ = e.output(context.Background(), nil, "rm", "--force", rmAfter)
	}
	return code, err
}

// RunChild runs argv with the given streams, forwards the usual
// termination signals to it and returns its exit code (128+signal when
// it was killed), as a shell would.
func RunChild(bin string, argv, env []string, stdin, stdout, stderr *os.File, attr *syscall.SysProcAttr) (int, error) {
	c := exec.Command(bin, argv[1:]...)
	c.Args = argv
	c.SysProcAttr = attr
	c.Env = env
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	if err := c.Start(); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				_ = c.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err := c.Wait()
	close(done)
	return ExitCode(err)
}

// ExitCode maps a Wait error to a shell-style exit code.
func ExitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func stateName(name, instance string) string {
	if instance == "" {
		return name
	}
	return name + "@" + instance
}

// State is what the launcher keeps about a resumed instance, so the next
// launch can tell without asking podman that the container still runs.
type State struct {
	Container string    `json:"container"`
	ID        string    `json:"id"`
	Image     string    `json:"image"`
	Pid       int       `json:"pid"`
	PidStart  string    `json:"pid_start"`
	Created   time.Time `json:"created"`
}

func readState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if len(b) > 1<<16 {
		return st, errors.New("state file too large")
	}
	return st, json.Unmarshal(b, &st)
}

// alive: the recorded container process is still the same process (pid
// and start time), so the container still runs.
func (st State) alive(cname string) bool {
	if st.Container != cname || st.Pid <= 0 || st.PidStart == "" {
		return false
	}
	return flake.ProcStartTime(st.Pid) == st.PidStart
}

func (e *Engine) saveState(ctx context.Context, path, cname string, s Spec) error {
	out, err := e.output(ctx, nil, "container", "inspect", "--format", "{{.State.Pid}} {{.Id}}", cname)
	if err != nil {
		return err
	}
	var st State
	if _, err := fmt.Sscanf(out, "%d %s", &st.Pid, &st.ID); err != nil {
		return err
	}
	st.Container, st.Image, st.Created, st.PidStart = cname, s.Image, time.Now().UTC(), flake.ProcStartTime(st.Pid)
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return e.asUser(func() error { return writeState(path, b) })
}

// writeState replaces path with data: a fresh temp file (never an
// existing one, which could be a planted link), then rename.
func writeState(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// CopyIncludes copies host tar archives and paths into a created
// container in one podman cp: plain and gzip tars and the paths are
// streamed as one tar (paths land exactly where they are on the host);
// other compressions go through podman cp on their own.
func (e *Engine) CopyIncludes(ctx context.Context, cname string, inc flake.Include) error {
	var merged, separate []string
	for _, t := range inc.Tar {
		kind, err := sniffTar(t)
		if err != nil {
			return fmt.Errorf("include tar %s: %w", t, err)
		}
		if kind == "" {
			separate = append(separate, t)
		} else {
			merged = append(merged, t)
		}
	}
	for _, p := range inc.Path {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("include path %s: must be absolute", p)
		}
	}
	if len(merged)+len(inc.Path) > 0 {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeIncludes(pw, merged, inc.Path)) }()
		_, err := e.output(ctx, pr, "cp", "-", cname+":/")
		pr.Close()
		if err != nil {
			return fmt.Errorf("includes: %w", err)
		}
	}
	for _, t := range separate {
		f, err := os.Open(t)
		if err != nil {
			return fmt.Errorf("include tar: %w", err)
		}
		_, err = e.output(ctx, f, "cp", "-", cname+":/")
		f.Close()
		if err != nil {
			return fmt.Errorf("include tar %s: %w", t, err)
		}
	}
	return nil
}

// sniffTar tells "tar" or "gzip" for archives Go re-streams, "" for
// anything else.
func sniffTar(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return "gzip", nil
	case n >= 262 && string(head[257:262]) == "ustar":
		return "tar", nil
	}
	return "", nil
}

// writeIncludes streams the entries of each tar and then each host path
// as one tar archive.
func writeIncludes(w io.Writer, tars, paths []string) error {
	tw := tar.NewWriter(w)
	for _, t := range tars {
		if err := copyTar(tw, t); err != nil {
			return fmt.Errorf("include tar %s: %w", t, err)
		}
	}
	for _, p := range paths {
		if err := tarPath(tw, p); err != nil {
			return fmt.Errorf("include path %s: %w", p, err)
		}
	}
	return tw.Close()
}

func copyTar(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if kind, _ := sniffTar(path); kind == "gzip" {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// TarPath writes a tar of the host path p (recursively, symlinks kept as
// links) with names relative to /, parents included.
func TarPath(w io.Writer, p string) error {
	tw := tar.NewWriter(w)
	if err := tarPath(tw, p); err != nil {
		return err
	}
	return tw.Close()
}

func tarPath(tw *tar.Writer, p string) error {
	clean := filepath.Clean(p)
	// Parent directories first, so extraction creates them with the
	// host's modes.
	var parents []string
	for d := filepath.Dir(clean); d != "/"; d = filepath.Dir(d) {
		parents = append([]string{d}, parents...)
	}
	for _, d := range parents {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if err := addTar(tw, d, fi); err != nil {
			return err
		}
	}
	return filepath.WalkDir(clean, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return addTar(tw, path, fi)
	})
}

func addTar(tw *tar.Writer, path string, fi fs.FileInfo) error {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		l, err := os.Readlink(path)
		if err != nil {
			return err
		}
		link = l
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
		return nil // devices, sockets and fifos are not copied
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Name = strings.TrimPrefix(path, "/")
	if fi.IsDir() {
		h.Name += "/"
	}
	h.Uname, h.Gname = "", ""
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, h.Size); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) command(ctx context.Context, bin string, stdout io.Writer, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = e.env()
	c.SysProcAttr = e.attr()
	c.Stdout = stdout
	return c
}
