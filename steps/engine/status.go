package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

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
	// Pushed is the flake repository's pushed main as the local clone
	// saw it (nil: not known; the revision item says why).
	Pushed *local.Pushed `json:"pushed,omitempty"`
	// Ports are the TCP ports the flake opens, on the machine and from
	// here.
	Ports []PortStatus `json:"ports"`
	// Handoff proves the GitOps hand-off, item by item.
	Handoff []HandoffItem `json:"handoff"`

	// listen is what listens on the machine; listenRead says it was read.
	listen     []listenSocket
	listenRead bool
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
	Load    string `json:"load,omitempty"`     // LoadState: not-found for a unit the machine lacks
	Type    string `json:"type,omitempty"`     // services: simple, oneshot, …
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
	// Outcome is how the last run ended ("" in receipts older than the
	// field: they were written only after a success).
	Outcome     steps.Outcome `json:"outcome,omitempty"`
	FailedPhase steps.PhaseID `json:"failed_phase,omitempty"`
}

// StatusScript reads what status reports in one session. Units are
// picked by name: the deployment's update timer and deploy service have no
// fixed names, so anything named like an upgrade, update, flake, deploy or
// webhook unit is shown, with the ones given by --unit. The listening TCP
// sockets come from /proc/net/tcp{,6} (every Linux has them; ss may be
// missing), read before the units so that a wedged systemctl cannot hide
// them.
func StatusScript(units []string) string {
	return `export LC_ALL=C SYSTEMD_PAGER= SYSTEMD_COLORS=0
echo "nixos_version=$(nixos-version 2>/dev/null)"
echo "revision=$(nixos-version --configuration-revision 2>/dev/null)"
echo "generation=$(readlink /nix/var/nix/profiles/system 2>/dev/null)"
echo "system=$(readlink -f /run/current-system 2>/dev/null)"
echo "state=$(systemctl is-system-running 2>/dev/null)"
systemctl list-units --failed --no-legend --plain 2>/dev/null | awk '{u = $1; if (u == "●" || u == "*") u = $2; print "failed=" u}'
for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && echo "listen_read=$f" && awk 'NR > 1 && $4 == "0A" {print "listen=" $2}' "$f"; done
{ systemctl list-units --all --type=timer,service,socket,path --no-legend --plain 2>/dev/null | awk '{print $1}' | grep -E 'upgrade|update|flake|deploy|webhook'; ` +
		`for u in ` + steps.ShellJoin(units) + `; do echo "$u"; done; } | sort -u | while read -r u; do
  [ -n "$u" ] || continue
  echo "unit=$u"
  systemctl show "$u" -p LoadState -p ActiveState -p Type -p Result -p NextElapseUSecRealtime -p LastTriggerUSec 2>/dev/null | sed 's/^/unit_/'
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
		case "listen_read":
			st.listenRead = true
		case "listen":
			if l, ok := parseListen(v); ok {
				st.listen = append(st.listen, l)
			}
		case "unit_LoadState":
			if cur != nil {
				cur.Load = v
			}
		case "unit_Type":
			if cur != nil {
				cur.Type = v
			}
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

// DefaultStatusTimeout bounds the one session that reads the system state.
const DefaultStatusTimeout = time.Minute

// StatusRequest is what `bigbang status` asks for.
type StatusRequest struct {
	Config  steps.Config
	Dial    DialPolicy
	Units   []string // units of the deployment to report on besides those found by name
	NoDrift bool
	// Timeout bounds the read of the system state (zero: the default).
	Timeout time.Duration
}

// Status logs in to an installed machine and reports on it. It only reads.
// The error is for an interruption; everything else is in the report.
func (e *Engine) Status(ctx context.Context, req StatusRequest) (Status, error) {
	cfg := req.Config
	st := Status{Host: cfg.Host, UpdateUnits: []UnitStatus{}, FailedUnits: []string{}, Ports: []PortStatus{}, Handoff: []HandoffItem{}}
	rec, recErr := e.World.Receipts.Read(cfg.Target())
	if recErr == nil {
		st.Receipt = &ReceiptBrief{InstalledAt: rec.InstalledAt, Flake: rec.Flake, Revision: rec.FlakeRevision, Backups: len(rec.Backups),
			Outcome: rec.Outcome, FailedPhase: rec.FailedPhase}
	}
	c, err := e.Connect(ctx, cfg, req.Dial)
	if err != nil {
		if ctx.Err() != nil {
			return st, err
		}
		st.Error = err.Error()
		return st, nil
	}
	defer c.Close()
	st.Reachable = true
	hk := c.HostKey()
	st.HostKey = &StatusKey{Fingerprint: hk.Fingerprint, Pinned: string(c.CheckOptions().HostKeyOutcome)}
	if recErr == nil && rec.HostKeyFingerprint != "" {
		same := rec.HostKeyFingerprint == hk.Fingerprint
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
	limit := req.Timeout
	if limit <= 0 {
		limit = DefaultStatusTimeout
	}
	var out, errb bytes.Buffer
	readCtx, cancelRead := context.WithTimeout(ctx, limit)
	err = c.Run(readCtx, "sh -c "+steps.ShellQuote(StatusScript(req.Units)), nil, &out, &errb)
	cancelRead()
	switch {
	case err != nil && errors.Is(readCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		st.Error = fmt.Sprintf("reading the system state took longer than %s: a command on the target hangs (try systemctl is-system-running there)", limit)
	case err != nil:
		st.Error = fmt.Sprintf("reading the system state: %v", err)
	}
	parseStatus(out.Bytes(), &st)

	var info *flake.Info
	var flakeErr string
	if req.NoDrift {
		var err error
		if info, err = e.World.Local.Flake(ctx, cfg.Flake); err != nil {
			info, flakeErr = nil, err.Error()
		}
	} else {
		var rep reinstall.Report
		rep, _, info, err = e.driftInfo(ctx, c, cfg)
		if err != nil {
			flakeErr = err.Error()
			st.Drift = &DriftStatus{Changes: []reinstall.Change{}, Error: err.Error()}
		} else {
			ch := rep.Changes
			if ch == nil {
				ch = []reinstall.Change{}
			}
			st.Drift = &DriftStatus{Verdict: rep.Verdict, Changes: ch, Summary: rep.Summary()}
		}
	}
	if info != nil && info.Config.Revision != nil {
		st.Revision.Local = *info.Config.Revision
	}
	host := c.Login().HostName
	if host == "" {
		host = cfg.Target().Host
	}
	e.handoff(ctx, cfg, host, &st, info, flakeErr)
	if st.Revision.Running != "" && st.Revision.Local != "" {
		same := st.Revision.Running == st.Revision.Local
		st.Revision.Same = &same
	}
	return st, ctx.Err()
}

// Problems says whether the report is a failure of status: unreachable, a
// failed unit, a host key other than the receipt's, or a hand-off item
// that failed.
func (st Status) Problems() bool {
	for _, it := range st.Handoff {
		if it.Status == steps.StatusFail {
			return true
		}
	}
	return !st.Reachable || len(st.FailedUnits) > 0 || st.HostKey != nil && st.HostKey.MatchesReceipt != nil && !*st.HostKey.MatchesReceipt
}
