package transcript

import (
	"bytes"
	"fmt"
	"testing"
)

// benchTranscript builds a realistic transcript of n lines: mostly nix's
// "copying path" lines and ssh warnings, the step lines of 1.13.0, and a
// boot loader failure near the end.
func benchTranscript(n int) []byte {
	var b bytes.Buffer
	stepsAt := []string{"Uploading install SSH keys", "Gathering machine facts", "Switching system into kexec",
		"Gathering machine facts", "Building disko script", "Formatting hard drive with disko",
		"Uploading the system closure", "Copying extra files", "Installing NixOS", "Rebooting",
		"Waiting for the machine to become unreachable due to reboot", "Done!"}
	for i := 0; i < n; i++ {
		if k := i * len(stepsAt) / n; i == k*n/len(stepsAt) {
			fmt.Fprintf(&b, "### %s ###\n", stepsAt[k])
			continue
		}
		if i == n-n/50 {
			b.WriteString("Died at /nix/store/0q9w8e7r6t5y4u3i2o1p0a9s8d7f6g5h-install-grub.pl line 827.\n")
			continue
		}
		switch i % 10 {
		case 0:
			b.WriteString("Warning: Permanently added '203.0.113.10' (ED25519) to the list of known hosts.\n")
		case 1:
			b.WriteString("Pseudo-terminal will not be allocated because stdin is not a terminal.\n")
		default:
			fmt.Fprintf(&b, "copying path '/nix/store/%032d-python3.12-package-%d' to 'ssh://root@203.0.113.10'...\n", i, i)
		}
	}
	return b.Bytes()
}

func BenchmarkClassifier(b *testing.B) {
	data := benchTranscript(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := Explain(bytes.NewReader(data))
		if err != nil || r.Outcome != OutcomeFailed || r.Diagnosis.ID != "boot-loader" {
			b.Fatalf("%v %+v", err, r)
		}
	}
}
