package ui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// The reinstall's three child screens: the drift (with the host key step),
// the backup and the restore. Like the install's screens they are plain
// structs: update turns a key into an intent, done folds in the answer of
// the command the root ran, view draws. The root starts the commands, owns
// their cancel funcs and changes the screen.

// sourceOf is the tree a reinstall backs up and restores.
func sourceOf(o engine.ReinstallOptions) string {
	if o.Source == "" {
		return reinstall.DefaultSource
	}
	return o.Source
}

// driftScreen is the host key step and the drift: every change of the disk
// layout and the verdict.
type driftScreen struct {
	host, flake, source string
	force               bool

	running bool
	res     engine.Drift
	err     error
	// gen tells the answer of the latest drift from one of a drift left
	// with esc.
	gen int
}

func newDriftScreen(cfg steps.Config, o engine.ReinstallOptions, gen int) driftScreen {
	return driftScreen{host: cfg.Host, flake: cfg.Flake, source: sourceOf(o), force: o.Force, running: true, gen: gen + 1}
}

// done takes the answer of the drift numbered gen; a stale one (of a drift
// left with esc) is dropped, and ok says which it was.
func (d *driftScreen) done(gen int, res engine.Drift, err error) (ok bool) {
	if gen != d.gen || !d.running {
		return false
	}
	d.running, d.res, d.err = false, res, err
	return true
}

// askHostKey reports a host known_hosts does not know: the host key step
// waits for the operator to trust its key.
func (d *driftScreen) askHostKey() bool {
	return !d.running && d.err == nil && d.res.NewHostKey.Fingerprint != ""
}

// proceed reports whether the drift screen lets the operator go on to the
// preflight and the backup: the layout changed, or --force.
func (d *driftScreen) proceed() bool {
	return !d.running && d.err == nil && !d.askHostKey() &&
		(d.res.Report.Verdict == reinstall.VerdictReinstall || d.force)
}

// nothingToDo reports a drift that found no reason to reinstall.
func (d *driftScreen) nothingToDo() bool {
	return !d.running && d.err == nil && !d.askHostKey() && !d.proceed()
}

// quitErr is why the operator leaves the reinstall from this screen: the
// drift's error, or that there is nothing to reinstall.
func (d *driftScreen) quitErr() error {
	if d.nothingToDo() {
		return engine.ErrNothingToReinstall
	}
	return d.err
}

// update turns a key into an intent: intentAccept trusts the host key
// shown, intentBack returns to the target (a refused key, or esc, which
// also leaves a running drift), intentNext goes on to the preflight,
// intentRetry reads the layout again and intentQuit leaves with quitErr.
func (d *driftScreen) update(msg tea.Msg) intent {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return intentNone
	}
	switch k.String() {
	case "y":
		if d.askHostKey() {
			return intentAccept
		}
	case "n":
		if d.askHostKey() {
			return intentBack
		}
	case "enter", "space":
		if d.proceed() {
			return intentNext
		}
		if d.nothingToDo() {
			return intentQuit
		}
	case "r":
		if !d.running {
			return intentRetry
		}
	case "esc":
		d.running = false
		return intentBack
	case "q":
		return intentQuit
	}
	return intentNone
}

func (d *driftScreen) keys() [][2]string {
	help := [2]string{"?", "help"}
	switch {
	case d.running:
		return [][2]string{{"esc", "back"}, {"ctrl+c", "quit"}, help}
	case d.askHostKey():
		return [][2]string{{"y", "trust this key"}, {"n", "no, go back"}, help}
	case d.proceed():
		return [][2]string{{"enter", "preflight"}, {"esc", "back"}, {"q", "quit"}, help}
	case d.nothingToDo():
		return [][2]string{{"enter", "done"}, {"q", "quit"}, help}
	}
	return [][2]string{{"r", "try again"}, {"esc", "back"}, {"q", "quit"}, help}
}

