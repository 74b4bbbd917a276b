// Package flake is the flake registry: flake-pilot's YAML schema (read with
// deep-merged NAME.d drop-ins, written the way flake-ctl writes it), the
// global /etc/flakes.yml, registration and removal of host apps, and the
// launcher's argument conventions (@NAME, %option). The engines that run a
// flake live in the subpackages podman, vm and launch.
package flake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Engine names as they appear in the registry and on the command line.
const (
	EnginePodman      = "podman"
	EngineFirecracker = "firecracker"
	EngineVM          = "vm" // Strata's qemu microvm engine
	EngineSysext      = "sysext"
)

// Config is one flake registration: flake-pilot's schema (include,
// container, vm) plus Strata's sysext key. Unknown keys are kept out of the
// way (flake-pilot ignores them too).
type Config struct {
	Include   Include    `yaml:"include"`
	Container *Container `yaml:"container"`
	VM        *VM        `yaml:"vm"`
	Sysext    *Sysext    `yaml:"sysext,omitempty"`
}

// Include lists host files copied into every instance before it runs.
type Include struct {
	Tar  []string `yaml:"tar"`
	Path []string `yaml:"path"`
}

// Container is a podman flake.
type Container struct {
	Name                  string          `yaml:"name"`
	TargetAppPath         string          `yaml:"target_app_path,omitempty"`
	HostAppPath           string          `yaml:"host_app_path"`
	BaseContainer         string          `yaml:"base_container,omitempty"`
	CheckHostDependencies bool            `yaml:"check_host_dependencies"`
	Layers                []string        `yaml:"layers,omitempty"`
	Runtime               *PodmanRuntime  `yaml:"runtime,omitempty"`
	Strata                *ContainerExtra `yaml:"strata,omitempty"`
}

// ContainerExtra holds Strata-only container settings (flake-pilot
// ignores the key).
type ContainerExtra struct {
	// AllowSystemfiles lets a delta image's /systemfiles script run on the
	// host; without it the script is never executed.
	AllowSystemfiles bool `yaml:"allow_systemfiles,omitempty"`
}

// PodmanRuntime is container.runtime.
type PodmanRuntime struct {
	RunAs  string   `yaml:"runas"`
	Resume bool     `yaml:"resume"`
	Attach bool     `yaml:"attach"`
	Podman []string `yaml:"podman,omitempty"`
}

// VM is a virtual-machine flake (flake-pilot's firecracker schema; Strata's
// qemu engine reads the same keys).
type VM struct {
	Name          string     `yaml:"name"`
	TargetAppPath string     `yaml:"target_app_path,omitempty"`
	HostAppPath   string     `yaml:"host_app_path"`
	BaseVM        *string    `yaml:"base_vm"`
	Layers        []string   `yaml:"layers"`
	Runtime       *VMRuntime `yaml:"runtime"`
}

// VMRuntime is vm.runtime.
type VMRuntime struct {
	RunAs       string       `yaml:"runas"`
	Resume      bool         `yaml:"resume"`
	ForceVsock  bool         `yaml:"force_vsock"`
	Firecracker *Firecracker `yaml:"firecracker"`
	// Engine selects the hypervisor: "" or "firecracker" (flake-pilot), or
	// "qemu" (Strata's microvm engine).
	Engine string `yaml:"engine,omitempty"`
	// Net is false for --no-net.
	NoNet bool `yaml:"no_net,omitempty"`
}

// Firecracker is vm.runtime.firecracker; Strata's qemu engine reads it too.
type Firecracker struct {
	BootArgs        []string `yaml:"boot_args"`
	OverlaySize     string   `yaml:"overlay_size,omitempty"`
	RootfsImagePath string   `yaml:"rootfs_image_path"`
	KernelImagePath string   `yaml:"kernel_image_path"`
	InitrdPath      string   `yaml:"initrd_path,omitempty"`
	MemSizeMiB      int      `yaml:"mem_size_mib,omitempty"`
	VcpuCount       int      `yaml:"vcpu_count,omitempty"`
	CacheType       string   `yaml:"cache_type,omitempty"`
}

// Sysext is a flake that runs on the host with an extension image merged
// privately for the process (Strata only).
type Sysext struct {
	Image         string `yaml:"image"`
	TargetAppPath string `yaml:"target_app_path,omitempty"`
	HostAppPath   string `yaml:"host_app_path"`
}

// Engine names the engine a registration uses.
func (c *Config) Engine() string {
	switch {
	case c.Sysext != nil:
		return EngineSysext
	case c.Container != nil:
		return EnginePodman
	case c.VM != nil:
		if c.VM.Runtime != nil && c.VM.Runtime.Engine == "qemu" {
			return EngineVM
		}
		return EngineFirecracker
	}
	return ""
}

