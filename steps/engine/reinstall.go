package engine

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// ReinstallOptions are the reinstall's own choices.
type ReinstallOptions struct {
	Source    string   // the directory backed up and restored, e.g. /persistent
	Services  []string // units stopped during the restore
	Force     bool     // go on when the layout did not change
	BackupDir string   // local folder for the backup ("": the world's default)
	// The archive is encrypted with age to Recipients (--backup-recipient:
	// age1… or files of them), else to the age recipients of the flake's
	// .sops.yaml; Plaintext (--plaintext-backup) writes it in the clear.
	// Identity (--backup-identity) is the age identity file that opens it
	// ("": where sops looks). See reinstall.BackupOptions.
	Recipients []string
	Plaintext  bool
	Identity   string
	// RestoreElsewhere lets `reinstall --restore` go into another
	// directory (Source) than the archive's own, after the typed
	// confirmation (Decider.ConfirmRestore).
	RestoreElsewhere bool
}

// PlaintextWarning is said before and after a backup written in the clear.
const PlaintextWarning = "WARNING: --plaintext-backup: the archive is NOT encrypted, and it holds the machine's host key and every secret: keep it where only you can read it, and delete it once the reinstall is done"

// sopsConfig is the .sops.yaml of a local flake ("" for another flake).
func sopsConfig(cfg steps.Config) string {
	p, _, err := steps.SplitFlake(cfg.Flake)
	if err != nil {
		return ""
	}
	dir := flake.LocalDir(p)
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, ".sops.yaml")
}

// identityArg is the --backup-identity of a command that restores again
// ("" when the identity is where sops looks).
func identityArg(o ReinstallOptions) string {
	if o.Identity == "" {
		return ""
	}
	return " " + reinstall.IdentityFlag + " " + steps.ShellQuote(o.Identity)
}

// archiveNote says who can open a new archive.
func archiveNote(a reinstall.Archive) string {
	m := a.Manifest
	if !m.Encrypted() {
		return PlaintextWarning
	}
	return fmt.Sprintf("The archive is encrypted with age to %s: the restore needs the identity of one of them (%s FILE, default where sops looks).", strings.Join(m.Recipients, ", "), reinstall.IdentityFlag)
}

// ErrNothingToReinstall is returned when the layout did not change and the
// operator did not force a reinstall: a switch deploys the flake.
var ErrNothingToReinstall = errors.New("no layout change: deploy with nh os switch / nixos-rebuild, no reinstall")

// Prepare is the reinstall's first step, before the preflight (whose
// secrets checks need the key it copies in): it makes sure the
// extra-files tree holds the machine's current host key, then compares
// the flake's disko layout with the live disks. A host known_hosts does
// not know comes back as Drift.NewHostKey for the operator to compare;
// the next call with that key in DialPolicy.Approved trusts it and no
// other.
func (e *Engine) Prepare(ctx context.Context, cfg steps.Config, p DialPolicy) (Drift, error) {
	c, seen, err := e.dialNoting(ctx, cfg, p)
	switch {
	case errors.Is(err, sshexec.ErrHostKeyUnknown):
		return Drift{NewHostKey: HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type, Status: HostKeyNew}}, nil
	case err != nil:
		return Drift{}, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	defer c.Close()
	d := Drift{HostKeyFingerprint: c.HostKey().Fingerprint}
	note, err := e.keepHostKey(ctx, c, cfg.ExtraFiles)
	if err != nil {
		return d, fmt.Errorf("reinstall: %w", err)
	}
	d.HostKey = "Host key " + d.HostKeyFingerprint + ": " + note
	rep, layout, err := e.DriftOver(ctx, c, cfg)
	if err != nil {
		return d, fmt.Errorf("reinstall: %w", err)
	}
	d.Report, d.Layout = rep, layout
	return d, nil
}

// DriftOver reads the live layout over c while the flake's evaluation
// finishes, and compares them. It returns the flake's layout too.
func (e *Engine) DriftOver(ctx context.Context, c Conn, cfg steps.Config) (reinstall.Report, []reinstall.FlakeDisk, error) {
	rep, layout, _, err := e.driftInfo(ctx, c, cfg)
	return rep, layout, err
}

