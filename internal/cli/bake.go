package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/bake"
	"github.com/stratalinux/strata/internal/bytesize"
	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/lint"
	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/internal/sdparse"
)

type bakeFlags struct {
	name, version, arch, class, format, compression string
	osSpec, scope, output, reload                   string
	maxSize                                         string
	json, list, noLint, allowUnverified             bool
	verity                                          bool
	signKey, signCert                               string
	baseURL                                         string
	jobs                                            int
	maxDownload, maxUnpack                          string
	maxUnpackRatio                                  int64
}

func newBakeCommand(env *Env) *cobra.Command {
	var f bakeFlags
	cmd := &cobra.Command{
		Use:   "bake DIR | RECIPE...",
		Short: "Bake a reproducible extension image from a directory or a recipe",
		Long: `Bake a reproducible system or configuration extension image.

From a directory (usr/ and opt/ for a sysext, etc/ for a confext):
  strata bake DIR --name NAME --version VERSION [--arch ARCH] [--format squashfs|erofs|ext4|dir|ddi]
  [--verity] [--sign-key KEY --sign-cert CERT]   (with --format ddi)

From a recipe (a YAML file, or the name of one shipped with Strata; see --list):
  strata bake RECIPE... [--version V|latest] [--arch x86-64|arm64|all]

Several recipes and architectures bake in parallel (--jobs).

The image is written as NAME-VERSION-ARCH.raw with a NAME-VERSION-ARCH.raw.sha256
beside it in --output, and its path is printed. SOURCE_DATE_EPOCH (default 0)
sets every timestamp; the same inputs give the same bytes.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.list {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if f.list {
				return listRecipes(env, f.json)
			}
			if fi, err := os.Stat(args[0]); err == nil && fi.IsDir() {
				if len(args) > 1 {
					return fmt.Errorf("bake one directory at a time (got %d arguments)", len(args))
				}
				return bakeDir(ctx, env, args[0], f)
			}
			return bakeRecipes(ctx, env, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "image name (the NAME in extension-release.NAME)")
	fl.StringVar(&f.version, "version", "", "image version; for a recipe, an upstream version or \"latest\"")
	fl.StringVar(&f.arch, "arch", "", "architecture in systemd's names (x86-64, arm64, ...; default: this host's); recipes also take \"all\"")
	fl.StringVar(&f.class, "class", "sysext", "extension class: sysext or confext")
	fl.StringVar(&f.format, "format", "squashfs", "image format: squashfs, erofs, ext4, dir or ddi (a GPT disk image of squashfs)")
	fl.BoolVar(&f.verity, "verity", false, "with --format ddi: add a dm-verity hash partition")
	fl.StringVar(&f.signKey, "sign-key", "", "with --format ddi: sign the verity root hash with this PEM private key (implies --verity)")
	fl.StringVar(&f.signCert, "sign-cert", "", "with --format ddi: the PEM certificate of --sign-key (hosts trust it in /etc/verity.d/)")
	fl.StringVar(&f.compression, "compression", "", "compressor: squashfs gzip (default), zstd, xz, lz4, lzo, none; erofs lz4hc (default), lz4, none")
	fl.StringVar(&f.osSpec, "os", "", "pin the image to an OS: ID, ID:VERSION_ID or ID:level=SYSEXT_LEVEL (default ID=_any)")
	fl.StringVar(&f.scope, "scope", "", "SYSEXT_SCOPE/CONFEXT_SCOPE, e.g. \"system portable\"")
	fl.StringVarP(&f.output, "output", "o", ".", "output directory")
	fl.StringVar(&f.reload, "reload-manager", "auto", "EXTENSION_RELOAD_MANAGER=1: auto (when the image has units), yes or no")
	fl.StringVar(&f.maxSize, "max-size", "4G", "largest allowed image size for lint (0 = no limit)")
	fl.BoolVar(&f.noLint, "no-lint", false, "do not lint the tree (not recommended)")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON")
	fl.BoolVar(&f.list, "list", false, "list the recipes shipped with Strata")
	fl.StringVar(&f.baseURL, "base-url", os.Getenv("STRATA_BAKE_BASE_URL"), "fetch every recipe URL from this mirror instead (scheme://host[/prefix]; env STRATA_BAKE_BASE_URL)")
	fl.IntVarP(&f.jobs, "jobs", "j", 2, "images baked in parallel (several recipes or architectures)")
	fl.BoolVar(&f.allowUnverified, "allow-unverified", false, "bake recipe artifacts whose upstream publishes no checksum")
	maxDownload := os.Getenv("STRATA_MAX_DOWNLOAD")
	if maxDownload == "" {
		maxDownload = "8G"
	}
	fl.StringVar(&f.maxDownload, "max-download", maxDownload, "largest recipe artifact downloaded (env STRATA_MAX_DOWNLOAD)")
	fl.StringVar(&f.maxUnpack, "max-unpack", "16G", "most bytes one recipe archive may unpack to (also bounded by free space)")
	fl.Int64Var(&f.maxUnpackRatio, "max-unpack-ratio", archive.DefaultRatio, "largest expansion of a recipe archive over its compressed size (-1 = no limit)")
	return cmd
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// parseReload reads --reload-manager: auto, or a boolean in systemd's
// spelling.
func parseReload(s string) (*bool, error) {
	if s == "auto" || s == "" {
		return nil, nil
	}
	b, err := sdparse.Boolean(s)
	if err != nil {
		return nil, fmt.Errorf("--reload-manager %q: want auto, yes or no", s)
	}
	return &b, nil
}

// progressWriter returns stderr when it is a terminal and output is not
// JSON; nil otherwise (quiet in pipes).
func progressWriter(env *Env, jsonOut bool) io.Writer {
	if jsonOut {
		return nil
	}
	if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// bakeRequest is the request for baking directory dir.
func bakeRequest(env *Env, dir string, f bakeFlags) (bake.Request, error) {
	class, err := imageclass.Parse(f.class)
	if err != nil {
		return bake.Request{}, err
	}
	req, err := bakeOptions(env, f)
	if err != nil {
		return bake.Request{}, err
	}
	req.Dir, req.Name, req.Version, req.Arch, req.Class = dir, f.name, f.version, f.arch, class
	return req, nil
}

// bakeOptions is the part of a bake request the flags give for every
// image, whether baked from a directory or a recipe.
func bakeOptions(env *Env, f bakeFlags) (bake.Request, error) {
	if f.format != bake.FormatDDI {
		if _, err := fsimage.New(f.format); err != nil {
			return bake.Request{}, err
		}
	}
	signKey, signCert, err := loadSigner(f.signKey, f.signCert)
	if err != nil {
		return bake.Request{}, err
	}
	epoch, err := bake.EpochFromEnv(os.Getenv)
	if err != nil {
		return bake.Request{}, err
	}
	reload, err := parseReload(f.reload)
	if err != nil {
		return bake.Request{}, err
	}
	maxSize, err := bytesize.Parse(f.maxSize, bytesize.Strata)
	if err != nil {
		return bake.Request{}, fmt.Errorf("--max-size: %w", err)
	}
	return bake.Request{Format: f.format, Compression: f.compression, OS: f.osSpec, Scope: f.scope,
		OutDir: f.output, Epoch: epoch, Reload: reload,
		NoLint: f.noLint, MaxSize: maxSize, Progress: progressWriter(env, f.json),
		Verity: f.verity, SignKey: signKey, SignCert: signCert}, nil
}

type bakeOutput struct {
	bake.Result
	Name     string         `json:"name"`
	Version  string         `json:"version"`
	Arch     string         `json:"arch"`
	Findings []lint.Finding `json:"findings"`
}

func bakeDir(ctx context.Context, env *Env, dir string, f bakeFlags) error {
	if f.arch == "all" {
		return fmt.Errorf("--arch all is for recipes; a directory holds one architecture's files")
	}
	req, err := bakeRequest(env, dir, f)
	if err != nil {
		return err
	}
	res, err := bake.Bake(ctx, req)
	logFindings(env, res.Findings, f.json)
	if err != nil {
		return err
	}
	arch, _ := release.NormalizeArch(f.arch)
	return printBakeResults(env, f.json, []bakeOutput{{Result: res, Name: f.name, Version: f.version, Arch: arch, Findings: nonNil(res.Findings)}})
}

func nonNil(f lint.Findings) []lint.Finding {
	if f == nil {
		return []lint.Finding{}
	}
	return f
}

func logFindings(env *Env, findings lint.Findings, jsonOut bool) {
	if jsonOut {
		return
	}
	for _, x := range findings {
		if x.Severity == lint.Warning {
			env.Log.Warn(x.Path + ": " + x.Message + " [" + x.Rule + "]")
		}
	}
}

func printBakeResults(env *Env, jsonOut bool, outs []bakeOutput) error {
	if jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if len(outs) == 1 {
			return enc.Encode(outs[0])
		}
		return enc.Encode(outs)
	}
	for _, o := range outs {
		fmt.Fprintln(env.Stdout, o.Path)
	}
	return nil
}
