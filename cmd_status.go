package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

func init() { subcommands = append(subcommands, newStatusCmd) }

type statusFlags struct {
	timeout time.Duration
	units   []string
	noDrift bool
}

func newStatusCmd(cfg *steps.Config) *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "After the install: reachable, host key pinned, NixOS version, update units, drift",
		Long: "status logs in to an installed machine and reports: whether it is reachable with the\n" +
			"pinned host key (and whether that is the key of the install receipt and the extra-files\n" +
			"tree), the NixOS version and system generation, the flake revision it runs against the\n" +
			"local one, the update units of the deployment (timers and services named like upgrade,\n" +
			"update, flake, deploy or webhook, and any given with --unit: state, last and next run),\n" +
			"failed units, and the disk drift against the flake. It only reads.\n" +
			"Exit status 0: reachable, host key as pinned, no failed unit; 1 otherwise.",
		Example:      "  bigbang status --host 203.0.113.7 --user admin\n  bigbang status --host 203.0.113.7 --output json --unit deploy-webhook.service",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, _ []string) error { return runStatus(cmd, cfg, f) },
	}
	addConnectTimeout(cmd, &f.timeout)
	cmd.Flags().StringArrayVar(&f.units, "unit", nil, "a systemd unit of the deployment to report on (repeatable)")
	cmd.Flags().BoolVar(&f.noDrift, "no-drift", false, "skip the disk drift (the live layout read)")
	return cmd
}

// Status is the report of `bigbang status`; its JSON is the
// `--output json` contract: {"status": {…}}.
type Status struct {
	Host        string        `json:"host"`
	Reachable   bool          `json:"reachable"`
	Error       string        `json:"error,omitempty"`
	HostKey     *StatusKey    `json:"host_key,omitempty"`
	NixOS       string        `json:"nixos_version"` // "" when the machine is not NixOS
	Generation  int           `json:"generation"`    // 0 when unknown
	System      string        `json:"system"`        // /run/current-system's store path
	State       string        `json:"system_state"`  // systemctl is-system-running
	Revision    StatusRev     `json:"revision"`
	UpdateUnits []UnitStatus  `json:"update_units"`
	FailedUnits []string      `json:"failed_units"`
	Drift       *DriftStatus  `json:"drift,omitempty"`
	Receipt     *ReceiptBrief `json:"receipt,omitempty"`
}

// StatusKey is the host key seen, and what it was compared with.
type StatusKey struct {
	Fingerprint     string `json:"fingerprint"`
	Pinned          string `json:"pinned"`                  // known (in known_hosts) or accepted (new, saved now)
	MatchesReceipt  *bool  `json:"matches_receipt"`         // nil: no receipt
	MatchesExtraKey *bool  `json:"matches_extra_files_key"` // nil: no key in the extra-files tree
}

// StatusRev compares the flake revision the machine runs with the local one.
type StatusRev struct {
	Running string `json:"running"` // nixos-version --configuration-revision
	Local   string `json:"local"`   // the local flake's revision ("dirty" with uncommitted changes)
	Same    *bool  `json:"same"`    // nil when either is unknown
}

// UnitStatus is one update unit of the deployment.
type UnitStatus struct {
	Unit    string `json:"unit"`
	Active  string `json:"active"`             // ActiveState
	Result  string `json:"result,omitempty"`   // Result of the last run
	NextRun string `json:"next_run,omitempty"` // timers
	LastRun string `json:"last_run,omitempty"` // timers
}

// DriftStatus is the drift, or why it could not be made.
type DriftStatus struct {
	Verdict string             `json:"verdict,omitempty"`
	Changes []reinstall.Change `json:"changes"`
	Summary string             `json:"summary"`
	Error   string             `json:"error,omitempty"`
}

// ReceiptBrief is what the receipt says of the last install.
type ReceiptBrief struct {
	InstalledAt time.Time `json:"installed_at"`
	Flake       string    `json:"flake"`
	Revision    string    `json:"flake_revision"`
	Backups     int       `json:"backups"`
}

// statusReadTimeout bounds the one session that reads the system state.
var statusReadTimeout = time.Minute

// statusScript reads what status reports in one session. Units are
// picked by name: the deployment's update timer and deploy service have no
// fixed names, so anything named like an upgrade, update, flake, deploy or
// webhook unit is shown, with the ones given by --unit.
func statusScript(units []string) string {
	return `export LC_ALL=C SYSTEMD_PAGER= SYSTEMD_COLORS=0
echo "nixos_version=$(nixos-version 2>/dev/null)"
echo "revision=$(nixos-version --configuration-revision 2>/dev/null)"
echo "generation=$(readlink /nix/var/nix/profiles/system 2>/dev/null)"
echo "system=$(readlink -f /run/current-system 2>/dev/null)"
echo "state=$(systemctl is-system-running 2>/dev/null)"
systemctl list-units --failed --no-legend --plain 2>/dev/null | awk '{u = $1; if (u == "●" || u == "*") u = $2; print "failed=" u}'
{ systemctl list-units --all --type=timer,service,socket,path --no-legend --plain 2>/dev/null | awk '{print $1}' | grep -E 'upgrade|update|flake|deploy|webhook'; ` +
		`for u in ` + steps.ShellJoin(units) + `; do echo "$u"; done; } | sort -u | while read -r u; do
  [ -n "$u" ] || continue
  echo "unit=$u"
  systemctl show "$u" -p ActiveState -p Result -p NextElapseUSecRealtime -p LastTriggerUSec 2>/dev/null | sed 's/^/unit_/'
done
true
`
}

