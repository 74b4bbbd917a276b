package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/client"
	"github.com/stratalinux/strata/internal/fleet/web"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/node/agent"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
)

// AgentIdleTitle heads the idle agent section.
const AgentIdleTitle = "Node agent, idle: `strata agent` checking in with `strata serve` (noupdate)"

// AgentIdleNotes explain the rows.
const AgentIdleNotes = `A real ` + "`strata serve --data`" + ` (SQLite) on 127.0.0.1 whose group's channel holds the version the
node runs, so every check is answered noupdate; the real ` + "`strata agent`" + ` daemon in the foreground
(--root, --disk on a small disk image file, STRATA_POLL_INTERVAL=250ms so the checks come quickly;
each check is a request with the 3/2 event, a noupdate answer and a journal write with fsync).
After a warm-up of 5 checks, the agent's CPU (sum over its threads of /proc/PID/task/*/schedstat,
nanoseconds on CPU) is read before and after N checks, the checks counted by the server
(strata_fleet_update_checks_total on /metrics): the Strata figure is CPU per check. Its
resident memory is VmRSS and VmHWM (peak) of /proc/PID/status at the end, and RssAnon, its
own memory (heap, stacks): the rest is file pages of the strata binary mapped by page faults
(fault-around maps 64 KiB at a time), shared with every other strata process and the page cache. Peer: curl posting the
byte-identical Omaha request (captured from the agent's own request builder) as a process per
check, as a cron job would, CPU (utime+stime of its rusage) per request, median, and its peak RSS.
The floor column is the issue's target (1 ms of CPU per check; 15 MiB resident), not a measurement.
At this interval the agent reuses its HTTP connection; at the default 45 min the server's 120 s
idle timeout has closed it, and a check also pays a TCP connect on 127.0.0.1.`

// AgentUpdateTitle heads the agent update section.
const AgentUpdateTitle = "Node agent, update: `strata agent update --now` of a 1 GiB OS payload from `strata serve` against curl + sha256sum + dd"

// AgentUpdateNotes explain the row.
const AgentUpdateNotes = `A real ` + "`strata serve --repo --data`" + ` on 127.0.0.1 serves the payload (a 1 GiB /usr image, random bytes
behind an erofs magic, with its verity tree and record) and grants it over Omaha to a new
instance per run. Strata: ` + "`strata agent update --now --disk`" + ` on a fresh sparse disk image file from
the check to the armed slot B: Omaha check, download to the state directory (SHA-256 as it
goes), verify (size, SHA-1, the payload's record), report 13/1 and 14/1, install into slot B as
` + "`strata os install`" + ` does (write, fsync, read back for SHA-256 and verity.Verify of every block, record,
arm in the GPT), report 3/1. Peer: curl -o of the same URL into the same directory, sha256sum of
the file checked against the announced hash, dd bs=1M conv=notrunc,fsync to slot B's offset of an
identical fresh disk. Medians of the runs, interleaved, sync(1) between runs.`

