package main

// What the stand-in really does on the target, the way nixos-anywhere
// 1.13.0 does it: OpenSSH's ssh with the options the real one passes
// (IdentitiesOnly with -i, no known_hosts, no host key checking, then -p and
// --ssh-option in command-line order), a facts script in the shape of its
// get-facts.sh, the extra files streamed with tar into the target root, and
// a reboot that the target is told to do. Only what is safe on a test host
// on this machine is done for real: kexec, disko and nixos-install stay
// printed. The /mnt of the real one is the test host's target root
// (STANDIN_TARGET_ROOT); without it the extra files are not copied, so that
// nothing is ever written to this machine's own /mnt.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// liveControl is what the STANDIN_ variables say about the real target.
type liveControl struct {
	offline      bool
	targetRoot   string
	rebootReq    string
	hostKeyPath  string
	rebootDelay  time.Duration
	connectTries int // 0: forever
}

func readLiveControl() (liveControl, error) {
	c := liveControl{rebootDelay: time.Second}
	v := os.Getenv("STANDIN_OFFLINE")
	c.offline = v != "" && v != "0"
	c.targetRoot = os.Getenv("STANDIN_TARGET_ROOT")
	c.rebootReq = os.Getenv("STANDIN_REBOOT_REQUEST")
	c.hostKeyPath = os.Getenv("STANDIN_HOSTKEY_PATH")
	if c.hostKeyPath == "" && c.targetRoot != "" {
		c.hostKeyPath = filepath.Join(c.targetRoot, "persistent", "etc", "ssh", "ssh_host_ed25519_key")
	}
	var err error
	if v := os.Getenv("STANDIN_REBOOT_DELAY"); v != "" {
		if c.rebootDelay, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("STANDIN_REBOOT_DELAY: %w", err)
		}
	}
	if v := os.Getenv("STANDIN_CONNECT_TRIES"); v != "" {
		if c.connectTries, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("STANDIN_CONNECT_TRIES: %w", err)
		}
	}
	return c, nil
}

// documentation holds the address blocks reserved for examples (RFC 5737,
// RFC 3849): the stand-in never tries to reach them, so tests and
// benchmarks that use them stay print-only.
var documentation = func() []*net.IPNet {
	var nets []*net.IPNet
	for _, c := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		_, n, _ := net.ParseCIDR(c)
		nets = append(nets, n)
	}
	return nets
}()

// isLive says whether the stand-in really connects to host.
func isLive(c liveControl, host string) bool {
	if c.offline {
		return false
	}
	h := strings.Trim(host, "[]")
	if ip := net.ParseIP(h); ip != nil {
		for _, n := range documentation {
			if n.Contains(ip) {
				return false
			}
		}
	}
	for _, tld := range []string{".invalid", ".example", ".test"} {
		if strings.HasSuffix(h, tld) {
			return false
		}
	}
	return true
}

// connection is user@host as nixos-anywhere passes it to ssh: the host as
// the operator gave it. OpenSSH cannot resolve a bracketed IPv6 literal
// ("root@[::1]"), and the stand-in's real ssh fails on it just as
// nixos-anywhere's does.
func (in *installer) connection() string {
	return in.user + "@" + in.host
}

// sshArgv is the ssh command line of nixos-anywhere's runSsh: -t when its
// own stdin is a terminal (ssh then says that it allocates none, because
// the stand-in gives it a pipe or /dev/null), the built-in options, -p and
// --ssh-option in the order given, extra, the connection and the command.
func (in *installer) sshArgv(extra []string, command ...string) []string {
	argv := []string{"ssh"}
	if isTerminal(0) {
		argv = append(argv, "-t")
	} else {
		argv = append(argv, "-T")
	}
	if in.opts.identity != "" {
		argv = append(argv, "-o", "IdentitiesOnly=yes", "-i", in.opts.identity)
	}
	argv = append(argv, "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no")
	argv = append(argv, in.opts.sshArgs...)
	argv = append(argv, extra...)
	argv = append(argv, in.connection())
	return append(argv, command...)
}

// command prepares a local command whose output goes where the stand-in's
// own goes (the terminal, and the STANDIN_COPY file).
func (in *installer) command(argv []string, stdin io.Reader) *exec.Cmd {
	in.out.flush()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = stdin
	cmd.Stdout = in.out.raw[stdout]
	cmd.Stderr = in.out.raw[stderr]
	return cmd
}

// runSSH runs one ssh command; a failure ends the run with ssh's status
// (255 when ssh itself failed, else the remote command's), as `set -e`
// does in nixos-anywhere.
func (in *installer) runSSH(extra []string, stdin io.Reader, command ...string) error {
	return exitErr(in.command(in.sshArgv(extra, command...), stdin).Run())
}

