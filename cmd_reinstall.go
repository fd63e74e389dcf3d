package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/steps/secrets"
	"github.com/bigbang-nix/bigbang/ui"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

func init() { subcommands = append(subcommands, newReinstallCmd) }

type reinstallFlags struct {
	source    string
	backupDir string
	services  []string
	force     bool
	restore   string
	timeout   time.Duration
	wait      time.Duration
}

func newReinstallCmd(cfg *steps.Config) *cobra.Command {
	var f reinstallFlags
	cmd := &cobra.Command{
		Use:   "reinstall",
		Short: "Guided reinstall after disko changes: drift, backup, install, restore",
		Long: "reinstall carries a machine across a disk layout change. It compares the flake's disko\n" +
			"layout with the live disks (and stops when a switch would do), backs up --source\n" +
			"(/persistent) into a verified local archive, makes sure the machine's host key is in the\n" +
			"extra-files tree so the new system keeps its identity and its secrets, installs with\n" +
			"nixos-anywhere after a typed confirmation naming the backup, waits for the new system\n" +
			"with the pinned host key, and restores the archive with numeric owners.\n" +
			"The backup holds the machine's secrets: keep it as safe as the host key.\n" +
			"--restore ARCHIVE runs the last step alone (after a restore that failed).",
		Example: "  bigbang reinstall --host 203.0.113.7 --user admin --service postgresql.service\n" +
			"  bigbang reinstall --host 203.0.113.7 --user admin --yes-wipe 203.0.113.7   # no questions\n" +
			"  bigbang reinstall --host 203.0.113.7 --restore ~/.local/state/bigbang/backups/203.0.113.7-….tar.zst",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReinstall(cmd, *cfg, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", reinstall.DefaultSource, "directory on the target to back up and restore")
	fl.StringVar(&f.backupDir, "backup-dir", "", "local folder for the backup (default $XDG_STATE_HOME/bigbang/backups)")
	fl.StringArrayVar(&f.services, "service", nil, "systemd unit that uses the source: stopped during the restore (repeatable)")
	fl.BoolVar(&f.force, "force", false, "reinstall even when the disk layout did not change")
	fl.StringVar(&f.restore, "restore", "", "only restore this archive onto the target (resume after a failed restore)")
	addConnectTimeout(cmd, &f.timeout)
	fl.DurationVar(&f.wait, "reboot-timeout", sshexec.DefaultRebootTimeout, "how long to wait for the new system after the install")
	return cmd
}

// defaultBackupDir is $XDG_STATE_HOME/bigbang/backups, beside the receipts.
func defaultBackupDir() (string, error) {
	hosts, err := receipt.Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(hosts), "backups"), nil
}

// stage prints one step of the guided reinstall.
func stage(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "==> "+format+"\n", args...)
}

