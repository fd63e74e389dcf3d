// Command standin-nixos-anywhere is a stand-in for nixos-anywhere 1.13.0,
// for bigbang's tests. It is not nixos-anywhere and installs nothing.
//
// It accepts the options of nixos-anywhere 1.13.0 and prints the step lines
// of 1.13.0 in their order, with realistic output between them on stdout and
// stderr as the real one does (ssh warnings, ssh-copy-id INFO lines, the kexec
// tarball list, `+ …` trace lines, disko's sgdisk/mkfs output, `copying path`
// lines, nixos-install's lines and the reboot wait). Phases not given with
// --phases are skipped; the local build output appears only with
// --build-on local (auto is treated as remote).
//
// Tests steer it with environment variables:
//
//	STANDIN_PACE=10ms          delay before every line
//	STANDIN_FAIL_PHASE=disko   fail in this phase (build, connect, kexec, disko, keys, install, reboot)
//	STANDIN_FAIL_STATUS=1      exit status of that failure (default 1)
//	STANDIN_FAIL_TEXT=…        text printed to stderr before failing (default: a realistic one per phase)
//	STANDIN_HANG_PHASE=kexec   stop printing in this phase and wait until killed
//	STANDIN_FLOOD=1000000      print this many `copying path` lines while copying the closure
//	STANDIN_PIDFILE=path       write "pid=… pgid=… sid=…" (and "grandchild=…") to this file
//	STANDIN_GRANDCHILD=1       start a grandchild `sleep` in the same process group;
//	                           "stubborn" makes it ignore SIGINT, SIGTERM and SIGHUP
//	STANDIN_IGNORE_INT=1       ignore SIGINT (so that a caller must escalate)
//	STANDIN_REPORT_TTY=1       print whether stdin, stdout and stderr are terminals
//	STANDIN_MARKER=path        create this file first thing (proves that it ran)
//	STANDIN_COPY=path          write a copy of every byte printed, in order, to this file
//	STANDIN_REBOOT=never       the reboot never happens: the wait for the machine to go
//	                           down goes on for ever, a "Warning: Permanently added …"
//	                           line about every 1.2 s, as nixos-anywhere's does
//	STANDIN_CONNECT=refused    every ssh-copy-id login fails ("denied": Permission denied,
//	                           "unresolvable": the host name does not resolve) and is
//	                           retried every 3 s, printing ssh-copy-id's lines each time;
//	                           without it only a real failing login (or a bracketed IPv6
//	                           host, which OpenSSH cannot resolve) does that
//	STANDIN_POST_KEXEC_DEFAULT=22  the port after kexec when --post-kexec-ssh-port is not
//	                           given: 22, as nixos-anywhere's default. -p is replaced only
//	                           when it was given, as nixos-anywhere does.
//	STANDIN_PROGRESS=0         never draw nix's status line. Otherwise, when stderr is a
//	                           terminal, the local build, the disko script build and the
//	                           closure copy or build draw it as nix does: "\r[1/3 built, 2
//	                           copied (12.3/40.1 MiB)] …\x1b[K", never ending the line,
//	                           instead of nix's log lines (which nix prints only without
//	                           a terminal)
//	STANDIN_PROGRESS_FRAMES=4  how many states of the status line each of those draws
//	STANDIN_PROGRESS_EVERY=50ms  the time between two states (the disko script's
//	                           states come at once: it is small and usually cached)
//
// Unless the target is offline (see remote.go), it also really does what
// nixos-anywhere does over ssh, against a test host on this machine:
//
//	STANDIN_OFFLINE=1          print only, never connect (also for TEST-NET addresses)
//	STANDIN_TARGET_ROOT=dir    the test host's target root, standing in for /mnt:
//	                           the extra files are streamed into it with tar over ssh
//	STANDIN_REBOOT_REQUEST=f   the test host's reboot request file: the reboot phase
//	                           "reboots" the host onto the host key that came with
//	                           the extra files
//	STANDIN_HOSTKEY_PATH=f     that host key (default <target root>/persistent/etc/ssh/ssh_host_ed25519_key)
//	STANDIN_REBOOT_DELAY=1s    how long the host stays down
//	STANDIN_CONNECT_TRIES=n    give up the ssh-copy-id login after n tries (default:
//	                           retry every 3 s forever, as nixos-anywhere does)
//
// Each phase is one method of installer.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const usageHead = "stand-in for nixos-anywhere 1.13.0, for bigbang's tests\n\n"

const usage = `Usage: nixos-anywhere [options] [<ssh-host>]

Options:

* -f, --flake <flake_uri>
* --target-host <ssh-host>
* -i <identity_file>
* -p, --ssh-port <ssh_port>
* --ssh-option <ssh_option>
* -L, --print-build-logs
* --env-password
* -s, --store-paths <disko-script> <nixos-system>
* --kexec <path>
* --kexec-extra-flags
* --ssh-store-setting <key> <value>
* --post-kexec-ssh-port <ssh_port>
* --copy-host-keys
* --extra-files <path>
* --chown <path> <ownership>
* --disk-encryption-keys <remote_path> <local_path>
* --no-substitute-on-destination
* --no-use-machine-substituters
* --debug
* --show-trace
* --option <key> <value>
* --from <store-uri>
* --build-on-remote
* --vm-test
* --generate-hardware-config nixos-facter|nixos-generate-config <path>
* --phases
* --disko-mode disko|mount|format
* --no-disko-deps
* --build-on auto|remote|local
`

