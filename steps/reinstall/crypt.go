package reinstall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"filippo.io/age"

	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// EncryptionAge is Manifest.Encryption for an archive encrypted with age
// (https://age-encryption.org/v1); EncryptionNone for one written in the
// clear (only with BackupOptions.Plaintext).
const (
	EncryptionAge  = "age"
	EncryptionNone = "none"
)

// AgeSuffix ends the name of an archive encrypted with age.
const AgeSuffix = ".age"

// AgeMagic is how every age file begins.
const AgeMagic = "age-encryption.org/v1"

// Errors of the archive's encryption; match them with errors.Is.
var (
	// ErrNoRecipient: nobody to encrypt the archive to, and no explicit
	// choice of a plaintext archive. Nothing was backed up.
	ErrNoRecipient = errors.New("no age recipient for the backup")
	// ErrBadRecipient: a --backup-recipient is neither an age recipient
	// nor a file of them.
	ErrBadRecipient = errors.New("not an age recipient")
	// ErrNoIdentity: no age identity at hand opens the archive (or, before
	// a backup, would open it).
	ErrNoIdentity = errors.New("no age identity opens the archive")
)

// IdentityFlag is the flag that names the operator's age identity file,
// for the errors that say how to give it.
const IdentityFlag = "--backup-identity"

// parseRecipient reads one age recipient (X25519 "age1…", or a
// post-quantum "age1pq1…"), returning its canonical form.
func parseRecipient(s string) (string, error) {
	rs, err := age.ParseRecipients(strings.NewReader(s))
	if err != nil || len(rs) != 1 {
		return "", fmt.Errorf("%w", ErrBadRecipient)
	}
	if st, ok := rs[0].(fmt.Stringer); ok {
		return st.String(), nil
	}
	return s, nil
}

// ParseRecipients reads the --backup-recipient values: each is an age
// recipient (age1…) or a file of them, one a line (# comments and blank
// lines ignored), as age -R reads it. It returns the recipients once each,
// in order.
func ParseRecipients(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		a = strings.TrimSpace(a)
		if strings.HasPrefix(a, "age1") {
			r, err := parseRecipient(a)
			if err != nil {
				return nil, fmt.Errorf("--backup-recipient %q: %w: an age recipient is age1… (age-keygen -y KEYFILE prints yours), or give a file of them", a, err)
			}
			out = appendNew(out, r)
			continue
		}
		if strings.HasPrefix(a, "AGE-SECRET-KEY-") {
			return nil, fmt.Errorf("--backup-recipient: %w: that is a private key, not a recipient; give its public half (age-keygen -y KEYFILE prints it), and keep the key itself off the command line", ErrBadRecipient)
		}
		rs, err := recipientFile(a)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			out = appendNew(out, r)
		}
	}
	return out, nil
}

// recipientFile reads a file of age recipients. Its lines are never
// quoted in errors: a private key file given by mistake must not end up in
// a log.
func recipientFile(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("--backup-recipient %q: %w: it is neither an age recipient (age1…) nor a file of them", p, ErrBadRecipient)
		}
		return nil, fmt.Errorf("--backup-recipient: reading %s: %w", p, err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			return nil, fmt.Errorf("--backup-recipient %s: line %d is a private key, not a recipient: give a file of public keys (age-keygen -y %s prints them)", p, n, p)
		}
		r, err := parseRecipient(line)
		if err != nil {
			return nil, fmt.Errorf("--backup-recipient %s: line %d: %w: each line must be an age recipient (age1…)", p, n, err)
		}
		out = appendNew(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--backup-recipient %s: %w", p, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--backup-recipient %s: %w: the file holds no recipient", p, ErrBadRecipient)
	}
	return out, nil
}