// driftInfo is DriftOver that also returns the flake's evaluation (nil
// when it failed).
func (e *Engine) driftInfo(ctx context.Context, c Conn, cfg steps.Config) (reinstall.Report, []reinstall.FlakeDisk, *flake.Info, error) {
	type evaluated struct {
		info *flake.Info
		err  error
	}
	lc := make(chan evaluated, 1)
	go func() {
		info, err := e.World.Local.Flake(ctx, cfg.Flake)
		lc <- evaluated{info, err}
	}()
	live, lerr := c.Facts(ctx)
	if lerr != nil {
		lerr = fmt.Errorf("%w: %w", reinstall.ErrLayoutRead, lerr)
	} else if !live.HasTool("lsblk") {
		lerr = fmt.Errorf("%w: the target has no lsblk: install util-linux on it", reinstall.ErrLayoutRead)
	}
	ev := <-lc
	info := ev.info
	var layout []reinstall.FlakeDisk
	var ferr error
	switch {
	case ev.err != nil || info == nil:
		info = nil
		ferr = fmt.Errorf("evaluating %s: %w", cfg.Flake, ev.err)
	default:
		if layout = reinstall.FromDisko(info.Config.Disko); len(layout) == 0 {
			ferr = fmt.Errorf("%s has no disko layout (disko.devices.disk): drift compares disko layouts only", cfg.Flake)
		}
	}
	if err := errors.Join(ferr, lerr); err != nil {
		return reinstall.Report{}, layout, info, err
	}
	return reinstall.Compare(layout, live), layout, info, nil
}

// sudo says whether remote commands that need root go through sudo.
func sudo(c Conn) bool { return c.Login().User != "root" }

func wrapSudo(cmd string, sudo bool) string {
	if sudo {
		return "sudo -n " + cmd
	}
	return cmd
}

// Backup takes the verified backup of the source over a connection of its
// own and records it in the host's receipt. A receipt that could not record
// it is said in the notes (the restore adds the backup again). With
// o.Services, those units are stopped first, so that nothing writes into
// the source while it is read (a consistent backup), and the notes say
// so: a backup that fails starts them again itself; after a verified one
// they stay stopped, and the caller starts them again (StartUnits) when
// the reinstall stops before the wipe.
func (e *Engine) Backup(ctx context.Context, cfg steps.Config, p DialPolicy, o ReinstallOptions, progress func(reinstall.Progress)) (reinstall.Archive, []string, error) {
	unlock, err := e.lock(cfg.Target(), "backup")
	if err != nil {
		return reinstall.Archive{}, nil, err
	}
	defer unlock()
	c, err := e.Connect(ctx, cfg, p)
	if err != nil {
		return reinstall.Archive{}, nil, err
	}
	defer c.Close()
	dir := o.BackupDir
	if dir == "" {
		if dir, err = e.World.BackupDir(); err != nil {
			return reinstall.Archive{}, nil, err
		}
	}
	source := orDefault(o.Source, reinstall.DefaultSource)
	var notes []string
	if len(o.Services) > 0 {
		if err := systemctl(ctx, c, "stop", o.Services); err != nil {
			again, serr := startAgain(ctx, c, cfg.Host, o.Services)
			return reinstall.Archive{}, nil, fmt.Errorf("reinstall stopped before anything was wiped: stopping %s for a consistent backup: %w; %s",
				strings.Join(o.Services, ", "), err, orDefault(again, fmt.Sprint(serr)))
		}
		notes = append(notes, fmt.Sprintf("Stopped %s on %s for a consistent backup: nothing writes into %s while it is read. They stay stopped until the wipe, and start again if the reinstall stops before it.",
			strings.Join(o.Services, ", "), cfg.Host, source))
	}
	a, err := e.World.Archives.Backup(ctx, c, reinstall.BackupOptions{
		Host: cfg.Host, HostKeyFingerprint: c.HostKey().Fingerprint, Source: o.Source, Dir: dir, Sudo: sudo(c),
		Recipients: o.Recipients, SopsConfig: sopsConfig(cfg), Plaintext: o.Plaintext, Identity: o.Identity,
	}, progress)
	if err != nil {
		err = fmt.Errorf("reinstall stopped before anything was wiped: %w", err)
		if len(o.Services) > 0 {
			again, serr := startAgain(ctx, c, cfg.Host, o.Services)
			err = fmt.Errorf("%w; %s", err, orDefault(again, fmt.Sprint(serr)))
		}
		return a, notes, err
	}
	notes = append(notes, archiveNote(a))
	if err := e.World.Receipts.AddBackup(cfg.Target(), receipt.BackupFromArchive(a)); err != nil {
		notes = append(notes, fmt.Sprintf("could not record the backup in the receipt: %v", err))
	}
	return a, notes, nil
}

