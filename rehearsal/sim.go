package rehearsal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// simLocal is the demo's flake: the checks a real run makes of the local
// side, and an evaluation of the seed's nixosConfigurations.vps-arm.
type simLocal struct{ b *Rehearsal }

// Flake is the demo flake's evaluation.
func (l simLocal) Flake(_ context.Context, ref string) (*flake.Info, error) {
	return demoFlake(ref), nil
}

func (l simLocal) Local(ctx context.Context, cfg steps.Config) engine.Local {
	// The checks of a real run, under their real ids, in their order.
	checks := []steps.Check{
		{ID: local.IDNix, Status: steps.StatusOK, Summary: "Nix 2.24.9"},
		{ID: local.IDFlake, Status: steps.StatusOK, Summary: cfg.Flake + ": nixosConfigurations.vps-arm, aarch64-linux, disko layout /dev/sda (GPT, ESP 1 GiB, btrfs root), fits 8 GiB and up"},
		{ID: local.IDGit, Status: steps.StatusOK, Summary: "every file of the flake folder is known to git"},
		{ID: local.IDSSHKey, Status: steps.StatusOK, Summary: "log in with " + orDemoKey(cfg.Identity)},
		local.SSHConfigCheck(cfg, demoSSHG(cfg), 2),
		{ID: local.IDHostKey, Status: steps.StatusOK, Summary: "host key secrets-init/keys/persistent/etc/ssh/ssh_host_ed25519_key is in place"},
		{ID: local.IDSopsRecipient, Status: steps.StatusOK, Summary: "the host key is a recipient for 1 secrets file(s) in .sops.yaml"},
		{ID: local.IDLockout, Status: steps.StatusOK, Summary: "root and " + cfg.User + " get your ssh key in the new system"},
	}
	if l.b.opts.FailAt == "sops" {
		checks[6] = steps.Check{ID: local.IDSopsRecipient, Status: steps.StatusFail,
			Summary: "the host key's age recipient (age1rehearsal…) is not in .sops.yaml: the new system could not decrypt secrets/secrets.yaml at first boot",
			Fix:     "add the recipient to .sops.yaml under the host's key group, then run sops updatekeys secrets/secrets.yaml"}
	}
	for range checks {
		l.b.pause(ctx, 250*time.Millisecond)
	}
	efi := true
	return engine.Local{
		Checks: checks,
		Expect: steps.TargetExpect{System: "aarch64-linux", Disks: []steps.DiskNeed{{Device: "/dev/sda", MinSizeBytes: 8 * steps.GiB}}, EFI: &efi,
			InitrdModules: demoBoot.InitrdModules(), KernelParams: demoBoot.KernelParams, SystemdBoot: demoBoot.SystemdBoot},
		Flake: demoFlake(cfg.Flake),
	}
}

// demoSSHG is what `ssh -G` prints for the demo's target on a laptop with
// a plain ~/.ssh/config (an agent with two keys): no connection sharing,
// no proxy.
func demoSSHG(cfg steps.Config) string {
	port := cfg.Port
	if port == 0 {
		port = 22
	}
	return fmt.Sprintf(`host %[1]s
user %[2]s
hostname %[1]s
port %[3]d
addressfamily any
batchmode no
canonicalizehostname false
checkhostip no
compression no
controlmaster false
forwardagent no
hashknownhosts no
identitiesonly no
serveraliveinterval 0
stricthostkeychecking ask
identityfile ~/.ssh/id_ed25519
identityfile ~/.ssh/id_rsa
controlpath none
controlpersist no
identityagent SSH_AUTH_SOCK
userknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2
`, cfg.Host, cfg.User, port)
}

// demoBoot is the demo flake's boot configuration: systemd-boot, the
// initrd modules nixpkgs' qemu-guest profile gives an A1 (its boot volume
// on virtio-scsi, its NIC on virtio-net), and Oracle's serial console.
var demoBoot = flake.Boot{SystemdBoot: true,
	InitrdAvailable:     []string{"virtio_pci", "virtio_scsi", "virtio_blk", "virtio_net", "sd_mod", "xhci_pci", "usbhid"},
	InitrdKernelModules: []string{},
	KernelParams:        []string{"console=tty1", "console=ttyAMA0,115200"},
}

