// Package linear is the plain and JSON front end of the engine's linear
// run (and the text of `bigbang status`): it renders events with textout
// and asks its questions on a terminal.
package linear

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/charmbracelet/x/term"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// Front is the plain and JSON front end of the engine's linear run: events
// to Out (text, or one JSON object per line), the human lines (stages,
// progress) to Out too for text and to Err beside JSON, notes to Err. It
// asks questions only when In is set (a terminal).
type Front struct {
	Out, Err io.Writer
	JSON     bool
	// In reads the operator's answers; nil: nothing is asked, an unknown
	// host key is refused and the wipe must be confirmed with --yes-wipe.
	In *bufio.Reader
	// Confirmed is set when --yes-wipe named the target.
	Confirmed bool

	once     sync.Once
	out      io.Writer // Out, shared by the events and the human lines
	flush    func()    // writes out the buffered events
	sink     steps.Sink
	progress func(reinstall.Progress, bool)
}

// init makes the event renderer once: the events (from the runner's
// goroutine) and the human lines (from the engine's) share Out through one
// lock, and the buffered events are written out before a human line, so
// that a stage never comes before the lines that led to it.
func (f *Front) init() {
	f.once.Do(func() {
		f.out = &syncWriter{w: f.Out}
		if f.JSON {
			f.sink, f.flush = textout.JSON(f.out), func() {}
		} else {
			f.sink, f.flush = textout.PlainFlushing(f.out)
		}
	})
}

// syncWriter serialises the writes to one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

var _ engine.Front = (*Front)(nil)

func (f *Front) human() io.Writer {
	if f.JSON {
		return f.Err
	}
	f.init()
	f.flush()
	return f.out
}

// Event renders one event.
func (f *Front) Event(e steps.Event) {
	f.init()
	f.sink(e)
}

// Choose keeps the flags' choices.
func (f *Front) Choose(_ context.Context, cfg steps.Config, _ engine.Report) (steps.Config, error) {
	return cfg, nil
}

// Plan prints the plan for a plain reader.
func (f *Front) Plan(cfg steps.Config, plan steps.Plan, _ []engine.Disk) {
	if !f.JSON {
		textout.Plan(f.human(), cfg, plan)
	}
}

// Stage prints one step of the reinstall.
func (f *Front) Stage(text string) { fmt.Fprintf(f.human(), "==> %s\n", text) }

// Note prints a note on standard error, where it never mixes with JSON.
func (f *Front) Note(text string) { fmt.Fprintf(f.Err, "bigbang: %s\n", text) }

// Drift prints the layout comparison.
func (f *Front) Drift(host string, rep reinstall.Report) { textout.Drift(f.human(), host, rep) }

// Progress prints a transfer's progress.
func (f *Front) Progress(p reinstall.Progress, done bool) {
	if f.progress == nil {
		f.progress = textout.Progress(f.human())
	}
	f.progress(p, done)
}

// TrustHostKey asks on a terminal; elsewhere the key is refused (a script
// says yes beforehand with --accept-new-host-key).
func (f *Front) TrustHostKey(ctx context.Context, t steps.Target, k engine.HostKey) (bool, error) {
	if f.In == nil {
		return false, nil
	}
	fmt.Fprintf(f.Err, "The host %s is not in your known_hosts.\nIts %s key fingerprint is %s.\n"+
		"Compare it with the one in your provider's console.\nTrust it and save it? [y/N] ", t.KnownHostsName(), k.Type, k.Fingerprint)
	line, err := ReadLine(ctx, f.In)
	if err != nil && line == "" {
		return false, err
	}
	return textout.IsYes(line), nil
}

// SudoPassword sets nothing up: the linear install needs passwordless sudo
// already (the preflight says how).
func (f *Front) SudoPassword(context.Context, steps.Target) ([]byte, error) { return nil, nil }