// Restore waits for the new system with the host key of the extra-files
// tree (the machine's own, which Prepare made sure of), restores the
// archive into the source with the services stopped and started again,
// compares the tree with the archive, and marks the backup restored in the
// receipt. Its error says how to run the restore again.
func (e *Engine) Restore(ctx context.Context, cfg steps.Config, a reinstall.Archive, o ReinstallOptions, progress func(reinstall.Progress)) (Restored, error) {
	again := "; the backup is safe: run again with --restore " + steps.ShellQuote(a.Path)
	pub, err := sshexec.ReadExpectedHostKey(sshexec.ExpectedHostKeyFile(cfg.ExtraFiles))
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w%s", err, again)
	}
	target := SSHTarget(cfg)
	target.User = "root"
	c, err := e.World.Dialer.WaitForHost(ctx, sshexec.RebootOptions{Target: target, ExpectedHostKey: pub, Timeout: e.RebootTimeout, AgentSocket: e.World.AgentSocket})
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w%s", err, again)
	}
	defer c.Close()
	return e.RestoreOver(ctx, c, cfg, a, o, progress)
}

// RestoreOver restores the archive over c (`reinstall --restore` connects
// itself) and marks the backup restored in the receipt.
func (e *Engine) RestoreOver(ctx context.Context, c Conn, cfg steps.Config, a reinstall.Archive, o ReinstallOptions, progress func(reinstall.Progress)) (Restored, error) {
	unlock, err := e.lock(cfg.Target(), "restore")
	if err != nil {
		return Restored{}, err
	}
	defer unlock()
	return e.restoreOver(ctx, c, cfg, a, o, "", c.HostKey().Fingerprint, progress)
}

// restoreOver is the one restore of a reinstall: the archive into root +
// the source over c (root "" for the running system, InstallerRoot for
// the new system before its first boot), with the services of o stopped
// and started again, verified, and marked restored in the receipt. The
// archive must come from the host with the given host key.
func (e *Engine) restoreOver(ctx context.Context, c Conn, cfg steps.Config, a reinstall.Archive, o ReinstallOptions, root, fingerprint string, progress func(reinstall.Progress)) (Restored, error) {
	target := o.Source
	if root != "" {
		target = path.Join(root, orDefault(o.Source, a.Manifest.Source))
	}
	res, err := e.World.Archives.Restore(ctx, c, a, reinstall.RestoreOptions{
		Host: cfg.Host, HostKeyFingerprint: fingerprint, Target: target, Services: o.Services, Sudo: sudo(c),
		Identity: o.Identity, AnotherTarget: o.RestoreElsewhere || root != "",
	}, progress)
	if err != nil {
		if root != "" {
			return Restored{}, err
		}
		return Restored{}, fmt.Errorf("%w; run again with --restore %s%s", err, steps.ShellQuote(a.Path), identityArg(o))
	}
	out := Restored{Result: res}
	if p, err := e.markRestored(cfg.Target(), a); err != nil {
		out.Notes = append(out.Notes, "the receipt could not record the restore: "+err.Error())
	} else {
		out.Receipt = p
	}
	return out, nil
}

// markRestored records in the host's receipt that the backup at a was
// restored (adding it when the receipt did not list it) and returns the
// receipt's path.
func (e *Engine) markRestored(t steps.Target, a reinstall.Archive) (string, error) {
	r, err := e.World.Receipts.Read(t)
	if err == nil && !r.Reaches(t.Port) {
		err = fmt.Errorf("%w: the receipt found for %s is of the machine on port %d", receipt.ErrNotFound, t.Host, r.Port)
	}
	if err != nil {
		return "", err
	}
	found := false
	for i := range r.Backups {
		if r.Backups[i].Path == a.Path {
			r.Backups[i].Restored, found = true, true
		}
	}
	if !found {
		b := receipt.BackupFromArchive(a)
		b.Restored = true
		r.Backups = append(r.Backups, b)
	}
	return e.World.Receipts.Write(r)
}

// servedEd25519 returns the fingerprint of the machine's ed25519 host key:
// the one it proved on this connection when that is ed25519, else the one
// its public key file shows.
func servedEd25519(ctx context.Context, c Conn) (string, error) {
	if k := c.HostKey(); k.Type == "ssh-ed25519" {
		return k.Fingerprint, nil
	}
	var out bytes.Buffer
	script := `cat /persistent/etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null || cat /etc/ssh/ssh_host_ed25519_key.pub`
	if err := c.Run(ctx, "sh -c "+steps.ShellQuote(script), nil, &out, io.Discard); err != nil {
		return "", fmt.Errorf("reading the machine's ed25519 host key: %w: bigbang ships an ed25519 host key; give the machine one", err)
	}
	return pubFingerprint(out.Bytes())
}

// errNotPublicKey is returned for a line that is not "type base64 [comment]".
var errNotPublicKey = errors.New("not a public key line")

