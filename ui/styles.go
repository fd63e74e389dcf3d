package ui

import (
	"image/color"

	"charm.land/lipgloss/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// styles holds every colour and text style of the wizard, in one place, so
// the light and dark themes differ only here. NO_COLOR is honoured by Bubble
// Tea's renderer, which drops colours but keeps bold, faint and reverse; the
// glyphs (✔ ⚠ ✘) carry the meaning on their own.
type styles struct {
	dark bool

	Title     lipgloss.Style
	Badge     lipgloss.Style // REHEARSAL
	Header    lipgloss.Style
	Footer    lipgloss.Style
	Key       lipgloss.Style
	Dim       lipgloss.Style
	Bold      lipgloss.Style
	OK        lipgloss.Style
	Warn      lipgloss.Style
	Fail      lipgloss.Style
	Accent    lipgloss.Style
	Code      lipgloss.Style
	Danger    lipgloss.Style // the wipe warning's box
	DangerHdr lipgloss.Style
	PaneRule  lipgloss.Style
	Selected  lipgloss.Style
}

func newStyles(dark bool) styles {
	ld := lipgloss.LightDark(dark)
	c := func(light, darkC string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(darkC)) }
	accent := c("#5A3FC0", "#A891FF")
	green := c("#1A7F37", "#56D364")
	yellow := c("#9A6700", "#E3B341")
	red := c("#CF222E", "#FF6B6B")
	dim := c("#6E7781", "#8B949E")
	s := styles{dark: dark}
	s.Title = lipgloss.NewStyle().Bold(true).Foreground(accent)
	// Badges use a background colour, not reverse video, which some
	// renderers (and freeze) ignore; under NO_COLOR they are bold text.
	s.Badge = lipgloss.NewStyle().Bold(true).Foreground(c("#FFFFFF", "#1B1030")).Background(c("#8250DF", "#D2A8FF")).Padding(0, 1)
	s.Header = lipgloss.NewStyle().Bold(true)
	s.Footer = lipgloss.NewStyle().Foreground(dim)
	s.Key = lipgloss.NewStyle().Bold(true).Foreground(accent)
	s.Dim = lipgloss.NewStyle().Foreground(dim)
	s.Bold = lipgloss.NewStyle().Bold(true)
	s.OK = lipgloss.NewStyle().Foreground(green)
	s.Warn = lipgloss.NewStyle().Foreground(yellow)
	s.Fail = lipgloss.NewStyle().Foreground(red)
	s.Accent = lipgloss.NewStyle().Foreground(accent)
	s.Code = lipgloss.NewStyle().Foreground(c("#0550AE", "#79C0FF"))
	s.Danger = lipgloss.NewStyle().Border(lipgloss.ThickBorder()).BorderForeground(red).Padding(0, 1)
	s.DangerHdr = lipgloss.NewStyle().Bold(true).Foreground(c("#FFFFFF", "#1A0000")).Background(red).Padding(0, 1)
	s.PaneRule = lipgloss.NewStyle().Foreground(dim)
	s.Selected = lipgloss.NewStyle().Bold(true).Foreground(accent)
	return s
}

// The state glyphs of DESIGN.md, shared with the text output.
const (
	glyphOK      = textout.GlyphOK
	glyphWarn    = textout.GlyphWarn
	glyphFail    = textout.GlyphFail
	glyphPending = "○"
	glyphSkip    = "-"
)

// StatusGlyph is the mark of a check's status on the screens.
func StatusGlyph(s steps.Status, skip string) string { return textout.StatusGlyph(s, skip) }
