package reinstall

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/bigbang-nix/bigbang/steps"
)

// RestoreOptions says where an archive goes back to.
type RestoreOptions struct {
	Host               string // the target as the operator named it; must be the archive's
	HostKeyFingerprint string // the target's host key now; must be the archive's when both are known
	// Target is the remote directory; the archive's source when empty.
	// Another directory than the source is refused (ErrOtherTarget)
	// unless AnotherTarget is set: the operator's explicit choice, which
	// the front end confirms as it does the wipe.
	Target        string
	AnotherTarget bool
	// SealDir is where Backup kept the archive's seal; default SealDir().
	SealDir string
	// Identity is the operator's age identity file for an encrypted
	// archive ("": where sops looks, see DefaultIdentityFiles). Without
	// one that opens it the restore is refused before anything runs on
	// the target (ErrNoIdentity).
	Identity string
	// Services are stopped before the restore and started again after it
	// (also when it fails), so nothing writes into the directory meanwhile.
	Services []string
	Sudo     bool // run the remote commands through `sudo -n`
}

// RestoreResult is what the verification after a restore found.
type RestoreResult struct {
	Entries int64 // entries in the target directory after the restore
	Bytes   int64 // bytes of regular files there, hard links once
}

// CheckHost refuses an archive taken from another machine: the manifest
// names the host and its host key, and a reinstall keeps both.
func CheckHost(m Manifest, host, fingerprint string) error {
	if m.Host != host {
		return fmt.Errorf("%w: it was taken from %s, not %s: restore it only onto the machine it came from", ErrOtherHost, m.Host, host)
	}
	if m.HostKeyFingerprint != "" && fingerprint != "" && m.HostKeyFingerprint != fingerprint {
		return fmt.Errorf("%w: it was taken from a machine with host key %s, %s now has %s: ship the old host key again (bigbang reinstall does) or check that this is the right machine",
			ErrOtherHost, m.HostKeyFingerprint, host, fingerprint)
	}
	return nil
}

// VerifyChecksum reads the archive and compares its SHA-256 with the
// manifest's.
func VerifyChecksum(a Archive) error {
	f, err := os.Open(a.Path)
	if err != nil {
		return fmt.Errorf("opening the archive: %w", err)
	}
	defer f.Close()
	return checksum(f, a)
}

// StepMarker begins the line of standard error with which the restore's
// remote commands name the step that failed (see RestoreCommand): the
// error then blames that step, with the lines the step itself wrote, and
// not the command's first word.
const StepMarker = "bigbang-step: "

// failed is the shell that ends a step: on failure it names the step on
// standard error and exits with its status.
func failed(step string) string {
	return ` || { s=$?; echo ` + steps.ShellQuote(StepMarker+step) + `" exited with status $s" >&2; exit $s; }`
}

// RestoreCommand returns the remote command that unpacks an archive from
// standard input into dir with numeric owners and modes.
func RestoreCommand(dir string, m Manifest) string {
	argv := []string{"tar", "--extract", "--file=-", "--numeric-owner", "--same-owner", "--same-permissions"}
	argv = append(argv, archiveFlags(m)...)
	q := steps.ShellQuote(dir)
	return "mkdir -p -- " + q + failed("mkdir -p "+dir) + "\ncd -- " + q + failed("cd "+dir) + "\nLC_ALL=C " + steps.ShellJoin(argv) + failed("tar --extract into "+dir)
}

// CompareCommand returns the remote command that compares an archive from
// standard input with dir: contents, sizes, modes, owners and link targets.
func CompareCommand(dir string, m Manifest) string {
	argv := []string{"tar", "--compare", "--file=-", "--numeric-owner"}
	argv = append(argv, archiveFlags(m)...)
	q := steps.ShellQuote(dir)
	return "cd -- " + q + failed("cd "+dir) + "\nLC_ALL=C " + steps.ShellJoin(argv) + failed("tar --compare with "+dir)
}

