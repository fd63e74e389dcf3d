package remote

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// IDRootKeys is the check that the key nixos-anywhere logs in with reaches
// root in the NixOS installer. nixos-anywhere 1.13.0 first adds its key to
// the login user's ~/.ssh/authorized_keys with ssh-copy-id (which skips a
// key that already logs in); the default kexec image's kexec/run then
// copies into the installer's /root/.ssh/authorized_keys the keys of
// root's ~/.ssh/authorized_keys and authorized_keys2 and
// /etc/ssh/authorized_keys.d/root, and, run through sudo or doas, the same
// files of the login user. On a machine that already runs the installer
// nixos-anywhere copies only the login user's ~/.ssh/authorized_keys to
// root. A key that logs in from anywhere else (another AuthorizedKeysFile,
// an AuthorizedKeysCommand) does not reach root, and the login to root@
// after kexec fails.
const IDRootKeys = "remote.root_keys"

// travelFiles returns the target's authorized_keys files whose keys root
// has in the installer.
func travelFiles(f Facts) []string {
	uak := path.Join(f.Home, ".ssh/authorized_keys")
	if f.IsInstaller() {
		out := []string{uak, "/etc/ssh/authorized_keys.d/root"}
		if f.AuthKeyFiles[uak] == "absent" {
			// nixos-anywhere's cp fails and leaves root's file alone.
			out = append(out, "/root/.ssh/authorized_keys")
		}
		return out
	}
	out := []string{"/root/.ssh/authorized_keys", "/root/.ssh/authorized_keys2", "/etc/ssh/authorized_keys.d/root"}
	if !f.IsRoot {
		out = append(out, uak, path.Join(f.Home, ".ssh/authorized_keys2"), "/etc/ssh/authorized_keys.d/"+f.User)
	}
	return out
}

// filesWithKey returns the files of the facts that hold the key with the
// fingerprint fp.
func filesWithKey(f Facts, fp string) []string {
	var out []string
	for _, k := range f.AuthKeys {
		if k.Fingerprint == fp && !slices.Contains(out, k.File) {
			out = append(out, k.File)
		}
	}
	return out
}

// sshdReads reports whether sshd's AuthorizedKeysFile (as `sshd -T` prints
// it) includes file, the login user's; known is false when the setting was
// not read.
func sshdReads(f Facts, file string) (reads, known bool) {
	v, ok := f.SSHD["authorizedkeysfile"]
	if !ok {
		return false, false
	}
	for _, p := range strings.Fields(v) {
		p = strings.NewReplacer("%%", "%", "%u", f.User, "%h", f.Home, "%U", fmt.Sprint(f.UID)).Replace(p)
		if strings.HasPrefix(p, "~/") {
			p = path.Join(f.Home, p[2:])
		} else if !strings.HasPrefix(p, "/") {
			p = path.Join(f.Home, p)
		}
		if path.Clean(p) == path.Clean(file) {
			return true, true
		}
	}
	return false, true
}

// keysCommand returns sshd's AuthorizedKeysCommand, "" when none.
func keysCommand(f Facts) string {
	c := strings.TrimSpace(f.SSHD["authorizedkeyscommand"])
	if strings.EqualFold(c, "none") {
		return ""
	}
	return c
}

// strictModesProblem returns why sshd's StrictModes ignores the login
// user's authorized_keys ("" when it does not): a group- or
// world-writable home, ~/.ssh or file, or one owned by another user.
func strictModesProblem(f Facts) string {
	if strings.EqualFold(f.SSHD["strictmodes"], "no") {
		return ""
	}
	for _, m := range f.AuthKeysModes {
		switch {
		case m.Mode&0o022 != 0:
			return fmt.Sprintf("%s is group- or world-writable (mode %04o)", m.Path, m.Mode)
		case m.UID != f.UID && m.UID != 0:
			return fmt.Sprintf("%s belongs to uid %d, not %s", m.Path, m.UID, f.User)
		}
	}
	return ""
}

