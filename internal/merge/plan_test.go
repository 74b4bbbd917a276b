package merge

import (
	"github.com/stratalinux/strata/internal/imagepolicy"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
	"golang.org/x/sys/unix"
)

func hier(path string) Hierarchy {
	return Hierarchy{Path: path, Host: "/r" + path, Exists: true, Mode: 0o755,
		Mutable: MutableDir{Path: "/r/var/lib/extensions.mutable/" + MutableComponent(path)}}
}

func TestPlanLayersAndOptions(t *testing.T) {
	in := Input{
		Class: imageclass.Sysext, Root: "/r", Staging: "/s",
		Extensions: []Extension{
			{Name: "b10", Provides: []string{"/usr"}},
			{Name: "a", Provides: []string{"/usr", "/opt"}},
			{Name: "b9", Provides: []string{"/usr"}, Reload: true},
		},
		Hierarchies: []Hierarchy{hier("/usr"), hier("/opt"), hier("/srv")},
		Mode:        MutableNo,
	}
	p, err := MakePlan(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Extensions, ",") != "a,b9,b10" {
		t.Fatalf("version order: %v", p.Extensions)
	}
	if !p.Reload {
		t.Error("reload flag lost")
	}
	if len(p.Hierarchies) != 2 {
		t.Fatalf("a hierarchy nobody provides must not be merged: %+v", p.Hierarchies)
	}
	usr := p.Hierarchies[0]
	want := "lowerdir=/s/meta/usr:/s/extensions/b10/usr:/s/extensions/b9/usr:/s/extensions/a/usr:/r/usr"
	if usr.Options != want {
		t.Fatalf("options\n got %s\nwant %s", usr.Options, want)
	}
	if usr.Flags != unix.MS_RDONLY|unix.MS_NODEV {
		t.Errorf("sysext flags %x", usr.Flags)
	}
	if strings.Join(usr.Extensions, ",") != "a,b9,b10" || strings.Join(p.Hierarchies[1].Extensions, ",") != "a" {
		t.Errorf("per-hierarchy extensions %v %v", usr.Extensions, p.Hierarchies[1].Extensions)
	}
}

func TestPlanClassFlagsNoexecAndEscaping(t *testing.T) {
	h := hier("/etc")
	h.Host = "/r,o:ot/etc"
	in := Input{Class: imageclass.Confext, Root: "/r", Staging: "/s", Mode: MutableNo,
		Extensions: []Extension{{Name: "c", Provides: []string{"/etc"}}}, Hierarchies: []Hierarchy{h}}
	p, _ := MakePlan(in)
	if p.Hierarchies[0].Flags != unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC {
		t.Errorf("confext flags %x", p.Hierarchies[0].Flags)
	}
	if !strings.HasSuffix(p.Hierarchies[0].Options, `:/r\,o\:ot/etc`) {
		t.Errorf("escaping: %s", p.Hierarchies[0].Options)
	}
	no := false
	in.Noexec = &no
	p, _ = MakePlan(in)
	if p.Hierarchies[0].Flags&unix.MS_NOEXEC != 0 {
		t.Error("--noexec=no ignored")
	}
	in.Class, in.Hierarchies[0] = imageclass.Sysext, hier("/usr")
	in.Extensions[0].Provides = []string{"/usr"}
	yes := true
	in.Noexec = &yes
	p, _ = MakePlan(in)
	if p.Hierarchies[0].Flags&unix.MS_NOEXEC == 0 {
		t.Error("--noexec=yes ignored for sysext")
	}
}

