package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
)

// The IDs of the hand-off items of `bigbang status` (the JSON contract).
const (
	// HandoffRevision: the running flake revision against the pushed main.
	HandoffRevision = "handoff.revision"
	// HandoffTimer: an update timer is scheduled (one item per timer).
	HandoffTimer = "handoff.timer"
	// HandoffUnit: a deploy, webhook or update unit is up and its last
	// run succeeded (one item per unit).
	HandoffUnit = "handoff.unit"
	// HandoffPorts: the ports the flake opens could not be known.
	HandoffPorts = "handoff.ports"
	// HandoffListen: something listens on a port the flake opens (one item
	// per port).
	HandoffListen = "handoff.listen"
	// HandoffReach: the port answers a TCP connect from the operator's
	// machine (one item per port).
	HandoffReach = "handoff.reach"
)

// HandoffItem is one proof of the GitOps hand-off: that the machine goes on
// updating itself from the flake's repository after bigbang is done.
type HandoffItem struct {
	ID      string       `json:"id"`
	Subject string       `json:"subject,omitempty"` // the unit or the port
	Status  steps.Status `json:"status"`            // ok, warn, fail or skip
	Summary string       `json:"summary"`
	Fix     string       `json:"fix,omitempty"` // what to do, for warn and fail
}

// PortStatus is one TCP port the flake opens
// (networking.firewall.allowedTCPPorts): whether the machine listens on it
// and whether it answers from the operator's machine.
type PortStatus struct {
	Port      int      `json:"port"`
	Listening *bool    `json:"listening"` // nil: the machine's sockets were not read
	Addresses []string `json:"addresses"` // where it listens
	Reachable *bool    `json:"reachable"` // nil: not tried
	Error     string   `json:"error,omitempty"`
}

// ReachTimeout bounds each TCP connect of status from the operator's
// machine: a port the provider's firewall drops answers nothing at all.
const ReachTimeout = 3 * time.Second

// listenSocket is one listening TCP socket of /proc/net/tcp{,6}.
type listenSocket struct {
	addr netip.Addr
	port int
}