// ConfirmWipe is --yes-wipe, or the host typed on a terminal.
func (f *Front) ConfirmWipe(ctx context.Context, w engine.Wipe) (bool, error) {
	if f.Confirmed {
		return true, nil
	}
	if f.In == nil {
		return false, nil
	}
	host := w.Target.Host
	fmt.Fprintf(f.Err, "\nThis WIPES EVERY DISK of %s and installs the flake.\n", host)
	if w.Backup != "" {
		fmt.Fprintf(f.Err, "The data will come back from %s.\n", w.Backup)
	}
	return f.typedHost(ctx, host)
}

// typedHost asks for the host to be typed: yes only for exactly it, and
// nothing after Ctrl-C.
func (f *Front) typedHost(ctx context.Context, host string) (bool, error) {
	fmt.Fprintf(f.Err, "Type the host (%s) to go on, anything else stops: ", host)
	line, err := ReadLine(ctx, f.In)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil && line == "" {
		return false, fmt.Errorf("no answer")
	}
	if strings.TrimSpace(line) != host {
		return false, fmt.Errorf("you typed %q, not %s", strings.TrimSpace(line), host)
	}
	return true, nil
}

// ConfirmRestore is --yes-wipe naming the host, or the host typed on a
// terminal, for a restore into another directory than the archive's.
func (f *Front) ConfirmRestore(ctx context.Context, r engine.RestoreInto) (bool, error) {
	if f.Confirmed {
		return true, nil
	}
	if f.In == nil {
		return false, fmt.Errorf("%s goes into %s, not %s where it was taken: confirm it on a terminal, or with --yes-wipe %s", r.Archive, r.Into, r.From, r.Target.Host)
	}
	host := r.Target.Host
	fmt.Fprintf(f.Err, "\nThis restores %s, taken from %s, into %s:%s as root: what is there is overwritten.\n", r.Archive, r.From, host, r.Into)
	return f.typedHost(ctx, host)
}

// Prompts are the questions of a dial on a terminal: an unknown host key
// shown with its fingerprint (saved only after a yes), and a key file's
// passphrase read without echo from fd. Both end at once when ctx ends
// (Ctrl-C), with the terminal's echo back.
func Prompts(ctx context.Context, in *bufio.Reader, fd uintptr, errw io.Writer) (sshexec.HostKeyPrompt, sshexec.PassphraseFunc) {
	hostKey := func(ctx context.Context, k sshexec.HostKeyInfo) (bool, error) {
		f := Front{Err: errw, In: in}
		return f.TrustHostKey(ctx, steps.Target{Host: k.Address}, engine.HostKey{Type: k.Type, Fingerprint: k.Fingerprint})
	}
	passphrase := func(file string, attempt int) ([]byte, error) {
		if attempt > 1 {
			fmt.Fprintln(errw, "Wrong passphrase, try again.")
		}
		fmt.Fprintf(errw, "Passphrase for %s: ", file)
		pp, err := ReadSecret(ctx, fd)
		fmt.Fprintln(errw)
		return pp, err
	}
	return hostKey, passphrase
}

// ReadSecret reads a line from the terminal fd without echo. When ctx ends
// first (Ctrl-C: the terminal still sends the signal) it returns ctx's
// error at once, the terminal as it was; nothing typed after that is used.
func ReadSecret(ctx context.Context, fd uintptr) ([]byte, error) {
	old, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: standard input is not a terminal (%w)", err)
	}
	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- answer{b, err}
	}()
	select {
	case a := <-ch:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return a.b, a.err
	case <-ctx.Done():
		_ = term.Restore(fd, old)
		return nil, ctx.Err()
	}
}

// End says on standard error what the result event does not: notes, the
// receipt, how to log in, where the transcript is and how to read it.
func (f *Front) End(cfg steps.Config, res engine.InstallResult, what string) {
	for _, n := range res.Notes {
		f.Note(n)
	}
	if res.Receipt != "" {
		f.Note("receipt: " + res.Receipt)
	}
	switch res.Outcome {
	case steps.OutcomeSuccess:
		if res.SSHCommand != "" {
			f.Note(fmt.Sprintf("%s is up with host key %s; log in with: %s", cfg.Host, res.HostKeyFingerprint, res.SSHCommand))
		}
		f.Note("transcript: " + res.Log)
		f.Note(textout.StatusNext(cfg.Host))
	case steps.OutcomeFailed:
		f.Note(fmt.Sprintf("%s failed; the transcript is in %s (bigbang explain %s)", what, res.Log, steps.ShellQuote(res.Log)))
	}
}