// AgentIdle is the bench group of the idle agent (quick: 20 checks).
func AgentIdle(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	checks, poll := 100, "250ms"
	if quick {
		checks = 20
	}
	dir := filepath.Join(workDir, "agent-idle")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)
	if _, err := exec.LookPath("curl"); err != nil {
		return nil, "", "", fmt.Errorf("agent bench: curl not found (scripts/deps installs it): %w", err)
	}
	srv, err := startServe(ctx, strataBin, dir, "")
	if err != nil {
		return nil, "", "", err
	}
	defer srv.stop()
	// The node runs 1.0.0 and the channel holds 1.0.0: noupdate.
	old1, old256 := sha1.Sum([]byte("old")), sha256.Sum256([]byte("old"))
	if err := srv.osApp(ctx, fleet.Package{Version: "1.0.0", URL: srv.url + "/", Filename: "usr-1.0.0.raw", Size: 3,
		SHA1: base64.StdEncoding.EncodeToString(old1[:]), SHA256: hex.EncodeToString(old256[:])}); err != nil {
		return nil, "", "", err
	}
	n, err := newBenchNode(filepath.Join(dir, "node"), 1, srv.url, poll, 8<<20)
	if err != nil {
		return nil, "", "", err
	}
	body, err := n.checkBody()
	if err != nil {
		return nil, "", "", err
	}

	// The agent as a daemon.
	logFile, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, "", "", err
	}
	defer logFile.Close()
	cmd := exec.Command(strataBin, append([]string{"agent"}, n.flags()...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", "", fmt.Errorf("start strata agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	agentLog := func() string {
		b, _ := os.ReadFile(logFile.Name())
		return strings.TrimSpace(string(b[max(0, len(b)-2000):]))
	}
	waitChecks := func(want float64) (float64, error) {
		deadline := time.Now().Add(time.Minute + time.Duration(checks)*200*time.Millisecond)
		for {
			got, err := srv.checks(ctx)
			if err != nil {
				return 0, err
			}
			if got >= want {
				return got, nil
			}
			select {
			case err := <-exited:
				return 0, fmt.Errorf("strata agent exited (%v): %s", err, agentLog())
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("strata agent made %v checks, want %v: %s", got, want, agentLog())
			}
		}
	}
	c0, err := waitChecks(5)
	if err != nil {
		return nil, "", "", err
	}
	cpu0, err := threadsCPU(cmd.Process.Pid)
	if err != nil {
		return nil, "", "", err
	}
	c1, err := waitChecks(c0 + float64(checks))
	if err != nil {
		return nil, "", "", err
	}
	cpu1, err := threadsCPU(cmd.Process.Pid)
	if err != nil {
		return nil, "", "", err
	}
	rss, hwm, anon, err := procMemory(cmd.Process.Pid)
	if err != nil {
		return nil, "", "", err
	}
	// cpu1 is read after the server counted c1: a check in flight then
	// adds to both sides' error by less than one check.
	perCheck := (cpu1 - cpu0) / time.Duration(c1-c0)

	// The peer: curl posting the same request, a process per check.
	reqFile := filepath.Join(dir, "request.xml")
	if err := os.WriteFile(reqFile, body, 0o644); err != nil {
		return nil, "", "", err
	}
	var curlCPU []time.Duration
	for i := 0; i < checks; i++ {
		c := exec.CommandContext(ctx, "curl", "-sS", "-f", "-o", "/dev/null", "-H", "Content-Type: text/xml", "--data-binary", "@"+reqFile, srv.url+"/v1/update/")
		if out, err := c.CombinedOutput(); err != nil {
			return nil, "", "", fmt.Errorf("curl: %v: %s", err, out)
		}
		ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			return nil, "", "", errors.New("curl: no rusage")
		}
		curlCPU = append(curlCPU, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
	}
	// A child's own ru_maxrss starts from the forking Go process's (Go
	// forks with CLONE_VM), so curl's peak comes from GNU time, which
	// forks it plainly.
	curlRSS := "not measured (no /usr/bin/time)"
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		out, err := exec.CommandContext(ctx, "/usr/bin/time", "-f", "maxrss %M", "curl", "-sS", "-f", "-o", "/dev/null", "-H", "Content-Type: text/xml", "--data-binary", "@"+reqFile, srv.url+"/v1/update/").CombinedOutput()
		if err != nil {
			return nil, "", "", fmt.Errorf("time curl: %v: %s", err, out)
		}
		f := strings.Fields(string(out))
		kb, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) < 2 || f[len(f)-2] != "maxrss" || err != nil {
			return nil, "", "", fmt.Errorf("time curl: %q", out)
		}
		curlRSS = mib(kb << 10)
	}
	r := Row{Group: "agent idle", Case: fmt.Sprintf("CPU per check (%d checks)", int(c1-c0)), Peer: Median(curlCPU), Strata: perCheck, Floor: time.Millisecond,
		PeerName: "curl (a process per check)", FloorName: "target",
		Note: fmt.Sprintf("agent RSS %s, peak %s (target ≤ 15 MiB), of it anonymous %s; curl peak RSS %s", mib(rss), mib(hwm), mib(anon), curlRSS)}
	logf("agent idle bench: %s CPU per check over %d checks (curl %s per request), agent RSS %s peak %s anonymous %s, curl %s",
		fmtCPU(perCheck), int(c1-c0), fmtCPU(r.Peer), mib(rss), mib(hwm), mib(anon), curlRSS)
	return []Row{r}, AgentIdleTitle, AgentIdleNotes, nil
}

