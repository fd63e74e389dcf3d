package ui

import (
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
	vals *targetValues
	form *huh.Form
	dark bool
	w    int
	auto bool
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
	return huh.NewForm(t.group()).WithShowHelp(false).WithTheme(huh.ThemeFunc(huh.ThemeCharm)).WithWidth(min(t.w-2, 72))
}

// group is the form's one group of fields, also asked in accessible mode.
func (t *targetScreen) group() *huh.Group {
	v := t.vals
	return huh.NewGroup(
		huh.NewInput().Title("Host").Description("IP address or name of the fresh VPS").
			Placeholder("203.0.113.7").Value(&v.host).Validate(steps.ValidateHost),
		huh.NewInput().Title("User").Description("login user of the running system (Oracle images: opc)").
			Value(&v.user).Validate(steps.ValidateUser),
		huh.NewInput().Title("Port").Value(&v.port).CharLimit(5).
			Validate(func(s string) error { _, err := steps.ValidatePort(s); return err }),
		huh.NewInput().Title("SSH key").Description("private key file; empty: ssh agent and ~/.ssh defaults").
			Placeholder("~/.ssh/id_ed25519").Value(&v.identity).Validate(validateIdentity),
		huh.NewInput().Title("Flake").Description("<flake>#<nixosConfigurations name>").
			Value(&v.flake).Validate(func(s string) error { _, _, err := steps.SplitFlake(s); return err }),
		huh.NewInput().Title("Extra files").Description("copied into / of the new system (the pre-generated host key)").
			Value(&v.extra),
	)
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
	t.w = msg.Width
	t.form.WithWidth(min(msg.Width-2, 72))
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
	if err := steps.ValidateHost(v.host); err != nil {
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

func (t *targetScreen) view(st styles, w, h int) string {
	intro := st.Dim.Render(wrap("Where should NixOS go? Everything here can be changed later with flags (--host, --user, …).", min(w-2, 72)))
	return "\n" + indent(intro, 1) + "\n\n" + t.form.View()
}