func runReinstall(cmd *cobra.Command, cfg steps.Config, f reinstallFlags) error {
	ctx, cancel := commandContext(cmd)
	defer cancel()
	// Human progress goes to stderr when stdout carries JSON events.
	w := cmd.OutOrStdout()
	if cfg.Output == "json" {
		w = cmd.ErrOrStderr()
	}
	if f.restore != "" {
		// The restore alone needs no flake and no extra files.
		if err := validateTarget(&cfg); err != nil {
			return usageErr(err)
		}
		return restoreOnly(ctx, cmd, &cfg, f, w)
	}
	if f.backupDir == "" {
		d, err := defaultBackupDir()
		if err != nil {
			return failErr(err)
		}
		f.backupDir = d
	}
	if wantsWizard(cmd, cfg) && !ui.Accessible() {
		// On a terminal: the install's wizard with the reinstall's steps.
		return wizard(ctx, &cfg, f.wait, nil, &f)
	}
	if err := cfg.Validate(); err != nil {
		return usageErr(err)
	}
	ask := interactive(&cfg)
	if !ask {
		if err := confirmWipe(cfg); err != nil {
			return usageErr(err)
		}
	}
	// A first plan, before anything is known of the target, tells which
	// command will run; the real plan is made after the preflight.
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{})
	if err != nil {
		return usageErr(err)
	}
	if _, err := exec.LookPath(plan.Argv[0]); err != nil {
		return failErr(commandMissing(plan.Argv[0]))
	}

	ev := flake.Start(ctx, cfg.Flake)
	c, err := connectTarget(ctx, cmd, &cfg, f.timeout)
	if err != nil {
		return failErr(err)
	}
	defer c.Close()
	sudo := needsSudo(c)

	stage(w, "Host key of %s: %s", cfg.Host, c.HostKey.Fingerprint)
	hostPub, err := keepHostKey(ctx, c, cfg.ExtraFiles, sudo, w)
	if err != nil {
		return failErr(fmt.Errorf("reinstall: %w", err))
	}

	stage(w, "Disk layout against %s", cfg.Flake)
	rep, layout, info, err := driftFor(ctx, c, ev, cfg.Flake)
	if err != nil {
		return failErr(fmt.Errorf("reinstall: %w", err))
	}
	printDrift(w, cfg.Host, rep)
	if rep.Verdict == reinstall.VerdictNone && !f.force {
		fmt.Fprintln(w, "Nothing to reinstall. (--force reinstalls anyway.)")
		return nil
	}

	// The preflight of the install, before anything is copied: the
	// machine is about to be wiped exactly as by `bigbang install`. It
	// runs after the host key step, so that the sops checks see the key
	// the new system will get.
	stage(w, "Preflight of %s and %s", cfg.Host, cfg.Flake)
	if plan, err = reinstallPreflight(ctx, cmd, cfg); err != nil {
		return err
	}

	stage(w, "Backup of %s:%s into %s", cfg.Host, f.source, f.backupDir)
	archive, note, err := backupSource(ctx, c, cfg.Host, f, progressPrinter(w))
	endProgress(w)
	if err != nil {
		return failErr(err)
	}
	if note != "" {
		notef(cmd, "bigbang: %s\n", note)
	}
	m := archive.Manifest
	fmt.Fprintf(w, "Backup verified: %s\n  %d entries, %s of files, %s compressed, sha256 %s\n  It holds the machine's secrets: keep it as safe as the host key.\n",
		archive.Path, m.Entries, steps.FormatBytes(m.Bytes), steps.FormatBytes(m.ArchiveBytes), m.SHA256)

	if ask {
		if err := typedConfirmation(cmd, cfg.Host, archive.Path); err != nil {
			return usageErr(err)
		}
		cfg.YesWipe = cfg.Host
	}
	c.Close()

	stage(w, "Install of %s onto %s", cfg.Flake, cfg.Host)
	phases, logPath, err := installForReinstall(ctx, cmd, cfg, plan)
	if err != nil {
		return err
	}

	stage(w, "Waiting for the new system (host key %s)", c.HostKey.Fingerprint)
	target := sshexec.Target{Host: cfg.Host, Port: c.Resolved.Port, User: c.Resolved.User, Identity: cfg.Identity}
	vr, err := sshexec.VerifyReboot(ctx, sshexec.RebootOptions{Target: target, ExpectedHostKey: hostPub, KnownHosts: cfg.KnownHosts, Timeout: f.wait})
	if err != nil {
		return failErr(fmt.Errorf("reinstall: %w; the backup is safe in %s: restore it later with bigbang reinstall --host %s --restore %s",
			err, archive.Path, cfg.Host, steps.ShellQuote(archive.Path)))
	}
	fmt.Fprintf(w, "The new system answers with the same host key; NixOS %s, %s\n", orUnknown(vr.NixOSVersion), orUnknown(vr.SystemState))

	rec := receipt.Receipt{
		Host: cfg.Host, User: cfg.User, Port: cfg.Port, Identity: cfg.Identity, InstalledAt: time.Now().UTC(),
		Flake: cfg.Flake, ExtraFiles: cfg.ExtraFiles, BuildOn: plan.BuildOn, Disko: layout,
		HostKeyFingerprint: vr.HostKey.Fingerprint, Phases: phases, Log: logPath,
	}
	rec.System = info.Config.System
	if info.Config.Revision != nil {
		rec.FlakeRevision = *info.Config.Revision
	}
	if old, err := receipt.Read(cfg.Host); err == nil {
		rec.Backups = old.Backups
	}
	if err := restoreArchive(ctx, w, target, hostPub, archive, f, cfg.Host); err != nil {
		// The install happened: the receipt records it, without the
		// restore.
		if _, werr := receipt.Write(rec); werr != nil {
			notef(cmd, "bigbang: could not write the receipt: %v\n", werr)
		}
		return failErr(err)
	}
	for i := range rec.Backups {
		if rec.Backups[i].Path == archive.Path {
			rec.Backups[i].Restored = true
		}
	}
	if p, err := receipt.Write(rec); err != nil {
		notef(cmd, "bigbang: could not write the receipt: %v\n", err)
	} else {
		fmt.Fprintf(w, "Receipt: %s\n", p)
	}
	fmt.Fprintf(w, "Reinstall of %s done: same host key, %s restored.\n", cfg.Host, f.source)
	return nil
}