// view draws the host key step, every change, and the verdict.
func (d *driftScreen) view(st styles, now time.Time, w, h int) string {
	tw := max(min(w-4, 100), 20)
	var b strings.Builder
	b.WriteString("\n" + indent(st.Header.Render("Disk layout of "+d.host+" against "+d.flake), 1) + "\n\n")
	if d.running {
		b.WriteString(indent(spinnerFrame(now)+" checking the host key and reading the live disks…", 1) + "\n")
		return b.String()
	}
	if d.askHostKey() {
		b.WriteString(hostKeyQuestion(st, d.host, d.res.NewHostKey, w, tw))
		return b.String()
	}
	if d.res.HostKey != "" {
		b.WriteString(indent(st.OK.Render(glyphOK)+" "+hang(wrap(d.res.HostKey, tw-4), 2), 1) + "\n\n")
	}
	if d.err != nil {
		b.WriteString(indent(st.Fail.Render(glyphFail)+" "+hang(wrap(d.err.Error(), tw-4), 2), 1) + "\n\n")
		b.WriteString(indent(st.Dim.Render("Nothing was changed. r tries again, q stops."), 1) + "\n")
		return b.String()
	}
	rep := d.res.Report
	for _, u := range rep.Unchanged {
		b.WriteString(indent(st.Dim.Render("= "+u+": unchanged"), 2) + "\n")
	}
	for _, c := range rep.Changes {
		switch c.Kind {
		case reinstall.KindAdded:
			b.WriteString(indent(st.Warn.Render("+ ")+c.What+": added ("+c.Flake+")", 2) + "\n")
		case reinstall.KindRemoved:
			b.WriteString(indent(st.Warn.Render("- ")+c.What+": removed ("+c.Live+")", 2) + "\n")
		default:
			b.WriteString(indent(st.Warn.Render("~ ")+c.What+": "+c.Live+" → "+c.Flake, 2) + "\n")
		}
	}
	b.WriteString("\n")
	verdict := st.Warn.Bold(true).Render("Reinstall required")
	if rep.Verdict == reinstall.VerdictNone {
		verdict = st.OK.Bold(true).Render("No reinstall needed")
	}
	b.WriteString(indent(verdict, 1) + "\n")
	b.WriteString(indent(wrap(strings.TrimSpace(rep.Summary()), tw-2), 1) + "\n\n")
	switch {
	case d.nothingToDo():
		b.WriteString(indent(st.Bold.Render("Deploy with nh os switch or nixos-rebuild switch; nothing to reinstall.")+st.Dim.Render(" (--force reinstalls anyway.)"), 1) + "\n")
	case rep.Verdict == reinstall.VerdictNone:
		b.WriteString(indent(st.Warn.Render(glyphWarn+" --force: reinstalling although the layout did not change."), 1) + "\n")
	default:
		b.WriteString(indent(wrap("Next: the preflight, a backup of "+d.source+", then the install; nothing is wiped before you type the host.", tw-2), 1) + "\n")
	}
	return b.String()
}

// backupScreen is the backup pane: the progress bar, then the verified
// archive and the warning that it holds secrets.
type backupScreen struct {
	transfer
	host, source string
	services     []string
	// archive is the verified backup: Path == "" until the backup is
	// verified. The wipe warning names it and the restore restores it.
	archive reinstall.Archive
	// notes say who can open the archive, which units were stopped for
	// it, and what the backup could not record (the receipt).
	notes []string
	// typing is set while the operator names the units to stop after a
	// backup that saw writes (the offer); units is what was typed.
	typing bool
	units  string
}

// offers says whether the failed backup offers to stop units: it saw its
// source change, and none were stopped.
func (b *backupScreen) offers() bool {
	return b.err != nil && len(b.services) == 0 && engine.BackupSawWrites(b.err)
}

func newBackupScreen(cfg steps.Config, o engine.ReinstallOptions, now time.Time) backupScreen {
	return backupScreen{transfer: transfer{start: now, running: true}, host: cfg.Host, source: sourceOf(o), services: o.Services}
}