// options are the parsed command line, as far as the stand-in uses it.
type options struct {
	// hwTool and hwPath are --generate-hardware-config; diskKeys are the
	// --disk-encryption-keys pairs (remote, local).
	hwTool, hwPath   string
	diskKeys         [][2]string
	flake, flakeAttr string
	target           string
	identity         string
	port             string
	sshOptions       []string
	sshArgs          []string // -p and -o, in command-line order, as nixos-anywhere collects them
	extraFiles       string
	buildOn          string
	debug            bool
	noDiskoDeps      bool
	phases           map[string]bool
	postKexecPort    string // --post-kexec-ssh-port; "" when not given
}

// control is what the STANDIN_ variables ask for.
type control struct {
	pace       time.Duration
	failPhase  string
	failStatus int
	failText   string
	hangPhase  string
	flood      int

	rebootNever    bool
	connectFail    string // "", "refused", "denied", "unresolvable"
	postKexecPort  string // STANDIN_POST_KEXEC_DEFAULT
	progress       bool
	progressFrames int
	progressEvery  time.Duration
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if m := os.Getenv("STANDIN_MARKER"); m != "" {
		if err := os.WriteFile(m, []byte("ran\n"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "standin:", err)
			return 3
		}
	}
	if os.Getenv("STANDIN_IGNORE_INT") != "" {
		signal.Ignore(syscall.SIGINT)
	}
	opts, code, done := parseArgs(args)
	if done {
		return code
	}
	ctl, err := readControl()
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 3
	}
	out, err := newOutput(ctl.pace, os.Getenv("STANDIN_COPY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 3
	}
	live, err := readLiveControl()
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 3
	}
	in := &installer{opts: opts, ctl: ctl, out: out, live: live}
	code = in.run()
	out.flush()
	return code
}

func readControl() (control, error) {
	c := control{failStatus: 1}
	var err error
	if v := os.Getenv("STANDIN_PACE"); v != "" {
		if c.pace, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("STANDIN_PACE: %w", err)
		}
	}
	c.failPhase = os.Getenv("STANDIN_FAIL_PHASE")
	if v := os.Getenv("STANDIN_FAIL_STATUS"); v != "" {
		if c.failStatus, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("STANDIN_FAIL_STATUS: %w", err)
		}
	}
	c.failText = os.Getenv("STANDIN_FAIL_TEXT")
	c.hangPhase = os.Getenv("STANDIN_HANG_PHASE")
	if v := os.Getenv("STANDIN_FLOOD"); v != "" {
		if c.flood, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("STANDIN_FLOOD: %w", err)
		}
	}
	switch v := os.Getenv("STANDIN_REBOOT"); v {
	case "":
	case "never":
		c.rebootNever = true
	default:
		return c, fmt.Errorf("STANDIN_REBOOT=%q: the only mode is never", v)
	}
	switch c.connectFail = os.Getenv("STANDIN_CONNECT"); c.connectFail {
	case "", "refused", "denied", "unresolvable":
	default:
		return c, fmt.Errorf("STANDIN_CONNECT=%q: use refused, denied or unresolvable", c.connectFail)
	}
	c.postKexecPort = "22"
	if v := os.Getenv("STANDIN_POST_KEXEC_DEFAULT"); v != "" {
		if _, err := strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("STANDIN_POST_KEXEC_DEFAULT: %w", err)
		}
		c.postKexecPort = v
	}
	c.progress = os.Getenv("STANDIN_PROGRESS") != "0" && isTerminal(2)
	c.progressFrames, c.progressEvery = 4, 50*time.Millisecond
	if v := os.Getenv("STANDIN_PROGRESS_FRAMES"); v != "" {
		if c.progressFrames, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("STANDIN_PROGRESS_FRAMES: %w", err)
		}
	}
	if v := os.Getenv("STANDIN_PROGRESS_EVERY"); v != "" {
		if c.progressEvery, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("STANDIN_PROGRESS_EVERY: %w", err)
		}
	}
	return c, nil
}