// AgentUpdate is the bench group of an OS update by the agent (quick:
// 128 MiB, one run).
func AgentUpdate(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	size, reps := int64(1<<30), 3
	if quick {
		size, reps = 128<<20, 1
	}
	for _, tool := range []string{"curl", "sha256sum", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, "", "", fmt.Errorf("agent bench: %s not found (scripts/deps installs it): %w", tool, err)
		}
	}
	dir := filepath.Join(workDir, "agent-update")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return nil, "", "", err
	}
	logf("agent update bench: generating a %d MiB payload", size>>20)
	img := filepath.Join(dir, "usr.img")
	if err := fakeErofs(img, size); err != nil {
		return nil, "", "", err
	}
	payload := filepath.Join(files, "usr-2.0.0.raw")
	pf, err := os.Create(payload)
	if err != nil {
		return nil, "", "", err
	}
	rec, err := osimage.WritePayload(ctx, img, osimage.PayloadInfo{Version: "2.0.0", Arch: sdparse.NativeArchitecture()}, pf)
	if err == nil {
		err = pf.Sync()
	}
	pf.Close()
	if err != nil {
		return nil, "", "", err
	}
	os.Remove(img)
	s1, s256, err := fileDigests(payload)
	if err != nil {
		return nil, "", "", err
	}
	srv, err := startServe(ctx, strataBin, dir, files)
	if err != nil {
		return nil, "", "", err
	}
	defer srv.stop()
	if err := srv.osApp(ctx, fleet.Package{Version: "2.0.0", URL: srv.url + "/", Filename: "usr-2.0.0.raw", Size: rec.PayloadSize(), SHA1: s1, SHA256: s256}); err != nil {
		return nil, "", "", err
	}
	usrSize := rec.PayloadSize() + 8<<20
	table, _ := osimage.Layout(osimage.Sizes{USR: usrSize}, "bench")
	bStart := table.ByIndex(osimage.IndexUSRB).Start()

	var ours, peer []time.Duration
	for i := 0; i < reps; i++ {
		for _, side := range []string{"strata", "peer"} {
			n, err := newBenchNode(filepath.Join(dir, fmt.Sprintf("node-%d-%s", i, side)), 100+i, srv.url, "1h", usrSize)
			if err != nil {
				return nil, "", "", err
			}
			_ = exec.Command("sync").Run()
			start := time.Now()
			if side == "strata" {
				out, err := exec.CommandContext(ctx, strataBin, append([]string{"agent", "update", "--now"}, n.flags()...)...).CombinedOutput()
				if err != nil {
					return nil, "", "", fmt.Errorf("strata agent update --now: %v: %s", err, out)
				}
				ours = append(ours, time.Since(start))
				if err := slotVersion(n.disk, "B", "2.0.0"); err != nil {
					return nil, "", "", fmt.Errorf("strata agent update --now (%s): %w", strings.TrimSpace(string(out)), err)
				}
			} else {
				got := filepath.Join(n.root, "usr-2.0.0.raw")
				if out, err := exec.CommandContext(ctx, "curl", "-sS", "-f", "-o", got, srv.url+"/usr-2.0.0.raw").CombinedOutput(); err != nil {
					return nil, "", "", fmt.Errorf("curl: %v: %s", err, out)
				}
				out, err := exec.CommandContext(ctx, "sha256sum", got).Output()
				if err != nil {
					return nil, "", "", fmt.Errorf("sha256sum: %w", err)
				}
				if f := strings.Fields(string(out)); len(f) == 0 || f[0] != s256 {
					return nil, "", "", fmt.Errorf("sha256sum of the downloaded payload: %q, want %s", out, s256)
				}
				dd := exec.CommandContext(ctx, "dd", "if="+got, "of="+n.disk, "bs=1M", "oflag=seek_bytes", "seek="+strconv.FormatInt(bStart, 10), "conv=notrunc,fsync", "status=none")
				if out, err := dd.CombinedOutput(); err != nil {
					return nil, "", "", fmt.Errorf("dd: %v: %s", err, out)
				}
				peer = append(peer, time.Since(start))
			}
			if err := os.RemoveAll(n.root); err != nil {
				return nil, "", "", err
			}
		}
	}
	r := Row{Group: "agent update", Case: fmt.Sprintf("%d MiB payload", size>>20), Peer: Median(peer), Strata: Median(ours), PeerName: "curl + sha256sum + dd"}
	r.Note = "ratio " + Ratio(r.Strata, r.Peer) + " (target ≤ 1.10×)"
	logf("agent update bench: strata %s, curl + sha256sum + dd %s (%s); runs: strata %v, peer %v", Fmt(r.Strata), Fmt(r.Peer), r.Note, ours, peer)
	return []Row{r}, AgentUpdateTitle, AgentUpdateNotes, nil
}