// reinstallPreflight runs the preflight of `bigbang install`
// (installPreflight) with its check events rendered as the install renders
// them, refuses as the install does when a check blocks (refuseBlocked),
// and returns the plan made with what the preflight learned of both
// machines.
func reinstallPreflight(ctx context.Context, cmd *cobra.Command, cfg steps.Config) (steps.Plan, error) {
	var sink steps.Sink
	if cfg.Output == "json" {
		sink = textout.JSON(cmd.OutOrStdout())
	} else {
		sink = textout.Plain(cmd.OutOrStdout())
	}
	nothing := "nothing was backed up or wiped"
	rep, err := installPreflight(ctx, cfg, func(e steps.Event) { sink(e) })
	if ctx.Err() != nil {
		return steps.Plan{}, &exitError{code: exitInterrupted, err: errors.New("interrupted during the preflight; " + nothing)}
	}
	if err != nil {
		return steps.Plan{}, failErr(fmt.Errorf("reinstall: %w; %s (bigbang check --host %s shows the same)", err, nothing, steps.ShellQuote(cfg.Host)))
	}
	if err := refuseBlocked(cfg, rep, sink); err != nil {
		return steps.Plan{}, failErr(fmt.Errorf("reinstall stopped before the backup: %w; %s", err, nothing))
	}
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{LocalSystem: rep.LocalSystem, TargetSystem: rep.TargetSystem,
		TargetRAM: rep.TargetRAM, TargetIsInstaller: rep.TargetIsInstaller})
	if err != nil {
		return steps.Plan{}, usageErr(fmt.Errorf("%w; %s", err, nothing))
	}
	return plan, nil
}

