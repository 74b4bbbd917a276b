package provision

import (
	"context"
	"encoding/json"
	stderrors "errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/butane/config/common"
	"github.com/coreos/ignition/v2/config/shared/errors"
	ign33 "github.com/coreos/ignition/v2/config/v3_3"
	ign34 "github.com/coreos/ignition/v2/config/v3_4"
	ign35 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/vcontext/report"

	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/reposerve"
)

// publishedRepo publishes two extensions, signed, and serves them.
func publishedRepo(t *testing.T) (url string, key pgpsign.Key) {
	t.Helper()
	key, err := pgpsign.Generate("Repo", "repo@example.org")
	if err != nil {
		t.Fatal(err)
	}
	src, dir := t.TempDir(), t.TempDir()
	var imgs []string
	for _, n := range []string{"docker-27.1-x86-64.raw", "docker-28.0.4-x86-64.raw", "docker-29.0-arm64.raw", "kubernetes-v1.30.2-x86-64.raw"} {
		p := filepath.Join(src, n)
		os.WriteFile(p, []byte(n), 0o644)
		imgs = append(imgs, p)
	}
	if _, err := repo.Publish(repo.PublishOptions{Dir: dir, Images: imgs, SignKey: key.Private}); err != nil {
		t.Fatal(err)
	}
	h, err := reposerve.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return srv.URL, key
}

type ignitionOut struct {
	Ignition struct{ Version string }
	Storage  struct {
		Files []struct {
			Path     string
			Mode     int
			Contents struct {
				Source       string
				Verification struct{ Hash string }
			}
		}
		Links []struct{ Path, Target string }
	}
	Systemd struct {
		Units []struct {
			Name    string
			Enabled *bool
			Dropins []struct{ Name, Contents string }
		}
	}
}

func validate(t *testing.T, ver string, out []byte) {
	t.Helper()
	var r report.Report
	var err error
	switch ver {
	case "3.3.0":
		_, r, err = ign33.Parse(out)
	case "3.4.0":
		_, r, err = ign34.Parse(out)
	case "3.5.0":
		_, r, err = ign35.Parse(out)
	default:
		t.Fatalf("unexpected Ignition version %s", ver)
	}
	if err != nil || r.IsFatal() || len(r.Entries) > 0 {
		if err == errors.ErrUnknownVersion {
			t.Fatalf("ignition %s: unknown version", ver)
		}
		t.Fatalf("ignition %s rejects the config: %v %s", ver, err, r.String())
	}
}