// exitErr turns a command's error into the stand-in's exit status.
func exitErr(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code > 0 {
			return errFail{code}
		}
		return errFail{1}
	}
	fmt.Fprintln(os.Stderr, err)
	return errFail{127}
}

// sshCopyIDLive is one try of ssh-copy-id against the live target: its
// login with the key (the filter for keys the target already has) is real,
// and then it reports the key as added, as it does on a fresh VPS. A
// failure is printed as ssh-copy-id prints it: ssh's error after "ERROR:",
// or, when the key is refused, ssh's "Permission denied" after the try to
// install the key.
func (in *installer) sshCopyIDLive() error {
	var errb bytes.Buffer
	cmd := in.command(in.sshArgv([]string{"-o", "ConnectTimeout=10"}, "exit", "0"), nil)
	cmd.Stderr = &errb
	err := exitErr(cmd.Run())
	msg := strings.TrimRight(strings.ReplaceAll(errb.String(), "\r\n", "\n"), "\n")
	switch {
	case err == nil:
		in.out.line(stderr, "/usr/bin/ssh-copy-id: INFO: 1 key(s) remain to be installed -- if you are prompted now it is to install the new keys")
		if msg != "" {
			in.out.lines(stderr, msg)
		}
		return nil
	case strings.Contains(msg, "Permission denied"):
		in.out.line(stderr, "/usr/bin/ssh-copy-id: INFO: 1 key(s) remain to be installed -- if you are prompted now it is to install the new keys")
		in.out.lines(stderr, msg)
	default:
		in.out.line(stderr, "")
		for _, l := range strings.Split(msg, "\n") {
			if strings.HasPrefix(l, "Warning: Permanently added") {
				in.out.line(stderr, l)
				continue
			}
			in.out.line(stderr, "/usr/bin/ssh-copy-id: ERROR: "+l)
		}
		in.out.line(stderr, "")
	}
	return err
}

// factsScript has the shape of nixos-anywhere's get-facts.sh: key=value
// lines that the caller filters with ^(has|is|remote)…=.
const factsScript = `set -efu
has() { command -v "$1" >/dev/null && echo y || echo n; }
isNixos=n
if test -f /etc/os-release && grep -Eq 'ID(_LIKE)?="?nixos"?' /etc/os-release; then isNixos=y; fi
echo "isOs=$(uname)"
echo "isArch=$(uname -m)"
echo "isNixos=$isNixos"
if [ "$isNixos" = y ] && grep -Eq 'VARIANT_ID="?installer"?' /etc/os-release; then echo isInstaller=y; else echo isInstaller=n; fi
if [ "$(has systemd-detect-virt)" = y ]; then echo "isContainer=$(systemd-detect-virt --container || true)"; else echo isContainer=none; fi
if [ "$(id -u)" -eq 0 ]; then echo isRoot=y; else echo isRoot=n; fi
echo hasIpv6Only=n
echo "hasTar=$(has tar)"
echo "hasCpio=$(has cpio)"
echo "hasSudo=$(has sudo)"
echo "hasDoas=$(has doas)"
echo "hasWget=$(has wget)"
echo "hasCurl=$(has curl)"
if [ "$(has setsid)" = y ] && setsid --wait true 2>/dev/null; then echo hasSetsid=y; else echo hasSetsid=n; fi
echo "hasNixOSFacter=$(has nixos-facter)"
`

// factNames are the facts nixos-anywhere refuses to go on without.
var factNames = []string{"isOs", "isArch", "isInstaller", "isContainer", "isRoot", "hasIpv6Only", "hasTar", "hasCpio",
	"hasSudo", "hasDoas", "hasWget", "hasCurl", "hasSetsid"}

// importFacts runs the facts script on the target, as nixos-anywhere's
// importFacts does: a failed ssh ends the run with status 1.
func (in *installer) importFacts() error {
	var out bytes.Buffer
	cmd := in.command(in.sshArgv([]string{"-o", "ConnectTimeout=10"}, "enableDebug=", "sh", "--"), strings.NewReader(factsScript))
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return errFail{1}
	}
	facts := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || v == "" || strings.ContainsAny(v, " \t") || !(strings.HasPrefix(k, "has") || strings.HasPrefix(k, "is") || strings.HasPrefix(k, "remote")) {
			continue
		}
		facts[k] = v
	}
	if len(facts) == 0 {
		return in.abort("Retrieving host facts via SSH failed. Check with --debug for the root cause, unless you have done so already")
	}
	for _, k := range factNames {
		if facts[k] == "" {
			return in.abort("Failed to retrieve fact " + k + " from host")
		}
	}
	in.remoteFacts = facts
	return nil
}