// demoFlake is the evaluation of the demo's flake: aarch64, demoBoot, and
// the disko layout of the seed (ESP, then a btrfs root with /nix and
// /persistent subvolumes).
func demoFlake(ref string) *flake.Info {
	s := func(v string) *string { return &v }
	rev := "3c1c9f2a0d6e4b7c8f1e2d3a4b5c6d7e8f9a0b1c"
	return &flake.Info{Ref: ref, Path: ".", Name: "vps-arm", Names: []string{"vps-arm"}, Config: flake.Config{
		System: "aarch64-linux", Revision: &rev, Boot: demoBoot,
		Disko: &flake.Disko{Disks: []flake.Disk{{Name: "main", Device: "/dev/sda", Table: "gpt", Partitions: []flake.Partition{
			{Name: "ESP", Size: s("1G"), Type: s("EF00"), Content: &flake.Content{Type: "filesystem", Format: s("vfat"), Mountpoint: s("/boot")}},
			{Name: "root", Size: s("100%"), Content: &flake.Content{Type: "btrfs", Mountpoint: s("/"), Subvolumes: []*string{s("/nix"), s("/persistent")}}},
		}}}},
	}}
}

// memReceipts keep the demo's receipts in memory and write each into the
// temporary folder.
type memReceipts struct {
	dir string
	mu  sync.Mutex
	m   map[string]receipt.Receipt
}

func (r *memReceipts) Read(t steps.Target) (receipt.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.m[t.Host]
	if !ok {
		return rec, fmt.Errorf("%w: no receipt for %s in the rehearsal", os.ErrNotExist, t.Host)
	}
	return rec, nil
}

func (r *memReceipts) Write(rec receipt.Receipt) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]receipt.Receipt{}
	}
	r.m[rec.Host] = rec
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(r.dir, "receipt-"+steps.Target{Host: rec.Host}.FileName()+".json")
	return p, os.WriteFile(p, append(data, '\n'), 0o600)
}

func (r *memReceipts) AddBackup(t steps.Target, b receipt.Backup) error {
	rec, err := r.Read(t)
	if err != nil {
		rec = receipt.Receipt{Host: t.Host}
	}
	rec.Backups = append(rec.Backups, b)
	_, err = r.Write(rec)
	return err
}

// The simulated /persistent of the VPS: a few GiB of state, streamed at a
// pace a link between an operator and a small VPS plausibly gives.
const (
	mib               = int64(1) << 20
	persistentBytes   = int64(3)*steps.GiB + 412*mib
	persistentEntries = 48_213
	archiveBytes      = int64(1)*steps.GiB + 733*mib // compressed
	backupRate        = 58 << 20                     // bytes per second at speed 1
	restoreRate       = 85 << 20
	// progressEvery is how often the simulated transfer reports, in real
	// time, so the bar moves smoothly at every speed.
	progressEvery = 100 * time.Millisecond
)

// ReinstallServices are the units the demo stops for a consistent backup.
var ReinstallServices = []string{"postgresql.service", "caddy.service"}

// simArchiver plays the backup and the restore: the figures move as a real
// transfer's would; the archive is a small stand-in that says REHEARSAL.
type simArchiver struct{ b *Rehearsal }

// transfer reports a simulated stream of total bytes at rate (bytes per
// second at speed 1) until it is done or ctx ends.
func (a simArchiver) transfer(ctx context.Context, total int64, rate float64, progress func(reinstall.Progress)) (time.Duration, error) {
	start := time.Now()
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		// The simulated clock runs Speed times faster than the real one.
		sim := time.Duration(float64(time.Since(start)) * a.b.opts.Speed)
		done := min(int64(sim.Seconds()*rate), total)
		p := reinstall.Progress{Bytes: done, Total: total, Archive: done * archiveBytes / persistentBytes, Rate: rate, Elapsed: sim}
		if done < total {
			p.ETA = time.Duration(float64(total-done) / rate * float64(time.Second))
		}
		progress(p)
		if done >= total {
			return sim, nil
		}
		select {
		case <-ctx.Done():
			return sim, ctx.Err()
		case <-t.C:
		}
	}
}

