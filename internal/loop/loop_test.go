package loop

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// backing writes a file whose every 4 KiB block is filled with its index,
// so a read through the device shows which part of the file it maps.
func backing(t *testing.T, blocks int) string {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < blocks; i++ {
		b.Write(bytes.Repeat([]byte{byte(i + 1)}, 4096))
	}
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sysfs(t *testing.T, dev, attr string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/" + attr)
	if err != nil {
		t.Fatalf("read %s of %s: %v", attr, dev, err)
	}
	return strings.TrimSpace(string(b))
}

// waitDetached waits until dev no longer has img as its backing file:
// auto-clear detaches asynchronously after the last close.
func waitDetached(t *testing.T, dev, img string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		att, err := Attached()
		if err != nil {
			t.Fatal(err)
		}
		if att[dev] != img {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still backed by %s after the last close: auto-clear is not set", dev, img)
}

func TestAttachWindowReadOnlyAutoclear(t *testing.T) {
	privtest.RequireRoot(t)
	img := backing(t, 4)
	dev, err := Attach(img, Options{Offset: 4096, SizeLimit: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if att, _ := Attached(); att[dev.Path] != img {
		t.Fatalf("Attached()[%s] = %q, want %s", dev.Path, att[dev.Path], img)
	}
	if got := sysfs(t, dev.Path, "loop/autoclear"); got != "1" {
		t.Errorf("autoclear = %s", got)
	}
	if got := sysfs(t, dev.Path, "ro"); got != "1" {
		t.Errorf("ro = %s, want a read-only device", got)
	}
	if got := sysfs(t, dev.Path, "loop/offset"); got != "4096" {
		t.Errorf("offset = %s", got)
	}
	// The device shows blocks 2 and 3 of the file and nothing else.
	data := make([]byte, 3*4096)
	n, _ := dev.File().ReadAt(data, 0)
	if n != 8192 || data[0] != 2 || data[4095] != 2 || data[4096] != 3 || data[8191] != 3 {
		t.Errorf("read %d bytes through the device: first %d, last %d", n, data[0], data[max(n-1, 0)])
	}
	if w, err := os.OpenFile(dev.Path, os.O_WRONLY, 0); err == nil {
		_, werr := w.Write([]byte("x"))
		w.Close()
		if werr == nil {
			t.Error("wrote to a read-only loop device")
		}
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitDetached(t, dev.Path, img)
}

func TestAttachWritable(t *testing.T) {
	privtest.RequireRoot(t)
	img := backing(t, 2)
	dev, err := Attach(img, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if got := sysfs(t, dev.Path, "ro"); got != "0" {
		t.Errorf("ro = %s on a writable attach", got)
	}
	if _, err := dev.File().WriteAt([]byte{0xee}, 4096); err != nil {
		t.Fatal(err)
	}
	if err := dev.File().Sync(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(img)
	if b[4096] != 0xee {
		t.Errorf("the write through the device did not reach the file: %x", b[4096])
	}
}

// Concurrent attaches race between LOOP_CTL_GET_FREE and LOOP_CONFIGURE;
// each must still end with a device of its own.
func TestAttachConcurrent(t *testing.T) {
	privtest.RequireRoot(t)
	const n = 8
	imgs := make([]string, n)
	for i := range imgs {
		imgs[i] = backing(t, 1)
	}
	devs := make([]*Device, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			devs[i], errs[i] = Attach(imgs[i], Options{})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	att, _ := Attached()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("attach %d: %v", i, errs[i])
			continue
		}
		defer devs[i].Close()
		if seen[devs[i].Path] {
			t.Errorf("%s handed out twice", devs[i].Path)
		}
		seen[devs[i].Path] = true
		if att[devs[i].Path] != imgs[i] {
			t.Errorf("%s backed by %q, want %s", devs[i].Path, att[devs[i].Path], imgs[i])
		}
	}
}

func TestAttachMissingBacking(t *testing.T) {
	_, err := Attach(filepath.Join(t.TempDir(), "nope.raw"), Options{})
	if err == nil || !strings.Contains(err.Error(), "nope.raw") {
		t.Errorf("Attach of a missing file: %v", err)
	}
}
