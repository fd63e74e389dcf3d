#!/usr/bin/env bash
# Regenerates screenshots/*.png from `bigbang demo`, driven unattended in
# tmux, captured with capture-pane -e and rendered with charmbracelet/freeze.
#
#   scripts/screenshots.sh            # needs tmux and freeze:
#   go install github.com/charmbracelet/freeze@v0.2.2
#
# The screens use DESIGN.md's glyphs (✔ ⚠ ✘), which freeze's built-in font
# (JetBrains Mono) lacks. They are rendered with DejaVu Sans Mono (Debian's
# fonts-dejavu-core), which has them: freeze embeds it (--font.file) and
# hands the SVG to rsvg-convert (librsvg2-bin), which draws with it; freeze's
# own converter only ever draws with its built-in font.
set -euo pipefail
cd "$(dirname "$0")/.."

FREEZE=${FREEZE:-$(command -v freeze || echo "$(go env GOPATH)/bin/freeze")}
W=${W:-100}
H=${H:-32}
SPEED=${SPEED:-5}
OUT=screenshots
FONT=${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf}
FONT_FAMILY=${FONT_FAMILY:-DejaVu Sans Mono}
command -v tmux >/dev/null || { echo "tmux is missing: apt-get install tmux" >&2; exit 1; }
[ -x "$FREEZE" ] || { echo "freeze is missing: go install github.com/charmbracelet/freeze@v0.2.2" >&2; exit 1; }
[ -r "$FONT" ] || { echo "the font $FONT is missing: apt-get install fonts-dejavu-core" >&2; exit 1; }
command -v rsvg-convert >/dev/null || { echo "rsvg-convert is missing (freeze needs it to draw with $FONT): apt-get install librsvg2-bin" >&2; exit 1; }

work=$(mktemp -d)
sock="bigbang-shots-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/bigbang" .
mkdir -p "$OUT"

tmux -L "$sock" -f /dev/null new-session -d -s shots -x "$W" -y "$H" \
  "env TERM=xterm-256color COLORTERM=truecolor $work/bigbang demo --yes --speed $SPEED; sleep 5"

# shot NAME PATTERN...: waits until the screen shows every pattern and
# keeps it; the PNGs are rendered at the end, so no screen is missed while
# freeze works.
shot() {
  local name=$1; shift
  local deadline=$((SECONDS + 120))
  while :; do
    tmux -L "$sock" capture-pane -p -e -t shots >"$work/$name.ansi" || true
    local ok=1
    for p in "$@"; do
      grep -qF -- "$p" "$work/$name.ansi" || { ok=0; break; }
    done
    [ $ok = 1 ] && break
    if [ $SECONDS -gt $deadline ]; then
      echo "screen $name never showed: $*" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "captured $name"
}

render() {
  local name=$1
  # freeze does not know "default foreground" (SGR 39) and keeps the last
  # colour: spell the default out as the theme's foreground instead.
  sed -e 's/\x1b\[39m/\x1b[38;2;201;209;217m/g' -e 's/\x1b\[49m//g' -e 's/$/  /' "$work/$name.ansi" >"$work/$name.fixed"
  # The window is sized for DejaVu Sans Mono, which is wider than the
  # font freeze measures with: else the last columns (the REHEARSAL
  # badge) are cut.
  "$FREEZE" --language ansi --window --padding 20 --margin 0 --font.size 14 --width $((W * 9 + 60)) \
    --font.file "$FONT" --font.family "$FONT_FAMILY" \
    --background '#0d1117' -o "$OUT/$name.png" <"$work/$name.fixed" >/dev/null
  echo "$OUT/$name.png"
}

shot 1-welcome "Welcome" "Install NixOS onto a fresh VPS"
shot 2-target "Target" "Extra files"
# The key change, first half: the VPS's own key, to compare and trust.
shot 3a-hostkey "trust this key"
shot 3-preflight "Preflight" "Nothing blocks the install"
shot 4-ram-build "RAM and build" "Where to build"
shot 5-plan "The exact command"
shot 6-wipe "Wiping 203.0.113.7 in"
shot 7-progress "Installing" "built,"
shot 8-stall "no output for"
# The key change, second half: the new system answers with the shipped key.
shot 9-result "NixOS is installed"

# A rehearsed failure: disko cannot fit the layout; the result says what
# happened, the machine's state and the exact resume.
tmux -L "$sock" kill-session -t shots 2>/dev/null || true
tmux -L "$sock" -f /dev/null new-session -d -s shots -x "$W" -y "$H" \
  "env TERM=xterm-256color COLORTERM=truecolor $work/bigbang demo --yes --speed $SPEED --fail-at disko; sleep 5"
shot 10-failure "failed in Disko" "Resume"

for f in "$work"/*.ansi; do
  render "$(basename "$f" .ansi)"
done