// benchNode is one machine for the agent: a root with its identity and
// update.conf, a disk image file booted from slot A, a state directory.
type benchNode struct {
	root, disk, state string
}

func newBenchNode(root string, seq int, server, poll string, usrSize int64) (*benchNode, error) {
	n := &benchNode{root: root, disk: filepath.Join(root, "disk.img"), state: filepath.Join(root, "state")}
	files := map[string]string{
		"etc/machine-id":         fmt.Sprintf("%032x\n", seq),
		"usr/lib/os-release":     "ID=strata\nVERSION_ID=1.0.0\n",
		"etc/strata/update.conf": "SERVER=" + server + "/v1/update/\nGROUP=stable\nREBOOT_STRATEGY=off\nSTRATA_POLL_INTERVAL=" + poll + "\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			return nil, err
		}
	}
	table, diskSize := osimage.Layout(osimage.Sizes{USR: usrSize}, "bench")
	f, err := os.Create(n.disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		return nil, err
	}
	if err := table.Write(f, diskSize); err != nil {
		return nil, err
	}
	return n, f.Sync()
}

func (n *benchNode) flags() []string {
	return []string{"--root", n.root, "--disk", n.disk, "--booted", "A", "--state-dir", n.state}
}

// checkBody is the periodic check request the agent sends, built and
// encoded by the agent's own code (captured from omaha.Client).
func (n *benchNode) checkBody() ([]byte, error) {
	r, err := rootfs.ParseRoot(n.root)
	if err != nil {
		return nil, err
	}
	cfg, err := agent.LoadConfig(r)
	if err != nil {
		return nil, err
	}
	id, err := agent.LoadIdentity(r, cfg, runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	var body []byte
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ = io.ReadAll(io.LimitReader(req.Body, 1<<20))
		w.Header().Set("Content-Type", "text/xml")
		_ = omaha.Encode(w, omaha.NewResponse())
	}))
	defer rec.Close()
	c := &omaha.Client{URL: rec.URL}
	if _, err := c.Do(context.Background(), agent.CheckRequest(id, agent.IdleEvent(), false)); err != nil {
		return nil, fmt.Errorf("capture the agent's request: %w", err)
	}
	if len(body) == 0 {
		return nil, errors.New("capture the agent's request: empty")
	}
	return body, nil
}

// benchServe is a `strata serve` process with an admin token.
type benchServe struct {
	url  string
	api  *client.Client
	stop func()
}