// progressPrinter redraws one progress line on a terminal, and writes a
// line every ten seconds elsewhere (a log, a pipe).
func progressPrinter(w io.Writer) func(reinstall.Progress) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(f.Fd())
	}
	var last time.Duration = -1
	return func(p reinstall.Progress) {
		if !tty {
			if last >= 0 && p.Elapsed-last < 10*time.Second {
				return
			}
			last = p.Elapsed
		}
		pct := ""
		if p.Total > 0 {
			pct = fmt.Sprintf(" %3.0f%%", 100*float64(p.Bytes)/float64(p.Total))
		}
		eta := ""
		if p.ETA > 0 {
			eta = " ETA " + p.ETA.Round(time.Second).String()
		}
		line := fmt.Sprintf("  %s of %s%s  %s/s%s", steps.FormatBytes(p.Bytes), steps.FormatBytes(p.Total), pct, steps.FormatBytes(int64(p.Rate)), eta)
		if tty {
			fmt.Fprintf(w, "\r%s   ", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

// endProgress ends a redrawn progress line on a terminal.
func endProgress(w io.Writer) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(f.Fd()) {
		fmt.Fprintln(w)
	}
}

// typedConfirmation asks the operator to type the host, naming the backup
// the machine will be restored from.
func typedConfirmation(cmd *cobra.Command, host, backup string) error {
	errw := cmd.ErrOrStderr()
	fmt.Fprintf(errw, "\nThis WIPES EVERY DISK of %s and installs the flake again.\nThe data will come back from %s.\nType the host (%s) to go on, anything else stops: ", host, backup, host)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("%w: no answer", errNoConfirm)
	}
	if strings.TrimSpace(line) != host {
		return fmt.Errorf("%w: you typed %q, not %s; nothing was wiped, the backup stays in %s", errNoConfirm, strings.TrimSpace(line), host, backup)
	}
	return nil
}

// hostKeyDirs are the folders of the machine where keepHostKey looks for
// its ed25519 host key, in order: the seed's impermanent layout first.
// Tests point it at the test host's folder.
var hostKeyDirs = []string{"/persistent/etc/ssh", "/etc/ssh"}

// keepHostKey makes sure the extra-files tree holds the machine's current
// ed25519 host key, private and public, so the reinstalled system keeps its
// identity (and sops can still decrypt its secrets): the .pub alone would
// let the new system make a key of its own, and the verified reboot would
// refuse it after the wipe. A private key already there must parse and be
// the one the machine serves (its .pub too, which is written when missing);
// a missing private key is copied from the machine as root over c (0600),
// after checking that it is the key the machine serves and the one of a
// .pub already there. It returns the public key line. Every refusal comes
// before the backup and says what to do.
func keepHostKey(ctx context.Context, c *sshexec.Client, extraFiles string, sudo bool, w io.Writer) ([]byte, error) {
	pubFile := sshexec.ExpectedHostKeyFile(extraFiles)
	privFile := strings.TrimSuffix(pubFile, ".pub")
	served, err := servedEd25519(ctx, c)
	if err != nil {
		return nil, err
	}
	host := c.Resolved.HostName
	changes := func(file, fp string) error {
		return fmt.Errorf("the host key in %s (%s) is not the one %s serves (%s): the reinstalled machine would change identity and lose its secrets; put the machine's own key there or move the key and its .pub away so bigbang copies them",
			file, fp, host, served)
	}
	_, statErr := os.Stat(privFile)
	switch {
	case statErr == nil:
		k, err := secrets.Inspect(privFile)
		if err != nil {
			return nil, fmt.Errorf("%w: put the machine's own ssh_host_ed25519_key there (unencrypted), or move it and its .pub away so bigbang copies them from %s", err, host)
		}
		if k.Fingerprint != served {
			return nil, changes(privFile, k.Fingerprint)
		}
		if !k.ModeOK() {
			return nil, fmt.Errorf("the host key %s has mode %04o: sshd ignores a host key others can read; run %s", privFile, k.Mode.Perm(), k.ModeFix())
		}
		pub := []byte(secrets.AuthorizedLine(k.Public, k.Comment) + "\n")
		switch {
		case errors.Is(k.PubErr, secrets.ErrPubMissing):
			if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
				return nil, fmt.Errorf("writing %s: %w: check that %s is writable", pubFile, err, filepath.Dir(pubFile))
			}
		case k.PubErr != nil:
			return nil, fmt.Errorf("%w: rewrite it: ssh-keygen -y -f %s > %s", k.PubErr, steps.ShellQuote(privFile), steps.ShellQuote(pubFile))
		default:
			if pub, err = os.ReadFile(pubFile); err != nil {
				return nil, fmt.Errorf("reading %s: %w", pubFile, err)
			}
		}
		fmt.Fprintf(w, "The extra-files tree holds the machine's host key: it keeps its identity.\n")
		return pub, nil
	case !errors.Is(statErr, fs.ErrNotExist):
		return nil, fmt.Errorf("host key %s: %w: make it readable, or move it away so bigbang copies the machine's key", privFile, statErr)
	}
	// No private key: a .pub alone must at least name the machine's key.
	if pub, err := os.ReadFile(pubFile); err == nil {
		fp, err := pubFingerprint(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: put the machine's ssh_host_ed25519_key.pub there, or move the file away so bigbang copies the key", pubFile, err)
		}
		if fp != served {
			return nil, changes(pubFile, fp)
		}
	}
	priv, pub, err := fetchHostKey(ctx, c, sudo)
	yourself := fmt.Sprintf("copy the machine's ssh_host_ed25519_key (from %s on %s) into %s yourself (chmod 600), then run again", strings.Join(hostKeyDirs, " or "), host, privFile)
	if err != nil {
		return nil, fmt.Errorf("copying the host key from the machine: %w: %s", err, yourself)
	}
	if fp, err := pubFingerprint(pub); err != nil || fp != served {
		return nil, fmt.Errorf("the machine's ssh_host_ed25519_key is not the key it serves (%s): %s", served, yourself)
	}
	if err := writeHostKey(privFile, pubFile, priv, pub); err != nil {
		return nil, fmt.Errorf("copying the host key into the extra-files tree: %w: check that %s is writable", err, filepath.Dir(privFile))
	}
	fmt.Fprintf(w, "Copied the machine's host key into %s (0600): it keeps its identity.\n", privFile)
	return pub, nil
}