// SopsRecipients returns the age recipients of every creation rule of a
// .sops.yaml, once each in the order they come, read as the sops checks
// read it (secrets.LoadSopsConfig). A recipient that does not parse is an
// error naming the file: the sops checks would refuse it too.
func SopsRecipients(path string) ([]string, error) {
	sc, err := secrets.LoadSopsConfig(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, rule := range sc.Rules {
		for _, a := range rule.Age {
			r, err := parseRecipient(a)
			if err != nil {
				return nil, fmt.Errorf("%s: rule %d: %q: %w: fix it, or give the backup's recipients with --backup-recipient", path, i+1, a, err)
			}
			out = appendNew(out, r)
		}
	}
	return out, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Identities are the operator's age identities, read from files. The keys
// stay in memory: they are never printed, logged or passed on.
type Identities struct {
	ids   []age.Identity
	recip []string // the recipient of each identity that has one
	// Files are the files they were read from; Skipped says what was left
	// out (plugin identities, which need a program bigbang does not run).
	Files   []string
	Skipped []string
}

// DefaultIdentityFiles are where sops looks for the operator's age keys, in
// order: $SOPS_AGE_KEY_FILE, then $XDG_CONFIG_HOME/sops/age/keys.txt, or
// without XDG_CONFIG_HOME ~/.config/sops/age/keys.txt
// (~/Library/Application Support/sops/age/keys.txt on macOS).
func DefaultIdentityFiles() []string {
	var out []string
	if f := os.Getenv("SOPS_AGE_KEY_FILE"); f != "" {
		out = append(out, f)
	}
	home, _ := os.UserHomeDir()
	switch x := os.Getenv("XDG_CONFIG_HOME"); {
	case x != "" && filepath.IsAbs(x):
		out = append(out, filepath.Join(x, "sops", "age", "keys.txt"))
	case home == "":
	case runtime.GOOS == "darwin":
		out = append(out, filepath.Join(home, "Library", "Application Support", "sops", "age", "keys.txt"))
	default:
		out = append(out, filepath.Join(home, ".config", "sops", "age", "keys.txt"))
	}
	return out
}

// LoadIdentities reads the age identities of file, or when file is empty
// those of DefaultIdentityFiles that exist. A file that is missing,
// unreadable or holds no identity is an error when it was named; among the
// defaults, missing ones are passed over.
func LoadIdentities(file string) (*Identities, error) {
	ids := &Identities{}
	if file != "" {
		if err := ids.read(file); err != nil {
			return nil, err
		}
		return ids, nil
	}
	for _, f := range DefaultIdentityFiles() {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := ids.read(f); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// read adds the identities of one file. Lines are never quoted in errors:
// they are private keys.
func (ids *Identities) read(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading the age identity %s: %w", p, err)
	}
	defer clear(b)
	if bytes.HasPrefix(b, []byte(AgeMagic)) || bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		return fmt.Errorf("the age identity %s is itself encrypted (a passphrase-protected key): decrypt it into a file only you can read (age -d -o FILE %s; chmod 600 FILE) and give that with %s FILE", p, p, IdentityFlag)
	}
	n, found := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "AGE-PLUGIN-"):
			ids.Skipped = append(ids.Skipped, fmt.Sprintf("%s line %d: a plugin identity (bigbang runs no age plugin)", p, n))
			continue
		case !strings.HasPrefix(line, "AGE-SECRET-KEY-"):
			return fmt.Errorf("the age identity %s: line %d is not an age secret key (AGE-SECRET-KEY-1…): give a file as age-keygen writes it with %s", p, n, IdentityFlag)
		}
		parsed, err := age.ParseIdentities(strings.NewReader(line))
		if err != nil || len(parsed) != 1 {
			return fmt.Errorf("the age identity %s: line %d is not a valid age secret key: give a file as age-keygen writes it with %s", p, n, IdentityFlag)
		}
		id := parsed[0]
		ids.ids = append(ids.ids, id)
		switch k := id.(type) {
		case *age.X25519Identity:
			ids.recip = append(ids.recip, k.Recipient().String())
		case *age.HybridIdentity:
			ids.recip = append(ids.recip, k.Recipient().String())
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the age identity %s: %w", p, err)
	}
	if found == 0 && len(ids.Skipped) == 0 {
		return fmt.Errorf("the age identity %s holds no age secret key (AGE-SECRET-KEY-1…): give the file age-keygen wrote with %s", p, IdentityFlag)
	}
	ids.Files = append(ids.Files, p)
	return nil
}

