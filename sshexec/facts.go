package sshexec

import (
	"bytes"
	"context"
	"fmt"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// FactsScript is the POSIX sh script that gathers every fact of the target
// in one round trip: it prints key=value lines that remote.ParseFacts reads.
// It only reads. Its text is stable: the simulated VPS of `bigbang demo`
// answers it by comparing it with this constant.
//
// The disks come from lsblk (in bytes, with partition labels, types and
// tables), completed by `blkid -p` for every disk, partition and loop
// device: lsblk takes filesystems and partition names from the udev
// database, which minimal images, rescue systems and containers lack,
// while blkid -p reads the devices themselves. blkid -p needs root, so it
// runs through `sudo -n` when that needs no password. `bigbang check` and
// `bigbang drift` read the disks through this one script.
//
// For the boot-driver check it reads, from /sys, the kernel driver of every
// whole disk's device and of the devices above it (virtio_scsi on its
// virtio device, virtio_pci on the PCI function, …) and of the NIC of the
// default route, each with its module name (driver/module) and whether it
// is a loadable module (/sys/module/<name>/initstate exists only for one)
// or built in; which disks hold "/" (through LVM and LUKS to the disks
// below them); the iSCSI sessions; /proc/cmdline; and the DMI asset tag
// that names Oracle Cloud.
//
// For the keys-reach-root check it reads the public keys of the
// authorized_keys files the kexec image copies to root (the login user's
// and, as root or through `sudo -n`, root's), whether ssh-copy-id can write
// ~/.ssh/authorized_keys (and where it links), the modes StrictModes
// judges, and `sshd -T` of the running sshd (its -f configuration, found
// in the session's parent processes; -C with this connection's user and
// addresses so Match blocks apply) for AuthorizedKeysFile,
// AuthorizedKeysCommand and StrictModes.
const FactsScript = `export LC_ALL=C
PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"
has() { command -v "$1" >/dev/null 2>&1; }
flag() { if "$@" >/dev/null 2>&1; then echo 1; else echo 0; fi; }
echo "facts_version=1"
echo "kernel=$(uname -s 2>/dev/null)"
echo "kernel_release=$(uname -r 2>/dev/null)"
echo "arch=$(uname -m 2>/dev/null)"
if [ -r /etc/os-release ]; then
  ( . /etc/os-release 2>/dev/null; echo "os_id=$ID"; echo "os_variant_id=$VARIANT_ID"; echo "os_pretty_name=$PRETTY_NAME" )
fi
echo "user=$(id -un 2>/dev/null)"
echo "uid=$(id -u 2>/dev/null)"
sudo_ok=0
if has sudo; then echo has_sudo=1; sudo_ok=$(flag sudo -n true); echo "sudo_nopasswd=$sudo_ok"; else echo has_sudo=0; fi
if has doas; then echo has_doas=1; echo "doas_nopasswd=$(flag doas -n true)"; else echo has_doas=0; fi
for t in tar cpio setsid curl wget sudo doas lsblk blkid nix; do has "$t" && echo "tool=$t"; done
echo "setsid_wait=$(flag setsid --wait true)"
c=none
if has systemd-detect-virt; then c=$(systemd-detect-virt --container 2>/dev/null) || c=none; fi
if [ "$c" = none ]; then
  if [ -f /.dockerenv ]; then c=docker
  elif [ -f /run/.containerenv ]; then c=podman
  elif grep -qa 'container=' /proc/1/environ 2>/dev/null; then c=$(tr '\0' '\n' </proc/1/environ | sed -n 's/^container=//p' | head -n1)
  fi
fi
echo "container=${c:-none}"
sed -n 's/^MemTotal: *\([0-9]*\).*/mem_total_kb=\1/p; s/^MemAvailable: *\([0-9]*\).*/mem_available_kb=\1/p' /proc/meminfo 2>/dev/null
j=$(lsblk -J -b -o PATH,PKNAME,MODEL,SIZE,TYPE,FSTYPE,PARTLABEL,PARTTYPE,PTTYPE,MOUNTPOINTS 2>/dev/null) ||
  j=$(lsblk -J -b -o NAME,PKNAME,MODEL,SIZE,TYPE,FSTYPE,PARTLABEL,PARTTYPE,PTTYPE,MOUNTPOINT 2>/dev/null) ||
  j=$(lsblk -J -b -o NAME,MODEL,SIZE,TYPE,FSTYPE,MOUNTPOINT 2>/dev/null) || j=
echo "lsblk=$(printf '%s' "$j" | tr '\n' ' ')"
probe='lsblk -nrpo NAME,TYPE 2>/dev/null | while read -r d t; do case "$t" in disk|part|loop) blkid -p -o export -- "$d" 2>/dev/null;; esac; done'
if has blkid; then
  if [ "$(id -u)" = 0 ]; then sh -c "$probe"; elif [ "$sudo_ok" = 1 ]; then sudo -n sh -c "$probe"; fi 2>/dev/null | sed 's/^/probe=/'
fi
sed -n 's|^\(/dev/[^ ]*\) \([^ ]*\) .*|mount=\1 \2|p' /proc/mounts 2>/dev/null
for l in /dev/disk/by-id/* /dev/disk/by-path/*; do [ -L "$l" ] && echo "disk_link=$l $(readlink -f "$l")"; done
if [ -d /sys/firmware/efi ]; then echo uefi=1; else echo uefi=0; fi
sb=$(od -An -tu1 -j4 -N1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | tr -d ' ')
if [ "$sb" = 1 ]; then echo secure_boot=1; else echo secure_boot=0; fi
[ -r /sys/kernel/security/lockdown ] && echo "lockdown=$(cat /sys/kernel/security/lockdown)"
echo "kexec_load_disabled=$(cat /proc/sys/kernel/kexec_load_disabled 2>/dev/null || echo 0)"
echo "home=$HOME"
echo "home_free_kb=$(df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}')"
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
for f in /etc/ssh/ssh_host_*_key.pub; do [ -r "$f" ] && echo "host_key=$(cat "$f")"; done
if awk '$2 == "00000000" {f=1} END {exit !f}' /proc/net/route 2>/dev/null; then echo ipv4_default_route=1; else echo ipv4_default_route=0; fi
if awk '$1 == "00000000000000000000000000000000" && $2 == "00" && $10 != "lo" {f=1} END {exit !f}' /proc/net/ipv6_route 2>/dev/null; then echo ipv6_default_route=1; else echo ipv6_default_route=0; fi
drivers() {
  d=$(readlink -f "$2" 2>/dev/null) || return 0
  while [ -n "$d" ] && [ "$d" != /sys/devices ] && [ "$d" != /sys ]; do
    if [ -L "$d/driver" ]; then
      n=$(basename "$(readlink -f "$d/driver")")
      m=$n
      [ -L "$d/driver/module" ] && m=$(basename "$(readlink -f "$d/driver/module")")
      if [ -e "/sys/module/$m/initstate" ]; then s=module; else s=builtin; fi
      echo "$1 $m $s $n $(basename "$d")"
    fi
    d=${d%/*}
  done
}
for b in /sys/block/*; do
  [ -e "$b/device" ] || continue
  echo "disk_sysfs=/dev/${b##*/} $(readlink -f "$b")"
  drivers "disk_driver=/dev/${b##*/}" "$b/device"
done
wholes() {
  if [ -n "$(ls "$1/slaves" 2>/dev/null)" ]; then for x in "$1"/slaves/*; do wholes "/sys/class/block/${x##*/}"; done
  elif [ -e "$1/partition" ]; then x=$(readlink -f "$1/.."); echo "root_disk=/dev/${x##*/}"
  else x=$(readlink -f "$1"); echo "root_disk=/dev/${x##*/}"; fi
}
mm=$(awk '$5 == "/" {print $3}' /proc/self/mountinfo 2>/dev/null | tail -n1)
if [ -n "$mm" ] && [ -e "/sys/dev/block/$mm" ]; then wholes "/sys/dev/block/$mm"
else
  src=$(awk '$5 == "/" {for (i = 7; i <= NF; i++) if ($i == "-") {print $(i+2); break}}' /proc/self/mountinfo 2>/dev/null | tail -n1)
  src=$(readlink -f "$src" 2>/dev/null)
  [ -n "$src" ] && [ -e "/sys/class/block/${src##*/}" ] && wholes "/sys/class/block/${src##*/}"
fi
nic=$(awk '$2 == "00000000" {print $1; exit}' /proc/net/route 2>/dev/null)
[ -z "$nic" ] && nic=$(awk '$1 == "00000000000000000000000000000000" && $2 == "00" && $10 != "lo" {print $10; exit}' /proc/net/ipv6_route 2>/dev/null)
if [ -n "$nic" ]; then echo "nic=$nic"; drivers "nic_driver=$nic" "/sys/class/net/$nic/device"; fi
echo "iscsi_sessions=$(ls /sys/class/iscsi_session 2>/dev/null | wc -l | tr -d ' ')"
echo "cmdline=$(cat /proc/cmdline 2>/dev/null)"
echo "chassis_asset_tag=$(cat /sys/class/dmi/id/chassis_asset_tag 2>/dev/null)"
echo "sys_vendor=$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)"
u=$(id -un 2>/dev/null)
ak_awk='{for (i = 1; i < NF; i++) if ($i ~ /^(ssh|ecdsa|sk)-/ && $(i+1) ~ /^AAAA/) {print "authkey=" $i " " $(i+1) " " FILENAME; break}}'
ak_list='a=$1; shift; for f in "$@"; do if [ -r "$f" ]; then echo "authkey_file=read $f"; awk "$a" "$f" 2>/dev/null; elif [ -e "$f" ]; then echo "authkey_file=unreadable $f"; else echo "authkey_file=absent $f"; fi; done'
sh -c "$ak_list" sh "$ak_awk" "$HOME/.ssh/authorized_keys" "$HOME/.ssh/authorized_keys2" "/etc/ssh/authorized_keys.d/$u"
if [ "$(id -u)" = 0 ]; then sh -c "$ak_list" sh "$ak_awk" /root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /etc/ssh/authorized_keys.d/root
elif [ "$sudo_ok" = 1 ]; then sudo -n sh -c "$ak_list" sh "$ak_awk" /root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /etc/ssh/authorized_keys.d/root 2>/dev/null
else echo "authkey_file=unknown /root/.ssh/authorized_keys"; echo "authkey_file=unknown /root/.ssh/authorized_keys2"; sh -c "$ak_list" sh "$ak_awk" /etc/ssh/authorized_keys.d/root
fi
k="$HOME/.ssh/authorized_keys"
if [ -e "$k" ]; then w=$(flag test -w "$k"); elif [ -L "$k" ]; then w=0; elif [ -d "$HOME/.ssh" ]; then w=$(flag test -w "$HOME/.ssh"); else w=$(flag test -w "$HOME"); fi
echo "authkeys_writable=$w"
[ -L "$k" ] && echo "authkeys_link=$(readlink -f "$k" 2>/dev/null)"
for p in "$HOME" "$HOME/.ssh" "$k"; do [ -e "$p" ] && m=$(stat -L -c '%a %u' "$p" 2>/dev/null) && echo "authkeys_mode=$m $p"; done
if has sshd; then
  sf=; p=$PPID; n=0
  while [ "$n" -lt 8 ] && [ -r "/proc/$p/cmdline" ]; do
    c=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)
    case "$c" in *sshd*" -f "*) sf=${c#*" -f "}; sf=${sf%% *}; break;; esac
    p=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $2}'); n=$((n + 1))
    case "$p" in ''|0|1) break;; esac
  done
  cc=$(echo "${SSH_CONNECTION:-}" | awk -v u="$u" 'NF == 4 {print "user=" u ",host=" $1 ",addr=" $1 ",laddr=" $3 ",lport=" $4}')
  t='f=$1; c=$2; set --; [ -n "$f" ] && set -- -f "$f"
    if [ -n "$c" ] && sshd -T "$@" -C "$c" 2>/dev/null; then exit 0; fi
    sshd -T "$@" 2>/dev/null'
  if [ "$(id -u)" = 0 ]; then sh -c "$t" sh "$sf" "$cc"; elif [ "$sudo_ok" = 1 ]; then sudo -n sh -c "$t" sh "$sf" "$cc"; else sh -c "$t" sh "$sf" "$cc"; fi 2>/dev/null |
    awk 'tolower($1) ~ /^(authorizedkeysfile|authorizedkeyscommand|strictmodes|pubkeyauthentication|maxauthtries)$/ {print "sshd=" $0}'
fi
echo end=1
`

// FactsCommand is the command line that runs FactsScript: passed to sh as
// one quoted argument, so the login shell (bash, zsh, fish, …) only has to
// start sh, and no stdin round trip is needed.
var FactsCommand = "sh -c " + steps.ShellQuote(FactsScript)

// Facts gathers the target's facts in one session.
func (c *Client) Facts(ctx context.Context) (remote.Facts, error) {
	var out, errb bytes.Buffer
	if err := c.run(ctx, "the facts script", FactsCommand, nil, &out, &errb, c.limits.facts(), 0); err != nil {
		return remote.Facts{}, fmt.Errorf("gathering facts: %w", err)
	}
	f, err := remote.ParseFacts(&out)
	if err != nil {
		return f, fmt.Errorf("gathering facts: %w", err)
	}
	return f, nil
}