// pubFingerprint returns the SHA256 fingerprint of an authorized_keys
// style public key line.
func pubFingerprint(line []byte) (string, error) {
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return "", errNotPublicKey
	}
	return remote.Fingerprint(f[1])
}

// keepHostKey makes sure the extra-files tree holds the machine's current
// ed25519 host key, private and public, so the reinstalled system keeps its
// identity (and sops can still decrypt its secrets): the .pub alone would
// let the new system make a key of its own, and the verified reboot would
// refuse it after the wipe. A private key already there must parse and be
// the one the machine serves (its .pub too, which is written when missing);
// a missing private key is copied from the machine as root over c (0600),
// after checking that it is the key the machine serves and the one of a
// .pub already there. It returns what it found or did, in words. Every
// refusal comes before the backup and says what to do.
func (e *Engine) keepHostKey(ctx context.Context, c Conn, extraFiles string) (string, error) {
	pubFile := sshexec.ExpectedHostKeyFile(extraFiles)
	privFile := strings.TrimSuffix(pubFile, ".pub")
	served, err := servedEd25519(ctx, c)
	if err != nil {
		return "", err
	}
	host := c.Login().HostName
	changes := func(file, fp string) error {
		return fmt.Errorf("the host key in %s (%s) is not the one %s serves (%s): the reinstalled machine would change identity and lose its secrets; put the machine's own key there or move the key and its .pub away so bigbang copies them",
			file, fp, host, served)
	}
	_, statErr := os.Stat(privFile)
	switch {
	case statErr == nil:
		k, err := secrets.Inspect(privFile)
		if err != nil {
			return "", fmt.Errorf("%w: put the machine's own ssh_host_ed25519_key there (unencrypted), or move it and its .pub away so bigbang copies them from %s", err, host)
		}
		if k.Fingerprint != served {
			return "", changes(privFile, k.Fingerprint)
		}
		if !k.ModeOK() {
			return "", fmt.Errorf("the host key %s has mode %04o: sshd ignores a host key others can read; run %s", privFile, k.Mode.Perm(), k.ModeFix())
		}
		switch {
		case errors.Is(k.PubErr, secrets.ErrPubMissing):
			pub := []byte(secrets.AuthorizedLine(k.Public, k.Comment) + "\n")
			if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
				return "", fmt.Errorf("writing %s: %w: check that %s is writable", pubFile, err, filepath.Dir(pubFile))
			}
		case k.PubErr != nil:
			return "", fmt.Errorf("%w: rewrite it: ssh-keygen -y -f %s > %s", k.PubErr, steps.ShellQuote(privFile), steps.ShellQuote(pubFile))
		}
		return "The extra-files tree holds the machine's host key: it keeps its identity.", nil
	case !errors.Is(statErr, fs.ErrNotExist):
		return "", fmt.Errorf("host key %s: %w: make it readable, or move it away so bigbang copies the machine's key", privFile, statErr)
	}
	// No private key: a .pub alone must at least name the machine's key.
	if pub, err := os.ReadFile(pubFile); err == nil {
		fp, err := pubFingerprint(pub)
		if err != nil {
			return "", fmt.Errorf("%s: %w: put the machine's ssh_host_ed25519_key.pub there, or move the file away so bigbang copies the key", pubFile, err)
		}
		if fp != served {
			return "", changes(pubFile, fp)
		}
	}
	priv, pub, err := e.fetchHostKey(ctx, c)
	yourself := fmt.Sprintf("copy the machine's ssh_host_ed25519_key (from %s on %s) into %s yourself (chmod 600), then run again", strings.Join(e.World.HostKeyDirs, " or "), host, privFile)
	if err != nil {
		return "", fmt.Errorf("copying the host key from the machine: %w: %s", err, yourself)
	}
	if fp, err := pubFingerprint(pub); err != nil || fp != served {
		return "", fmt.Errorf("the machine's ssh_host_ed25519_key is not the key it serves (%s): %s", served, yourself)
	}
	if err := writeHostKey(privFile, pubFile, priv, pub); err != nil {
		return "", fmt.Errorf("copying the host key into the extra-files tree: %w: check that %s is writable", err, filepath.Dir(privFile))
	}
	return fmt.Sprintf("Copied the machine's host key into %s (0600): it keeps its identity.", privFile), nil
}

// HostKeyScript is the remote command that prints the machine's ed25519
// private host key from the first of dirs that has one.
func HostKeyScript(dirs []string) string {
	q := make([]string, len(dirs))
	for i, d := range dirs {
		q[i] = steps.ShellQuote(d)
	}
	return `for d in ` + strings.Join(q, " ") + `; do if [ -s "$d/ssh_host_ed25519_key" ]; then cat "$d/ssh_host_ed25519_key"; exit 0; fi; done; echo "no ssh_host_ed25519_key" >&2; exit 3`
}

