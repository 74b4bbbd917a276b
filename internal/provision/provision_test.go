package provision

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
