package imagepolicy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFormat(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"*", "*"},
		{"-", "-"},
		{"", "-"},
		{"~", "~"},
		{"=open", "*"},
		{"=ignore", "-"},
		{"=absent", "~"},
		{"usr=signed", "usr=signed"},
		{"usr=signed+absent:root=signed+absent", "root=signed+absent:usr=signed+absent"},
		{"=verity+signed+absent", "=verity+signed+absent"},
		{"root=signed+absent:usr=verity", "root=signed+absent:usr=verity"},
		{"root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent",
			"root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent"},
		{"usr=unused+absent", "-"}, // the same as the default, so dropped
		{"usr=signed+read-only-on+read-only-off", "usr=signed"},
		{"usr=signed+read-only-on", "usr=signed+read-only-on"},
		{"usr=verity+squashfs+erofs", "usr=verity+erofs+squashfs"},
		{" usr = signed ", "usr=signed"},
		{"usr=-", "usr=-"},
		{"home=open:=absent", "home=open:=absent"},
	} {
		p, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := p.Format(); got != c.want {
			t.Errorf("Parse(%q).Format() = %q, want %q", c.in, got, c.want)
		}
		// The canonical form parses to an equivalent policy.
		q, err := Parse(p.Format())
		if err != nil || !q.Equivalent(p) {
			t.Errorf("%q → %q does not round-trip: %v", c.in, p.Format(), err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error
	}{
		{"usr=signed:usr=verity", ErrDuplicate},
		{"=open:=absent", ErrDuplicate},
		{"opt=signed", ErrUnknownDesignator},
		{"usr=sined", ErrUnknownFlag},
		{"usr=signed++verity", ErrUnknownFlag},
		{"usr", nil},
		{"usr=signed::root=signed", nil},
	} {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", c.in)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("Parse(%q) = %v, want %v", c.in, err, c.want)
		}
		if !strings.Contains(err.Error(), c.in) {
			t.Errorf("Parse(%q) error %q does not name the input", c.in, err)
		}
	}
	if _, err := Parse(strings.Repeat("usr=signed:", 10000)); err == nil {
		t.Error("a 110 kB policy parsed")
	}
}

func TestDefaults(t *testing.T) {
	if got := Default(Sysext).Format(); got != "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent" {
		t.Errorf("sysext default %q", got)
	}
	if got := Default(Confext).Format(); got != "root=verity+signed+encrypted+unprotected+absent" {
		t.Errorf("confext default %q", got)
	}
	if got := Strict(Sysext).Format(); got != "root=signed+absent:usr=signed+absent" {
		t.Errorf("sysext strict %q", got)
	}
	explicit := MustParse("usr=verity")
	for _, c := range []struct {
		explicit *Policy
		class    Class
		path     string
		initrd   bool
		want     string
	}{
		{nil, Sysext, "/var/lib/extensions/a.raw", false, Default(Sysext).Format()},
		{nil, Sysext, "/.extra/sysext/a.raw", false, Default(Sysext).Format()},
		{nil, Sysext, "/.extra/sysext/a.raw", true, "root=signed+absent:usr=signed+absent"},
		{nil, Sysext, "/.extra/global_sysext/a.raw", true, "root=signed+absent:usr=signed+absent"},
		{nil, Confext, "/.extra/confext/a.raw", true, "root=signed+absent"},
		{nil, Sysext, "/.extra/other/a.raw", true, "~"},
		{&explicit, Sysext, "/.extra/sysext/a.raw", true, "usr=verity"},
	} {
		if got := Pick(c.explicit, c.class, c.path, c.initrd).Format(); got != c.want {
			t.Errorf("Pick(%s, initrd=%v) = %q, want %q", c.path, c.initrd, got, c.want)
		}
	}
}

func TestSynthesizedVerityRules(t *testing.T) {
	p := MustParse("usr=signed")
	if got := p.Effective(UsrVerity).Format(); got != "unprotected" {
		t.Errorf("usr-verity under usr=signed: %q", got)
	}
	if got := p.Effective(UsrVeritySig).Format(); got != "unprotected" {
		t.Errorf("usr-verity-sig under usr=signed: %q", got)
	}
	p = MustParse("usr=verity+absent")
	if got := p.Effective(UsrVerity).Format(); got != "unprotected+absent" {
		t.Errorf("usr-verity under usr=verity+absent: %q", got)
	}
	// No signature rule can be synthesized from verity alone: the default applies.
	if got := p.Effective(UsrVeritySig).Format(); got != "ignore" {
		t.Errorf("usr-verity-sig under usr=verity+absent: %q", got)
	}
	// Designators without verity lose verity/signed bits.
	if got := MustParse("home=verity+signed+unprotected").Effective(Home).Format(); got != "unprotected" {
		t.Errorf("home: %q", got)
	}
}

