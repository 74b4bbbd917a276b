package sysupdate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testSpec = Specifiers{'a': "x86-64", 'w': "12", 'A': "1.0"}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const bakeryTransfer = `[Transfer]
Verify=false

[Source]
Type=url-file
Path=https://extensions.flatcar.org/extensions/docker/
MatchPattern=docker-@v-%a.raw

[Target]
InstancesMax=3
Type=regular-file
Path=/opt/extensions/docker
CurrentSymlink=/etc/extensions/docker.raw
`

func TestLoadBakeryTransfer(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"etc/sysupdate.docker.d/docker.conf": bakeryTransfer})
	d, err := Load(root, DefinitionDirs("docker"), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Legacy || len(d.Transfers) != 1 {
		t.Fatalf("want one legacy .conf transfer, got %+v", d)
	}
	tr := d.Transfers[0]
	if tr.ID != "docker" || tr.Verify || tr.Source.Type != URLFile || tr.Target.Type != RegularFile || tr.Max() != 3 ||
		tr.CurrentSymlink != "/etc/extensions/docker.raw" || !tr.RemoveTemporary {
		t.Fatalf("parsed %+v", tr)
	}
	// Target pattern defaults to the source's, with %a expanded.
	if len(tr.Target.Patterns) != 1 || tr.Target.Patterns[0].String() != "docker-@v-x86-64.raw" {
		t.Fatalf("target patterns %v", tr.Target.Patterns)
	}
}

func TestLoadPrecedenceDropinsMasking(t *testing.T) {
	root := t.TempDir()
	base := "[Source]\nType=regular-file\nPath=/src\nMatchPattern=a_@v\n[Target]\nType=regular-file\nPath=/dst\n"
	writeFiles(t, root, map[string]string{
		"usr/lib/sysupdate.d/10-a.transfer":            base,
		"etc/sysupdate.d/10-a.transfer":                base + "InstancesMax=5\n",
		"usr/lib/sysupdate.d/20-b.transfer":            base,
		"etc/sysupdate.d/20-b.transfer":                "", // empty file masks
		"usr/lib/sysupdate.d/05-c.transfer":            base,
		"usr/lib/sysupdate.d/10-a.transfer.d/max.conf": "[Target]\nInstancesMax=7\n",
		"etc/sysupdate.d/10-a.transfer.d/z.conf":       "[Transfer]\nMinVersion=2\n",
		"usr/lib/sysupdate.d/ignored.conf":             base, // .transfer files exist: no fallback
		"usr/lib/sysupdate.d/devel.feature":            "[Feature]\nDescription=Devel\n",
		"etc/sysupdate.d/devel.feature.d/enable.conf":  "[Feature]\nEnabled=yes\n",
		"usr/lib/sysupdate.d/opt.transfer":             base + "[Transfer]\nFeatures=devel\n",
		"usr/lib/sysupdate.d/req.transfer":             base + "[Transfer]\nRequisiteFeatures=devel other\n",
	})
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tr := range d.Transfers {
		ids = append(ids, tr.ID)
	}
	if strings.Join(ids, " ") != "05-c 10-a opt req" {
		t.Fatalf("transfers %v", ids)
	}
	a := d.Transfers[1]
	if a.InstancesMax != 7 || a.MinVersion != "2" {
		t.Fatalf("10-a: InstancesMax=%d MinVersion=%q, want 7 and 2 (etc file + drop-ins)", a.InstancesMax, a.MinVersion)
	}
	if len(d.Features) != 1 || !d.Features[0].Enabled {
		t.Fatalf("features %+v", d.Features)
	}
	if !d.Enabled(d.Transfers[2]) || d.Enabled(d.Transfers[3]) {
		t.Fatal("Features=devel should be enabled, RequisiteFeatures=devel other not")
	}
}

func TestParseErrorsNameFileLine(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[Source]\nType=url-file\nPath=http://x/\nMatchPattern=a_@v\nColour=blue\n", "a.transfer:5: Colour=: unknown key in [Source]"},
		{"[Source]\nType=url-file\nPath=http://x/\nMatchPattern=a_@v_@v\n", "a.transfer:4: MatchPattern=: MatchPattern= string is not valid"},
		{"[Source]\nType=floppy\n", "a.transfer:2: Type=: unknown resource type"},
		{"[Bogus]\nX=1\n", "a.transfer:2: X=: unknown section [Bogus]"},
		{"Type=url-file\n", "a.transfer:1: assignment \"Type\" outside of any section"},
		{"[Transfer]\nVerify=maybe\n", "a.transfer:2: Verify=: not a boolean"},
		{"[Source]\nType=url-file\nPath=http://x/\nMatchPattern=a_@v\n[Target]\nType=directory\nPath=/x\n", "incompatible with source type"},
		{"[Source]\nType=url-file\nPath=http://x/\nMatchPattern=a_@v\n[Target]\nType=partition\nPath=/dev/sda\n", "partition targets are not supported yet"},
		{"[Source]\nType=url-file\nPath=ftp://x/\nMatchPattern=a_@v\n[Target]\nPath=/x\n", "not a valid http(s) or file URL"},
		{"[Source]\nType=regular-file\nPath=relative\nMatchPattern=a_@v\n[Target]\nPath=/x\n", "not an absolute, normalized path"},
		{"[Source]\nType=url-file\nPath=http://x/%Q\nMatchPattern=a_@v\n", "a.transfer:3: Path=: unknown or unavailable specifier %Q"},
	} {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{"etc/sysupdate.d/a.transfer": tc.body})
		_, err := Load(root, DefinitionDirs(""), testSpec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("body %q: error %v, want it to contain %q", tc.body, err, tc.want)
		}
	}
}

func TestComponents(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/sysupdate.d", "etc/sysupdate.docker.d", "usr/lib/sysupdate.k3s.d", "etc/sysupdate..d"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	def, names, err := Components(root)
	if err != nil || !def || strings.Join(names, ",") != "docker,k3s" {
		t.Fatalf("Components = %v %v %v", def, names, err)
	}
}

// FuzzParseTransfer: arbitrary definition files never panic, and every
// error names the file.
func FuzzParseTransfer(f *testing.F) {
	f.Add(bakeryTransfer)
	f.Add("[Transfer]\nProtectVersion=%A \"1 2\"\\\n 3\n[Source]\nType=directory\nPath=/a\nMatchPattern=x_@v/y\n")
	f.Add("[Target]\nMode=0644\nTriesLeft=3\nPartitionFlags=0x10\nPartitionUUID=0123456789abcdef0123456789abcdef\n")
	f.Fuzz(func(t *testing.T, body string) {
		entries, err := parseINI("f.transfer", []byte(body))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.transfer") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		tr, err := ParseTransfer("f", "f.transfer", entries, testSpec)
		if err != nil {
			if !strings.Contains(err.Error(), "f.transfer") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		if len(tr.Source.Patterns) == 0 || len(tr.Target.Patterns) == 0 || tr.Target.Path == "" {
			t.Fatalf("accepted incomplete transfer %+v", tr)
		}
	})
}
