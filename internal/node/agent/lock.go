package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/stratalinux/strata/internal/systemctl"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/coord/etcdlock"
	"github.com/stratalinux/strata/internal/coord/fleetlock"
	"github.com/stratalinux/strata/internal/coord/kured"
	"github.com/stratalinux/strata/internal/rootfs"
)

// NewLock builds the reboot lock of the configured strategy for the
// holder id (the machine id) and returns it with the function that closes
// its connection.
func NewLock(cfg Config, root rootfs.Root, id string, log *slog.Logger) (coord.Lock, func() error, error) {
	none := func() error { return nil }
	switch cfg.Strategy {
	case coord.Reboot, coord.Off:
		return coord.NoLock{}, none, nil
	case coord.EtcdLock:
		endpoints := cfg.EtcdEndpoints
		if len(endpoints) == 0 {
			endpoints = []string{"http://127.0.0.1:2379", "http://127.0.0.1:4001"} // locksmithd's default
		}
		hc := &http.Client{}
		if cfg.EtcdCAFile != "" || cfg.EtcdCertFile != "" {
			t, err := etcdTLS(cfg)
			if err != nil {
				return nil, nil, err
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = t
			hc.Transport = tr
		}
		cli, err := etcdlock.NewClient(hc, endpoints...)
		if err != nil {
			return nil, nil, err
		}
		cli.Username, cli.Password = cfg.EtcdUsername, cfg.EtcdPassword
		l, err := etcdlock.New(cli, cfg.LockGroup, id, log)
		if err != nil {
			return nil, nil, err
		}
		return l, none, nil
	case coord.FleetLock:
		group := cfg.LockGroup
		if group == "" {
			group = "default" // Zincati's default group
		}
		l, err := fleetlock.New(cfg.FleetLockURL, group, id, &http.Client{Timeout: time.Minute})
		if err != nil {
			return nil, nil, err
		}
		return l, none, nil
	case coord.Kured:
		// kured drains and reboots the node once the sentinel exists; the
		// agent removes it in steady state.
		l, err := kured.New(root, "")
		if err != nil {
			return nil, nil, err
		}
		return l, none, nil
	}
	return nil, nil, fmt.Errorf("REBOOT_STRATEGY=%s has no lock backend", cfg.Strategy)
}

// etcdTLS is locksmithd's -etcd-cafile/-certfile/-keyfile: a CA alone is
// enough (Flatcar#948 is the bug where it was not).
func etcdTLS(cfg Config) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.EtcdCAFile != "" {
		pem, err := os.ReadFile(cfg.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("LOCKSMITHD_ETCD_CAFILE: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("LOCKSMITHD_ETCD_CAFILE %s holds no PEM certificate", cfg.EtcdCAFile)
		}
	}
	if cfg.EtcdCertFile != "" || cfg.EtcdKeyFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.EtcdCertFile, cfg.EtcdKeyFile)
		if err != nil {
			return nil, fmt.Errorf("LOCKSMITHD_ETCD_CERTFILE/KEYFILE: %w", err)
		}
		t.Certificates = []tls.Certificate{c}
	}
	return t, nil
}

// RebootFunc is how the agent reboots the machine: through the service
// manager when PID 1 is systemd, else the configured
// STRATA_REBOOT_COMMAND=; neither is an error naming the fix.
func RebootFunc(cfg Config, sm systemctl.Manager) func(context.Context) error {
	return func(ctx context.Context) error {
		if sm.IsBooted() {
			return sm.Reboot(ctx)
		}
		if cfg.RebootCommand == "" {
			return errors.New("PID 1 is not systemd and STRATA_REBOOT_COMMAND= is not set in /etc/strata/update.conf")
		}
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cfg.RebootCommand)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("STRATA_REBOOT_COMMAND=%s: %v: %s", cfg.RebootCommand, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
}
