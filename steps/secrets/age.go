package secrets

import (
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/edwards25519"
)

// AgeRecipient converts an ed25519 public key into the age X25519 recipient
// that sops-nix and ssh-to-age derive from it: the Edwards point mapped to
// its Montgomery u-coordinate (the birational map of RFC 7748), bech32
// encoded with the "age" prefix.
func AgeRecipient(pub ed25519.PublicKey) (string, error) {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return "", fmt.Errorf("ed25519 public key is not a valid point: %w", err)
	}
	return bech32Encode("age", p.BytesMontgomery())
}

// ageIdentity derives the X25519 identity sops-nix uses for an ed25519 host
// key: the first 32 bytes of SHA-512 of the seed, the same scalar ed25519
// signs with (X25519 clamps it). It is kept in memory only and never
// printed or written.
func ageIdentity(priv ed25519.PrivateKey) (*age.X25519Identity, error) {
	h := sha512.Sum512(priv.Seed())
	s, err := bech32Encode("AGE-SECRET-KEY-", h[:32])
	if err != nil {
		return nil, err
	}
	return age.ParseX25519Identity(strings.ToUpper(s))
}

// bech32 per BIP 173; age uses it without the 90-character limit.
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		b := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (b>>uint(i))&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32HRPExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

// convertBits regroups 8-bit bytes into 5-bit groups, padding the end.
func convertBits(data []byte) []byte {
	var out []byte
	acc, bits := uint32(0), uint(0)
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

func bech32Encode(hrp string, data []byte) (string, error) {
	lower := strings.ToLower(hrp)
	if lower == "" {
		return "", errors.New("bech32: empty prefix")
	}
	values := convertBits(data)
	poly := bech32Polymod(append(append(bech32HRPExpand(lower), values...), 0, 0, 0, 0, 0, 0)) ^ 1
	var b strings.Builder
	b.WriteString(lower)
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(bech32Charset[v])
	}
	for i := 0; i < 6; i++ {
		b.WriteByte(bech32Charset[(poly>>uint(5*(5-i)))&31])
	}
	return b.String(), nil
}