// fetchHostKey reads the machine's ed25519 private host key as root over c
// and returns it with the public key line derived from it (the .pub on the
// machine is not trusted to match).
func fetchHostKey(ctx context.Context, c *sshexec.Client, sudo bool) (priv, pub []byte, err error) {
	dirs := make([]string, len(hostKeyDirs))
	for i, d := range hostKeyDirs {
		dirs[i] = steps.ShellQuote(d)
	}
	script := `for d in ` + strings.Join(dirs, " ") + `; do if [ -s "$d/ssh_host_ed25519_key" ]; then cat "$d/ssh_host_ed25519_key"; exit 0; fi; done; echo "no ssh_host_ed25519_key" >&2; exit 3`
	var out bytes.Buffer
	if err := c.Run(ctx, wrapSudo("sh -c "+steps.ShellQuote(script), sudo), nil, &out, io.Discard); err != nil {
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

// installForReinstall runs nixos-anywhere as `bigbang install` does and
// records how long each phase took, for the receipt.
func installForReinstall(ctx context.Context, cmd *cobra.Command, cfg steps.Config, plan steps.Plan) ([]receipt.PhaseTime, string, error) {
	logPath := cfg.Log
	if logPath == "" {
		logPath = runner.DefaultLogPath(cfg.Host, time.Now())
	}
	logf, err := runner.OpenLog(logPath)
	if err != nil {
		return nil, logPath, failErr(fmt.Errorf("install: %w (nothing was started; the backup is kept)", err))
	}
	defer logf.Close()
	notef(cmd, "bigbang: transcript: %s\n", logPath)
	var sink steps.Sink
	if cfg.Output == "json" {
		sink = textout.JSON(cmd.OutOrStdout())
	} else {
		printPlan(cmd.OutOrStdout(), cfg, plan)
		sink = textout.Plain(cmd.OutOrStdout())
	}
	var mu sync.Mutex
	started := map[steps.PhaseID]time.Time{}
	var phases []receipt.PhaseTime
	record := func(e steps.Event) {
		if e.Type == steps.EventPhase {
			mu.Lock()
			switch e.State {
			case steps.StateRunning:
				started[e.Phase] = e.Time
			case steps.StateDone, steps.StateFailed:
				pt := receipt.PhaseTime{Phase: e.Phase, State: e.State}
				if s, ok := started[e.Phase]; ok {
					pt.Seconds = e.Time.Sub(s).Seconds()
				}
				phases = append(phases, pt)
			}
			mu.Unlock()
		}
		sink(e)
	}
	stall := map[steps.PhaseID]time.Duration{}
	for _, p := range plan.Phases {
		stall[p] = installStall
	}
	res, err := runner.Run(ctx, runner.Options{Argv: plan.Argv, Log: logf, LogPath: logPath, Phases: plan.Phases, Stall: stall}, record)
	if err != nil {
		return nil, logPath, failErr(fmt.Errorf("install: %w", err))
	}
	mu.Lock()
	defer mu.Unlock()
	switch res.Outcome {
	case steps.OutcomeSuccess:
		return phases, logPath, nil
	case steps.OutcomeAborted:
		return phases, logPath, &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted; the transcript is in %s", logPath)}
	}
	notef(cmd, "bigbang: install failed; the transcript is in %s (bigbang explain %s)\n", logPath, steps.ShellQuote(logPath))
	return phases, logPath, errSilentFailure
}

// restoreArchive logs in to the new system with the pinned host key and
// restores the archive, with the progress line.
func restoreArchive(ctx context.Context, w io.Writer, target sshexec.Target, hostPub []byte, a reinstall.Archive, f reinstallFlags, host string) error {
	stage(w, "Restore of %s into %s:%s", a.Path, host, f.source)
	res, err := restoreNewSystem(ctx, target, hostPub, a, f, host, progressPrinter(w))
	endProgress(w)
	if err != nil {
		return err
	}
	restoredLine(w, f.source, res)
	return nil
}

// backupSource takes the verified backup of f.source and records it in
// the host's receipt: the one backup step of the guided reinstall and the
// wizard. note says what the operator must know when the receipt could not
// be updated.
func backupSource(ctx context.Context, c *sshexec.Client, host string, f reinstallFlags, progress func(reinstall.Progress)) (reinstall.Archive, string, error) {
	a, err := reinstall.Backup(ctx, c, reinstall.BackupOptions{
		Host: host, HostKeyFingerprint: c.HostKey.Fingerprint, Source: f.source, Dir: f.backupDir, Sudo: needsSudo(c),
	}, progress)
	if err != nil {
		return a, "", fmt.Errorf("reinstall stopped before anything was wiped: %w", err)
	}
	if err := receipt.AddBackup(host, receipt.BackupFromArchive(a)); err != nil {
		return a, fmt.Sprintf("could not record the backup in the receipt: %v", err), nil
	}
	return a, "", nil
}

// restoreNewSystem logs in to the new system with the pinned host key and
// restores the archive into f.source: the restore step of the guided
// reinstall and the wizard. Its error says how to run the restore again.
func restoreNewSystem(ctx context.Context, target sshexec.Target, hostPub []byte, a reinstall.Archive, f reinstallFlags, host string, progress func(reinstall.Progress)) (reinstall.RestoreResult, error) {
	c, _, err := sshexec.WaitForHost(ctx, sshexec.RebootOptions{Target: target, ExpectedHostKey: hostPub, Timeout: f.wait})
	if err != nil {
		return reinstall.RestoreResult{}, fmt.Errorf("restore: %w; the backup is safe: run again with --restore %s", err, steps.ShellQuote(a.Path))
	}
	defer c.Close()
	res, err := restoreOver(ctx, c, a, f, host, progress)
	if err != nil {
		return res, fmt.Errorf("%w; run again with --restore %s", err, steps.ShellQuote(a.Path))
	}
	return res, nil
}

// restoreOver restores the archive into f.source over c, the services of
// f stopped and started again, and compares the tree with the archive.
func restoreOver(ctx context.Context, c *sshexec.Client, a reinstall.Archive, f reinstallFlags, host string, progress func(reinstall.Progress)) (reinstall.RestoreResult, error) {
	return reinstall.Restore(ctx, c, a, reinstall.RestoreOptions{
		Host: host, HostKeyFingerprint: c.HostKey.Fingerprint, Target: f.source, Services: f.services, Sudo: needsSudo(c),
	}, progress)
}

// restoredLine says what the comparison with the archive found.
func restoredLine(w io.Writer, source string, res reinstall.RestoreResult) {
	fmt.Fprintf(w, "Restored and compared with the archive: %s holds %d entries, %s of files.\n", source, res.Entries, steps.FormatBytes(res.Bytes))
}

// markRestored records in the host's receipt that the backup at a was
// restored (adding it when the receipt did not list it) and returns the
// receipt's path.
func markRestored(host string, a reinstall.Archive) (string, error) {
	r, err := receipt.Read(host)
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
	return receipt.Write(r)
}

// Prepare is the wizard's host key step and drift, its first steps as in
// the guided reinstall (the preflight comes after, so that its secrets
// checks see the key copied in): the same keepHostKey and driftFor, over a
// connection of its own. A host known_hosts does not know comes back as
// Drift.NewHostKey for the operator to compare; the next call trusts the
// key approved then (ui.ApprovedHostKey) and no other.
func (b realBackend) Prepare(ctx context.Context, cfg steps.Config) (ui.Drift, error) {
	c, seenKey, err := b.dialNoting(ctx, cfg)
	switch {
	case errors.Is(err, sshexec.ErrHostKeyUnknown):
		seen := seenKey()
		return ui.Drift{NewHostKey: ui.HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type, Status: ui.HostKeyNew}}, nil
	case errors.Is(err, sshexec.ErrHostKeyMismatch) && !errors.Is(err, sshexec.ErrHostKeyChangedSinceApproval):
		return ui.Drift{}, fmt.Errorf("connecting to %s: %w; if the machine was rebuilt, remove the old key with: %s", cfg.Host, err, ui.ForgetHostKeyCommand(cfg))
	case err != nil:
		return ui.Drift{}, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	defer c.Close()
	pending := b.flake
	if pending == nil || b.flakeRef != cfg.Flake {
		pending = flake.Start(ctx, cfg.Flake)
	}
	var note bytes.Buffer
	d := ui.Drift{HostKeyFingerprint: c.HostKey.Fingerprint}
	if _, err := keepHostKey(ctx, c, cfg.ExtraFiles, needsSudo(c), &note); err != nil {
		return d, fmt.Errorf("reinstall: %w", err)
	}
	d.HostKey = "Host key " + c.HostKey.Fingerprint + ": " + strings.TrimSpace(note.String())
	rep, _, _, err := driftFor(ctx, c, pending, cfg.Flake)
	if err != nil {
		return d, fmt.Errorf("reinstall: %w", err)
	}
	d.Report = rep
	return d, nil
}

// Backup is the wizard's backup step: backupSource over a connection of
// its own.
func (b realBackend) Backup(ctx context.Context, cfg steps.Config, progress func(reinstall.Progress)) (reinstall.Archive, error) {
	c, err := sshexec.Dial(ctx, b.dialOptions(cfg, nil))
	if err != nil {
		return reinstall.Archive{}, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	defer c.Close()
	a, _, err := backupSource(ctx, c, cfg.Host, b.reinstall, progress)
	// A receipt that could not record the backup is written again by the
	// restore (markRestored adds the backup).
	return a, err
}

// Restore is the wizard's restore step: restoreNewSystem with the host
// key of the extra-files tree (the machine's own, which Prepare made
// sure of), then the receipt marks the backup restored.
func (b realBackend) Restore(ctx context.Context, cfg steps.Config, a reinstall.Archive, progress func(reinstall.Progress)) (ui.Restored, error) {
	keyFile := sshexec.ExpectedHostKeyFile(cfg.ExtraFiles)
	pub, err := sshexec.ReadExpectedHostKey(keyFile)
	if err != nil {
		return ui.Restored{}, fmt.Errorf("restore: %w; the backup is safe: run again with --restore %s", err, steps.ShellQuote(a.Path))
	}
	f := b.reinstall
	if f.wait == 0 {
		f.wait = b.rebootTimeout
	}
	target := sshexec.Target{Host: cfg.Host, Port: cfg.Port, User: cfg.User, Identity: cfg.Identity}
	res, err := restoreNewSystem(ctx, target, pub, a, f, cfg.Host, progress)
	if err != nil {
		return ui.Restored{}, err
	}
	out := ui.Restored{Result: res}
	if p, err := markRestored(cfg.Host, a); err != nil {
		out.Notes = append(out.Notes, "the receipt could not record the restore: "+err.Error())
	} else {
		out.Receipt = p
	}
	return out, nil
}

// restoreOnly is `reinstall --restore ARCHIVE`: the last step alone.
func restoreOnly(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, f reinstallFlags, w io.Writer) error {
	a, err := reinstall.OpenArchive(f.restore)
	if err != nil {
		return failErr(err)
	}
	if err := reinstall.CheckHost(a.Manifest, cfg.Host, ""); err != nil {
		return failErr(fmt.Errorf("restore %s: %w", a.Path, err))
	}
	c, err := connectTarget(ctx, cmd, cfg, f.timeout)
	if err != nil {
		return failErr(err)
	}
	defer c.Close()
	if f.source == reinstall.DefaultSource && !cmd.Flags().Changed("source") {
		f.source = a.Manifest.Source
	}
	if err := restoreInto(ctx, w, c, a, f, cfg.Host); err != nil {
		return failErr(err)
	}
	return nil
}

// restoreInto restores the archive into f.source over c, with the
// progress line, and says what the comparison with the archive found.
func restoreInto(ctx context.Context, w io.Writer, c *sshexec.Client, a reinstall.Archive, f reinstallFlags, host string) error {
	stage(w, "Restore of %s into %s:%s", a.Path, host, f.source)
	res, err := restoreOver(ctx, c, a, f, host, progressPrinter(w))
	endProgress(w)
	if err != nil {
		return err
	}
	restoredLine(w, f.source, res)
	return nil
}
