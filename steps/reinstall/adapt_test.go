package reinstall

import (
	"reflect"
	"testing"

	"github.com/bigbang-nix/bigbang/steps/flake"
)

func sp(s string) *string { return &s }

func TestFromDisko(t *testing.T) {
	prio := 50
	tests := []struct {
		name string
		in   *flake.Disko
		want []FlakeDisk
	}{
		{"no disko", nil, nil},
		{
			name: "gpt with luks, swap and btrfs",
			in: &flake.Disko{Disks: []flake.Disk{{Name: "main", Device: "/dev/sda", Table: "gpt", Partitions: []flake.Partition{
				{Name: "ESP", Size: sp("512M"), Type: sp("EF00"), Priority: &prio, Content: &flake.Content{Type: "filesystem", Format: sp("vfat"), Mountpoint: sp("/boot")}},
				{Name: "crypt", Size: sp("100%"), Content: &flake.Content{Type: "luks", Inner: &flake.Content{Type: "filesystem", Format: sp("ext4"), Mountpoint: sp("/persistent")}}},
				{Name: "swap", Size: sp("4G"), Content: &flake.Content{Type: "swap"}},
				{Name: "data", Size: sp("10G"), Content: &flake.Content{Type: "btrfs", Subvolumes: []*string{sp("/srv"), sp("/var")}}},
			}}}},
			want: []FlakeDisk{{Name: "main", Device: "/dev/sda", Table: "gpt", Partitions: []FlakePartition{
				{Name: "ESP", Size: "512M", Type: "EF00", Priority: 50, Format: "vfat", Mountpoint: "/boot"},
				{Name: "crypt", Size: "100%", Format: "crypto_LUKS"},
				{Name: "swap", Size: "4G", Format: "swap"},
				{Name: "data", Size: "10G", Format: "btrfs", Mountpoint: "/srv"},
			}}},
		},
		{
			name: "legacy table",
			in: &flake.Disko{Disks: []flake.Disk{{Name: "old", Device: "/dev/vda", Table: "table", TableFormat: "msdos", Partitions: []flake.Partition{
				{Name: "root", Start: sp("1M"), End: sp("100%"), Content: &flake.Content{Type: "filesystem", Format: sp("ext4"), Mountpoint: sp("/")}},
			}}}},
			want: []FlakeDisk{{Name: "old", Device: "/dev/vda", Table: "dos", Partitions: []FlakePartition{
				{Name: "root", Size: "100%", Label: "root", Format: "ext4", Mountpoint: "/"},
			}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromDisko(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