// stepError is a failed remote step named by its StepMarker line, with the
// rest of its standard error; it unwraps to the remote command's error.
type stepError struct {
	msg string
	err error
}

func (e *stepError) Error() string { return e.msg }
func (e *stepError) Unwrap() error { return e.err }

// blame turns the error of a restore's remote command into one that names
// the step that failed, from its StepMarker line, followed by what it wrote
// on standard error; without a marker (the command did not get to run: a
// lost connection, sudo refusing) it is err with the output.
func blame(err error, out, stderr string) error {
	var step string
	var rest []string
	for _, l := range strings.Split(strings.TrimSpace(out+"\n"+stderr), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case strings.HasPrefix(l, StepMarker):
			step = strings.TrimPrefix(l, StepMarker)
		default:
			rest = append(rest, l)
		}
	}
	if step == "" {
		return fmt.Errorf("%w: %s", err, strings.Join(rest, "\n"))
	}
	msg := step + " on the target"
	if len(rest) > 0 {
		msg += ": " + strings.Join(rest, "; ")
	}
	return &stepError{msg: msg, err: err}
}

func archiveFlags(m Manifest) []string {
	var out []string
	for _, o := range m.TarOptions {
		switch o {
		case "xattrs":
			out = append(out, "--xattrs", "--xattrs-include=*")
		case "acls":
			out = append(out, "--acls")
		}
	}
	switch m.Compression {
	case "zstd":
		out = append(out, "--use-compress-program=zstd")
	case "gzip":
		out = append(out, "--use-compress-program=gzip")
	}
	return out
}

// VerifyArchive is every check of an archive that needs no target, for a
// restore into dir (the manifest's source when empty): the archive's
// SHA-256 against its manifest, the manifest against its seal (so an
// edited manifest is refused), for an encrypted archive that an identity
// of the file identity ("": where sops looks) opens it and that its
// plaintext is the one the backup hashed, and every member against dir
// (see CheckMembers). Restore runs it on the file it then sends; a front
// end can run it before it asks for the confirmation.
func VerifyArchive(a Archive, sealDir, dir, identity string) error {
	f, err := os.Open(a.Path)
	if err != nil {
		return fmt.Errorf("opening the archive: %w", err)
	}
	defer f.Close()
	_, err = verifyOpen(f, a, sealDir, dir, identity)
	return err
}

// verifyOpen is VerifyArchive on the open file. It returns the identities
// that open an encrypted archive (nil for a plaintext one).
func verifyOpen(f *os.File, a Archive, sealDir, dir, identity string) (*Identities, error) {
	if err := checksum(f, a); err != nil {
		return nil, err
	}
	if err := CheckSeal(sealDir, a); err != nil {
		return nil, err
	}
	if dir == "" {
		dir = a.Manifest.Source
	}
	var ids *Identities
	if a.Manifest.Encrypted() {
		var err error
		if ids, err = LoadIdentities(identity); err != nil {
			return nil, fmt.Errorf("%w; nothing was restored", err)
		}
	}
	in, sum, err := plaintext(f, a, ids, identity)
	if err != nil {
		return nil, err
	}
	if err := CheckMembers(in, a.Manifest.Compression, dir); errors.Is(err, errDamaged) {
		return nil, fmt.Errorf("%w: %s does not decrypt: %w: the file is damaged; use another copy", ErrCorrupt, a.Path, err)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w: nothing was unpacked; this archive was not written by bigbang's backup, or was altered: do not restore it", a.Path, err)
	}
	if sum != nil {
		// The rest of the stream, so that age checks its last chunk and
		// the whole plaintext is hashed.
		if _, err := io.Copy(io.Discard, in); err != nil {
			return nil, fmt.Errorf("%w: decrypting %s: %w: the file is damaged; use another copy", ErrCorrupt, a.Path, err)
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != a.Manifest.PlaintextSHA256 {
			return nil, fmt.Errorf("%w: %s decrypts to a stream with SHA-256 %s, its manifest says %s: do not restore it", ErrCorrupt, a.Path, got, a.Manifest.PlaintextSHA256)
		}
	}
	return ids, nil
}

// plaintext reads the open archive from its start as the (compressed) tar
// stream: decrypted with ids when it is encrypted, with the hash of what
// it yields (nil for a plaintext archive, whose hash checksum took).
func plaintext(f *os.File, a Archive, ids *Identities, identity string) (io.Reader, hash.Hash, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	in := bufio.NewReaderSize(f, 1<<20)
	if !a.Manifest.Encrypted() {
		return in, nil, nil
	}
	pr, err := openAge(in, a, ids, identity)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.New()
	return io.TeeReader(pr, sum), sum, nil
}

// openAge decrypts the age stream of archive a read from r.
func openAge(r io.Reader, a Archive, ids *Identities, identity string) (io.Reader, error) {
	pr, err := ids.decrypter(r)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.Is(err, ErrNoIdentity) || errors.As(err, &nomatch):
		return nil, fmt.Errorf("%w; nothing was restored", noIdentity(a.Path, a.Manifest.Recipients, ids, identity))
	case err != nil:
		return nil, fmt.Errorf("%w: %s does not decrypt: %w: the file is damaged; use another copy", ErrCorrupt, a.Path, err)
	}
	return damagedReader{pr}, nil
}