// EndReinstall says how a reinstall ended: the install's end, then what
// the restore before the first boot verified, or where the backup is when
// the install did not get to it.
func (f *Front) EndReinstall(cfg steps.Config, out engine.Reinstalled) {
	f.End(cfg, out.Install, "reinstall")
	source := out.Archive.Manifest.Source
	switch {
	case out.Restored != nil && out.Install.Outcome != steps.OutcomeSuccess:
		f.Note(fmt.Sprintf("the backup was restored into the new system's %s before its reboot; the backup stays in %s", source, out.Archive.Path))
	case out.Install.Outcome != steps.OutcomeSuccess && out.Archive.Path != "":
		if out.RestoreLater != "" {
			f.Note(fmt.Sprintf("the backup is safe in %s: once the new system runs, restore it with: %s", out.Archive.Path, out.RestoreLater))
		} else {
			f.Note(fmt.Sprintf("the backup is safe in %s; nothing was wiped", out.Archive.Path))
		}
	case out.Restored != nil:
		if out.Restored.Receipt != "" {
			f.Stage("Receipt: " + out.Restored.Receipt)
		}
		f.Stage(fmt.Sprintf("Reinstall of %s done: same host key, %s restored before the first boot.", cfg.Host, source))
	}
}

// StopUnits asks on a terminal which units to stop for a consistent
// backup; elsewhere none (a script names them with --service).
func (f *Front) StopUnits(ctx context.Context, q engine.UnitsQuestion) ([]string, error) {
	if f.In == nil {
		return nil, nil
	}
	fmt.Fprintf(f.Err, "\nThe backup of %s:%s is not consistent: %v\n"+
		"Stop the systemd units that write into it and back up again? They start again if the reinstall stops before the wipe.\n"+
		"Units to stop (separated by spaces; empty: stop here): ", q.Host, q.Source, q.Why)
	line, err := ReadLine(ctx, f.In)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil && line == "" {
		return nil, nil
	}
	return strings.Fields(line), nil
}

// AskYes asks a yes/no question on out when in is a terminal; otherwise
// the answer is no (a script passes the flag that answers it).
func AskYes(out io.Writer, in io.Reader, question string) bool {
	if f, ok := in.(*os.File); ok {
		st, err := f.Stat()
		if err != nil || st.Mode()&os.ModeCharDevice == 0 {
			return false
		}
	}
	fmt.Fprint(out, question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	return textout.IsYes(line)
}

// Report prints v as one line of JSON when asJSON, and calls plain for
// the text otherwise.
func Report(w io.Writer, asJSON bool, v any, plain func(io.Writer)) error {
	if !asJSON {
		plain(w)
		return nil
	}
	return json.NewEncoder(w).Encode(v)
}

// ReadLine reads one answer from in, or gives up when ctx ends (Ctrl-C,
// SIGTERM): an answer typed after an interrupt is never taken. The read
// itself goes on in the background until the line comes; its result is
// then dropped.
func ReadLine(ctx context.Context, in *bufio.Reader) (string, error) {
	type answer struct {
		line string
		err  error
	}
	if ctx.Err() != nil {
		// Asked after the interrupt: nothing is read, so nothing typed
		// is taken.
		return "", ctx.Err()
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := in.ReadString('\n')
		ch <- answer{line, err}
	}()
	select {
	case a := <-ch:
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return a.line, a.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// StdinHint tells an operator who runs `explain -` on a terminal that
// bigbang now reads what they type (or paste), and how to end it.
func StdinHint(path string, in io.Reader, errw io.Writer) {
	if f, ok := in.(*os.File); ok && path == "-" && term.IsTerminal(f.Fd()) {
		fmt.Fprintln(errw, "bigbang: reading the transcript from standard input: paste it, then press Ctrl-D (Ctrl-C stops)")
	}
}
