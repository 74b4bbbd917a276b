package osrelease

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestCompatible(t *testing.T) {
	fedora := Release{"ID": "fedora", "VERSION_ID": "39", "ID_LIKE": "rhel centos"}
	fedoraLevel := Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_LEVEL": "1.0"}
	levelOnly := Release{"ID": "flatcar", "SYSEXT_LEVEL": "1.0"}
	arch := Release{"ID": "arch"}
	ubuntu := Release{"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "24.04"}
	sys := func(r Release) Host { return Host{Release: r, Scope: ScopeSystem, Architecture: "x86-64"} }
	initrd := func(r Release) Host { return Host{Release: r, Scope: ScopeInitrd, Architecture: "x86-64"} }

	tests := []struct {
		name   string
		ext    Release
		host   Host
		ok     bool
		rule   string
		reason string // expected Reason, "" to skip the check
	}{
		// 1. release data
		{"nil release", nil, sys(fedora), false, RuleNoReleaseData, "carries no release data"},
		{"empty release", Release{}, sys(fedora), false, RuleNoReleaseData, ""},
		{"host without ID", Release{"ID": "_any"}, sys(Release{"VERSION_ID": "1"}), false, RuleHostID, ""},

		// 2. scope
		{"no scope, system", Release{"ID": "fedora", "VERSION_ID": "39"}, sys(fedora), true, RuleVersionID, ""},
		{"no scope, initrd", Release{"ID": "fedora", "VERSION_ID": "39"}, initrd(fedora), false, RuleScope,
			`incompatible: scope initrd not in SYSEXT_SCOPE (unset, defaults to "system portable")`},
		{"scope lists initrd", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_SCOPE": "initrd system"}, initrd(fedora), true, RuleVersionID, ""},
		{"scope initrd only, system", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_SCOPE": "initrd"}, sys(fedora), false, RuleScope,
			`incompatible: scope system not in SYSEXT_SCOPE "initrd"`},
		{"scope words with tabs and newlines", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_SCOPE": "\tportable\n initrd\r"}, initrd(fedora), true, RuleVersionID, ""},
		{"empty scope means no scope", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_SCOPE": ""}, sys(fedora), false, RuleScope,
			`incompatible: scope system not in SYSEXT_SCOPE ""`},
		{"scope is not a substring match", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_SCOPE": "systems"}, sys(fedora), false, RuleScope, ""},
		{"no host scope skips check", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_SCOPE": ""}, Host{Release: fedora, Architecture: "x86-64"}, true, RuleVersionID, ""},
		{"other class's scope key ignored", Release{"ID": "fedora", "VERSION_ID": "39", "CONFEXT_SCOPE": "initrd"}, initrd(fedora), false, RuleScope, ""},

		// 3. architecture
		{"arch matches", Release{"ID": "fedora", "VERSION_ID": "39", "ARCHITECTURE": "x86-64"}, sys(fedora), true, RuleVersionID, ""},
		{"arch _any", Release{"ID": "fedora", "VERSION_ID": "39", "ARCHITECTURE": "_any"}, sys(fedora), true, RuleVersionID, ""},
		{"arch empty counts as unset", Release{"ID": "fedora", "VERSION_ID": "39", "ARCHITECTURE": ""}, sys(fedora), true, RuleVersionID, ""},
		{"arch mismatch", Release{"ID": "fedora", "VERSION_ID": "39", "ARCHITECTURE": "arm64"}, sys(fedora), false, RuleArchitecture,
			"incompatible: ARCHITECTURE arm64 ≠ host x86-64"},
		{"arch is exact (uname name is not systemd's)", Release{"ID": "fedora", "VERSION_ID": "39", "ARCHITECTURE": "x86_64"}, sys(fedora), false, RuleArchitecture, ""},
		{"arch checked before ID", Release{"ID": "_any", "ARCHITECTURE": "arm64"}, sys(fedora), false, RuleArchitecture, ""},
		{"scope checked before arch", Release{"ID": "_any", "ARCHITECTURE": "arm64"}, initrd(fedora), false, RuleScope, ""},

		// 4. ID
		{"no ID", Release{"VERSION_ID": "39"}, sys(fedora), false, RuleID, "incompatible: no ID"},
		{"empty ID", Release{"ID": "", "VERSION_ID": "39"}, sys(fedora), false, RuleID, ""},
		{"ID _any skips versions", Release{"ID": "_any", "VERSION_ID": "1", "SYSEXT_LEVEL": "9"}, sys(fedoraLevel), true, RuleAnyOS, ""},
		{"ID _any still needs scope", Release{"ID": "_any"}, initrd(fedora), false, RuleScope, ""},
		{"ID mismatch without ID_LIKE", Release{"ID": "debian", "VERSION_ID": "39"}, sys(fedoraLevel), false, RuleID,
			"incompatible: ID debian ≠ host ID fedora"},
		{"ID mismatch with ID_LIKE", Release{"ID": "debian", "VERSION_ID": "39"}, sys(fedora), false, RuleID,
			`incompatible: ID debian is neither host ID fedora nor in ID_LIKE "rhel centos"`},
		{"ID in ID_LIKE, same VERSION_ID", Release{"ID": "centos", "VERSION_ID": "39"}, sys(fedora), true, RuleVersionID, ""},
		{"ID in ID_LIKE still compares VERSION_ID", Release{"ID": "debian", "VERSION_ID": "12"}, sys(ubuntu), false, RuleVersionID,
			"incompatible: VERSION_ID 12 ≠ host 24.04"},
		{"ID is case-sensitive", Release{"ID": "Fedora", "VERSION_ID": "39"}, sys(fedora), false, RuleID, ""},
		{"ID_LIKE is not a substring match", Release{"ID": "cent", "VERSION_ID": "39"}, sys(fedora), false, RuleID, ""},

		// 5. rolling host
		{"rolling host", Release{"ID": "arch"}, sys(arch), true, RuleRolling, ""},
		{"rolling host ignores ext versions", Release{"ID": "arch", "VERSION_ID": "1", "SYSEXT_LEVEL": "2"}, sys(arch), true, RuleRolling, ""},

		// 6. level vs VERSION_ID
		{"level match wins over VERSION_ID", Release{"ID": "fedora", "VERSION_ID": "38", "SYSEXT_LEVEL": "1.0"}, sys(fedoraLevel), true, RuleLevel, ""},
		{"level mismatch", Release{"ID": "fedora", "VERSION_ID": "39", "SYSEXT_LEVEL": "2"}, sys(fedoraLevel), false, RuleLevel,
			"incompatible: SYSEXT_LEVEL 2 ≠ host 1.0"},
		{"level is a string compare", Release{"ID": "fedora", "SYSEXT_LEVEL": "1"}, sys(fedoraLevel), false, RuleLevel, ""},
		{"ext without level falls back to VERSION_ID", Release{"ID": "fedora", "VERSION_ID": "39"}, sys(fedoraLevel), true, RuleVersionID, ""},
		{"host without level ignores ext level", Release{"ID": "fedora", "VERSION_ID": "38", "SYSEXT_LEVEL": "1.0"}, sys(fedora), false, RuleVersionID,
			"incompatible: VERSION_ID 38 ≠ host 39"},
		{"VERSION_ID missing", Release{"ID": "fedora"}, sys(fedora), false, RuleVersionID, "incompatible: no VERSION_ID, host has 39"},
		{"VERSION_ID empty", Release{"ID": "fedora", "VERSION_ID": ""}, sys(fedora), false, RuleVersionID, ""},
		{"VERSION_ID is a string compare", Release{"ID": "fedora", "VERSION_ID": "39.0"}, sys(fedora), false, RuleVersionID, ""},
		{"host level only, ext level matches", Release{"ID": "flatcar", "SYSEXT_LEVEL": "1.0"}, sys(levelOnly), true, RuleLevel, ""},
		{"host level only, ext has none", Release{"ID": "flatcar", "VERSION_ID": "anything"}, sys(levelOnly), true, RuleID, ""},

		// confext keys
		{"confext level", Release{"ID": "fedora", "CONFEXT_LEVEL": "3", "SYSEXT_LEVEL": "1.0"},
			sys(Release{"ID": "fedora", "VERSION_ID": "39", "CONFEXT_LEVEL": "3"}), true, RuleLevel, ""},

		// hostile values stay on one line
		{"control chars quoted", Release{"ID": "fedora", "VERSION_ID": "38\n\x1b[2J"}, sys(fedora), false, RuleVersionID,
			`incompatible: VERSION_ID "38\n\x1b[2J" ≠ host 39`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			levelKey, scopeKey := KeySysextLevel, KeySysextScope
			if strings.HasPrefix(tt.name, "confext") {
				levelKey, scopeKey = KeyConfextLevel, KeyConfextScope
			}
			d := Compatible(tt.ext, tt.host, levelKey, scopeKey)
			if d.OK != tt.ok || d.Rule != tt.rule {
				t.Fatalf("Compatible = %+v, want OK=%v Rule=%q", d, tt.ok, tt.rule)
			}
			if tt.reason != "" && d.Reason != tt.reason {
				t.Errorf("Reason = %q, want %q", d.Reason, tt.reason)
			}
			if d.OK != (d.Reason == "") {
				t.Errorf("Reason %q inconsistent with OK=%v", d.Reason, d.OK)
			}
		})
	}
}

func TestReleaseHelpers(t *testing.T) {
	r := Release{"ID": "ubuntu", "ID_LIKE": " debian\t\n", "SYSEXT_SCOPE": "initrd  portable", "CONFEXT_SCOPE": ""}
	if got := r.IDLike(); !slices.Equal(got, []string{"debian"}) {
		t.Errorf("IDLike = %q", got)
	}
	if got := (Release{}).IDLike(); got != nil {
		t.Errorf("IDLike of empty = %q", got)
	}
	if got := r.Get("ID"); got != "ubuntu" {
		t.Errorf("Get = %q", got)
	}
	if s, set := r.Scopes(KeySysextScope); !set || !slices.Equal(s, []string{"initrd", "portable"}) {
		t.Errorf("Scopes = %q, %v", s, set)
	}
	if s, set := r.Scopes(KeyConfextScope); !set || len(s) != 0 {
		t.Errorf("empty Scopes = %q, %v", s, set)
	}
	if s, set := (Release{}).Scopes(KeySysextScope); set || !slices.Equal(s, []string{"system", "portable"}) {
		t.Errorf("default Scopes = %q, %v", s, set)
	}
	// Unicode spaces are not separators for systemd.
	if got := Words("a\u00a0b\vc"); !slices.Equal(got, []string{"a\u00a0b\vc"}) {
		t.Errorf("Words = %q", got)
	}
}

func FuzzCompatible(f *testing.F) {
	f.Add([]byte("ID=fedora\nVERSION_ID=39\n"), []byte("ID=fedora\nVERSION_ID=39\nSYSEXT_LEVEL=1\n"), "system", "x86-64", false)
	f.Add([]byte("ID=_any\nARCHITECTURE=arm64\n"), []byte("ID=arch\n"), "initrd", "arm64", true)
	f.Add([]byte("ID=debian\nSYSEXT_SCOPE=\n"), []byte("ID=ubuntu\nID_LIKE=debian\n"), "", "", false)
	f.Add([]byte(""), []byte(""), "system", "x86-64", false)
	f.Fuzz(func(t *testing.T, extData, hostData []byte, scope, arch string, confext bool) {
		ext, _, err1 := Parse(bytes.NewReader(extData))
		host, _, err2 := Parse(bytes.NewReader(hostData))
		if err1 != nil || err2 != nil {
			return
		}
		levelKey, scopeKey := KeySysextLevel, KeySysextScope
		if confext {
			levelKey, scopeKey = KeyConfextLevel, KeyConfextScope
		}
		d := Compatible(ext, Host{Release: host, Scope: scope, Architecture: arch}, levelKey, scopeKey)
		if d.Rule == "" {
			t.Fatalf("decision without rule: %+v", d)
		}
		if d.OK != (d.Reason == "") {
			t.Fatalf("Reason inconsistent with OK: %+v", d)
		}
		if strings.ContainsAny(d.Reason, "\n\r") || len(d.Reason) > 600 {
			t.Fatalf("Reason is not one short line: %q", d.Reason)
		}
		// An extension identical to a host with an ID is always accepted
		// in the default scopes and any architecture it does not pin.
		if host["ID"] != "" && scope != ScopeInitrd {
			if _, pinned := host["ARCHITECTURE"]; !pinned {
				if _, scoped := host[scopeKey]; !scoped {
					if d := Compatible(host, Host{Release: host, Scope: scope, Architecture: arch}, levelKey, scopeKey); !d.OK && (scope == "" || scope == ScopeSystem || scope == ScopePortable) {
						t.Fatalf("host's own release rejected: %+v", d)
					}
				}
			}
		}
	})
}