func (a simArchiver) Backup(ctx context.Context, c engine.Conn, o reinstall.BackupOptions, progress func(reinstall.Progress)) (reinstall.Archive, error) {
	took, err := a.transfer(ctx, persistentBytes, backupRate, progress)
	if err != nil {
		return reinstall.Archive{}, fmt.Errorf("rehearsal: backup stopped: %w", err)
	}
	now := time.Now().UTC()
	source := o.Source
	if source == "" {
		source = reinstall.DefaultSource
	}
	name := "persistent-" + steps.Target{Host: o.Host}.FileName() + "-" + now.Format("20060102-150405") + ".tar.zst"
	if !o.Plaintext {
		name += reinstall.AgeSuffix
	}
	path := filepath.Join(o.Dir, name)
	body := []byte("REHEARSAL: a stand-in for a backup of " + o.Host + ":" + source + "; nothing real was read.\n")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return reinstall.Archive{}, fmt.Errorf("rehearsal: writing the stand-in archive: %w; check that $TMPDIR is writable", err)
	}
	sum := sha256.Sum256(body)
	m := reinstall.Manifest{
		Version: 1, Host: o.Host, HostKeyFingerprint: o.HostKeyFingerprint, Created: now,
		Source: source, Archive: name, Compression: "zstd",
		TarOptions: []string{"--numeric-owner", "--xattrs", "--acls"},
		Entries:    persistentEntries, Bytes: persistentBytes, DiskUsage: persistentBytes + 96*mib,
		ArchiveBytes: archiveBytes, SHA256: hex.EncodeToString(sum[:]), Seconds: took.Seconds(),
		// Encrypted as the real one is, to the operator's recipient of the
		// rehearsal's .sops.yaml (the stand-in itself is plain text).
		Encryption: reinstall.EncryptionAge, Recipients: []string{"age1rehearsal…operator"},
	}
	if o.Plaintext {
		m.Encryption, m.Recipients = reinstall.EncryptionNone, nil
	} else if len(o.Recipients) > 0 {
		m.Recipients = o.Recipients
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return reinstall.Archive{}, err
	}
	mp := path + reinstall.ManifestSuffix
	if err := os.WriteFile(mp, append(mj, '\n'), 0o600); err != nil {
		return reinstall.Archive{}, fmt.Errorf("rehearsal: writing the manifest: %w; check that $TMPDIR is writable", err)
	}
	return reinstall.Archive{Path: path, ManifestPath: mp, Manifest: m}, nil
}

func (a simArchiver) Restore(ctx context.Context, c engine.Conn, ar reinstall.Archive, o reinstall.RestoreOptions, progress func(reinstall.Progress)) (reinstall.RestoreResult, error) {
	if err := reinstall.CheckHost(ar.Manifest, o.Host, o.HostKeyFingerprint); err != nil {
		return reinstall.RestoreResult{}, err
	}
	if err := reinstall.VerifyChecksum(ar); err != nil {
		return reinstall.RestoreResult{}, err
	}
	if _, err := a.transfer(ctx, ar.Manifest.Bytes, restoreRate, progress); err != nil {
		return reinstall.RestoreResult{}, fmt.Errorf("rehearsal: restore stopped: %w", err)
	}
	// The comparison of the tree with the archive.
	a.b.pause(ctx, 2*time.Second)
	if err := ctx.Err(); err != nil {
		return reinstall.RestoreResult{}, fmt.Errorf("rehearsal: restore stopped: %w", err)
	}
	return reinstall.RestoreResult{Entries: ar.Manifest.Entries, Bytes: ar.Manifest.Bytes}, nil
}

// orDemoKey is the key file the demo logs in with: the one given, or the
// usual default.
func orDemoKey(identity string) string {
	if identity != "" {
		return identity
	}
	return "~/.ssh/id_ed25519"
}