func short(fp string) string {
	if len(fp) > 19 {
		return fp[:19] + "…"
	}
	return fp
}

func checkRootKeys(f Facts, o CheckOptions) steps.Check {
	installer := f.IsInstaller()
	switch {
	case f.AuthKeyFiles == nil:
		return skip(IDRootKeys, "the target's authorized_keys files were not read, so the keys that reach root after kexec were not checked")
	case o.SkipKexec && !installer:
		return skip(IDRootKeys, "this run leaves kexec out: nixos-anywhere logs in to root@ directly with the key it is given")
	case installer && f.IsRoot:
		return ok(IDRootKeys, "logged in to the installer as root: the install goes on with this login")
	}
	where := "the kexec installer copies to root"
	if installer {
		where = "nixos-anywhere copies to root in the installer"
	}
	travel := travelFiles(f)
	uak := path.Join(f.Home, ".ssh/authorized_keys")
	login := o.LoginUser
	if login == "" {
		login = f.User
	}
	host := o.Host
	if host == "" {
		host = "<host>"
	}
	accepted := o.AuthKeyFingerprint
	var inTravel []string
	if accepted != "" {
		for _, file := range filesWithKey(f, accepted) {
			if slices.Contains(travel, file) {
				inTravel = append(inTravel, file)
			}
		}
	}

	if o.Identity != "" && o.IdentityAccepted {
		// ssh-copy-id skips the key (it already logs in): it reaches root
		// only if a file that travels holds it.
		if accepted == "" {
			return skip(IDRootKeys, "which key logged in is not known, so the files that travel to root were not searched for it")
		}
		if len(inTravel) > 0 {
			return ok(IDRootKeys, "the key you log in with (%s, %s) is in %s, which %s", o.Identity, short(accepted), strings.Join(inTravel, ", "), where)
		}
		addFix := fmt.Sprintf("put the key into ~/.ssh/authorized_keys of %s on the target: ssh-copy-id -f -i %s %s@%s (-f adds it although it already logs in)",
			login, steps.ShellQuote(o.Identity), login, host)
		unread := unreadFiles(f, travel)
		if len(unread) > 0 {
			return warn(IDRootKeys, fmt.Sprintf("the key you log in with (%s) is in none of the files %s that could be read; %s could not be read (no root, no passwordless sudo)",
				short(accepted), where, strings.Join(unread, ", ")),
				addFix+"; or give the login user passwordless sudo so bigbang can read root's files")
		}
		var why string
		others := filesWithKey(f, accepted)
		switch {
		case installer && slices.Contains(others, "/etc/ssh/authorized_keys.d/"+f.User):
			why = fmt.Sprintf("it is only in /etc/ssh/authorized_keys.d/%s, and in the installer nixos-anywhere copies only ~/.ssh/authorized_keys to root", f.User)
			addFix = fmt.Sprintf("on the target: mkdir -p ~/.ssh && cat /etc/ssh/authorized_keys.d/%s >> ~/.ssh/authorized_keys (or log in as root: --user root)", f.User)
		case len(others) > 0:
			why = "it is only in " + strings.Join(others, ", ")
		case keysCommand(f) != "":
			why = "sshd takes it from its AuthorizedKeysCommand (" + keysCommand(f) + "), which the installer does not have"
		case f.SSHD["authorizedkeysfile"] != "":
			why = "sshd reads it from AuthorizedKeysFile " + f.SSHD["authorizedkeysfile"] + ", outside the files that travel"
		default:
			why = "it logs in from somewhere none of those files is"
		}
		return fail(IDRootKeys, fmt.Sprintf("the key you log in with (%s, %s) will not reach root: %s. After kexec nixos-anywhere's login to root@%s fails (Permission denied, or a password prompt) and the machine sits in the RAM installer until it is rebooted from the provider's console",
			o.Identity, short(accepted), why, host), addFix)
	}

	// nixos-anywhere's key (its own, or a -i key the target does not
	// accept yet) is added by ssh-copy-id to ~/.ssh/authorized_keys, and
	// travels from there.
	key := "nixos-anywhere's own install key (no -i)"
	if o.Identity != "" {
		key = "the -i key " + o.Identity + " (the target does not accept it yet)"
	}
	useI := ""
	if len(inTravel) > 0 {
		k := o.AuthKeyFile
		if k == "" {
			k = "the private key file of the agent key " + short(accepted)
		}
		useI = fmt.Sprintf("pass -i %s, the key you log in with: it already logs in and reaches root (%s), so nothing has to be written", k, strings.Join(inTravel, ", "))
	}
	var fails, fixes []string
	if !f.AuthKeysWritable {
		what := uak + " cannot be written by " + f.User
		if strings.HasPrefix(f.AuthKeysLink, "/nix/store/") {
			what = uak + " is a read-only link into " + f.AuthKeysLink + " (home-manager's)"
		}
		fails = append(fails, fmt.Sprintf("%s goes into %s with ssh-copy-id, but %s: 'Uploading install SSH keys' then retries forever", key, uak, what))
		if useI != "" {
			fixes = append(fixes, useI)
		}
		fixes = append(fixes, "or make "+uak+" a writable file of "+f.User+" (home-manager: leave it out of home.file)")
	}
	reads, known := sshdReads(f, uak)
	if known && !reads {
		fails = append(fails, fmt.Sprintf("sshd reads keys only from AuthorizedKeysFile %s, not %s: the install key ssh-copy-id adds there would not log in, and nixos-anywhere stops at its first command",
			f.SSHD["authorizedkeysfile"], uak))
		if useI != "" && f.AuthKeysWritable {
			fixes = append(fixes, useI)
		} else if useI == "" {
			fixes = append(fixes, "add .ssh/authorized_keys to AuthorizedKeysFile in the target's /etc/ssh/sshd_config and reload sshd, or pass -i with a key that is in "+uak)
		}
	}
	if p := strictModesProblem(f); p != "" {
		fails = append(fails, fmt.Sprintf("sshd's StrictModes ignores %s because %s: the install key added there would not log in", uak, p))
		fixes = append(fixes, "on the target: chmod go-w ~ ~/.ssh ~/.ssh/authorized_keys")
	}
	if len(fails) > 0 {
		return fail(IDRootKeys, strings.Join(fails, "; "), strings.Join(fixes, "; "))
	}
	if o.Identity == "" && o.AuthKeyFile != "" && accepted != "" && len(inTravel) == 0 && !unreadable(f, travel) {
		// ssh-copy-id logs in with nixos-anywhere's key and the identity
		// files of the ssh configuration: when one of those logs in, it
		// installs nothing ("All keys were skipped").
		return warn(IDRootKeys, fmt.Sprintf("the key you log in with (%s) is in none of the files %s: if your ssh configuration names it as IdentityFile for this host, "+
			"ssh-copy-id logs in with it, adds no install key ('All keys were skipped'), and the login to root@%s after kexec fails", o.AuthKeyFile, where, host),
			"pass -i with a key that is in "+uak+" (ssh-copy-id -f -i KEY "+login+"@"+host+" puts one there)")
	}
	note := ""
	if !known {
		note = " (sshd's configuration could not be read; its default reads that file)"
	}
	return ok(IDRootKeys, "%s goes into %s (writable, read by sshd%s), which %s", key, uak, note, where)
}

// unreadFiles returns the files of list the facts script could not read.
func unreadFiles(f Facts, list []string) []string {
	var out []string
	for _, file := range list {
		if s := f.AuthKeyFiles[file]; s == "unknown" || s == "unreadable" {
			out = append(out, file)
		}
	}
	return out
}

func unreadable(f Facts, list []string) bool { return len(unreadFiles(f, list)) > 0 }