// done takes the backup's answer.
func (b *backupScreen) done(msg backupDoneMsg) {
	b.running = false
	if msg.err != nil {
		b.err = msg.err
		return
	}
	b.archive, b.notes = msg.archive, msg.notes
	b.p.Bytes = msg.archive.Manifest.Bytes
	b.p.Total = max(b.p.Total, msg.archive.Manifest.Bytes)
}

// update turns a key into an intent once the backup has ended:
// intentNext goes on with a verified backup, intentRetry backs up again
// after a failure, intentQuit leaves with quitErr.
func (b *backupScreen) update(msg tea.Msg) intent {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok || b.running {
		return intentNone
	}
	if b.typing {
		switch k.String() {
		case "enter":
			if len(strings.Fields(b.units)) > 0 {
				b.typing = false
				return intentStopUnits
			}
		case "esc":
			b.typing = false
		case "backspace":
			if r := []rune(b.units); len(r) > 0 {
				b.units = string(r[:len(r)-1])
			}
		default:
			if k.Text != "" {
				b.units += k.Text
			}
		}
		return intentNone
	}
	switch k.String() {
	case "s":
		if b.offers() {
			b.typing = true
			return intentNone
		}
	case "enter", "space":
		if b.archive.Path != "" {
			return intentNext
		}
	case "r":
		if b.err != nil {
			return intentRetry
		}
	case "q":
		return intentQuit
	}
	return intentNone
}

// quitErr is why the operator leaves the reinstall from this screen.
func (b *backupScreen) quitErr() error { return b.err }

func (b *backupScreen) keys() [][2]string {
	help := [2]string{"?", "help"}
	switch {
	case b.running:
		return [][2]string{{"ctrl+c", "stop the backup"}, help}
	case b.typing:
		return [][2]string{{"enter", "stop them and back up again"}, {"esc", "cancel"}}
	case b.archive.Path != "":
		return [][2]string{{"enter", "continue"}, {"q", "quit"}, help}
	case b.offers():
		return [][2]string{{"s", "stop units and back up again"}, {"r", "back up again"}, {"q", "quit"}, help}
	}
	return [][2]string{{"r", "back up again"}, {"q", "quit"}, help}
}

func (b *backupScreen) view(st styles, now time.Time, w, h int) string {
	tw := max(min(w-4, 100), 20)
	var s strings.Builder
	s.WriteString("\n" + indent(st.Header.Render("Backup of "+b.host+":"+b.source), 1) + "\n\n")
	s.WriteString(b.transfer.view(st, now, w))
	s.WriteString("\n")
	switch {
	case b.running:
		s.WriteString(indent(st.Dim.Render(wrap("A tar stream over SSH with numeric owners, its SHA-256 computed on the way; then counted against the machine.", tw-2)), 1) + "\n")
		s.WriteString(indent(wrap(servicesLine(b.services), tw-2), 1) + "\n")
	case b.err != nil:
		msg := b.err.Error()
		if len(b.services) == 0 && engine.BackupSawWrites(b.err) {
			msg += "; " + engine.UnitsAdvice(b.source)
		}
		s.WriteString(indent(st.Fail.Render(glyphFail+" ")+hang(wrap(msg, tw-4), 2), 1) + "\n\n")
		if b.typing {
			s.WriteString(indent(wrap("The systemd units that write into "+b.source+" (separated by spaces): they are stopped before the backup, and start again if the reinstall stops before the wipe.", tw-2), 1) + "\n")
			s.WriteString(indent(st.Code.Render("> "+b.units+"█"), 1) + "\n\n")
		} else if b.offers() {
			s.WriteString(indent(wrap("s names the units that write into "+b.source+": bigbang stops them and backs up again.", tw-2), 1) + "\n")
		}
		s.WriteString(indent(st.Bold.Render("Nothing was wiped.")+" r takes the backup again, q stops.", 1) + "\n")
	case b.archive.Path != "":
		mf := b.archive.Manifest
		s.WriteString(indent(st.OK.Render(glyphOK)+" Backup verified: "+st.Code.Render(wrap(b.archive.Path, tw-20)), 1) + "\n")
		s.WriteString(indent(fmt.Sprintf("%d entries, %s of files, %s compressed", mf.Entries, steps.FormatBytes(mf.Bytes), steps.FormatBytes(mf.ArchiveBytes)), 3) + "\n")
		s.WriteString(indent(st.Dim.Render("sha256 "+mf.SHA256), 3) + "\n\n")
		s.WriteString(indent(st.Warn.Render(glyphWarn+" ")+hang(wrap("It holds the machine's secrets: keep it as safe as the host key.", tw-4), 2), 1) + "\n")
		// Who can open it (or that it is in the clear), and what the
		// receipt could not record.
		for _, n := range b.notes {
			s.WriteString(indent(st.Dim.Render(wrap(n, tw-2)), 1) + "\n")
		}
	}
	return s.String()
}

