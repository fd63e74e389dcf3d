package steps

import (
	"encoding/json"
	"testing"
	"time"
)

func TestEventJSONNewFields(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		e    Event
		want string
	}{
		{"line", Event{Time: at, Type: EventLine, Phase: PhaseReboot, Text: "x"},
			`{"phase":"reboot","text":"x","time":"2026-05-01T12:00:00Z","type":"line"}`},
		{"noise line", Event{Time: at, Type: EventLine, Phase: PhaseReboot, Text: "Warning: Permanently added", Noise: true},
			`{"noise":true,"phase":"reboot","text":"Warning: Permanently added","time":"2026-05-01T12:00:00Z","type":"line"}`},
		{"stall", Event{Time: at, Type: EventStall, Phase: PhaseDisko, Stall: 2 * time.Minute},
			`{"phase":"disko","seconds":120,"time":"2026-05-01T12:00:00Z","type":"stall"}`},
		{"named stall", Event{Time: at, Type: EventStall, Phase: PhaseReboot, Stall: 2 * time.Minute, Loop: LoopRebootWait, Text: "the machine has not gone down"},
			`{"loop":"reboot-wait","phase":"reboot","seconds":120,"text":"the machine has not gone down","time":"2026-05-01T12:00:00Z","type":"stall"}`},
		{"progress", Event{Time: at, Type: EventProgress, Phase: PhaseBuild, Text: "[1/3 built, 2 copied (12.3/40.1 MiB)]",
			Progress: &Progress{HasBuilds: true, Built: 1, Builds: 3, HasCopies: true, Copied: 2, HasMiB: true, MiB: 12.3, MiBTotal: 40.1}},
			`{"phase":"build","progress":{"builds":3,"built":1,"copied":2,"copies":0,"mib":12.3,"mib_total":40.1},"text":"[1/3 built, 2 copied (12.3/40.1 MiB)]","time":"2026-05-01T12:00:00Z","type":"progress"}`},
		{"progress without figures", Event{Time: at, Type: EventProgress, Phase: PhaseInstall, Text: "spinning"},
			`{"phase":"install","text":"spinning","time":"2026-05-01T12:00:00Z","type":"progress"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}
