package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/inspect"
	"github.com/stratalinux/strata/internal/release"
)

func newInspectCommand(env *Env) *cobra.Command {
	var jsonOut, noHash bool
	var osRelease, arch, root, policy string
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Describe an extension image without root and without mounting it",
		Long: `Describe an extension image: name, class, format, size, sha256,
extension-release, a summary of its files and whether this host (or the
os-release given with --os-release) would merge it. The image is read with
Strata's own squashfs/erofs/ext4/GPT readers; nothing is mounted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, err := inspect.HostRelease(osRelease)
			if err != nil {
				env.Log.Warn("no host os-release; skipping the compatibility check", "err", err)
			}
			a, err := release.NormalizeArch(arch)
			if err != nil {
				return err
			}
			opt := inspect.Options{Host: host, Arch: a, NoHash: noHash, Root: root}
			if policy != "" {
				p, err := imagepolicy.Parse(policy)
				if err != nil {
					return fmt.Errorf("--image-policy: %w", err)
				}
				opt.Policy = &p
			}
			rep, err := inspect.Image(cmdContext(cmd), args[0], opt)
			if err != nil {
				return err
			}
			if base := strings.TrimSuffix(filepath.Base(args[0]), ".raw"); rep.Name != base {
				noteBakedName(env, args[0], rep.Name)
			}
			if jsonOut {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printReport(env, rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&noHash, "no-hash", false, "do not compute the image's sha256")
	cmd.Flags().StringVar(&osRelease, "os-release", "", "check compatibility against this os-release file instead of the host's")
	cmd.Flags().StringVar(&arch, "arch", "", "host architecture for the compatibility check (default: this host's)")
	cmd.Flags().StringVar(&root, "root", "", "look up the trusted verity.d certificates under this root (default: /)")
	cmd.Flags().StringVar(&policy, "image-policy", "", "judge a disk image by this image policy (default: systemd's for its class)")
	return cmd
}

func printReport(env *Env, r *inspect.Report) {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Path:\t%s\n", r.Path)
	fmt.Fprintf(tw, "Name:\t%s\n", r.Name)
	fmt.Fprintf(tw, "Class:\t%s\n", r.Class)
	fmt.Fprintf(tw, "Format:\t%s\n", r.Format)
	if r.Size > 0 {
		fmt.Fprintf(tw, "Size:\t%d bytes (%.1f MiB)\n", r.Size, float64(r.Size)/(1<<20))
	}
	if r.SHA256 != "" {
		fmt.Fprintf(tw, "SHA256:\t%s\n", r.SHA256)
	}
	if r.DDI != nil {
		fmt.Fprintf(tw, "Protection:\t%s\n", r.DDI.Line())
	}
	if r.DDIError != "" {
		fmt.Fprintf(tw, "Refused:\t%s\n", r.DDIError)
	}
	fmt.Fprintf(tw, "Files:\t%d files (%d bytes, %d executable), %d directories, %d symlinks, %d other\n",
		r.Files.Files, r.Files.Bytes, r.Files.Executables, r.Files.Directories, r.Files.Symlinks, r.Files.Other)
	fmt.Fprintf(tw, "Top level:\t%s\n", strings.Join(r.Files.TopLevel, " "))
	if len(r.Files.Units) > 0 {
		fmt.Fprintf(tw, "Units:\t%s\n", strings.Join(r.Files.Units, " "))
	}
	if r.ReleasePath == "" {
		// check's words: a missing release is "none", an unreadable one "bad".
		verdict := "bad image"
		if r.ReleaseMissing {
			verdict = "none"
		}
		fmt.Fprintf(tw, "Release:\t%s: %s\n", verdict, r.ReleaseError)
	} else {
		fmt.Fprintf(tw, "Release:\t%s\n", r.ReleasePath)
		keys := make([]string, 0, len(r.Release))
		for k := range r.Release {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "\t%s=%s\n", k, r.Release[k])
		}
	}
	if c := r.Compatible; c != nil {
		if c.OK {
			fmt.Fprintf(tw, "This host:\tcompatible with %s (%s)\n", c.Host, c.Rule)
		} else {
			fmt.Fprintf(tw, "This host:\tNOT compatible with %s: %s (%s)\n", c.Host, c.Reason, c.Rule)
		}
	}
	tw.Flush()
}