// TestDecideMatrix checks every found protection against every kind of policy.
func TestDecideMatrix(t *testing.T) {
	const (
		U = Use
		S = Skip
		R = Refuse
	)
	found := []Protection{ProtAbsent, ProtUnprotected, ProtVerity, ProtSigned, ProtEncrypted}
	for _, c := range []struct {
		policy string
		want   [5]Action // absent, unprotected, verity, signed, encrypted
	}{
		{"usr=signed", [5]Action{R, R, R, U, R}},
		{"usr=signed+absent", [5]Action{U, R, R, U, R}},
		{"usr=verity", [5]Action{R, R, U, R, R}},
		{"usr=verity+signed", [5]Action{R, R, U, U, R}},
		{"=verity+signed+absent", [5]Action{U, R, U, U, R}},
		{"usr=unprotected", [5]Action{R, U, R, R, R}},
		{"usr=encrypted+absent", [5]Action{U, R, R, R, U}},
		{"usr=absent", [5]Action{U, R, R, R, R}},
		{"usr=unused", [5]Action{R, S, S, S, S}},
		{"usr=unused+absent", [5]Action{U, S, S, S, S}},
		{"usr=open", [5]Action{U, U, U, U, U}},
		{"*", [5]Action{U, U, U, U, U}},
		{"-", [5]Action{U, S, S, S, S}},
		{"~", [5]Action{U, R, R, R, R}},
		{"root=signed+absent:usr=verity", [5]Action{R, R, U, R, R}},
		{Default(Sysext).Format(), [5]Action{U, U, U, U, U}},
		{Strict(Sysext).Format(), [5]Action{U, R, R, U, R}},
		{"usr=-", [5]Action{U, U, U, U, U}}, // no use flags means any
	} {
		p := MustParse(c.policy)
		for i, pr := range found {
			d := Decide(p, Usr, Found{Protection: pr})
			if d.Action != c.want[i] {
				t.Errorf("policy %q, usr %s: action %d (%s), want %d", c.policy, pr, d.Action, d.Reason, c.want[i])
			}
			if d.Action == Refuse && (!strings.Contains(d.Reason, "usr partition") || d.Reason == "") {
				t.Errorf("policy %q, usr %s: reason %q does not name the partition", c.policy, pr, d.Reason)
			}
		}
	}
}

func TestDecideReasons(t *testing.T) {
	d := Decide(MustParse("usr=signed"), Usr, Found{Protection: ProtVerity})
	if d.Reason != "usr partition found with flags 'verity', but the image policy asks for 'signed'" {
		t.Errorf("reason %q", d.Reason)
	}
	d = Decide(MustParse("usr=signed"), Usr, Found{})
	if d.Reason != "usr partition is absent, but the image policy asks for signed" {
		t.Errorf("reason %q", d.Reason)
	}
	d = Decide(MustParse("usr=verity+squashfs"), Usr, Found{Protection: ProtVerity, FSType: "erofs"})
	if d.Action != Refuse || !strings.Contains(d.Reason, "erofs") {
		t.Errorf("fs type: %+v", d)
	}
	if d := Decide(MustParse("usr=verity+squashfs"), Usr, Found{Protection: ProtVerity, FSType: "squashfs"}); d.Action != Use {
		t.Errorf("squashfs refused: %s", d.Reason)
	}
	// The verity partitions under usr=signed.
	if d := Decide(MustParse("usr=signed"), UsrVerity, Found{Protection: ProtUnprotected}); d.Action != Use {
		t.Errorf("usr-verity refused: %s", d.Reason)
	}
	if d := Decide(MustParse("usr=signed"), UsrVeritySig, Found{}); d.Action != Refuse {
		t.Errorf("missing usr-verity-sig under usr=signed: %+v", d)
	}
}

func TestRequiresVerity(t *testing.T) {
	for _, c := range []struct {
		p    string
		want bool
	}{{"usr=signed", true}, {"usr=verity+signed+absent", true}, {"usr=verity+unprotected", false}, {"*", false}, {"-", false}} {
		if got := RequiresVerity(MustParse(c.p), Usr); got != c.want {
			t.Errorf("RequiresVerity(%q) = %v", c.p, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*", "-", "~", "usr=signed", "=verity+signed+absent", "root=signed+absent:usr=verity", "usr=read-only-on+squashfs", "a=b=c", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		out := p.Format()
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("Format of %q gave %q, which does not parse: %v", s, out, err)
		}
		if !q.Equivalent(p) {
			t.Fatalf("%q → %q is not equivalent", s, out)
		}
		if q.Format() != out {
			t.Fatalf("Format not stable: %q → %q → %q", s, out, q.Format())
		}
		for _, d := range Designators() {
			for _, pr := range []Protection{ProtAbsent, ProtUnprotected, ProtVerity, ProtSigned, ProtEncrypted} {
				_ = Decide(p, d, Found{Protection: pr, FSType: "ext4"})
			}
		}
	})
}