// Target is the program run inside the engine.
func (c *Config) Target() string {
	switch {
	case c.Sysext != nil:
		return c.Sysext.TargetAppPath
	case c.Container != nil:
		return c.Container.TargetAppPath
	case c.VM != nil:
		return c.VM.TargetAppPath
	}
	return ""
}

// HostApp is the registered host path.
func (c *Config) HostApp() string {
	switch {
	case c.Sysext != nil:
		return c.Sysext.HostAppPath
	case c.Container != nil:
		return c.Container.HostAppPath
	case c.VM != nil:
		return c.VM.HostAppPath
	}
	return ""
}

// Image is the container image, VM name or extension image.
func (c *Config) Image() string {
	switch {
	case c.Sysext != nil:
		return c.Sysext.Image
	case c.Container != nil:
		return c.Container.Name
	case c.VM != nil:
		return c.VM.Name
	}
	return ""
}

// Limits on untrusted registry input.
const (
	MaxConfigSize = 1 << 20
	MaxDropIns    = 256
	maxDepth      = 32
)

// ErrNotRegistered means no NAME.yaml exists.
var ErrNotRegistered = errors.New("no flake registered under this name")

// Load reads dir/NAME.yaml and deep-merges dir/NAME.d/*.yaml (sorted) over
// it: mappings merge key by key, scalars and lists replace. Errors name the
// file and line.
func Load(dir, name string) (*Config, []string, error) {
	main := filepath.Join(dir, name+".yaml")
	data, err := readBounded(main)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", main, ErrNotRegistered)
	}
	if err != nil {
		return nil, nil, err
	}
	files := []string{main}
	docs := [][]byte{data}
	dropins, err := DropIns(filepath.Join(dir, name+".d"))
	if err != nil {
		return nil, nil, err
	}
	for _, p := range dropins {
		b, err := readBounded(p)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, p)
		docs = append(docs, b)
	}
	cfg, err := Merge(files, docs)
	return cfg, files, err
}

// DropIns lists the YAML drop-ins of a NAME.d directory in merge order.
func DropIns(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, ".yml") || strings.HasPrefix(n, ".") {
			continue
		}
		if !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	if len(out) > MaxDropIns {
		return nil, fmt.Errorf("%s: %d drop-ins, at most %d are read", dir, len(out), MaxDropIns)
	}
	return out, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxConfigSize)
	}
	return b, nil
}

// Merge parses each document on its own (so a syntax or type error names
// its file and line), deep-merges them in order and decodes the result.
func Merge(names []string, docs [][]byte) (*Config, error) {
	var merged *yaml.Node
	for i, data := range docs {
		root, err := parseDoc(data)
		if err != nil {
			return nil, fmt.Errorf("%s:%s", names[i], yamlErr(err))
		}
		if root == nil {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: the top level must be a mapping (include, container, vm)", names[i], root.Line)
		}
		var probe Config
		if err := root.Decode(&probe); err != nil {
			return nil, fmt.Errorf("%s:%s", names[i], yamlErr(err))
		}
		if err := checkDepth(root, 0); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", names[i], root.Line, err)
		}
		merged = mergeNodes(merged, root)
	}
	cfg := &Config{}
	if merged == nil {
		return cfg, nil
	}
	if err := merged.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %s", strings.Join(names, "+"), yamlErr(err))
	}
	return cfg, nil
}

// parseDoc returns the first document's top node, or nil for an empty
// document (a file holding only "---" or comments).
func parseDoc(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind == yaml.AliasNode || hasAlias(n, 0) {
		return nil, fmt.Errorf("line %d: YAML aliases are not accepted in flake files", n.Line)
	}
	return n, nil
}

func hasAlias(n *yaml.Node, depth int) bool {
	if depth > maxDepth {
		return false
	}
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode || hasAlias(c, depth+1) {
			return true
		}
	}
	return false
}

func checkDepth(n *yaml.Node, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	for _, c := range n.Content {
		if err := checkDepth(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// yamlErr renders a yaml.v3 error as "LINE: message".
func yamlErr(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if strings.HasPrefix(msg, "line ") {
		rest := strings.TrimPrefix(msg, "line ")
		if i := strings.Index(rest, ":"); i > 0 {
			return rest[:i] + ":" + rest[i+1:]
		}
	}
	return " " + msg
}

// mergeNodes deep-merges over onto base: mappings merge by key, anything
// else replaces. Neither input is modified.
func mergeNodes(base, over *yaml.Node) *yaml.Node {
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: base.Tag, Line: base.Line, Column: base.Column}
	out.Content = append(out.Content, base.Content...)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		found := false
		for j := 0; j+1 < len(out.Content); j += 2 {
			if out.Content[j].Value == k.Value {
				out.Content[j+1] = mergeNodes(out.Content[j+1], v)
				found = true
			}
		}
		if !found {
			out.Content = append(out.Content, k, v)
		}
	}
	return out
}

// Marshal renders a registration the way flake-ctl writes it: a leading
// "---", every top-level key present (null for the unused engine).
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("---\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
