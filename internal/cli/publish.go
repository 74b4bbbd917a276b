package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/fleet/store"
	fleetweb "github.com/stratalinux/strata/internal/fleet/web"
	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/reposerve"
)

func newPublishCommand(env *Env) *cobra.Command {
	var dir, signKey, url, jsonOut string
	var instancesMax int
	cmd := &cobra.Command{
		Use:   "publish IMAGE... --repo DIR",
		Short: "Add extension images to a repository (SHA256SUMS, signature, transfer files, index.json)",
		Long: `Copy NAME-VERSION-ARCH.raw images into a flat repository directory that
systemd-sysupdate and strata sysupdate consume directly, and rewrite its
SHA256SUMS (systemd's format), SHA256SUMS.gpg (with --sign-key), one
NAME.transfer per extension plus NAME-vX.Y.transfer per minor line, and
index.json. Versions already published are never rewritten; every
manifest is replaced atomically.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return errors.New("--repo DIR is required")
			}
			jm, err := parseJSONMode(jsonOut)
			if err != nil {
				return err
			}
			opt := repo.PublishOptions{Dir: dir, Images: args, URL: url, InstancesMax: instancesMax, Log: env.Log}
			if signKey != "" {
				if opt.SignKey, err = readSmall(signKey, pgpsign.MaxKeySize); err != nil {
					return fmt.Errorf("--sign-key: %w", err)
				}
			}
			res, err := repo.Publish(opt)
			if err != nil {
				return err
			}
			if jm != "" {
				return writeJSON(env.Stdout, jm, res)
			}
			for _, a := range res.Added {
				fmt.Fprintf(env.Stdout, "added     %s\n", a)
			}
			for _, u := range res.Unchanged {
				fmt.Fprintf(env.Stdout, "unchanged %s\n", u)
			}
			if !res.Signed {
				env.Log.Warn("repository is not signed: clients need Verify=no; create a key with 'strata key generate' and pass --sign-key")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "repo", "", "repository directory")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "OpenPGP private key file to sign SHA256SUMS with")
	cmd.Flags().StringVar(&url, "url", "", "public base URL of the repository, written into the transfer files (default file://DIR)")
	cmd.Flags().IntVar(&instancesMax, "instances-max", 3, "InstancesMax= of the transfer files")
	cmd.Flags().StringVar(&jsonOut, "json", "off", "output as JSON: pretty, short or off")
	cmd.Flags().Lookup("json").NoOptDefVal = "short"
	return cmd
}

func readSmall(p string, limit int64) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return os.ReadFile(p)
}

func newKeyCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage repository signing keys"}
	var name, email, out string
	var x509Flags x509KeyFlags
	gen := &cobra.Command{
		Use:   "generate --out PREFIX | --x509 --out-key KEY --out-cert CERT",
		Short: "Create an OpenPGP signing key: PREFIX.key (private) and PREFIX.pgp (public keyring)",
		Long: `Create an Ed25519 OpenPGP key for signing repositories. PREFIX.key is the
private key for 'strata publish --sign-key'; PREFIX.pgp is the public key
to install on clients as /etc/systemd/import-pubring.pgp.

With --x509, create instead a key and self-signed certificate for signing
the verity root hashes of DDIs ('strata bake --format ddi --sign-key KEY
--sign-cert CERT'); install CERT on hosts as /etc/verity.d/NAME.crt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if x509Flags.on {
				return generateX509Key(env, x509Flags)
			}
			if out == "" {
				return errors.New("--out PREFIX is required")
			}
			k, err := pgpsign.Generate(name, email)
			if err != nil {
				return err
			}
			if dir := filepath.Dir(out); dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
			}
			privPath, pubPath := out+".key", out+".pgp"
			for _, p := range []string{privPath, pubPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists; refusing to overwrite a key", p)
				}
			}
			if err := repo.WriteAtomic(privPath, k.Private, 0o600); err != nil {
				return err
			}
			if err := repo.WriteAtomic(pubPath, k.Public, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "fingerprint %s\nprivate key %s\npublic key  %s (install as /etc/systemd/import-pubring.pgp)\n", k.Fingerprint, privPath, pubPath)
			return nil
		},
	}
	gen.Flags().StringVar(&name, "name", "Strata repository", "key owner's name")
	gen.Flags().StringVar(&email, "email", "", "key owner's e-mail address")
	gen.Flags().StringVar(&out, "out", "", "path prefix of the key files")
	gen.Flags().BoolVar(&x509Flags.on, "x509", false, "make an X.509 key and certificate for signing DDI verity root hashes")
	gen.Flags().StringVar(&x509Flags.outKey, "out-key", "", "with --x509: the private key file (PEM, mode 0600)")
	gen.Flags().StringVar(&x509Flags.outCert, "out-cert", "", "with --x509: the certificate file (PEM)")
	gen.Flags().StringVar(&x509Flags.subject, "subject", "Strata verity signing key", "with --x509: the certificate's common name")
	gen.Flags().StringVar(&x509Flags.keyType, "key-type", "rsa", "with --x509: rsa (2048 bits) or ecdsa (P-256)")
	gen.Flags().IntVar(&x509Flags.days, "days", 3650, "with --x509: days the certificate is valid")
	cmd.AddCommand(gen)
	return cmd
}