// restoreScreen is the restore pane: the archive going into the new
// system before its first boot, in the installer's /mnt, between
// nixos-anywhere's install and its reboot.
type restoreScreen struct {
	transfer
	host, source, archive string
	// started is set when the install stopped before its reboot and the
	// restore began; stages are the engine's stage lines since.
	started bool
	stages  []string
	// restored is what the restore verified; nil until it has.
	restored *engine.Restored
}

func newRestoreScreen(cfg steps.Config, o engine.ReinstallOptions, archive string) restoreScreen {
	return restoreScreen{host: cfg.Host, source: sourceOf(o), archive: archive}
}

// done takes the end of the reinstall's install: what the restore
// verified (nil when it did not), or why it failed.
func (r *restoreScreen) done(restored *engine.Restored, err error) {
	r.running = false
	if restored == nil {
		r.err = err
		return
	}
	r.restored = restored
	r.p.Bytes = restored.Result.Bytes
	r.p.Total = max(r.p.Total, restored.Result.Bytes)
}

func (r *restoreScreen) keys() [][2]string {
	return [][2]string{{"l", "install log"}, {"ctrl+c", "stop"}, {"?", "help"}}
}

func (r *restoreScreen) view(st styles, now time.Time, w, h int) string {
	tw := max(min(w-4, 100), 20)
	var b strings.Builder
	b.WriteString("\n" + indent(st.Header.Render("Restore of the backup into "+r.host+":"+engine.InstallerRoot+r.source+", before the first boot"), 1) + "\n")
	b.WriteString(indent(st.Dim.Render(wrap(r.archive, tw-2)), 1) + "\n\n")
	b.WriteString(r.transfer.view(st, now, w))
	b.WriteString("\n" + indent(wrap("nixos-anywhere stopped before its reboot: the NixOS installer has the new system at "+engine.InstallerRoot+
		", and its "+r.source+" gets the machine's state now, so that the first boot starts its services with it. The reboot follows.", tw-2), 1) + "\n")
	return b.String()
}

// summary is the result screen's line about the restore ("" before it
// verified anything).
func (r *restoreScreen) summary() string {
	if r.restored == nil {
		return ""
	}
	res := r.restored.Result
	return fmt.Sprintf("%s holds %d entries, %s of files: restored before the first boot and compared with the archive", r.source, res.Entries, steps.FormatBytes(res.Bytes))
}

// servicesLine says what happens to the services for the backup.
func servicesLine(units []string) string {
	if len(units) == 0 {
		return "No services named (--service): the backup reads the tree while the system runs; a tree that changes meanwhile is refused."
	}
	return "Stops " + strings.Join(units, ", ") + " before the backup, so that nothing writes while it is read; they start again if the reinstall stops before the wipe."
}

// hang indents the lines of a wrapped text after the first by n columns,
// so that it hangs under its glyph.
func hang(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}
