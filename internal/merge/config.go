package merge

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/rootfs"
)

// ConfigFile is what sysext.conf / confext.conf and their drop-ins set.
type ConfigFile struct {
	Mutable     *Mode
	ImagePolicy *string
	// Files lists the files read, in the order applied.
	Files []string
}

var configDirs = []string{"/etc/systemd", "/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd"}

// LoadConfig reads the class's configuration file below root the way
// systemd reads a standard file with drop-ins: the first main file found
// (/etc before /run before /usr/local/lib before /usr/lib), then every
// NAME.conf.d/*.conf drop-in, ordered by file name, a drop-in in an
// earlier directory replacing one of the same name in a later one.
// Unparsable lines produce warnings and are ignored, as systemd does.
func LoadConfig(root string, c imageclass.Class) (ConfigFile, []string, error) {
	var cfg ConfigFile
	var warnings []string
	for _, d := range configDirs {
		p := path.Join(d, c.ConfigName())
		data, err := rootfs.ReadFile(root, p, 1<<20)
		if err != nil {
			continue
		}
		warnings = append(warnings, applyConfig(&cfg, p, data, c)...)
		break
	}
	dropins := map[string]string{}
	for i := len(configDirs) - 1; i >= 0; i-- {
		dir := path.Join(configDirs[i], c.ConfigName()+".d")
		f, err := rootfs.Open(root, dir, os.O_RDONLY)
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, n := range names {
			if strings.HasSuffix(n, ".conf") {
				dropins[n] = path.Join(dir, n)
			}
		}
	}
	names := make([]string, 0, len(dropins))
	for n := range dropins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := rootfs.ReadFile(root, dropins[n], 1<<20)
		if err != nil || len(data) == 0 {
			continue // empty or /dev/null links mask
		}
		warnings = append(warnings, applyConfig(&cfg, dropins[n], data, c)...)
	}
	return cfg, warnings, nil
}

func applyConfig(cfg *ConfigFile, name string, data []byte, c imageclass.Class) []string {
	cfg.Files = append(cfg.Files, filepath.Clean(name))
	var warnings []string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = l[1 : len(l)-1]
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			warnings = append(warnings, fmt.Sprintf("%s:%d: missing '=', ignoring line", name, line))
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if section != c.ConfigSection() {
			if section != "" {
				warnings = append(warnings, fmt.Sprintf("%s:%d: unknown section [%s], ignoring", name, line, section))
			}
			continue
		}
		switch k {
		case "Mutable":
			if v == "" {
				cfg.Mutable = nil
				continue
			}
			m, err := ParseMode(v)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("%s:%d: %v, ignoring", name, line, err))
				continue
			}
			cfg.Mutable = &m
		case "ImagePolicy":
			if v == "" {
				cfg.ImagePolicy = nil
				continue
			}
			if _, err := imagepolicy.Parse(v); err != nil {
				warnings = append(warnings, fmt.Sprintf("%s:%d: %v, ignoring", name, line, err))
				continue
			}
			vv := v
			cfg.ImagePolicy = &vv
		default:
			warnings = append(warnings, fmt.Sprintf("%s:%d: unknown key %s in [%s], ignoring", name, line, k, section))
		}
	}
	return warnings
}

// ParseHierarchies parses SYSTEMD_SYSEXT_HIERARCHIES: a colon-separated
// list of absolute, normalized paths other than "/".
func ParseHierarchies(env, value string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(value, ":") {
		if p == "" || !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("failed to parse %s environment variable: %q is not an absolute, normalized path other than /", env, p)
		}
		out = append(out, p)
	}
	return out, nil
}