func TestProvisionValidatesWithButaneAndIgnition(t *testing.T) {
	url, key := publishedRepo(t)
	for _, tc := range []struct{ variant, version, ign string }{
		{"flatcar", "1.0.0", "3.3.0"},
		{"flatcar", "1.1.0", "3.4.0"},
		{"fcos", "1.4.0", "3.3.0"},
		{"fcos", "1.5.0", "3.4.0"},
		{"fcos", "1.6.0", "3.5.0"},
	} {
		t.Run(tc.variant+"-"+tc.version, func(t *testing.T) {
			exts, err := Resolve(context.Background(), ResolveOptions{RepoURL: url, Arch: "x86-64", Keyring: key.Public}, []string{"docker", "kubernetes@v1.30.2"})
			if err != nil {
				t.Fatal(err)
			}
			if exts[0].Version != "28.0.4" || exts[0].File != "docker-28.0.4-x86-64.raw" {
				t.Fatalf("picked %+v, want the newest x86-64 docker", exts[0])
			}
			for _, act := range []Activation{Refresh, Reboot} {
				b, err := Butane(Options{Variant: tc.variant, Version: tc.version, RepoURL: url, Exts: exts, Keyring: key.Public, Activation: act, Noop: true})
				if err != nil {
					t.Fatal(err)
				}
				out, err := Ignition(b, true)
				if err != nil {
					t.Fatalf("butane rejects its input:\n%s\n%v", b, err)
				}
				var ig ignitionOut
				if err := json.Unmarshal(out, &ig); err != nil {
					t.Fatal(err)
				}
				if ig.Ignition.Version != tc.ign {
					t.Fatalf("ignition version %s, want %s", ig.Ignition.Version, tc.ign)
				}
				validate(t, tc.ign, out)
				img := ig.Storage.Files[0]
				if img.Path != "/opt/extensions/docker/docker-28.0.4-x86-64.raw" || img.Mode != 0o644 ||
					img.Contents.Source != url+"/docker-28.0.4-x86-64.raw" || img.Contents.Verification.Hash != "sha256-"+exts[0].SHA256 {
					t.Fatalf("image file %+v", img)
				}
				if ig.Storage.Links[0].Path != "/etc/extensions/docker.raw" || ig.Storage.Links[0].Target != img.Path {
					t.Fatalf("links %+v", ig.Storage.Links)
				}
				var paths []string
				for _, f := range ig.Storage.Files {
					paths = append(paths, f.Path)
				}
				for _, want := range []string{"/etc/sysupdate.docker.d/docker.transfer", "/etc/sysupdate.kubernetes.d/kubernetes.transfer", "/etc/systemd/import-pubring.pgp", "/etc/sysupdate.d/noop.transfer"} {
					if !strings.Contains(strings.Join(paths, " "), want) {
						t.Fatalf("no %s in %v", want, paths)
					}
				}
				units := ig.Systemd.Units
				if units[0].Name != "systemd-sysupdate.timer" || units[0].Enabled == nil || !*units[0].Enabled {
					t.Fatalf("timer %+v", units[0])
				}
				drop := units[1].Dropins[0]
				if drop.Name != "docker.conf" || !strings.Contains(drop.Contents, "systemd-sysupdate -C docker update") {
					t.Fatalf("drop-in %+v", drop)
				}
				wantAct := "systemd-sysext refresh"
				if act == Reboot {
					wantAct = "touch /run/reboot-required"
				}
				if !strings.Contains(drop.Contents, wantAct) {
					t.Fatalf("drop-in lacks %q:\n%s", wantAct, drop.Contents)
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	url, key := publishedRepo(t)
	ctx := context.Background()
	if _, err := Resolve(ctx, ResolveOptions{RepoURL: url, Arch: "x86-64"}, []string{"podman"}); err == nil || !strings.Contains(err.Error(), "no image of podman") {
		t.Fatalf("unknown extension: %v", err)
	}
	if _, err := Resolve(ctx, ResolveOptions{RepoURL: url, Arch: "x86-64"}, []string{"docker@1.0"}); err == nil {
		t.Fatal("unknown version resolved")
	}
	other, _ := pgpsign.Generate("Other", "")
	if _, err := Resolve(ctx, ResolveOptions{RepoURL: url, Arch: "x86-64", Keyring: other.Public}, []string{"docker"}); err == nil {
		t.Fatal("wrong keyring accepted")
	}
	exts, err := Resolve(ctx, ResolveOptions{RepoURL: url, Arch: "arm64", Keyring: key.Public}, []string{"docker"})
	if err != nil || exts[0].Version != "29.0" {
		t.Fatalf("arm64: %+v %v", exts, err)
	}
	if _, err := Butane(Options{Variant: "flatcar", Version: "9.9.9", Exts: exts, Activation: Refresh}); err == nil {
		t.Fatal("unsupported butane version accepted")
	}
}

// TestIgnitionVariants checks that every supported variant and version
// translates, and that the others (not linked into strata) are refused
// with a message that names what is supported.
func TestIgnitionVariants(t *testing.T) {
	for variant, versions := range SupportedVersions {
		for _, v := range versions {
			cfg := "variant: " + variant + "\nversion: " + v + "\nstorage:\n  files:\n    - path: /etc/hostname\n      mode: 0644\n      contents:\n        inline: node1\n"
			out, err := Ignition([]byte(cfg), false)
			if err != nil {
				t.Fatalf("%s %s: %v", variant, v, err)
			}
			var ig ignitionOut
			if err := json.Unmarshal(out, &ig); err != nil {
				t.Fatalf("%s %s: %v\n%s", variant, v, err, out)
			}
			validate(t, ig.Ignition.Version, out)
			if len(ig.Storage.Files) != 1 || ig.Storage.Files[0].Path != "/etc/hostname" || ig.Storage.Files[0].Mode != 0o644 {
				t.Fatalf("%s %s: files %+v", variant, v, ig.Storage.Files)
			}
		}
	}
	for _, tc := range []struct{ cfg, want string }{
		{"variant: openshift\nversion: 4.16.0\n", "variant openshift with version 4.16.0"},
		{"variant: fcos\nversion: 1.3.0\n", "Strata translates flatcar 1.0.0, 1.1.0; fcos 1.4.0, 1.5.0, 1.6.0"},
		{"variant: flatcar\nversion: 1.2.0-experimental\n", "use the butane tool"},
		{"version: 1.0.0\n", "variant; must be specified"},
		{"variant: flatcar\nversion: one\n", "must be a valid semver"},
		{"variant: [flatcar\n", "unmarshaling yaml"},
	} {
		_, err := Ignition([]byte(tc.cfg), true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
	var unknown common.ErrUnknownVersion
	if _, err := Ignition([]byte("variant: r4e\nversion: 1.1.0\n"), false); !stderrors.As(err, &unknown) || unknown.Variant != "r4e" {
		t.Fatalf("r4e: %v, want a common.ErrUnknownVersion", err)
	}
	// A translator's own validation still reports through Ignition.
	if _, err := Ignition([]byte("variant: flatcar\nversion: 1.0.0\nstorage:\n  files:\n    - path: relative\n"), false); err == nil {
		t.Fatal("relative path accepted")
	}
}