func TestPlanHostLayerOmittedWhenEmptyOrMissing(t *testing.T) {
	for _, h := range []Hierarchy{{Path: "/opt", Host: "/r/opt", Exists: false}, {Path: "/opt", Host: "/r/opt", Exists: true, Empty: true, Mode: 0o700}} {
		p, _ := MakePlan(Input{Class: imageclass.Sysext, Root: "/r", Staging: "/s", Mode: MutableNo,
			Extensions: []Extension{{Name: "e", Provides: []string{"/opt"}}}, Hierarchies: []Hierarchy{h}})
		hp := p.Hierarchies[0]
		if hp.Options != "lowerdir=/s/meta/opt:/s/extensions/e/opt" {
			t.Errorf("%+v: %s", h, hp.Options)
		}
		if h.Mode == 0o700 && hp.Mode != 0o700 {
			t.Errorf("top layer must take the hierarchy's mode, got %o", hp.Mode)
		}
	}
}

func TestPlanMutableModes(t *testing.T) {
	ext := []Extension{{Name: "e", Provides: []string{"/opt"}}}
	base := func(mode Mode, md MutableDir) Input {
		h := hier("/opt")
		md.Path = h.Mutable.Path
		h.Mutable = md
		return Input{Class: imageclass.Sysext, Root: "/r", Staging: "/s", Mode: mode, Extensions: ext, Hierarchies: []Hierarchy{h}}
	}
	existing := MutableDir{Resolved: "/r/var/lib/extensions.mutable/opt", Mode: 0o755}

	p, _ := MakePlan(base(MutableAuto, MutableDir{}))
	if p.Hierarchies[0].Upper != "" {
		t.Error("auto without a mutable directory must be read-only")
	}
	p, _ = MakePlan(base(MutableAuto, existing))
	hp := p.Hierarchies[0]
	if hp.Upper != existing.Resolved || hp.Work != "/r/var/lib/extensions.mutable/.systemd-opt-workdir" || hp.WorkDirMarker != "var/lib/extensions.mutable/.systemd-opt-workdir" {
		t.Errorf("auto: %+v", hp)
	}
	if hp.Flags&unix.MS_RDONLY != 0 || !strings.HasSuffix(hp.Options, ","+DefaultMutableOptions) {
		t.Errorf("auto flags/options: %x %s", hp.Flags, hp.Options)
	}
	env := "metacopy=on,noatime"
	in := base(MutableAuto, existing)
	in.OverlayOptions = &env
	p, _ = MakePlan(in)
	if !strings.HasSuffix(p.Hierarchies[0].Options, ",workdir=/r/var/lib/extensions.mutable/.systemd-opt-workdir,metacopy=on,noatime") {
		t.Errorf("environment options must replace the defaults: %s", p.Hierarchies[0].Options)
	}
	p, _ = MakePlan(base(MutableYes, MutableDir{}))
	if !p.Hierarchies[0].CreateUpper || p.Hierarchies[0].Upper != "/r/var/lib/extensions.mutable/opt" {
		t.Errorf("yes must create the mutable directory: %+v", p.Hierarchies[0])
	}
	bad := existing
	bad.Mode = 0o700
	if _, err := MakePlan(base(MutableYes, bad)); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Errorf("mode mismatch: %v", err)
	}
	ro := existing
	ro.ReadOnly = true
	if _, err := MakePlan(base(MutableAuto, ro)); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only upper: %v", err)
	}
	self := MutableDir{Resolved: "/r/opt", Mode: 0o755, IsHierarchy: true}
	p, _ = MakePlan(base(MutableAuto, self))
	for _, l := range p.Hierarchies[0].Layers {
		if l.Kind == LayerHost {
			t.Error("the hierarchy as upperdir must not also be a lowerdir")
		}
	}
	if _, err := MakePlan(base(MutableImport, self)); err == nil {
		t.Error("importing the hierarchy itself must fail")
	}
	p, _ = MakePlan(base(MutableImport, existing))
	hp = p.Hierarchies[0]
	if hp.Upper != "" || hp.Layers[1].Kind != LayerMutableImport || hp.Flags&unix.MS_RDONLY == 0 {
		t.Errorf("import: %+v", hp)
	}
	p, _ = MakePlan(base(MutableEphemeralImport, existing))
	hp = p.Hierarchies[0]
	if hp.Upper != "/s/mutable/opt/upper" || hp.WorkDirMarker != "" || hp.Layers[1].Kind != LayerMutableImport {
		t.Errorf("ephemeral-import: %+v", hp)
	}
	// A mutable mode merges even without extensions.
	in = base(MutableEphemeral, MutableDir{})
	in.Extensions = nil
	p, _ = MakePlan(in)
	if len(p.Hierarchies) != 1 {
		t.Error("mutable mode without extensions must still overlay")
	}
}