// parseArgs reads the options the way nixos-anywhere 1.13.0's parseArgs
// does. It returns done when the run ends here (help, usage error).
func parseArgs(args []string) (o options, code int, done bool) {
	o.buildOn = "auto"
	o.phases = map[string]bool{"kexec": true, "disko": true, "install": true, "reboot": true}
	abort := func(msg string) (options, int, bool) {
		fmt.Fprintln(os.Stderr, "aborted: "+msg)
		return o, 1, true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		// need returns the n arguments of option a, or fails like bash's
		// `set -u` does when one is missing.
		need := func(n int) ([]string, bool) {
			if i+n >= len(args) {
				fmt.Fprintf(os.Stderr, "/nix/store/standin-nixos-anywhere/bin/nixos-anywhere: line 245: $%d: unbound variable\n", len(args)-i+1)
				return nil, false
			}
			v := args[i+1 : i+1+n]
			i += n
			return v, true
		}
		switch a {
		case "-f", "--flake", "--target-host", "-i", "-p", "--ssh-port", "--ssh-option", "--kexec",
			"--kexec-extra-flags", "--post-kexec-ssh-port", "--extra-files", "--disko-mode",
			"--build-on", "--phases", "--from":
			v, ok := need(1)
			if !ok {
				return o, 1, true
			}
			switch a {
			case "-f", "--flake":
				o.flake = v[0]
			case "--target-host":
				o.target = v[0]
			case "-i":
				o.identity = v[0]
			case "-p", "--ssh-port":
				o.port = v[0]
				o.sshArgs = append(o.sshArgs, "-p", v[0])
			case "--ssh-option":
				o.sshOptions = append(o.sshOptions, v[0])
				o.sshArgs = append(o.sshArgs, "-o", v[0])
			case "--extra-files":
				o.extraFiles = v[0]
			case "--post-kexec-ssh-port":
				o.postKexecPort = v[0]
			case "--disko-mode":
				switch v[0] {
				case "format", "mount", "disko":
				default:
					return abort("Supported values for --disko-mode are disko, mount and format. Unknown mode : " + v[0])
				}
			case "--build-on":
				switch v[0] {
				case "auto", "local", "remote":
					o.buildOn = v[0]
				default:
					return abort("Supported values for --build-on are auto, local and remote. Unknown mode : " + v[0])
				}
			case "--phases":
				o.phases = map[string]bool{}
				for _, p := range strings.Split(v[0], ",") {
					switch p {
					case "kexec", "disko", "install", "reboot":
						o.phases[p] = true
					default:
						return abort("Unknown phase: " + p)
					}
				}
			}
		case "-s", "--store-paths", "--generate-hardware-config", "--chown", "--disk-encryption-keys",
			"--option", "--ssh-store-setting":
			v, ok := need(2)
			if !ok {
				return o, 1, true
			}
			switch a {
			case "--generate-hardware-config":
				switch v[0] {
				case "nixos-facter", "nixos-generate-config":
					o.hwTool, o.hwPath = v[0], v[1]
				default:
					return abort("Unknown hardware config generator: " + v[0])
				}
			case "--disk-encryption-keys":
				o.diskKeys = append(o.diskKeys, [2]string{v[0], v[1]})
			}
		case "-L", "--print-build-logs", "--copy-host-keys", "--show-trace", "--no-substitute-on-destination",
			"--no-use-machine-substituters", "--env-password", "--vm-test":
		case "-t", "--tty":
			fmt.Fprintf(os.Stderr, "the '%s' flag is deprecated, a tty is now detected automatically\n", a)
		case "--debug":
			o.debug = true
		case "--no-disko-deps":
			o.noDiskoDeps = true
		case "--build-on-remote":
			fmt.Println("WARNING: --build-on-remote is deprecated, use --build-on remote instead")
			o.buildOn = "remote"
		case "--stop-after-disko":
			fmt.Println("WARNING: --stop-after-disko is deprecated, use --phases kexec,disko instead")
			o.phases = map[string]bool{"kexec": true, "disko": true}
		case "--no-reboot":
			fmt.Println("WARNING: --no-reboot is deprecated, use --phases kexec,disko,install instead")
			o.phases = map[string]bool{"kexec": true, "disko": true, "install": true}
		case "--help":
			fmt.Print(usageHead + usage)
			return o, 0, true
		default:
			// The real one takes any other word as the host and shows the
			// usage when a second one comes; the stand-in also refuses an
			// unknown option outright, which is where that ends anyway.
			if o.target != "" || strings.HasPrefix(a, "-") {
				fmt.Print(usage)
				return o, 1, true
			}
			o.target = a
		}
	}
	if o.target == "" {
		return abort("ssh-host must be set")
	}
	if o.flake == "" {
		return abort("--flake or --store-paths must be set")
	}
	if i := strings.LastIndex(o.flake, "#"); i >= 0 && !strings.ContainsAny(o.flake[i+1:], "\"") {
		o.flake, o.flakeAttr = o.flake[:i], o.flake[i+1:]
	}
	if o.flakeAttr == "" {
		fmt.Fprintln(os.Stderr, "Please specify the name of the NixOS configuration to be installed, as a URI fragment in the flake-uri.")
		fmt.Fprintln(os.Stderr, `For example, to use the output nixosConfigurations.foo from the flake.nix, append "#foo" to the flake-uri.`)
		return o, 1, true
	}
	if o.buildOn == "auto" {
		o.buildOn = "remote"
	}
	return o, 0, false
}

// Streams of the output.
const (
	stdout = 1
	stderr = 2
)

// output prints lines to stdout and stderr in the order they are given:
// each stream is buffered, and a stream's buffer is flushed before the
// other stream is written, so the merged order is the order of the calls.
type output struct {
	w    [3]*bufio.Writer
	raw  [3]io.Writer // the unbuffered streams, for the commands the stand-in runs
	cur  int
	pace time.Duration
	cp   *os.File
}