// fetchHostKey reads the machine's ed25519 private host key as root over c
// and returns it with the public key line derived from it (the .pub on the
// machine is not trusted to match).
func (e *Engine) fetchHostKey(ctx context.Context, c Conn) (priv, pub []byte, err error) {
	var out bytes.Buffer
	if err := c.Run(ctx, wrapSudo("sh -c "+steps.ShellQuote(HostKeyScript(e.World.HostKeyDirs)), sudo(c)), nil, &out, io.Discard); err != nil {
		return nil, nil, err
	}
	key, comment, err := secrets.ParsePrivate(out.Bytes())
	if err != nil {
		return nil, nil, err
	}
	return out.Bytes(), []byte(secrets.AuthorizedLine(key.Public().(ed25519.PublicKey), comment) + "\n"), nil
}

// writeHostKey writes the private key 0600 (also over a file that was
// there with a looser mode: WriteFile keeps an existing file's mode) and
// the public key beside it.
func writeHostKey(privFile, pubFile string, priv, pub []byte) error {
	if err := os.MkdirAll(filepath.Dir(privFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(privFile, priv, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(privFile, 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubFile, pub, 0o644)
}

// Words say what the comparison after a restore into source found.
func (r Restored) Words(source string) string {
	return fmt.Sprintf("Restored and compared with the archive: %s holds %d entries, %s of files.", source, r.Result.Entries, steps.FormatBytes(r.Result.Bytes))
}

// ErrRestoreNotConfirmed is wrapped when the operator did not confirm a
// restore into another directory than the archive's source.
var ErrRestoreNotConfirmed = errors.New("the restore into another directory is not confirmed")

// RestoreInto is what the confirmation of a restore into another
// directory than the archive's source names.
type RestoreInto struct {
	Target  steps.Target
	Archive string
	From    string // the directory the archive was taken from
	Into    string // where it would go now
}

// RestoreArchive is `reinstall --restore ARCHIVE`: the last step of a
// reinstall alone, over a connection of its own, into o.Source (the
// archive's own source when empty), after a restore that failed. Another
// directory than the archive's source is refused unless
// o.RestoreElsewhere, and then asked for with the typed confirmation.
func (e *Engine) RestoreArchive(ctx context.Context, cfg steps.Config, file string, o ReinstallOptions, p DialPolicy, f Front) (Restored, error) {
	a, err := reinstall.OpenArchive(file)
	if err != nil {
		return Restored{}, err
	}
	if err := reinstall.CheckHost(a.Manifest, cfg.Host, ""); err != nil {
		return Restored{}, fmt.Errorf("restore %s: %w", a.Path, err)
	}
	if o.Source == "" {
		o.Source = a.Manifest.Source
	}
	elsewhere := path.Clean(o.Source) != path.Clean(a.Manifest.Source)
	if elsewhere && !o.RestoreElsewhere {
		return Restored{}, fmt.Errorf("restore %s: %w: it was taken from %s:%s and goes back only there, not into %s: leave out --source, or pass --restore-elsewhere to confirm the other directory by typing the host; nothing was restored",
			a.Path, reinstall.ErrOtherTarget, cfg.Host, a.Manifest.Source, o.Source)
	}
	o.RestoreElsewhere = elsewhere
	// The checksum, the seal this machine wrote at the backup, the
	// decryption and every member, before anything runs on the target.
	if err := reinstall.VerifyArchive(a, "", o.Source, o.Identity); err != nil {
		return Restored{}, fmt.Errorf("restore %s: %w", a.Path, err)
	}
	if elsewhere {
		ok, err := f.ConfirmRestore(ctx, RestoreInto{Target: cfg.Target(), Archive: a.Path, From: a.Manifest.Source, Into: o.Source})
		if err != nil || !ok {
			return Restored{}, fmt.Errorf("restore %s: %w; nothing was restored", a.Path, errors.Join(ErrRestoreNotConfirmed, err))
		}
	}
	c, err := e.Connect(ctx, cfg, p)
	if err != nil {
		return Restored{}, err
	}
	defer c.Close()
	f.Stage(fmt.Sprintf("Restore of %s into %s:%s", a.Path, cfg.Host, o.Source))
	r, err := e.RestoreOver(ctx, c, cfg, a, o, func(pr reinstall.Progress) { f.Progress(pr, false) })
	f.Progress(reinstall.Progress{}, true)
	if err != nil {
		return r, err
	}
	f.Stage(r.Words(o.Source))
	return r, nil
}