// errDamaged marks a read error of an age stream: a chunk that does not
// authenticate (a damaged or altered file, or one cut short).
var errDamaged = errors.New("age stream damaged")

type damagedReader struct{ r io.Reader }

func (d damagedReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errDamaged, err)
	}
	return n, err
}

// checksum compares the SHA-256 of the open archive with its manifest's.
func checksum(f *os.File, a Archive) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading the archive: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.Manifest.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, its manifest says %s: the file is damaged; use another copy", ErrCorrupt, a.Path, got, a.Manifest.SHA256)
	}
	return nil
}

// Restore streams a verified archive back into the target: it refuses an
// archive from another host, with a wrong checksum, whose manifest was
// edited after the backup, with a member that would land outside the
// directory, or bound for another directory than its source unless
// opts.AnotherTarget; then it stops the given services, unpacks with
// numeric owners, compares the archive with what landed, counts entries and
// bytes, and starts the services again. The file is opened once: what is
// checked is what is sent.
func Restore(ctx context.Context, r Remote, a Archive, opts RestoreOptions, progress func(Progress)) (RestoreResult, error) {
	var res RestoreResult
	m := a.Manifest
	if err := CheckHost(m, opts.Host, opts.HostKeyFingerprint); err != nil {
		return res, fmt.Errorf("restore %s: %w", a.Path, err)
	}
	dir := opts.Target
	if dir == "" {
		dir = m.Source
	}
	f, err := os.Open(a.Path)
	if err != nil {
		return res, fmt.Errorf("restore: opening the archive: %w", err)
	}
	defer f.Close()
	ids, err := verifyOpen(f, a, opts.SealDir, dir, opts.Identity)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if path.Clean(dir) != path.Clean(m.Source) && !opts.AnotherTarget {
		return res, fmt.Errorf("restore: %w: %s was taken from %s and goes back only there, not into %s: restore it into %s, or confirm the other directory explicitly",
			ErrOtherTarget, a.Path, m.Source, dir, m.Source)
	}
	if !path.IsAbs(dir) {
		return res, fmt.Errorf("restore: the directory %q is not absolute: give the full path on the target", dir)
	}
	ri, err := probe(ctx, r, dir, opts.Sudo)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	switch {
	case m.Compression == "zstd" && !ri.zstd:
		return res, fmt.Errorf("restore: the archive is zstd-compressed and the target has no zstd: add pkgs.zstd to environment.systemPackages, or unpack it with `zstd -d` here first")
	case m.Compression == "gzip" && !ri.gzip:
		return res, fmt.Errorf("restore: the archive is gzip-compressed and the target has no gzip")
	}

	if len(opts.Services) > 0 {
		if err := systemctl(ctx, r, "stop", opts.Services, opts.Sudo); err != nil {
			return res, fmt.Errorf("restore: stopping %s: %w: stop them by hand or leave them out", strings.Join(opts.Services, ", "), err)
		}
		// The services come back even when the restore fails or is
		// interrupted: a half-restored machine with its services down
		// helps nobody.
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			_ = systemctl(sctx, r, "start", opts.Services, opts.Sudo)
		}()
	}

	if err := send(ctx, r, f, a, ids, wrap(RestoreCommand(dir, m), opts.Sudo), progress); err != nil {
		return res, fmt.Errorf("restore: %w: %w: %s may be partly restored; run the restore again (it overwrites what is there)", ErrRestoreIncomplete, err, dir)
	}
	if err := send(ctx, r, f, a, ids, wrap(CompareCommand(dir, m), opts.Sudo), nil); err != nil {
		return res, fmt.Errorf("restore: %w: what landed in %s differs from the archive: %w", ErrVerify, dir, err)
	}
	after, err := probe(ctx, r, dir, opts.Sudo)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	res = RestoreResult{Entries: after.entries, Bytes: after.bytes}
	// The new system may already have written files of its own (the host
	// key that came with the install, logs): the target may hold more than
	// the archive, never less.
	if after.entries < m.Entries || after.bytes < m.Bytes {
		return res, fmt.Errorf("restore: %w: %s holds %d entries and %d bytes, the archive %d and %d", ErrVerify, dir, after.entries, after.bytes, m.Entries, m.Bytes)
	}
	return res, nil
}

