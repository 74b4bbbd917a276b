package repo

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/version"
)

// IndexName is the repository's machine-readable description.
const IndexName = "index.json"

// IndexFormat names the schema of index.json.
const IndexFormat = "strata-repo/1"

// MaxIndexSize bounds an index.json read from the network.
const MaxIndexSize = 64 << 20

// Index describes every published image.
type Index struct {
	Format     string           `json:"format"`
	Updated    time.Time        `json:"updated"`
	Signed     bool             `json:"signed"`
	Extensions []IndexExtension `json:"extensions"`
}

// IndexExtension is one extension and its versions, newest first.
type IndexExtension struct {
	Name          string         `json:"name"`
	Transfers     []string       `json:"transfers"`
	Versions      []IndexVersion `json:"versions"`
	Architectures []string       `json:"architectures"`
}

// IndexVersion is one published image.
type IndexVersion struct {
	Version      string    `json:"version"`
	Architecture string    `json:"architecture"`
	File         string    `json:"file"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	Published    time.Time `json:"published"`
}

// ParseIndex reads index.json.
func ParseIndex(data []byte) (*Index, error) {
	if len(data) > MaxIndexSize {
		return nil, fmt.Errorf("index larger than %d bytes", MaxIndexSize)
	}
	var ix Index
	if err := json.Unmarshal(data, &ix); err != nil {
		return nil, fmt.Errorf("parse %s: %w", IndexName, err)
	}
	if ix.Format != IndexFormat {
		return nil, fmt.Errorf("%s: unknown format %q (want %q)", IndexName, ix.Format, IndexFormat)
	}
	return &ix, nil
}

// Find returns the extension called name.
func (ix *Index) Find(name string) (*IndexExtension, bool) {
	for i := range ix.Extensions {
		if ix.Extensions[i].Name == name {
			return &ix.Extensions[i], true
		}
	}
	return nil, false
}

// Pick returns the newest image of ext for arch, or the one of version v
// when v is not empty.
func (e *IndexExtension) Pick(v, arch string) (IndexVersion, bool) {
	for _, iv := range e.Versions { // newest first
		if iv.Architecture == arch && (v == "" || iv.Version == v) {
			return iv, true
		}
	}
	return IndexVersion{}, false
}

// add records an image (keeping an existing record and its date).
func (ix *Index) add(n ImageName, size int64, sum string, when time.Time) {
	e, ok := ix.Find(n.Name)
	if !ok {
		ix.Extensions = append(ix.Extensions, IndexExtension{Name: n.Name})
		e = &ix.Extensions[len(ix.Extensions)-1]
	}
	for _, iv := range e.Versions {
		if iv.File == n.File() {
			return
		}
	}
	e.Versions = append(e.Versions, IndexVersion{Version: n.Version, Architecture: n.Arch, File: n.File(), Size: size, SHA256: sum, Published: when.UTC().Truncate(time.Second)})
}

// normalize sorts everything and fills the derived fields.
func (ix *Index) normalize(transfers map[string][]string) {
	ix.Format = IndexFormat
	sort.Slice(ix.Extensions, func(i, j int) bool { return ix.Extensions[i].Name < ix.Extensions[j].Name })
	for i := range ix.Extensions {
		e := &ix.Extensions[i]
		sort.SliceStable(e.Versions, func(a, b int) bool {
			if c := version.Compare(e.Versions[a].Version, e.Versions[b].Version); c != 0 {
				return c > 0
			}
			return e.Versions[a].Architecture < e.Versions[b].Architecture
		})
		e.Architectures = nil
		for _, v := range e.Versions {
			if !slices.Contains(e.Architectures, v.Architecture) {
				e.Architectures = append(e.Architectures, v.Architecture)
			}
		}
		sort.Strings(e.Architectures)
		e.Transfers = transfers[e.Name]
		sort.Strings(e.Transfers)
	}
}

// Marshal renders the index as indented JSON with a trailing newline.
func (ix *Index) Marshal() []byte {
	data, _ := json.MarshalIndent(ix, "", "  ")
	return append(data, '\n')
}

// transferSpecs returns the transfer definitions an extension gets: one
// for all versions and one per minor line (versions like v1.30.2).
func transferSpecs(e IndexExtension, url string, instancesMax int, verify bool) []TransferSpec {
	specs := []TransferSpec{{Name: e.Name, URL: url, InstancesMax: instancesMax, Verify: verify}}
	seen := map[string]bool{}
	for _, v := range e.Versions {
		line, ok := MinorLine(v.Version)
		if !ok || seen[line] || strings.ContainsAny(line, "@%") {
			continue
		}
		seen[line] = true
		specs = append(specs, TransferSpec{Name: e.Name, Line: line, URL: url, InstancesMax: instancesMax, Verify: verify})
	}
	return specs
}
