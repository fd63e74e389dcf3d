package ui

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"

	"github.com/bigbang-nix/bigbang/steps"
)

// targetValues are the form's fields; the huh form holds pointers into it.
type targetValues struct {
	host, user, port, identity, flake, extra string
}

// targetScreen embeds a huh form: messages are forwarded to it, the form is
// type-asserted back, and form.State says when it is done (an embedded
// form's submit and cancel commands are nil).
type targetScreen struct {
	vals  *targetValues
	form  *huh.Form
	dark  bool
	w, h  int // the window
	auto  bool
	notes []string // where the defaults came from
}

func newTargetScreen(cfg steps.Config, auto bool) targetScreen {
	v := &targetValues{
		host: cfg.Host, user: cfg.User, port: itoa(cfg.Port),
		identity: cfg.Identity, flake: cfg.Flake, extra: cfg.ExtraFiles,
	}
	t := targetScreen{vals: v, dark: true, w: 80, auto: auto}
	t.form = t.newForm()
	return t
}

func (t *targetScreen) newForm() *huh.Form {
	f := huh.NewForm(t.group()).WithShowHelp(false).WithTheme(huh.ThemeFunc(huh.ThemeCharm)).WithWidth(min(t.w-2, 72))
	if h := t.formHeight(); h > 0 {
		f = f.WithHeight(h)
	}
	return f
}

// formHeight is the rows the form gets below the intro: with fewer rows
// than its fields need, huh scrolls the focused field into view instead
// of the root cutting the fields below the fold. 0: the window is not
// known yet.
func (t *targetScreen) formHeight() int {
	if t.h == 0 {
		return 0
	}
	// Header and footer, then the intro view() draws above the form.
	return max(t.h-2-strings.Count(t.intro(styles{}, t.w), "\n")-3, 3)
}

// group is the form's one group of fields.
func (t *targetScreen) group() *huh.Group { return t.fields(false) }

// fields builds the form's fields. In accessible mode the prompts name the
// current value and an empty answer keeps it: huh's accessible prompt
// validates the raw answer before it falls back to the value, so a
// required field would otherwise refuse the empty answer.
func (t *targetScreen) fields(accessible bool) *huh.Group {
	v := t.vals
	title := func(name, def string) string {
		if accessible && def != "" {
			return name + " [" + def + "]"
		}
		return name
	}
	return huh.NewGroup(
		huh.NewInput().Title(title("Host", v.host)).Description("IP address or name of the fresh VPS; user@host[:port] fills in User and Port").
			Placeholder("203.0.113.7").Value(&v.host).Validate(keepDefault(accessible, v.host, validateHostField)),
		huh.NewInput().Title(title("User", v.user)).Description("login user of the running system (Oracle images: opc)").
			Value(&v.user).Validate(keepDefault(accessible, v.user, steps.ValidateUser)),
		huh.NewInput().Title(title("Port", v.port)).Value(&v.port).CharLimit(5).
			Validate(keepDefault(accessible, v.port, func(s string) error { _, err := steps.ValidatePort(s); return err })),
		huh.NewInput().Title(title("SSH key", v.identity)).Description("private key file; empty: ssh agent and ~/.ssh defaults").
			Placeholder("~/.ssh/id_ed25519").Value(&v.identity).Validate(keepDefault(accessible, v.identity, validateIdentity)),
		huh.NewInput().Title(title("Flake", v.flake)).Description("<flake>#<nixosConfigurations name>").
			Value(&v.flake).Validate(keepDefault(accessible, v.flake, func(s string) error { _, _, err := steps.SplitFlake(s); return err })),
		huh.NewInput().Title(title("Extra files", v.extra)).Description("copied into / of the new system (the pre-generated host key)").
			Value(&v.extra),
	)
}

// keepDefault lets an empty answer through in accessible mode when the
// field has a value to keep.
func keepDefault(accessible bool, def string, validate func(string) error) func(string) error {
	if !accessible || def == "" {
		return validate
	}
	return func(s string) error {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		return validate(s)
	}
}

// validateHostField accepts what steps.ParseTarget reads (host,
// user@host, host:port, [v6]:port); a refused host says where a user
// goes.
func validateHostField(s string) error {
	if _, err := steps.ParseTarget(s); err != nil {
		if strings.Contains(s, "@") {
			return fmt.Errorf("%w (write user@host[:port], or the user in the User field)", err)
		}
		return fmt.Errorf("%w (a login user goes in the User field, or write user@host)", err)
	}
	return nil
}

func validateIdentity(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return steps.CheckKeyFile(expandHome(s))
}

// focus (re)starts the form when the screen is shown.
func (t *targetScreen) focus() tea.Cmd {
	if t.form.State != huh.StateNormal {
		t.form = t.newForm()
	}
	return t.form.Init()
}

func (t *targetScreen) resize(msg tea.WindowSizeMsg) tea.Cmd {
	t.w, t.h = msg.Width, msg.Height
	t.form.WithWidth(min(msg.Width-2, 72))
	if h := t.formHeight(); h > 0 {
		t.form.WithHeight(h)
	}
	return nil
}

func (t *targetScreen) setTheme(msg tea.BackgroundColorMsg) {
	t.dark = msg.IsDark()
	_, _ = t.form.Update(msg)
}

func (t *targetScreen) update(msg tea.Msg) (tea.Cmd, intent) {
	if k, ok := msg.(tea.KeyPressMsg); ok && k.String() == "esc" {
		return nil, intentBack
	}
	fm, cmd := t.form.Update(msg)
	if f, ok := fm.(*huh.Form); ok {
		t.form = f
	}
	if t.form.State == huh.StateCompleted {
		return cmd, intentNext
	}
	return cmd, intentNone
}

// validate checks every field, for --yes, where no one presses enter.
func (t *targetScreen) validate() error {
	v := t.vals
	if err := validateHostField(v.host); err != nil {
		return err
	}
	if err := steps.ValidateUser(v.user); err != nil {
		return err
	}
	if _, err := steps.ValidatePort(v.port); err != nil {
		return err
	}
	_, _, err := steps.SplitFlake(v.flake)
	return err
}

// apply writes the form's values into cfg.
func (t *targetScreen) apply(cfg steps.Config) steps.Config {
	v := t.vals
	// user@host[:port] in the Host field is parsed once here: its user
	// and port win over the fields, which then show them.
	if tg, err := steps.ParseTarget(v.host); err == nil {
		v.host = tg.Host // an IPv6 literal without its brackets, as steps.Target holds it
		if tg.User != "" {
			v.user = tg.User
		}
		if tg.Port != 0 {
			v.port = itoa(tg.Port)
		}
	}
	cfg.Host = strings.TrimSpace(v.host)
	cfg.User = strings.TrimSpace(v.user)
	if p, err := steps.ValidatePort(v.port); err == nil {
		cfg.Port = p
	}
	cfg.Identity = expandHome(strings.TrimSpace(v.identity))
	cfg.Flake = strings.TrimSpace(v.flake)
	cfg.ExtraFiles = strings.TrimSpace(v.extra)
	return cfg
}

// intro is the text above the form.
func (t *targetScreen) intro(st styles, w int) string {
	intro := st.Dim.Render(wrap("Where should NixOS go? Everything here can be changed later with flags (--host, --user, …).", min(w-2, 72)))
	for _, n := range t.notes {
		intro += "\n" + st.Dim.Render(wrap("· "+n, min(w-2, 72)))
	}
	return intro
}

func (t *targetScreen) view(st styles, w, h int) string {
	return "\n" + indent(t.intro(st, w), 1) + "\n\n" + t.form.View()
}