func newOutput(pace time.Duration, copyPath string) (*output, error) {
	o := &output{pace: pace}
	var out, errw io.Writer = os.Stdout, os.Stderr
	if copyPath != "" {
		f, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		o.cp = f
		// Writing the copy at the same time as the stream keeps both
		// identical even when the stand-in is killed half-way.
		out, errw = io.MultiWriter(os.Stdout, f), io.MultiWriter(os.Stderr, f)
	}
	o.raw[stdout], o.raw[stderr] = out, errw
	o.w[stdout] = bufio.NewWriterSize(out, 64<<10)
	o.w[stderr] = bufio.NewWriterSize(errw, 64<<10)
	return o, nil
}

func (o *output) switchTo(stream int) *bufio.Writer {
	if o.cur != stream && o.cur != 0 {
		_ = o.w[o.cur].Flush()
	}
	o.cur = stream
	return o.w[stream]
}

// line prints one line; with a pace it waits first and flushes at once.
func (o *output) line(stream int, s string) {
	if o.pace > 0 {
		time.Sleep(o.pace)
	}
	w := o.switchTo(stream)
	_, _ = w.WriteString(s)
	_ = w.WriteByte('\n')
	if o.pace > 0 {
		_ = w.Flush()
	}
}

func (o *output) lines(stream int, text string) {
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		o.line(stream, l)
	}
}

func (o *output) flush() {
	_ = o.w[stdout].Flush()
	_ = o.w[stderr].Flush()
	o.cur = 0
}

// installer runs the phases of nixos-anywhere 1.13.0's main function.
type installer struct {
	opts  options
	ctl   control
	out   *output
	user  string // the login user of the moment
	host  string
	facts int

	live        liveControl
	online      bool              // really connects to the target (remote.go)
	remoteFacts map[string]string // the last facts gathered on the target
}

// errFail ends the run with the given exit status.
type errFail struct{ status int }

func (e errFail) Error() string { return fmt.Sprintf("exit status %d", e.status) }

func (in *installer) run() int {
	in.host = in.opts.target
	in.user = "root"
	if i := strings.LastIndex(in.host, "@"); i >= 0 {
		in.user, in.host = in.host[:i], in.host[i+1:]
	}
	if !in.opts.phases["kexec"] {
		in.user = "root"
	}
	in.online = isLive(in.live, in.host)
	if err := in.startProcesses(); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 3
	}
	if os.Getenv("STANDIN_REPORT_TTY") != "" {
		in.out.line(stdout, fmt.Sprintf("standin: stdin terminal=%s stdout terminal=%s stderr terminal=%s",
			yesNo(isTerminal(0)), yesNo(isTerminal(1)), yesNo(isTerminal(2))))
	}
	type phase struct {
		id  string // bigbang's phase id, as STANDIN_FAIL_PHASE names it
		on  bool
		run func() error
	}
	phases := []phase{
		{"build", in.opts.buildOn == "local" && in.opts.phases["install"], in.build},
		{"connect", true, in.connect},
		{"kexec", in.opts.phases["kexec"], in.kexec},
		{"kexec", in.opts.hwTool != "", in.hardwareConfig},
		{"disko", in.opts.phases["disko"], in.diskKeys},
		{"disko", in.opts.phases["disko"], in.disko},
		{"install", in.opts.phases["install"], in.closure},
		{"keys", in.opts.phases["install"] && in.opts.extraFiles != "", in.copyExtraFiles},
		{"install", in.opts.phases["install"], in.nixosInstall},
		{"reboot", in.opts.phases["reboot"], in.reboot},
	}
	for _, p := range phases {
		if !p.on {
			continue
		}
		if err := p.run(); err != nil {
			in.out.flush()
			if f, ok := err.(errFail); ok {
				return f.status
			}
			return 1
		}
	}
	in.step("Done!")
	return 0
}