func systemctl(ctx context.Context, r Remote, verb string, units []string, sudo bool) error {
	errb := &tailBuffer{max: 8 << 10}
	cmd := steps.ShellJoin(append([]string{"systemctl", verb, "--"}, units...))
	if err := r.Run(ctx, wrap(cmd, sudo), nil, io.Discard, errb); err != nil {
		return fmt.Errorf("%w: %s", err, errb.String())
	}
	return nil
}

// send streams the open archive, from its start, into a remote command's
// standard input: decrypted here with ids when it is encrypted (the SSH
// channel carries it), the (compressed) tar stream as it is otherwise.
func send(ctx context.Context, r Remote, f *os.File, a Archive, ids *Identities, cmd string, progress func(Progress)) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	pr := &progressReader{r: f, total: a.Manifest.ArchiveBytes, start: time.Now(), progress: progress}
	var in io.Reader = pr
	if a.Manifest.Encrypted() {
		var err error
		if in, err = openAge(pr, a, ids, ""); err != nil {
			return err
		}
	}
	out := &tailBuffer{max: 8 << 10}
	errb := &tailBuffer{max: 8 << 10}
	if err := r.Run(ctx, cmd, in, out, errb); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return blame(err, out.String(), errb.String())
	}
	pr.tell(true)
	return nil
}

// progressReader reports how much of the archive has been sent; the rate
// and ETA are those of the compressed archive.
type progressReader struct {
	r        io.Reader
	n        atomic.Int64
	total    int64
	start    time.Time
	last     time.Time
	progress func(Progress)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	p.tell(false)
	return n, err
}

func (p *progressReader) tell(last bool) {
	if p.progress == nil {
		return
	}
	now := time.Now()
	if !last && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	n := p.n.Load()
	el := now.Sub(p.start)
	pg := Progress{Bytes: n, Total: p.total, Archive: n, Elapsed: el}
	if el > 0 {
		pg.Rate = float64(n) / el.Seconds()
	}
	if pg.Rate > 0 && p.total > n {
		pg.ETA = time.Duration(float64(p.total-n) / pg.Rate * float64(time.Second))
	}
	p.progress(pg)
}
