package testutil

import (
	"path/filepath"
	"slices"
	"strings"
)

// SysModules reads, from /sys, the module names of the drivers of a device
// (e.g. /sys/block/sda/device) and of the devices above it, on its own: the
// tests' reading of this machine, to compare the facts script and the
// fixture flakes with.
func SysModules(dev string) []string {
	d, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return nil
	}
	var out []string
	for ; d != "/sys/devices" && d != "/sys" && d != "/"; d = filepath.Dir(d) {
		drv, err := filepath.EvalSymlinks(filepath.Join(d, "driver"))
		if err != nil {
			continue
		}
		m := filepath.Base(drv)
		if mod, err := filepath.EvalSymlinks(filepath.Join(d, "driver", "module")); err == nil {
			m = filepath.Base(mod)
		}
		if a, ok := map[string]string{"sd": "sd_mod", "sr": "sr_mod"}[m]; ok {
			m = a
		}
		m = strings.ReplaceAll(m, "-", "_")
		if m != "pcieport" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}