func TestParseModeAndPolicy(t *testing.T) {
	for in, want := range map[string]Mode{"yes": MutableYes, "true": MutableYes, "0": MutableNo, "ephemeral-import": MutableEphemeralImport} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, m, err)
		}
	}
	if _, err := ParseMode("sometimes"); err == nil {
		t.Error("bad mode accepted")
	}
	// The image policy is systemd's (internal/imagepolicy); merge uses its
	// decision for an unprotected partition.
	p, err := imagepolicy.Parse("root=signed+absent:usr=signed+absent")
	if err != nil {
		t.Fatal(err)
	}
	unprotected := imagepolicy.Found{Protection: imagepolicy.ProtUnprotected}
	if imagepolicy.Decide(p, imagepolicy.Root, unprotected).Action != imagepolicy.Refuse {
		t.Error("signed-only policy allowed an unprotected root")
	}
	for _, s := range []string{"*", "root=verity+signed+encrypted+unprotected+absent:usr=unprotected"} {
		p, err := imagepolicy.Parse(s)
		if err != nil || imagepolicy.Decide(p, imagepolicy.Root, unprotected).Action != imagepolicy.Use {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"root", "root=bogus", "nosuch=open", "root=open:root=open"} {
		if _, err := imagepolicy.Parse(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestSplitOptionsAndWorkDir(t *testing.T) {
	f, data := SplitOptions(unix.MS_RDONLY, `lowerdir=/a\,b:/c,noatime,index=off,nodev`)
	if data != `lowerdir=/a\,b:/c,index=off` || f != unix.MS_RDONLY|unix.MS_NOATIME|unix.MS_NODEV {
		t.Errorf("SplitOptions: %x %q", f, data)
	}
	for _, bad := range []string{"", "../x", "/x", "a/../../b", `\q`} {
		if _, err := parseWorkDir([]byte(bad + "\n")); err == nil {
			t.Errorf("work_dir %q accepted", bad)
		}
	}
	if wd, err := parseWorkDir([]byte(cEscape("var/lib/a b\\c") + "\n")); err != nil || wd != "var/lib/a b\\c" {
		t.Errorf("round trip: %q %v", wd, err)
	}
}

func FuzzPlanInputs(f *testing.F) {
	f.Add("usr", "a,b", "yes", "x,y:z")
	f.Fuzz(func(t *testing.T, h, names, mode, opt string) {
		// Hierarchies are validated as absolute and normalized first.
		if _, err := ParseHierarchies("X", "/"+h); err != nil {
			return
		}
		m, err := ParseMode(mode)
		if err != nil {
			m = MutableNo
		}
		var exts []Extension
		for _, n := range strings.Split(names, ",") {
			exts = append(exts, Extension{Name: n, Provides: []string{"/" + h}})
		}
		in := Input{Class: imageclass.Sysext, Root: "/r", Staging: "/s", Mode: m, Extensions: exts, Hierarchies: []Hierarchy{hier("/" + h)}, OverlayOptions: &opt}
		p, err := MakePlan(in)
		if err != nil {
			return
		}
		for _, hp := range p.Hierarchies {
			if !strings.HasPrefix(hp.Options, "lowerdir=/s/meta/") {
				t.Fatalf("options %q", hp.Options)
			}
		}
	})
}