// checkFacts is what nixos-anywhere's main refuses after the first facts.
func (in *installer) checkFacts() error {
	f := in.remoteFacts
	switch {
	case f["hasTar"] == "n":
		return in.abort("no tar command found, but required to unpack kexec tarball")
	case f["hasCpio"] == "n":
		return in.abort("no cpio command found, but required to build the new initrd")
	case f["hasSetsid"] == "n":
		return in.abort("no setsid command respecting --wait found, but required to run the kexec script under a new session")
	case f["isOs"] != "Linux":
		return in.abort("This script requires Linux as the operating system, but got " + f["isOs"])
	}
	return nil
}

func (in *installer) abort(msg string) error {
	in.out.line(stderr, "aborted: "+msg)
	return errFail{1}
}

// waitReachable is the wait for the kexec installer:
// `until ssh -o ConnectTimeout=10 -- exit 0; do sleep 5; done`, on the
// port after kexec. The test host never went away, so the first try
// answers when that port is the test host's; on another port ssh's
// "Connection refused" comes every 5 s, for ever, as it does from
// nixos-anywhere when the installer does not come up.
func (in *installer) waitReachable() {
	for in.runSSH([]string{"-o", "ConnectTimeout=10"}, nil, "--", "exit", "0") != nil {
		in.out.flush()
		time.Sleep(5 * time.Second)
	}
}

// copyExtraFilesLive is `tar -C <extra-files> -cpf- . | ssh … "tar -C /mnt
// -xf- --no-same-owner"`, then `ssh … "chmod 755 /mnt"`, with the target
// root for /mnt. With pipefail, the first failing status of the pipeline
// ends the run.
func (in *installer) copyExtraFilesLive() error {
	root := steps.ShellQuote(in.live.targetRoot)
	in.out.flush()
	pack := exec.Command("tar", "-C", in.opts.extraFiles, "-cpf-", ".")
	pack.Stderr = in.out.raw[stderr]
	pipe, err := pack.StdoutPipe()
	if err != nil {
		return exitErr(err)
	}
	if err := pack.Start(); err != nil {
		return exitErr(err)
	}
	sshErr := in.runSSH(nil, pipe, "tar -C "+root+" -xf- --no-same-owner")
	packErr := exitErr(pack.Wait())
	// pipefail: the status of the last command that failed.
	if sshErr != nil {
		return sshErr
	}
	if packErr != nil {
		return packErr
	}
	return in.runSSH(nil, nil, "chmod 755 "+root)
}

// rebootLive tells the target to reboot, as nixos-anywhere's nixosReboot
// does with `nohup sh -c 'sleep 6 && reboot' &`: the test host's reboot is
// a request file naming how long it stays down and the host key it comes
// back with (the one that arrived with the extra files; none, when it did
// not arrive: the host then makes a new one, as a NixOS without a
// pre-generated key does). With STANDIN_REBOOT=never the request is not
// written: the machine stays up. Then it waits for the machine to drop
// off, as nixos-anywhere does: `while timeout 10 ssh … -- exit 0; do sleep
// 1; done`, each login printing ssh's "Warning: Permanently added …".
func (in *installer) rebootLive() error {
	script := "true\n"
	if !in.ctl.rebootNever {
		key := in.live.hostKeyPath
		if _, err := os.Stat(key); err != nil {
			key = ""
		}
		req := in.live.rebootReq
		write := "printf '%s %s\\n' " + steps.ShellQuote(in.live.rebootDelay.String()) + " " + steps.ShellQuote(key) +
			" > " + steps.ShellQuote(req+".tmp") + " && mv " + steps.ShellQuote(req+".tmp") + " " + steps.ShellQuote(req)
		script = "nohup sh -c " + steps.ShellQuote("sleep 0.2 && "+write) + " >/dev/null 2>&1 &\n"
	}
	if err := in.runSSH(nil, strings.NewReader(script), "sh"); err != nil {
		return err
	}
	in.step("Waiting for the machine to become unreachable due to reboot")
	// nixos-anywhere sleeps 1 s between logins; a test host that stays
	// down for less than that is polled often enough not to miss it.
	pause := time.Second
	if !in.ctl.rebootNever {
		pause = min(pause, in.live.rebootDelay/3)
	}
	for {
		argv := append([]string{"timeout", "10"}, in.sshArgv(nil, "--", "exit", "0")...)
		if in.command(argv, nil).Run() != nil {
			return nil
		}
		time.Sleep(pause)
	}
}

// hangRemote is a hang inside a remote command (a stalled copy): an ssh
// whose remote command waits for input that never comes. It ends only when
// the stand-in's process group is stopped.
func (in *installer) hangRemote() {
	r, w, err := os.Pipe()
	if err == nil {
		// w stays open: the remote cat never sees the end of its input.
		defer w.Close()
		_ = in.runSSH(nil, r, "cat >/dev/null")
	}
	for {
		time.Sleep(time.Hour)
	}
}