// startProcesses writes the pid file and starts the grandchild.
func (in *installer) startProcesses() error {
	path := os.Getenv("STANDIN_PIDFILE")
	mode := os.Getenv("STANDIN_GRANDCHILD")
	if path == "" && mode == "" {
		return nil
	}
	pgid, _ := syscall.Getpgid(0)
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	info := fmt.Sprintf("pid=%d pgid=%d sid=%d\n", os.Getpid(), pgid, sid)
	if mode != "" {
		script := "exec sleep 600"
		if mode == "stubborn" {
			// Ignored signals stay ignored across exec: the sleep can only
			// be killed with SIGKILL.
			script = `trap "" INT TERM HUP; exec sleep 600`
		}
		cmd := exec.Command("sh", "-c", script)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("grandchild: %w", err)
		}
		info += fmt.Sprintf("grandchild=%d\n", cmd.Process.Pid)
		// The grandchild is deliberately not waited for: it must outlive
		// the stand-in unless its caller cleans up the process group.
		_ = cmd.Process.Release()
	}
	if path != "" {
		if err := os.WriteFile(path, []byte(info), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func isTerminal(fd int) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}

// step prints a step line the way nixos-anywhere's step function does,
// with its `set -x` trace under --debug.
func (in *installer) step(text string) {
	if in.opts.debug {
		in.out.line(stderr, "+ step "+text)
		in.out.line(stderr, "+ echo '### "+text+" ###'")
	}
	in.out.line(stdout, "### "+text+" ###")
}

// check is called early in every phase: it hangs or fails there
// when told to. The failure comes after the phase's first lines, so the
// failing phase has output of its own, as in a real run.
func (in *installer) check(phase string) error {
	if in.ctl.hangPhase == phase {
		in.out.flush()
		if in.online {
			in.hangRemote()
		}
		for {
			time.Sleep(time.Hour)
		}
	}
	if in.ctl.failPhase == phase {
		text := in.ctl.failText
		if text == "" {
			text = defaultFailText(phase, in.host)
		}
		in.out.lines(stderr, text)
		return errFail{in.ctl.failStatus}
	}
	return nil
}

func defaultFailText(phase, host string) string {
	switch phase {
	case "build":
		return "error: a 'aarch64-linux' with features {} is required to build '/nix/store/4bq0hmzb0i4ckzqi2b3c6ypqk0bk2qf6-nixos-system-vps-arm-25.05.drv', but I am a 'x86_64-linux' with features {benchmark, big-parallel, kvm, nixos-test}"
	case "connect":
		return "ssh: connect to host " + host + " port 22: Connection refused"
	case "kexec":
		return "kexec_load failed: Permission denied\nKexec may have failed - check output above\nKexec failed"
	case "disko":
		return "Could not create partition 2 from 1050624 to 104857566\nUnable to set partition 2's name to 'disk-main-root'!\nError encountered; not saving changes."
	case "keys":
		return "tar: ./persistent/etc/ssh: Cannot mkdir: No space left on device\ntar: Exiting with failure status due to previous errors"
	case "install":
		return "error: builder for '/nix/store/9wq0cgd2ayqlvc7n6pdf1a41ijw6yl0r-etc.drv' failed with exit code 1"
	case "reboot":
		return "ssh: connect to host " + host + " port 22: No route to host"
	}
	return "error: failed"
}

// warnAdded is ssh's notice on every login with UserKnownHostsFile=/dev/null:
// the host as ssh names it, "[host]:port" on a port other than 22.
func (in *installer) warnAdded() {
	in.out.line(stderr, "Warning: Permanently added '"+in.knownHostsName()+"' (ED25519) to the list of known hosts.")
}

func (in *installer) knownHostsName() string {
	host := strings.Trim(in.host, "[]")
	if p := in.port(); p != "" && p != "22" {
		return "[" + host + "]:" + p
	}
	return host
}

// port is the -p of the ssh command lines of the moment ("" when none).
func (in *installer) port() string {
	for i := 0; i+1 < len(in.opts.sshArgs); i++ {
		if in.opts.sshArgs[i] == "-p" {
			return in.opts.sshArgs[i+1]
		}
	}
	return ""
}

// usePostKexecPort is what nixos-anywhere does once the kexec has started:
// the first -p of its ssh command lines becomes --post-kexec-ssh-port (22
// when not given, as in 1.13.0). Without a -p nothing
// changes.
func (in *installer) usePostKexecPort() {
	port := in.opts.postKexecPort
	if port == "" {
		port = in.ctl.postKexecPort
	}
	for i := 0; i+1 < len(in.opts.sshArgs); i++ {
		if in.opts.sshArgs[i] == "-p" {
			in.opts.sshArgs[i+1] = port
			return
		}
	}
}

func (in *installer) noPTY() {
	in.out.line(stderr, "Pseudo-terminal will not be allocated because stdin is not a terminal.")
}

const storeHash = "0c4iz1d0pk8s8wpx6y0w5fhb7a5n8qr1"

// nix's colours on its status line.
const (
	green  = "\x1b[32;1m"
	blue   = "\x1b[34;1m"
	normal = "\x1b[0m"
)

// drawProgress draws nix's status line, as nix does on a terminal: each
// state starts with '\r' and ends with "\x1b[K", the line is never ended,
// and nix clears it before it prints anything else or exits. what is
// "build", "copy" or "remote" (a build on the target through ssh-ng). It
// reports whether it drew: without a terminal nix prints log lines instead.
func (in *installer) drawProgress(what, item string) bool {
	return in.drawProgressEvery(what, item, in.ctl.progressEvery)
}

// drawProgressEvery is drawProgress with another time between states: the
// disko script is small and usually cached, so its states come at once.
func (in *installer) drawProgressEvery(what, item string, every time.Duration) bool {
	if !in.ctl.progress {
		return false
	}
	w := in.out.switchTo(stderr)
	n := max(in.ctl.progressFrames, 1)
	const total = 40.1
	for i := 0; i <= n; i++ {
		if i > 0 {
			_ = w.Flush()
			time.Sleep(every)
		}
		mib := total * float64(i) / float64(n)
		var status string
		switch what {
		case "copy":
			status = fmt.Sprintf("[%s%d%s/12 copied (%s%.1f%s/%.1f MiB)] copying path '/nix/store/%s-%s' to 'ssh://root@%s'",
				green, i*12/n, normal, green, mib, normal, total, storeHash, item, strings.Trim(in.host, "[]"))
		default:
			built := i * 3 / n
			switch {
			case i == 0:
				status = "[0/3 built] "
			case built == 3:
				status = fmt.Sprintf("[%s3%s built, %s5%s copied (%.1f MiB)]", green, normal, green, normal, total)
			default:
				// While a build runs nix shows running/done/expected.
				status = fmt.Sprintf("[%s1%s/%s%d%s/3 built, %d copied (%.1f/%.1f MiB)] building '/nix/store/%s-%s.drv'",
					blue, normal, green, built, normal, i*5/n, mib, total, storeHash, item)
				if what == "remote" {
					status += " on 'ssh-ng://root@" + strings.Trim(in.host, "[]") + "'"
				}
			}
		}
		_, _ = w.WriteString("\r" + status + "\x1b[K")
	}
	_, _ = w.WriteString("\r\x1b[K")
	_ = w.Flush()
	return true
}

// build is nixos-anywhere's local `nix build` of the disko script and the
// system; it has no step line.
func (in *installer) build() error {
	in.out.line(stderr, "warning: Git tree '"+absFlake(in.opts.flake)+"' is dirty")
	terminal := in.drawProgress("build", "nixos-system-"+in.opts.flakeAttr+"-25.05.20250601.abcdef0")
	if !terminal {
		for _, d := range []string{"disko-format", "etc", "nixos-system-" + in.opts.flakeAttr + "-25.05.20250601.abcdef0"} {
			in.out.line(stderr, "building '/nix/store/"+storeHash+"-"+d+".drv'...")
		}
	}
	if err := in.check("build"); err != nil {
		return err
	}
	if !terminal {
		for i := 0; i < 3; i++ {
			in.out.line(stderr, fmt.Sprintf("copying path '/nix/store/%s-pkg-%d' from 'https://cache.nixos.org'...", storeHash, i))
		}
	}
	return nil
}

func absFlake(f string) string {
	if f == "." || f == "" {
		wd, _ := os.Getwd()
		return wd
	}
	return f
}

// connect uploads the install key and gathers the first facts.
func (in *installer) connect() error {
	in.out.line(stderr, "Warning: Identity file /tmp/tmp.Xr3kQ9bT2m/nixos-anywhere not accessible: No such file or directory.")
	in.step("Uploading install SSH keys")
	if err := in.uploadKeys(); err != nil {
		return err
	}
	if in.online {
		if err := in.gatherFacts(); err != nil {
			return err
		}
		return in.checkFacts()
	}
	return in.gatherFacts()
}

// sshCopyIDStart is what ssh-copy-id prints at the start of every try.
func (in *installer) sshCopyIDStart() {
	in.out.line(stderr, `/usr/bin/ssh-copy-id: INFO: Source of key(s) to be installed: "/tmp/tmp.Xr3kQ9bT2m/nixos-anywhere.pub"`)
	in.out.line(stderr, "/usr/bin/ssh-copy-id: INFO: attempting to log in with the new key(s), to filter out any that are already installed")
}

// uploadKeys is nixos-anywhere's `until ssh-copy-id …; do sleep 3; done`:
// every try prints ssh-copy-id's lines, and a failed login is retried
// every 3 s, for ever unless STANDIN_CONNECT_TRIES says otherwise. The
// login is real against a live target (sshCopyIDLive) and printed
// otherwise; STANDIN_CONNECT makes every try fail, and a bracketed IPv6
// host fails as OpenSSH's ssh fails on it.
func (in *installer) uploadKeys() error {
	for try := 1; ; try++ {
		in.sshCopyIDStart()
		if try == 1 {
			if err := in.check("connect"); err != nil {
				return err
			}
		}
		var err error
		switch {
		case in.ctl.connectFail != "" || strings.HasPrefix(in.host, "["):
			err = in.sshCopyIDFails()
		case in.online:
			err = in.sshCopyIDLive()
		default:
			in.out.line(stderr, "/usr/bin/ssh-copy-id: INFO: 1 key(s) remain to be installed -- if you are prompted now it is to install the new keys")
			in.warnAdded()
		}
		if err == nil {
			break
		}
		if in.live.connectTries > 0 && try >= in.live.connectTries {
			return err
		}
		in.out.flush()
		time.Sleep(3 * time.Second)
	}
	in.out.lines(stdout, "\nNumber of key(s) added: 1\n\nNow try logging into the machine, with:   \"ssh -o 'ConnectTimeout=10' -o 'UserKnownHostsFile=/dev/null' -o 'StrictHostKeyChecking=no' '"+in.connection()+"'\"\nand check to make sure that only the key(s) you wanted were added.\n")
	return nil
}

// sshCopyIDFails prints one failed try of ssh-copy-id as OpenSSH 9's
// prints it, and returns ssh's status.
func (in *installer) sshCopyIDFails() error {
	host := strings.Trim(in.host, "[]")
	port := in.port()
	if port == "" {
		port = "22"
	}
	why := "ssh: connect to host " + host + " port " + port + ": Connection refused"
	switch {
	case strings.HasPrefix(in.host, "[") || in.ctl.connectFail == "unresolvable":
		why = "ssh: Could not resolve hostname " + in.host + ": Name or service not known"
	case in.ctl.connectFail == "denied":
		in.out.line(stderr, "/usr/bin/ssh-copy-id: INFO: 1 key(s) remain to be installed -- if you are prompted now it is to install the new keys")
		in.warnAdded()
		in.out.line(stderr, in.user+"@"+host+": Permission denied (publickey).")
		return errFail{1}
	}
	in.out.line(stderr, "")
	in.out.line(stderr, "/usr/bin/ssh-copy-id: ERROR: "+why)
	in.out.line(stderr, "")
	return errFail{1}
}

func (in *installer) gatherFacts() error {
	in.facts++
	in.step("Gathering machine facts")
	if in.online {
		return in.importFacts()
	}
	in.noPTY()
	in.warnAdded()
	return nil
}

// kexec switches the target into the NixOS installer and waits for it.
func (in *installer) kexec() error {
	in.step("Switching system into kexec")
	in.noPTY()
	in.warnAdded()
	in.warnAdded()
	in.out.line(stdout, "Downloading kexec tarball, this may take a moment...")
	if err := in.check("kexec"); err != nil {
		return err
	}
	for _, f := range []string{"kexec/", "kexec/initrd", "kexec/kexec", "kexec/ip", "kexec/bzImage", "kexec/run"} {
		in.out.line(stdout, f)
	}
	home := "/home/" + in.user
	if in.user == "root" {
		home = "/root"
	}
	in.out.lines(stderr, `+ TMPDIR=`+home+`/kexec
+ sudo setsid --wait `+home+`/kexec/kexec/run --kexec-extra-flags ''
+ kexec_extra_flags=
+ init=/nix/store/`+storeHash+`-nixos-system-nixos-installer-kexec-25.05/init
+ kernelParams='console=tty0 console=ttyAMA0,115200 root=fstab loglevel=4'
+ ./kexec --load ./bzImage --kexec-syscall-auto --initrd=./initrd --command-line 'init=/nix/store/`+storeHash+`-nixos-system-nixos-installer-kexec-25.05/init console=tty0 root=fstab loglevel=4'`)
	in.out.line(stdout, "machine will boot into nixos in 6s...")
	in.out.line(stderr, "Connection to "+strings.Trim(in.host, "[]")+" closed by remote host.")
	in.usePostKexecPort()
	in.user = "root"
	if in.online {
		in.waitReachable()
	}
	return in.gatherFacts()
}

// hardwareConfig writes the machine's hardware configuration into the
// flake's folder, as nixos-anywhere does with --generate-hardware-config
// (it then adds the file to git with intent-to-add when it is a git tree).
func (in *installer) hardwareConfig() error {
	content := "{\n  \"version\": 1,\n  \"system\": \"x86_64-linux\",\n  \"standin\": \"generated by the stand-in nixos-anywhere\"\n}\n"
	if in.opts.hwTool == "nixos-facter" {
		in.step("Generating facter.json using nixos-facter")
	} else {
		in.step("Generating hardware-configuration.nix using nixos-generate-config")
		content = "# Generated by the stand-in nixos-anywhere.\n{ boot.initrd.availableKernelModules = [ \"virtio_pci\" \"virtio_scsi\" ]; }\n"
	}
	if err := os.WriteFile(in.opts.hwPath, []byte(content), 0o644); err != nil {
		in.out.line(stderr, "standin: "+err.Error())
		return errFail{1}
	}
	return nil
}

// diskKeys uploads the disk encryption keys before disko, one step each.
func (in *installer) diskKeys() error {
	for _, k := range in.opts.diskKeys {
		in.step("Uploading " + k[1] + " to " + k[0])
	}
	return nil
}

// disko wipes, partitions, formats and mounts the disks.
func (in *installer) disko() error {
	if in.opts.buildOn == "remote" {
		in.step("Building disko script")
		in.warnAdded()
		if !in.drawProgressEvery("remote", "disko-format", 0) {
			in.out.line(stderr, "copying path '/nix/store/"+storeHash+"-disko-format' from 'https://cache.nixos.org'...")
		}
	} else if !in.drawProgressEvery("copy", "disko-format", 0) {
		in.out.line(stderr, "copying path '/nix/store/"+storeHash+"-disko-format' to 'ssh://root@"+in.host+"'...")
	}
	in.step("Formatting hard drive with disko")
	in.warnAdded()
	in.out.lines(stderr, `umount: /mnt: not mounted
++ realpath /dev/sda
+ disk=/dev/sda
+ wipefs --all -f /dev/sda
+ sgdisk --align-end --new=1:0:+512M --change-name=1:disk-main-ESP --typecode=1:EF00 /dev/sda`)
	in.out.lines(stdout, "Creating new GPT entries in memory.\nThe operation has completed successfully.")
	in.out.lines(stderr, "+ partprobe /dev/sda\n+ udevadm settle\n+ sgdisk --align-end --new=2:0:-0 --change-name=2:disk-main-root --typecode=2:8300 /dev/sda")
	if err := in.check("disko"); err != nil {
		return err
	}
	in.out.line(stdout, "The operation has completed successfully.")
	in.out.lines(stderr, "+ mkfs.vfat /dev/disk/by-partlabel/disk-main-ESP")
	in.out.line(stdout, "mkfs.fat 4.2 (2021-01-31)")
	in.out.lines(stderr, "+ mkfs.ext4 -F /dev/disk/by-partlabel/disk-main-root")
	in.out.lines(stdout, `mke2fs 1.47.2 (1-Jan-2025)
Discarding device blocks: done
Creating filesystem with 12974336 4k blocks and 3244032 inodes
Writing superblocks and filesystem accounting information: done`)
	in.out.lines(stderr, `+ mount /dev/disk/by-partlabel/disk-main-root /mnt/ -o defaults -o X-mount.mkdir
+ mount /dev/disk/by-partlabel/disk-main-ESP /mnt/boot -t vfat -o umask=0077 -o X-mount.mkdir`)
	in.out.line(stderr, "Connection to "+in.host+" closed.")
	return nil
}

// closure uploads or builds the system closure (the first part of
// nixos-anywhere's install phase). STANDIN_FLOOD lines come here.
func (in *installer) closure() error {
	dest := "ssh://root@" + in.host
	if in.opts.buildOn == "remote" {
		in.step("Building the system closure")
		in.warnAdded()
	} else {
		in.step("Uploading the system closure")
	}
	if err := in.check("install"); err != nil {
		return err
	}
	what := "copy"
	if in.opts.buildOn == "remote" {
		what = "remote"
	}
	drawn := in.drawProgress(what, "nixos-system-"+in.opts.flakeAttr+"-25.05.20250601.abcdef0")
	n := in.ctl.flood
	if n == 0 && !drawn {
		n = 12
	}
	in.flood(n, dest)
	return nil
}

// flood prints n `copying path` lines with as little work per line as the
// real nix does, so that the benchmark measures the reader, not this.
func (in *installer) flood(n int, dest string) {
	w := in.out.switchTo(stderr)
	var buf []byte
	for i := 0; i < n; i++ {
		if in.out.pace > 0 {
			time.Sleep(in.out.pace)
		}
		buf = append(buf[:0], "copying path '/nix/store/"...)
		buf = append(buf, storeHash...)
		buf = append(buf, "-package-"...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, "-1.2.3' to '"...)
		buf = append(buf, dest...)
		buf = append(buf, "'...\n"...)
		_, _ = w.Write(buf)
		if in.out.pace > 0 {
			_ = w.Flush()
		}
	}
}

// copyExtraFiles is nixos-anywhere's `tar -C <extra-files> -cpf- . | ssh
// … tar -C /mnt -xf- --no-same-owner`: real with a target root
// (copyExtraFilesLive), printed otherwise.
func (in *installer) copyExtraFiles() error {
	in.step("Copying extra files")
	live := in.online && in.live.targetRoot != ""
	if !live {
		in.noPTY()
		in.warnAdded()
	}
	if err := in.check("keys"); err != nil {
		return err
	}
	if live {
		return in.copyExtraFilesLive()
	}
	in.noPTY()
	in.warnAdded()
	return nil
}

// nixosInstall runs nixos-install on the target.
func (in *installer) nixosInstall() error {
	in.step("Installing NixOS")
	in.noPTY()
	in.warnAdded()
	in.out.line(stdout, "installing the boot loader...")
	in.out.line(stdout, "setting up /etc...")
	in.out.lines(stdout, `Initializing machine ID from random generator.
Created "/boot/EFI".
Created "/boot/EFI/systemd".
Created "/boot/EFI/BOOT".
Created "/boot/loader".
Copied "/nix/store/`+storeHash+`-systemd-257.5/lib/systemd/boot/efi/systemd-bootaa64.efi" to "/boot/EFI/systemd/systemd-bootaa64.efi".
Random seed file /boot/loader/random-seed successfully written (32 bytes).
Created EFI boot entry "Linux Boot Manager".
installation finished!`)
	return nil
}

// reboot reboots the target and waits for it to drop off: real with a
// reboot request file (rebootLive), printed otherwise.
func (in *installer) reboot() error {
	in.step("Rebooting")
	live := in.online && in.live.rebootReq != ""
	if !live {
		in.noPTY()
		in.warnAdded()
	}
	if err := in.check("reboot"); err != nil {
		return err
	}
	if live {
		return in.rebootLive()
	}
	in.out.lines(stderr, "umount: /mnt/boot unmounted\numount: /mnt unmounted")
	in.step("Waiting for the machine to become unreachable due to reboot")
	for i := 0; i < 3 || in.ctl.rebootNever; i++ {
		if i >= 3 {
			// A login and `sleep 1`, for ever: the machine stays up.
			in.out.flush()
			time.Sleep(1200 * time.Millisecond)
		}
		in.warnAdded()
	}
	in.out.line(stderr, "ssh: connect to host "+in.host+" port 22: Connection refused")
	return nil
}