// startServe runs `strata serve --data` (and --repo when files is set)
// on a free 127.0.0.1 port and waits until it answers.
func startServe(ctx context.Context, strataBin, dir, files string) (*benchServe, error) {
	data := filepath.Join(dir, "fleet")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, strataBin, "fleet", "token", "create", "--data", data).Output()
	if err != nil {
		return nil, fmt.Errorf("strata fleet token create: %w", err)
	}
	tok := strings.TrimSpace(string(out))
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + port
	args := []string{"serve", "--data", data, "--listen", addr}
	if files != "" {
		args = append(args, "--repo", files)
	}
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(strataBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start strata serve: %w", err)
	}
	s := &benchServe{url: "http://" + addr, api: client.New("http://"+addr, tok, nil)}
	s.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.checks(ctx); err == nil {
			return s, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			b, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("strata serve did not come up on %s: %v\n%s", addr, err, strings.TrimSpace(string(b[max(0, len(b)-2000):])))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// osApp creates the OS app with pkg on channel stable of group stable.
func (s *benchServe) osApp(ctx context.Context, pkg fleet.Package) error {
	arch := runtime.GOARCH
	if _, err := s.api.CreateApp(ctx, fleet.App{ID: agent.DefaultAppID, Name: "strata-os"}); err != nil {
		return fmt.Errorf("create the OS app: %w", err)
	}
	pkg.Arch = arch
	if _, err := s.api.AddPackage(ctx, "strata-os", pkg); err != nil {
		return fmt.Errorf("add package %s: %w", pkg.Version, err)
	}
	if _, err := s.api.CreateChannel(ctx, "strata-os", web.ChannelRequest{Name: "stable", Arch: arch, Version: pkg.Version}); err != nil {
		return fmt.Errorf("create channel: %w", err)
	}
	pol := fleet.DefaultPolicy()
	if _, err := s.api.CreateGroup(ctx, "strata-os", web.GroupRequest{Name: "stable", Track: "stable", Arch: arch, Channel: "stable", Policy: &pol}); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	return nil
}

// checks is the server's count of update checks answered (all verdicts).
func (s *benchServe) checks(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: HTTP %d", res.StatusCode)
	}
	var total float64
	sc := bufio.NewScanner(io.LimitReader(res.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "strata_fleet_update_checks_total") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("/metrics: %q: %w", line, err)
		}
		total += v
	}
	return total, sc.Err()
}

// threadsCPU is the time pid's threads have spent on a CPU (the first
// field of each /proc/PID/task/TID/schedstat, in nanoseconds): finer
// than /proc/PID/stat's clock ticks, which at 10 ms cannot resolve a
// check's cost.
func threadsCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, fmt.Errorf("agent CPU: %w", err)
	}
	var sum time.Duration
	read := 0
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		read++
		if err != nil {
			return 0, fmt.Errorf("agent CPU: %w", err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("agent CPU: schedstat of task %s is empty", t.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("agent CPU: schedstat of task %s: %w", t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	if read == 0 {
		return statCPU(pid)
	}
	return sum, nil
}

// statCPU is utime+stime of /proc/PID/stat, for a kernel without
// schedstat (clock ticks, assumed 100 a second as on every Linux build
// that Go's syscall package runs on without cgo).
func statCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("agent CPU: %w", err)
	}
	// The command name may hold spaces: the fields start after its ")".
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("agent CPU: /proc/%d/stat is %q", pid, b)
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime (fields 14 and 15)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("agent CPU: /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procMemory is VmRSS, VmHWM and RssAnon of pid, in bytes.
func procMemory(pid int) (rss, hwm, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("agent memory: %w", err)
	}
	vals := map[string]*int64{"VmRSS": &rss, "VmHWM": &hwm, "RssAnon": &anon}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		dst := vals[k]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, 0, fmt.Errorf("agent memory: %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("agent memory: %q: %w", line, err)
		}
		*dst = n << 10
	}
	if rss == 0 || hwm == 0 || anon == 0 {
		return 0, 0, 0, fmt.Errorf("agent memory: no VmRSS/VmHWM/RssAnon in /proc/%d/status", pid)
	}
	return rss, hwm, anon, nil
}

// slotVersion checks that slot name of disk holds a record of version.
func slotVersion(disk, name, version string) error {
	f, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	t, err := gpt.Read(f, size)
	if err != nil {
		return err
	}
	for _, s := range osimage.Slots(f, t) {
		if s.Name == name {
			if s.Record == nil || s.Record.Version != version {
				return fmt.Errorf("slot %s of %s holds %+v, want version %s", name, disk, s.Record, version)
			}
			return nil
		}
	}
	return fmt.Errorf("no slot %s on %s", name, disk)
}

// fileDigests are the SHA-1 (base64) and SHA-256 (hex) of path, as the
// fleet server stores them.
func fileDigests(path string) (string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h1, h256 := sha1.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(h1, h256), bufio.NewReaderSize(f, 1<<20)); err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(h1.Sum(nil)), hex.EncodeToString(h256.Sum(nil)), nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// fmtCPU renders a CPU time finer than Fmt (a check costs well under a
// millisecond).
func fmtCPU(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return Fmt(d)
}