func newServeCommand(env *Env) *cobra.Command {
	var dir, listen, cert, key, data, database, secret string
	cmd := &cobra.Command{
		Use:   "serve [--repo DIR] [--data DIR | --database URL] [--listen ADDR]",
		Short: "Serve a repository and the fleet update server (Omaha, API, dashboard, metrics)",
		Long: `Serve a published repository over HTTP(S) (ranges, ETags, directory index)
and, with --data (SQLite in DIR/fleet.db) or --database (a PostgreSQL URL),
the fleet server beside it: the Omaha endpoint /v1/update, the admin API
/api/, the dashboard /ui/ and /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" && data == "" && database == "" {
				return errors.New("nothing to serve: pass --repo DIR, --data DIR or --database URL")
			}
			if (cert == "") != (key == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			mux := http.NewServeMux()
			var what []string
			if dir != "" {
				h, err := reposerve.New(dir, env.Log)
				if err != nil {
					return err
				}
				defer h.Close()
				mux.Handle("/", h)
				what = append(what, "repository "+dir)
			}
			if data != "" || database != "" {
				dsn, err := store.Location(data, database)
				if err != nil {
					return err
				}
				if data != "" {
					if err := os.MkdirAll(data, 0o750); err != nil {
						return fmt.Errorf("--data %s: %w", data, err)
					}
				}
				fs, err := fleetweb.New(fleetweb.Config{Database: dsn, Logger: env.Log, OmahaSecret: secret})
				if err != nil {
					return err
				}
				defer fs.Close()
				for _, p := range fleetweb.Prefixes {
					mux.Handle(p, fs)
					if !strings.HasSuffix(p, "/") {
						// update_engine posts to /v1/update/ (and
						// /v1/update/SECRET).
						mux.Handle(p+"/", fs)
					}
				}
				if dir == "" {
					mux.Handle("/{$}", fs) // redirects to the dashboard
				}
				what = append(what, "fleet server ("+store.RedactDSN(dsn)+")")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
			scheme := "http"
			if cert != "" {
				pair, err := tls.LoadX509KeyPair(cert, key)
				if err != nil {
					ln.Close()
					return fmt.Errorf("load TLS certificate: %w", err)
				}
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
				scheme = "https"
			}
			env.Log.Info(fmt.Sprintf("Serving %s on %s://%s/", strings.Join(what, " and "), scheme, ln.Addr()))
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			errc := make(chan error, 1)
			go func() {
				if cert != "" {
					errc <- srv.ServeTLS(ln, "", "")
				} else {
					errc <- srv.Serve(ln)
				}
			}()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return srv.Shutdown(sctx)
			}
		},
	}
	cmd.Flags().StringVar(&dir, "repo", "", "repository directory to serve")
	cmd.Flags().StringVar(&data, "data", "", "fleet server data directory (SQLite database DIR/fleet.db)")
	cmd.Flags().StringVar(&database, "database", "", "fleet server PostgreSQL URL (postgres://…), for several replicas")
	cmd.Flags().StringVar(&secret, "omaha-secret", "", "answer Omaha only on /v1/update/SECRET")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().StringVar(&cert, "tls-cert", "", "TLS certificate (PEM) to serve HTTPS")
	cmd.Flags().StringVar(&key, "tls-key", "", "TLS private key (PEM)")
	return cmd
}