// generationRE reads the number of "system-42-link".
var generationRE = regexp.MustCompile(`system-([0-9]+)-link`)

func parseStatus(out []byte, st *Status) {
	var cur *UnitStatus
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "nixos_version":
			st.NixOS = v
		case "revision":
			st.Revision.Running = v
		case "generation":
			if m := generationRE.FindStringSubmatch(v); m != nil {
				st.Generation, _ = strconv.Atoi(m[1])
			}
		case "system":
			st.System = v
		case "state":
			st.State = v
		case "failed":
			if v != "" {
				st.FailedUnits = append(st.FailedUnits, v)
			}
		case "unit":
			st.UpdateUnits = append(st.UpdateUnits, UnitStatus{Unit: v})
			cur = &st.UpdateUnits[len(st.UpdateUnits)-1]
		case "unit_ActiveState":
			if cur != nil {
				cur.Active = v
			}
		case "unit_Result":
			if cur != nil {
				cur.Result = v
			}
		case "unit_NextElapseUSecRealtime":
			if cur != nil && v != "n/a" && v != "0" {
				cur.NextRun = v
			}
		case "unit_LastTriggerUSec":
			if cur != nil && v != "n/a" && v != "0" {
				cur.LastRun = v
			}
		}
	}
}

func runStatus(cmd *cobra.Command, cfg *steps.Config, f statusFlags) error {
	if err := validateTarget(cfg); err != nil {
		return usageErr(err)
	}
	ctx, cancel := commandContext(cmd)
	defer cancel()
	st := Status{Host: cfg.Host, UpdateUnits: []UnitStatus{}, FailedUnits: []string{}}
	rec, recErr := receipt.Read(cfg.Host)
	if recErr == nil {
		st.Receipt = &ReceiptBrief{InstalledAt: rec.InstalledAt, Flake: rec.Flake, Revision: rec.FlakeRevision, Backups: len(rec.Backups)}
	}
	// The flake is evaluated even without the drift: it gives the local
	// revision.
	ev := flake.Start(ctx, cfg.Flake)
	c, err := connectTarget(ctx, cmd, cfg, f.timeout)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		st.Error = err.Error()
		return finishStatus(cmd, cfg, st)
	}
	defer c.Close()
	st.Reachable = true
	st.HostKey = &StatusKey{Fingerprint: c.HostKey.Fingerprint, Pinned: string(c.HostKeyOutcome)}
	if recErr == nil && rec.HostKeyFingerprint != "" {
		same := rec.HostKeyFingerprint == c.HostKey.Fingerprint
		st.HostKey.MatchesReceipt = &same
	}
	if pub, err := os.ReadFile(sshexec.ExpectedHostKeyFile(cfg.ExtraFiles)); err == nil {
		if fp, err := pubFingerprint(pub); err == nil {
			if served, err := servedEd25519(ctx, c); err == nil {
				same := fp == served
				st.HostKey.MatchesExtraKey = &same
			}
		}
	}

	// A wedged systemctl on the target must not hang status forever: the
	// read has its own limit, and what arrived before it is still shown.
	var out, errb bytes.Buffer
	readCtx, cancelRead := context.WithTimeout(ctx, statusReadTimeout)
	err = c.Run(readCtx, "sh -c "+steps.ShellQuote(statusScript(f.units)), nil, &out, &errb)
	cancelRead()
	switch {
	case err != nil && errors.Is(readCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		st.Error = fmt.Sprintf("reading the system state took longer than %s: a command on the target hangs (try systemctl is-system-running there)", statusReadTimeout)
	case err != nil:
		st.Error = fmt.Sprintf("reading the system state: %v", err)
	}
	parseStatus(out.Bytes(), &st)

	if f.noDrift {
		if info, err := ev.Wait(ctx); err == nil && info.Config.Revision != nil {
			st.Revision.Local = *info.Config.Revision
		}
	} else {
		rep, _, info, err := driftFor(ctx, c, ev, cfg.Flake)
		if info != nil && info.Config.Revision != nil {
			st.Revision.Local = *info.Config.Revision
		}
		if err != nil {
			st.Drift = &DriftStatus{Changes: []reinstall.Change{}, Error: err.Error()}
		} else {
			ch := rep.Changes
			if ch == nil {
				ch = []reinstall.Change{}
			}
			st.Drift = &DriftStatus{Verdict: rep.Verdict, Changes: ch, Summary: rep.Summary()}
		}
	}
	if st.Revision.Running != "" && st.Revision.Local != "" {
		same := st.Revision.Running == st.Revision.Local
		st.Revision.Same = &same
	}
	return finishStatus(cmd, cfg, st)
}

