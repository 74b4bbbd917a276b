package podman

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// deltaRecord remembers the last assembly of a delta flake and a stamp of
// podman's image store, so a launch whose inputs cannot have changed uses
// the cached image without asking podman anything.
type deltaRecord struct {
	Key         string `json:"key"`
	Tag         string `json:"tag"`
	ImagesJSON  string `json:"images_json"`
	Stamp       string `json:"stamp"`
	Systemfiles bool   `json:"systemfiles,omitempty"`
}

// deltaFormat versions what an assembled image records (its labels).
const deltaFormat = "strata-delta-2"

// Delta is an assembled delta image.
type Delta struct {
	Tag string
	// Systemfiles: the assembled tree has flake-pilot's /systemfiles.
	Systemfiles bool
}

func storeStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d.%d", fi.ModTime().UnixNano(), fi.Size())
}

// DeltaImage returns a local image holding base with each of overlays
// (the layers, then the delta image itself) copied over it in order,
// assembled once per set of image ids and then reused. An assembled tree
// with /systemfiles is labelled so; without allowSystemfiles the assembly
// warns once that the script will not run.
func (e *Engine) DeltaImage(ctx context.Context, name, base string, overlays []string, allowSystemfiles bool) (Delta, error) {
	recPath := ""
	var rec deltaRecord
	if e.StateDir != "" {
		recPath = filepath.Join(e.StateDir, "delta", name+".json")
		var b []byte
		_ = e.asUser(func() error {
			f, err := os.Open(recPath)
			if err != nil {
				return err
			}
			defer f.Close()
			b, err = io.ReadAll(io.LimitReader(f, 1<<16))
			return err
		})
		if len(b) > 0 && len(b) < 1<<16 {
			_ = json.Unmarshal(b, &rec)
			if rec.Tag != "" && rec.Stamp != "" && storeStamp(rec.ImagesJSON) == rec.Stamp {
				return Delta{Tag: rec.Tag, Systemfiles: rec.Systemfiles}, nil
			}
		}
	}
	inputs := append([]string{base}, overlays...)
	var ids []string
	for _, img := range inputs {
		id, err := e.output(ctx, nil, "image", "inspect", "--format", "{{.Id}}", img)
		if err != nil {
			return Delta{}, fmt.Errorf("image %s is not in podman's storage (strata flake pull %s): %w", img, img, err)
		}
		ids = append(ids, id)
	}
	// The format mark re-assembles images cached by a Strata that did not
	// yet record /systemfiles.
	key := DeltaKey(append(ids, deltaFormat))
	tag := DeltaTag(name, key)
	d := Delta{Tag: tag}
	label, err := e.output(ctx, nil, "image", "inspect", "--format", `{{index .Labels "`+LabelSystemfiles+`"}}`, tag)
	if err == nil {
		d.Systemfiles = label == "1"
	} else {
		if d.Systemfiles, err = e.assemble(ctx, name, key, tag, inputs); err != nil {
			return Delta{}, err
		}
		if d.Systemfiles && !allowSystemfiles {
			e.log().Warn(fmt.Sprintf("flake %s: the delta image ships /systemfiles, which was not run; to run it as the podman user on the host at each new instance, register the flake again with --allow-systemfiles", name))
		}
		if rec.Tag != "" && rec.Tag != tag {
			_, _ = e.output(ctx, nil, "rmi", rec.Tag)
		}
	}
	if recPath != "" {
		rec = deltaRecord{Key: key, Tag: tag, Systemfiles: d.Systemfiles}
		if info, err := e.output(ctx, nil, "info", "--format", "{{.Store.GraphRoot}} {{.Store.GraphDriverName}}"); err == nil {
			if root, driver, ok := strings.Cut(info, " "); ok {
				rec.ImagesJSON = filepath.Join(root, driver+"-images", "images.json")
				rec.Stamp = storeStamp(rec.ImagesJSON)
			}
		}
		if b, err := json.Marshal(rec); err == nil {
			_ = e.asUser(func() error {
				if err := os.MkdirAll(filepath.Dir(recPath), 0o700); err != nil {
					return err
				}
				return writeState(recPath, b)
			})
		}
	}
	return d, nil
}

// placeholder is the command given to containers that are only created
// to be copied from or into, never started.
const placeholder = "/.strata-flake-never-run"

// assemble commits base + overlays as tag and reports whether the result
// has /systemfiles.
func (e *Engine) assemble(ctx context.Context, name, key, tag string, inputs []string) (bool, error) {
	msg := "assembling delta image (once per set of image versions)"
	if e.Progress {
		e.log().Info(msg, "flake", name, "tag", tag)
	} else {
		e.log().Debug(msg, "flake", name, "tag", tag)
	}
	work := ContainerName(name, "assemble-"+randomID())
	if _, err := e.output(ctx, nil, "create", "--name", work, "--entrypoint", placeholder, inputs[0]); err != nil {
		return false, err
	}
	defer func() { _, _ = e.output(context.Background(), nil, "rm", "--force", work) }()
	cfg, err := e.output(ctx, nil, "image", "inspect", "--format", "{{json .Config.Entrypoint}}\t{{json .Config.Cmd}}", inputs[0])
	if err != nil {
		return false, err
	}
	for _, img := range inputs[1:] {
		if err := e.overlay(ctx, name, work, img); err != nil {
			return false, err
		}
	}
	hasSystemfiles, err := e.hasSystemfiles(ctx, work)
	if err != nil {
		return false, err
	}
	ep, cmd, _ := strings.Cut(cfg, "\t")
	args := []string{"commit", "--quiet", "--change", "LABEL " + LabelDeltaKey + "=" + key,
		"--change", "LABEL " + LabelName + "=" + name}
	if hasSystemfiles {
		args = append(args, "--change", "LABEL "+LabelSystemfiles+"=1")
	}
	args = append(args, "--change", "ENTRYPOINT "+jsonOrEmpty(ep), "--change", "CMD "+jsonOrEmpty(cmd), work, tag)
	if _, err := e.output(ctx, nil, args...); err != nil {
		return false, err
	}
	return hasSystemfiles, nil
}

func jsonOrEmpty(s string) string {
	if s == "" || s == "null" {
		return "[]"
	}
	return s
}

// overlay copies image img's whole tree into the container work (podman
// export of a throw-away container, streamed into podman cp).
func (e *Engine) overlay(ctx context.Context, name, work, img string) error {
	src := ContainerName(name, "layer-"+randomID())
	if _, err := e.output(ctx, nil, "create", "--name", src, "--entrypoint", placeholder, img); err != nil {
		return err
	}
	defer func() { _, _ = e.output(context.Background(), nil, "rm", "--force", src) }()
	bin, err := e.podman()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	exp := e.command(ctx, bin, pw, "export", src)
	if err := exp.Start(); err != nil {
		return err
	}
	go func() { pw.CloseWithError(exp.Wait()) }()
	_, err = e.output(ctx, pr, "cp", "-", work+":/")
	pr.Close()
	if err != nil {
		return fmt.Errorf("layer %s: %w", img, err)
	}
	return nil
}
