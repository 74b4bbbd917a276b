package podman

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/flake"
)

func spec(rt *flake.PodmanRuntime) Spec {
	return Spec{Name: "aws", Container: &flake.Container{Name: "docker.io/amazon/aws-cli", TargetAppPath: "/usr/local/bin/aws", Runtime: rt},
		Image: "docker.io/amazon/aws-cli", Args: []string{"ec2", "help"}}
}

func TestCreateArgs(t *testing.T) {
	s := spec(&flake.PodmanRuntime{Podman: []string{`\--net host`, "-ti", "--volume /nonexistent:/x", "-e HOME=%HOME"}})
	s.Getenv = func(k string) string { return map[string]string{"HOME": "/home/u"}[k] }
	s.Options = map[string]string{"ignore_missing_volume_path": ""}
	s.Exists = func(string) bool { return false }
	got := CreateArgs("run", s, OneShot, "flake-aws-1")
	want := []string{"run", "--name", "flake-aws-1", "--label", "io.strata.flake=1", "--label", "io.flake.name=aws", "--rm", "-i",
		"--net", "host", "-e", "HOME=/home/u", "--entrypoint", "/usr/local/bin/aws", "docker.io/amazon/aws-cli", "ec2", "help"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("one-shot\n got %q\nwant %q", got, want)
	}
	s.TTY, s.Instance = true, "dev"
	got = CreateArgs("create", s, Resume, "flake-aws-dev")
	if strings.Contains(strings.Join(got, " "), " -t") || !strings.HasSuffix(strings.Join(got, " "), "--entrypoint sleep docker.io/amazon/aws-cli 2147483647") {
		t.Fatalf("resume create: %q", got)
	}
	ex, err := ExecArgs(s, "flake-aws-dev")
	if err != nil || !reflect.DeepEqual(ex, []string{"exec", "-i", "-t", "flake-aws-dev", "/usr/local/bin/aws", "ec2", "help"}) {
		t.Fatalf("exec: %q %v", ex, err)
	}
	s.Container.TargetAppPath = "/"
	if _, err := ExecArgs(s, "x"); err == nil {
		t.Fatal("resume without a target accepted")
	}
}

func TestNamesAndKeys(t *testing.T) {
	if n := ContainerName("aws", "dev"); n != "flake-aws-dev" {
		t.Fatal(n)
	}
	a, b := ContainerName("g++", "x@y=z"), ContainerName("g__", "x_y_z")
	if a == b || strings.ContainsAny(a, "+@=") {
		t.Fatalf("unsafe or colliding names %q %q", a, b)
	}
	if InstanceID("", Resume, "r") != "default" || InstanceID("", OneShot, "r") != "r" || InstanceID("i", OneShot, "r") != "i" {
		t.Fatal("instance ids")
	}
	if DeltaKey([]string{"a", "bc"}) == DeltaKey([]string{"ab", "c"}) {
		t.Fatal("delta key ambiguous")
	}
}

func TestTarPath(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "conf/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "conf/sub/f"), []byte("data"), 0o600)
	os.Symlink("sub/f", filepath.Join(dir, "conf/link"))
	var buf bytes.Buffer
	if err := TarPath(&buf, filepath.Join(dir, "conf")); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	names := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		names[h.Name] = string(body) + h.Linkname
	}
	rel := strings.TrimPrefix(dir, "/")
	if names[rel+"/conf/sub/f"] != "data" || names[rel+"/conf/link"] != "sub/f" {
		t.Fatalf("tar entries: %v", names)
	}
	if _, ok := names[strings.Split(rel, "/")[0]+"/"]; !ok {
		t.Fatalf("parents missing: %v", names)
	}
}