// errStatusProblem ends status with exit code 1 after the report.
var errStatusProblem = errors.New("status: problems found")

func finishStatus(cmd *cobra.Command, cfg *steps.Config, st Status) error {
	report := struct {
		Status Status `json:"status"`
	}{st}
	if err := writeReport(cmd, cfg, report, func(w io.Writer) { printStatus(w, st) }); err != nil {
		return err
	}
	if !st.Reachable || len(st.FailedUnits) > 0 || st.HostKey != nil && st.HostKey.MatchesReceipt != nil && !*st.HostKey.MatchesReceipt {
		cmd.SilenceErrors = true // the report said why
		return failErr(errStatusProblem)
	}
	return nil
}

func yesNo(b *bool, yes, no, unknown string) string {
	switch {
	case b == nil:
		return unknown
	case *b:
		return yes
	}
	return no
}

// printStatus writes the report for a person, one line per fact, with the
// glyphs of `bigbang check`.
func printStatus(w io.Writer, st Status) {
	line := func(s steps.Status, format string, args ...any) {
		fmt.Fprintf(w, "%s %s\n", glyph(s), fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "Status of %s\n", st.Host)
	if !st.Reachable {
		line(steps.StatusFail, "not reachable: %s", st.Error)
		return
	}
	k := st.HostKey
	keyStatus := steps.StatusOK
	if k.MatchesReceipt != nil && !*k.MatchesReceipt {
		keyStatus = steps.StatusFail
	}
	line(keyStatus, "reachable; host key %s (%s in known_hosts; %s; %s)", k.Fingerprint, k.Pinned,
		yesNo(k.MatchesReceipt, "the key of the install receipt", "NOT the key of the install receipt", "no install receipt"),
		yesNo(k.MatchesExtraKey, "the key in the extra-files tree", "not the key in the extra-files tree", "no key in the extra-files tree"))
	if st.NixOS == "" {
		line(steps.StatusWarn, "not NixOS (no nixos-version): install the flake with bigbang install")
	} else {
		gen := "generation unknown"
		if st.Generation > 0 {
			gen = fmt.Sprintf("generation %d", st.Generation)
		}
		s := steps.StatusOK
		if st.State != "running" {
			s = steps.StatusWarn
		}
		line(s, "NixOS %s, %s, system %s", st.NixOS, gen, orUnknown(st.State))
	}
	switch {
	case st.Revision.Same == nil:
		line(steps.StatusSkip, "flake revision: running %s, local %s", orUnknown(st.Revision.Running), orUnknown(st.Revision.Local))
	case *st.Revision.Same:
		line(steps.StatusOK, "runs the local flake revision %s", st.Revision.Local)
	default:
		line(steps.StatusWarn, "runs flake revision %s, the local flake is at %s: deploy with nh os switch / nixos-rebuild", st.Revision.Running, st.Revision.Local)
	}
	if len(st.UpdateUnits) == 0 {
		line(steps.StatusSkip, "no update units (a timer or service named like upgrade, update, flake, deploy or webhook); name yours with --unit")
	}
	for _, u := range st.UpdateUnits {
		s := steps.StatusOK
		if u.Result != "" && u.Result != "success" {
			s = steps.StatusWarn
		}
		extra := ""
		if u.NextRun != "" {
			extra += ", next run " + u.NextRun
		}
		if u.LastRun != "" {
			extra += ", last run " + u.LastRun
		}
		line(s, "%s: %s%s", u.Unit, orUnknown(u.Active), extra)
	}
	if len(st.FailedUnits) == 0 {
		line(steps.StatusOK, "no failed units")
	} else {
		line(steps.StatusFail, "failed units: %s (journalctl -u <unit> on the machine says why)", strings.Join(st.FailedUnits, ", "))
	}
	switch {
	case st.Drift == nil:
	case st.Drift.Error != "":
		line(steps.StatusSkip, "disk drift not known: %s", st.Drift.Error)
	case st.Drift.Verdict == reinstall.VerdictReinstall:
		line(steps.StatusWarn, "disk drift: %s", st.Drift.Summary)
	default:
		line(steps.StatusOK, "disk drift: %s", st.Drift.Summary)
	}
	if st.Receipt != nil {
		fmt.Fprintf(w, "Installed %s from %s (revision %s); %d backup(s) recorded.\n", st.Receipt.InstalledAt.Local().Format(time.RFC1123), st.Receipt.Flake, orUnknown(st.Receipt.Revision), st.Receipt.Backups)
	}
}