// Opens reports whether one of the identities is one of recipients (by its
// public half).
func (ids *Identities) Opens(recipients []string) bool {
	if ids == nil {
		return false
	}
	for _, r := range ids.recip {
		if slices.Contains(recipients, r) {
			return true
		}
	}
	return false
}

// where says which files were read, for errors.
func (ids *Identities) where(file string) string {
	if file != "" {
		return file
	}
	if ids != nil && len(ids.Files) > 0 {
		return strings.Join(ids.Files, ", ")
	}
	return "none of " + strings.Join(DefaultIdentityFiles(), ", ") + " (none exists)"
}

// noIdentity is the error of an archive (or a backup to come) for
// recipients that none of the identities read from file (or the default
// places) opens.
func noIdentity(what string, recipients []string, ids *Identities, file string) error {
	left := ""
	if ids != nil && len(ids.Skipped) > 0 {
		left = "; left out: " + strings.Join(ids.Skipped, "; ")
	}
	return fmt.Errorf("%w: %s is for the age recipients %s; the identities read (%s) are none of them: give the file of one of their keys with %s FILE (or set SOPS_AGE_KEY_FILE)%s",
		ErrNoIdentity, what, strings.Join(recipients, ", "), ids.where(file), IdentityFlag, left)
}

// encrypter returns the age writer to recipients over w; Close ends the
// age stream (it does not close w).
func encrypter(w io.Writer, recipients []string) (io.WriteCloser, error) {
	rs := make([]age.Recipient, 0, len(recipients))
	for _, s := range recipients {
		parsed, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil || len(parsed) != 1 {
			return nil, fmt.Errorf("%q: %w", s, ErrBadRecipient)
		}
		rs = append(rs, parsed[0])
	}
	ew, err := age.Encrypt(w, rs...)
	if err != nil {
		return nil, fmt.Errorf("encrypting the archive to %s: %w", strings.Join(recipients, ", "), err)
	}
	return ew, nil
}

// decrypter returns the plaintext of an age stream read from r.
func (ids *Identities) decrypter(r io.Reader) (io.Reader, error) {
	if ids == nil || len(ids.ids) == 0 {
		return nil, ErrNoIdentity
	}
	return age.Decrypt(r, ids.ids...)
}

// prepareEncryption decides what a backup is encrypted to: opts.Recipients
// (age1… or files of them), else the age recipients of opts.SopsConfig;
// none refuses the backup unless opts.Plaintext. Before anything runs it
// makes sure an identity at hand (opts.Identity, or sops's default places)
// is one of the recipients, so the restore that follows the install can
// open the archive. It returns nil recipients for a plaintext archive.
func prepareEncryption(opts BackupOptions) ([]string, *Identities, error) {
	if opts.Plaintext {
		return nil, nil, nil
	}
	recipients, err := ParseRecipients(opts.Recipients)
	if err != nil {
		return nil, nil, err
	}
	from := "--backup-recipient"
	if len(recipients) == 0 && opts.SopsConfig != "" {
		if _, serr := os.Stat(opts.SopsConfig); serr == nil {
			if recipients, err = SopsRecipients(opts.SopsConfig); err != nil {
				return nil, nil, err
			}
			from = opts.SopsConfig
		}
	}
	if len(recipients) == 0 {
		where := "the flake has no .sops.yaml"
		if opts.SopsConfig != "" {
			where = "no age recipient in " + opts.SopsConfig
			if _, serr := os.Stat(opts.SopsConfig); serr != nil {
				where = opts.SopsConfig + " does not exist"
			}
		}
		return nil, nil, fmt.Errorf("%w: the backup holds the host key and every secret and is encrypted with age, but %s: give your recipient with --backup-recipient age1… (age-keygen -y ~/.config/sops/age/keys.txt prints it), or write it in the clear with --plaintext-backup", ErrNoRecipient, where)
	}
	ids, err := LoadIdentities(opts.Identity)
	if err != nil {
		return nil, nil, err
	}
	if !ids.Opens(recipients) {
		return nil, nil, fmt.Errorf("%w; nothing was backed up (the restore after the install must open the archive)", noIdentity("the backup (recipients from "+from+")", recipients, ids, opts.Identity))
	}
	return recipients, ids, nil
}
