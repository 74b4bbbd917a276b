package initrd

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/pkcs7"
)

// ModuleListPath is the load-order file inside the initrd: one module
// path a line (relative to ModulesDir), each after its dependencies.
const ModuleListPath = "etc/strata/initrd-modules"

// ModulesDir is where the modules sit inside the initrd.
const ModulesDir = "lib/modules"

// maxModuleSize bounds one module file read from the tree.
const maxModuleSize = 64 << 20

// Spec is what goes into an initrd.
type Spec struct {
	Init    []byte   // the static strata binary, installed as /init
	Modules fs.FS    // the kernel's module tree (/lib/modules/VERSION)
	Wanted  []string // module names; nil → DefaultModules
	// Trust are certificates (PEM) /init requires a slot's root hash signature by, as
	// etc/verity.d/NAME.crt (NAME a plain file name).
	Trust []TrustedCert
}

// TrustedCert is one certificate of Spec.Trust.
type TrustedCert struct {
	Name string // file name in etc/verity.d, ending in .crt
	PEM  []byte
}

// TrustDir is where the initrd keeps its trusted certificates (the first of systemd's verity.d dirs).
const TrustDir = "etc/verity.d"

// Entries plans the archive: /init, the resolved modules (a .ko.gz is
// unpacked here; .ko.xz and .ko.zst stay compressed and /init hands them
// to finit_module with MODULE_INIT_COMPRESSED_FILE, which needs a kernel
// built with CONFIG_MODULE_DECOMPRESS), the load-order file and the
// mount points /init uses.
func Entries(s Spec) ([]Entry, error) {
	if len(s.Init) == 0 {
		return nil, fmt.Errorf("initrd: no /init binary given")
	}
	wanted := s.Wanted
	if wanted == nil {
		wanted = DefaultModules
	}
	mods, err := ResolveModules(s.Modules, wanted)
	if err != nil {
		return nil, err
	}
	entries := []Entry{{Name: "init", Mode: ModeRegular | 0o755, Data: s.Init}}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "sysroot"} {
		entries = append(entries, Entry{Name: d, Mode: ModeDir | 0o755})
	}
	var list strings.Builder
	for _, m := range mods {
		data, err := readModule(s.Modules, m.Path)
		if err != nil {
			return nil, err
		}
		name := m.Path
		if strings.HasSuffix(name, ".gz") {
			if data, err = gunzip(data); err != nil {
				return nil, fmt.Errorf("unpack kernel module %s: %w", m.Path, err)
			}
			name = strings.TrimSuffix(name, ".gz")
		}
		entries = append(entries, Entry{Name: path.Join(ModulesDir, name), Mode: ModeRegular | 0o644, Data: data})
		list.WriteString(name + "\n")
	}
	entries = append(entries, Entry{Name: ModuleListPath, Mode: ModeRegular | 0o644, Data: []byte(list.String())})
	seen := map[string]bool{}
	for _, c := range s.Trust {
		if !strings.HasSuffix(c.Name, ".crt") || strings.ContainsAny(c.Name, "/\x00") || c.Name == ".crt" {
			return nil, fmt.Errorf("initrd: trusted certificate name %q: want a plain file name ending in .crt", c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("initrd: two trusted certificates named %s", c.Name)
		}
		seen[c.Name] = true
		entries = append(entries, Entry{Name: path.Join(TrustDir, c.Name), Mode: ModeRegular | 0o644, Data: c.PEM})
	}
	return entries, nil
}

// Write builds the initrd described by s into w (an uncompressed newc
// cpio: the kernel unpacks it as is, and TCG boots skip a decompression).
func Write(w io.Writer, s Spec) error {
	entries, err := Entries(s)
	if err != nil {
		return err
	}
	return WriteCPIO(w, entries)
}

func readModule(tree fs.FS, p string) ([]byte, error) {
	f, err := tree.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read kernel module %s: %w", p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("read kernel module %s: %w", p, err)
	}
	if len(data) > maxModuleSize {
		return nil, fmt.Errorf("kernel module %s is larger than %d bytes", p, maxModuleSize)
	}
	return data, nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxModuleSize+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxModuleSize {
		return nil, fmt.Errorf("larger than %d bytes unpacked", maxModuleSize)
	}
	return out, nil
}

// ParseModuleList reads the load-order file written by Entries.
func ParseModuleList(b []byte) []string { return lines(b) }

// maxCertFile bounds one --trust certificate file.
const maxCertFile = 1 << 20

// ReadTrust reads certificate files for Spec.Trust: each must hold a PEM certificate; it is named
// after the file, with its extension replaced by .crt.
func ReadTrust(paths []string) ([]TrustedCert, error) {
	var out []TrustedCert
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		b, err := limitread.ReadAll(f, maxCertFile)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w (a certificate is at most %d bytes)", p, err, maxCertFile)
		}
		if _, err := pkcs7.ParseCertificatesPEM(b); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		base := filepath.Base(p)
		name := strings.TrimSuffix(base, filepath.Ext(base)) + ".crt"
		out = append(out, TrustedCert{Name: name, PEM: b})
	}
	return out, nil
}