// parseListen reads a local_address of /proc/net/tcp or tcp6: the address
// in hex, 32-bit words in the machine's byte order (little-endian on
// every machine bigbang installs), then the port in hex.
func parseListen(v string) (listenSocket, bool) {
	a, p, ok := strings.Cut(v, ":")
	if !ok {
		return listenSocket{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	raw, herr := hex.DecodeString(a)
	if err != nil || herr != nil || (len(raw) != 4 && len(raw) != 16) {
		return listenSocket{}, false
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return listenSocket{addr: addr.Unmap(), port: int(port)}, true
}

// handoff proves the GitOps hand-off: the revision against the pushed
// main, the update timers, the deploy units, and the ports the flake
// opens, on the machine and from here.
func (e *Engine) handoff(ctx context.Context, cfg steps.Config, host string, st *Status, info *flake.Info, flakeErr string) {
	st.Handoff = append(st.Handoff, e.revisionItem(ctx, cfg, st))
	st.Handoff = append(st.Handoff, unitItems(st.UpdateUnits)...)
	if info == nil {
		why := flakeErr
		if why == "" {
			why = "the flake did not evaluate"
		}
		st.Handoff = append(st.Handoff, HandoffItem{ID: HandoffPorts, Status: steps.StatusWarn,
			Summary: "the ports the flake opens are not known: " + why, Fix: "fix the flake's evaluation (bigbang check says why), then run status again"})
		return
	}
	ports := slices.Clone(info.Config.Firewall.TCPPorts)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	if len(ports) == 0 {
		st.Handoff = append(st.Handoff, HandoffItem{ID: HandoffPorts, Status: steps.StatusSkip,
			Summary: "the flake opens no TCP port (networking.firewall.allowedTCPPorts is empty)"})
		return
	}
	st.Ports = e.portStatus(ctx, host, ports, st.listen, st.listenRead)
	st.Handoff = append(st.Handoff, portItems(st.Ports, host)...)
}

// revisionItem places the revision the machine runs (or the receipt's)
// against the pushed main of the flake's local clone.
func (e *Engine) revisionItem(ctx context.Context, cfg steps.Config, st *Status) HandoffItem {
	it := HandoffItem{ID: HandoffRevision}
	running, from := st.Revision.Running, "the machine runs"
	if running == "" && st.Receipt != nil && st.Receipt.Revision != "" {
		running, from = st.Receipt.Revision, "the install receipt says the machine runs"
	}
	if running == "" {
		it.Status, it.Summary = steps.StatusWarn, "the machine names no flake revision (nixos-version --configuration-revision is empty), so whether it runs the pushed main is not known"
		it.Fix = "set system.configurationRevision = self.rev or self.dirtyRev or null; in the flake's configuration, and deploy it"
		return it
	}
	if running == "dirty" {
		it.Status, it.Summary = steps.StatusWarn, from+" a build of uncommitted changes (revision \"dirty\"): it cannot be placed against the pushed main"
		it.Fix = "commit and push the changes, and let the deploy switch the machine to them"
		return it
	}
	path, _, _ := steps.SplitFlake(cfg.Flake)
	dir := flake.LocalDir(path)
	switch {
	case dir == "":
		it.Status, it.Summary = steps.StatusWarn, fmt.Sprintf("%s revision %s; the pushed main is not known: the flake %s is not a local clone", from, running, path)
		it.Fix = "run status in the flake's git clone (--flake .#<name>) to compare with its pushed main"
		return it
	case e.World.Pushed == nil:
		it.Status, it.Summary = steps.StatusSkip, fmt.Sprintf("%s revision %s; the pushed main was not read", from, running)
		return it
	}
	dirty := strings.HasSuffix(running, "-dirty")
	p, err := e.World.Pushed(ctx, dir, strings.TrimSuffix(running, "-dirty"))
	if err != nil {
		it.Status, it.Summary = steps.StatusWarn, fmt.Sprintf("%s revision %s; the pushed main is not known: %v", from, running, err)
		switch {
		case errors.Is(err, local.ErrNoGit):
			it.Fix = "install git on this machine"
		case errors.Is(err, local.ErrNotRepo):
			it.Fix = "keep the flake in a git repository pushed to the one your CI builds, and run status in that clone"
		default:
			it.Fix = "push the flake to the repository your CI builds (git push -u origin main), or git fetch"
		}
		return it
	}
	st.Pushed = &p
	now := e.now()
	seen := fmt.Sprintf("%s %s, %s", p.Ref, short(p.Revision), fetchedWords(p.FetchedAt, now))
	fetchFirst := p.FetchedAt == nil || now.Sub(*p.FetchedAt) > 24*time.Hour
	if fetchFirst {
		seen += ": git fetch for what is pushed now"
	}
	commits := func(n int) string {
		if n == 1 {
			return "1 commit"
		}
		return fmt.Sprintf("%d commits", n)
	}
	switch p.Relation {
	case local.RelSame:
		if dirty {
			it.Status, it.Summary = steps.StatusWarn, fmt.Sprintf("%s %s: uncommitted changes on top of the pushed main (%s)", from, running, seen)
			it.Fix = "commit and push the changes: the next update from the repository replaces what is not pushed"
			return it
		}
		it.Status, it.Summary = steps.StatusOK, fmt.Sprintf("%s the pushed main (%s)", from, seen)
	case local.RelBehind:
		it.Status = steps.StatusFail
		committed := ""
		if !p.CommittedAt.IsZero() {
			committed = ", committed " + agoWords(now.Sub(p.CommittedAt))
		}
		it.Summary = fmt.Sprintf("%s %s, %s behind the pushed main (%s%s): the pushed revision was not deployed",
			from, short(running), commits(p.Ahead), seen, committed)
		deployUnit := "<deploy unit>"
		for _, u := range st.UpdateUnits {
			if strings.Contains(u.Unit, "deploy") || strings.Contains(u.Unit, "webhook") {
				deployUnit = steps.ShellQuote(u.Unit)
				break
			}
		}
		it.Fix = "check that CI built " + short(p.Revision) + " and that the deploy ran (journalctl -u " + deployUnit + " on the machine); or deploy by hand: nh os switch"
		if !p.CommittedAt.IsZero() && now.Sub(p.CommittedAt) < 30*time.Minute {
			it.Status = steps.StatusWarn
			it.Summary += " yet (it is recent: CI may still be building it)"
		}
	case local.RelAhead:
		it.Status = steps.StatusWarn
		it.Summary = fmt.Sprintf("%s %s, which is not pushed: the pushed main is behind it (%s)", from, short(running), seen)
		it.Fix = "git push: until then an update from the repository switches the machine back to " + short(p.Revision)
	case local.RelDiverged:
		it.Status = steps.StatusWarn
		it.Summary = fmt.Sprintf("%s %s, which is not on the pushed main (%s, %s it lacks)", from, short(running), seen, commits(p.Ahead))
		it.Fix = "merge the running revision into main and push, or deploy main: the next update replaces " + short(running)
	default:
		it.Status = steps.StatusWarn
		it.Summary = fmt.Sprintf("%s %s, which this clone does not have (%s)", from, running, seen)
		it.Fix = "git fetch, then run status again; if the clone still lacks it, the machine was deployed from a revision never pushed here"
	}
	return it
}

// short is a revision as git shortens it for people.
func short(rev string) string {
	if len(rev) > 12 && !strings.HasSuffix(rev, "-dirty") {
		return rev[:12]
	}
	return rev
}

// fetchedWords says how old the clone's view of the remote is.
func fetchedWords(at *time.Time, now time.Time) string {
	if at == nil {
		return "never fetched in this clone"
	}
	return "last fetched " + agoWords(now.Sub(*at))
}

// agoWords is a past duration for people: "just now", "5 minutes ago",
// "3 hours ago", "2 days ago".
func agoWords(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

// unitItems judges the update units: every timer is scheduled; a service
// that a timer, socket or path starts (or a oneshot) last succeeded; any
// other service, socket or path is active.
func unitItems(units []UnitStatus) []HandoffItem {
	names := map[string]bool{}
	for _, u := range units {
		names[u.Unit] = true
	}
	var items []HandoffItem
	timers, deploy := 0, 0
	for _, u := range units {
		stem, kind, _ := cutLast(u.Unit, ".")
		if kind == "timer" {
			timers++
		}
		if strings.Contains(u.Unit, "deploy") || strings.Contains(u.Unit, "webhook") {
			deploy++
		}
		it := HandoffItem{ID: HandoffUnit, Subject: u.Unit}
		if kind == "timer" {
			it.ID = HandoffTimer
		}
		journal := fmt.Sprintf("journalctl -u %s on the machine says why", steps.ShellQuote(u.Unit))
		enable := fmt.Sprintf("sudo systemctl enable --now %s on the machine, and enable it in the flake so that the next switch keeps it", steps.ShellQuote(u.Unit))
		triggered := kind == "service" && (u.Type == "oneshot" || names[stem+".timer"] || names[stem+".socket"] || names[stem+".path"])
		failedRun := u.Result != "" && u.Result != "success"
		switch {
		case u.Active == "" && u.Load == "":
			// The read stopped before this unit (a wedged systemctl):
			// nothing is known of it, which is not a failure of its own.
			it.Status, it.Summary = steps.StatusWarn, u.Unit+": its state was not read"
			it.Fix = "systemctl status " + steps.ShellQuote(u.Unit) + " on the machine"
		case u.Load == "not-found":
			it.Status, it.Summary = steps.StatusFail, u.Unit+" does not exist on the machine"
			it.Fix = "check the unit's name (systemctl list-units --all on the machine), or declare it in the flake"
		case u.Active == "failed":
			it.Status, it.Summary = steps.StatusFail, fmt.Sprintf("%s failed (%s)", u.Unit, orWord(u.Result, "no result"))
			it.Fix = journal + "; fix it, then sudo systemctl restart " + steps.ShellQuote(u.Unit)
		case kind == "timer" && u.Active != "active":
			it.Status, it.Summary = steps.StatusFail, fmt.Sprintf("%s is %s: the updates it starts never run", u.Unit, orWord(u.Active, "in an unknown state"))
			it.Fix = enable
		case kind == "timer" && u.NextRun == "":
			it.Status, it.Summary = steps.StatusFail, u.Unit+": active, but no next run is scheduled"
			it.Fix = "sudo systemctl restart " + steps.ShellQuote(u.Unit) + " on the machine; check its OnCalendar= (systemctl list-timers --all)"
		case kind == "timer":
			it.Status, it.Summary = steps.StatusOK, u.Unit+": active, next run "+u.NextRun
			if u.LastRun != "" {
				it.Summary += ", last run " + u.LastRun
			}
		case triggered && failedRun:
			it.Status, it.Summary = steps.StatusFail, fmt.Sprintf("%s: the last run failed (%s)", u.Unit, u.Result)
			it.Fix = journal
		case triggered:
			it.Status, it.Summary = steps.StatusOK, fmt.Sprintf("%s: %s, started on demand; the last run succeeded", u.Unit, orWord(u.Active, "state unknown"))
		case u.Active == "active" && failedRun:
			it.Status, it.Summary = steps.StatusWarn, fmt.Sprintf("%s: active, but its last run ended with %s", u.Unit, u.Result)
			it.Fix = journal
		case u.Active == "active":
			it.Status, it.Summary = steps.StatusOK, u.Unit+": active"
		case u.Active == "activating" || u.Active == "reloading" || u.Active == "deactivating":
			it.Status, it.Summary = steps.StatusWarn, fmt.Sprintf("%s is %s", u.Unit, u.Active)
			it.Fix = "run status again in a moment; if it stays so, " + journal
		default:
			it.Status, it.Summary = steps.StatusFail, fmt.Sprintf("%s is %s: nothing serves the deploys it should", u.Unit, orWord(u.Active, "in an unknown state"))
			if failedRun {
				it.Summary += fmt.Sprintf(" (last run: %s)", u.Result)
			}
			it.Fix = enable + "; " + journal
		}
		items = append(items, it)
	}
	if timers == 0 {
		items = append(items, HandoffItem{ID: HandoffTimer, Status: steps.StatusWarn,
			Summary: "no update timer found (a timer named like upgrade, update or flake): nothing updates the flake's inputs on a schedule",
			Fix:     "name yours with --unit <name>.timer, or schedule the updates in the flake (system.autoUpgrade, or a timer of your own)"})
	}
	if deploy == 0 {
		items = append(items, HandoffItem{ID: HandoffUnit, Status: steps.StatusWarn,
			Summary: "no deploy or webhook unit found: nothing on the machine switches it when main is pushed",
			Fix:     "name yours with --unit <name>.service, or add the deploy webhook to the flake"})
	}
	return items
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func orWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
}

// portStatus says, for each port, where the machine listens on it and
// whether it answers a TCP connect from here (all connects at once, each
// within ReachTimeout).
func (e *Engine) portStatus(ctx context.Context, host string, ports []int, listen []listenSocket, read bool) []PortStatus {
	out := make([]PortStatus, len(ports))
	var wg sync.WaitGroup
	for i, p := range ports {
		ps := PortStatus{Port: p, Addresses: []string{}}
		if read {
			for _, l := range listen {
				if l.port == p && !slices.Contains(ps.Addresses, l.addr.String()) {
					ps.Addresses = append(ps.Addresses, l.addr.String())
				}
			}
			yes := len(ps.Addresses) > 0
			ps.Listening = &yes
		}
		out[i] = ps
		if e.World.Reach == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, ReachTimeout)
			defer cancel()
			err := e.World.Reach(rctx, net.JoinHostPort(host, strconv.Itoa(p)))
			ok := err == nil
			out[i].Reachable = &ok
			if err != nil {
				out[i].Error = err.Error()
				// The address is said beside it: keep what went wrong.
				var oe *net.OpError
				if errors.As(err, &oe) && oe.Err != nil {
					out[i].Error = oe.Err.Error()
				}
				if errors.Is(rctx.Err(), context.DeadlineExceeded) {
					out[i].Error = fmt.Sprintf("no answer within %s", ReachTimeout)
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// loopbackHost says whether host is this machine's loopback, where a
// service bound to 127.0.0.1 is reachable.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// portItems judges each port: something listens on it (on more than the
// loopback), and it answers from here. A port the machine listens on that
// does not answer is blocked between here and there: the provider's
// firewall, on Oracle Cloud the VCN's security list or NSG.
func portItems(ports []PortStatus, host string) []HandoffItem {
	var items []HandoffItem
	for _, ps := range ports {
		subject := strconv.Itoa(ps.Port)
		listen := HandoffItem{ID: HandoffListen, Subject: subject}
		listening := ps.Listening != nil && *ps.Listening
		switch {
		case ps.Listening == nil:
			listen.Status, listen.Summary = steps.StatusWarn, fmt.Sprintf("port %d: the machine's listening sockets could not be read (/proc/net/tcp)", ps.Port)
			listen.Fix = "ss -ltn on the machine shows what listens"
		case !listening:
			listen.Status, listen.Summary = steps.StatusFail, fmt.Sprintf("nothing listens on port %d, which the flake opens (networking.firewall.allowedTCPPorts)", ps.Port)
			listen.Fix = "start the service behind it: systemctl --failed and journalctl on the machine say why it is not up"
		case !loopbackHost(host) && allLoopback(ps.Addresses):
			listening = false
			listen.Status, listen.Summary = steps.StatusFail, fmt.Sprintf("port %d listens on the loopback only (%s): nothing outside the machine reaches it", ps.Port, strings.Join(ps.Addresses, ", "))
			listen.Fix = "bind the service to 0.0.0.0 or [::] in the flake"
		default:
			listen.Status, listen.Summary = steps.StatusOK, fmt.Sprintf("port %d listens (on %s)", ps.Port, strings.Join(ps.Addresses, ", "))
		}
		items = append(items, listen)

		reach := HandoffItem{ID: HandoffReach, Subject: subject}
		addr := net.JoinHostPort(host, subject)
		firewall := fmt.Sprintf("open TCP %d in the provider's firewall — on Oracle Cloud: Networking → Virtual cloud networks → the VCN → the subnet's security list (or the instance's network security group) → Add ingress rule: source 0.0.0.0/0 (or your CI's addresses), TCP, destination port %d", ps.Port, ps.Port)
		switch {
		case ps.Reachable == nil:
			reach.Status, reach.Summary = steps.StatusSkip, fmt.Sprintf("port %d: not tried from here", ps.Port)
		case *ps.Reachable:
			reach.Status, reach.Summary = steps.StatusOK, fmt.Sprintf("port %d answers from here (%s)", ps.Port, addr)
		case listening:
			reach.Status = steps.StatusFail
			reach.Summary = fmt.Sprintf("port %d listens on the machine but does not answer from here (%s: %s): the provider's firewall blocks it (Oracle Cloud: no ingress rule for TCP %d in the VCN security list or NSG)", ps.Port, addr, ps.Error, ps.Port)
			reach.Fix = firewall
		case ps.Listening == nil:
			reach.Status = steps.StatusFail
			reach.Summary = fmt.Sprintf("port %d does not answer from here (%s: %s): nothing listens, or the provider's firewall blocks it (Oracle Cloud: the VCN security list or NSG)", ps.Port, addr, ps.Error)
			reach.Fix = "check ss -ltn on the machine; if it listens, " + firewall
		default:
			// Nothing listens: the listen item is the failure; what the
			// connect shows of the firewall is only a hint.
			reach.Status = steps.StatusWarn
			reach.Summary = fmt.Sprintf("port %d does not answer from here either (%s: %s)", ps.Port, addr, ps.Error)
			reach.Fix = "start the service first; if it still does not answer from here, " + firewall
		}
		items = append(items, reach)
	}
	return items
}

func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		if p, err := netip.ParseAddr(a); err != nil || !p.IsLoopback() {
			return false
		}
	}
	return len(addrs) > 0
}
