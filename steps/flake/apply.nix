# Applied by bigbang to <flake>#nixosConfigurations. It returns plain data
# only: the real option tree holds functions and derivations that JSON
# cannot carry. Every option a configuration may not use (disko, sops, a
# boot loader) is read with `or` and tryEval, so its absence reads as null.
# The name placeholder below is replaced with the configuration name, quoted
# as a Nix string.
configs:
let
  name = @NAME@;
  names = builtins.attrNames configs;
  found = builtins.hasAttr name configs;
  # try returns d when v throws (an option used but not defined does).
  try = v: d: let r = builtins.tryEval v; in if r.success then r.value else d;
  strOr = v: if builtins.isString v || builtins.isPath v then toString v else null;
  listOf = v: if builtins.isList v then v else [ ];
  # optList keeps "not declared" (null) apart from an empty list, and
  # keeps only the strings of a list.
  optList = v: if builtins.isList v then builtins.filter builtins.isString v else null;
  sys = self:
    let
      c = self.config or { };
      hp = try (c.nixpkgs.hostPlatform or null) null;
      fromHost = if builtins.isString hp then hp else try (hp.system or null) null;
      legacy = try (c.nixpkgs.system or null) null;
      fromPkgs = try (self.pkgs.stdenv.hostPlatform.system or self.pkgs.system or null) null;
    in
    if fromHost != null then fromHost else if legacy != null then legacy else fromPkgs;
  content = ct:
    if !(builtins.isAttrs ct) then null else {
      type = try (ct.type or null) null;
      format = try (strOr (ct.format or null)) null;
      mountpoint = try (strOr (ct.mountpoint or null)) null;
      # luks and similar wrap the filesystem one level down.
      inner = if builtins.isAttrs (ct.content or null) then content ct.content else null;
      subvolumes = if builtins.isAttrs (ct.subvolumes or null)
        then map (s: try (strOr (s.mountpoint or null)) null) (builtins.attrValues ct.subvolumes)
        else [ ];
    };
  partition = n: p: {
    name = try (p.name or n) n;
    size = try (strOr (p.size or null)) null;
    start = try (strOr (p.start or null)) null;
    end = try (strOr (p.end or null)) null;
    type = try (strOr (p.type or null)) null;
    priority = try (p.priority or null) null;
    part_type = try (strOr (p.part-type or null)) null;
    content = try (content (p.content or null)) null;
  };
  partitions = ps:
    if builtins.isAttrs ps then builtins.attrValues (builtins.mapAttrs partition ps)
    else if builtins.isList ps then map (p: partition (p.name or "") p) ps
    else [ ];
  disk = n: d: {
    name = n;
    device = try (strOr (d.device or null)) null;
    table = try (d.content.type or null) null;
    table_format = try (strOr (d.content.format or null)) null;
    partitions = try (partitions (d.content.partitions or null)) [ ];
    content = if (try (d.content.type or null) null) == "gpt" || (try (d.content.type or null) null) == "table"
      then null else try (content (d.content or null)) null;
  };
  user = n: u: {
    name = n;
    groups = try (listOf (u.extraGroups or [ ]) ++ [ (u.group or "") ]) [ ];
    keys = try (listOf (u.openssh.authorizedKeys.keys or [ ])) [ ];
    key_files = try (map toString (listOf (u.openssh.authorizedKeys.keyFiles or [ ]))) [ ];
  };
  read = self:
    let
      c = self.config or { };
      boot = c.boot.loader or { };
      ssh = c.services.openssh or { };
      fw = c.networking.firewall or { };
      users = try (c.users.users or { }) { };
      wheel = try (listOf (c.users.groups.wheel.members or [ ])) [ ];
      interesting = builtins.filter
        (n: n == "root" || builtins.elem n wheel
          || builtins.elem "wheel" (try (listOf (users.${n}.extraGroups or [ ])) [ ])
          || (try (listOf (users.${n}.openssh.authorizedKeys.keys or [ ])) [ ]) != [ ])
        (builtins.attrNames users);
      hasDisko = try (builtins.isAttrs (c.disko.devices or null)) false;
      hasSops = try (builtins.isAttrs (c.sops or null)) false;
    in
    {
      system = sys self;
      revision = try (strOr (c.system.configurationRevision or null)) null;
      boot = {
        systemd_boot = try (boot.systemd-boot.enable or false) false;
        grub = try (boot.grub.enable or false) false;
        grub_efi = try (boot.grub.efiSupport or false) false;
        grub_devices = try (listOf (boot.grub.devices or [ ]) ++ (if (boot.grub.device or null) != null then [ boot.grub.device ] else [ ])) [ ];
        efi_can_touch = try (boot.efi.canTouchEfiVariables or false) false;
        grub_efi_removable = try (boot.grub.efiInstallAsRemovable or false) false;
        # null when the configuration does not declare the option (no
        # NixOS module system behind it): the boot-driver check then
        # says it could not compare, rather than reporting every driver
        # missing. A real NixOS configuration always has them, with
        # nixpkgs' defaults merged in.
        initrd_available_kernel_modules = try (optList (c.boot.initrd.availableKernelModules or null)) null;
        initrd_kernel_modules = try (optList (c.boot.initrd.kernelModules or null)) null;
        initrd_network = try ((c.boot.initrd.network.enable or false) || (c.boot.initrd.systemd.network.enable or false)) false;
        kernel_params = try (optList (c.boot.kernelParams or null)) null;
      };
      disko = if hasDisko then {
        disks = try (builtins.attrValues (builtins.mapAttrs disk (c.disko.devices.disk or { }))) [ ];
        nodev = try (builtins.attrValues (builtins.mapAttrs
          (n: v: { mountpoint = strOr (v.mountpoint or n); fs_type = strOr (v.fsType or null); })
          (c.disko.devices.nodev or { }))) [ ];
      } else null;
      ssh = {
        enable = try (ssh.enable or false) false;
        ports = try (listOf (ssh.ports or [ 22 ])) [ 22 ];
        open_firewall = try (ssh.openFirewall or true) true;
        permit_root_login = try (strOr (ssh.settings.PermitRootLogin or ssh.permitRootLogin or null)) null;
        password_auth = try (ssh.settings.PasswordAuthentication or ssh.passwordAuthentication or null) null;
      };
      firewall = {
        enable = try (fw.enable or true) true;
        tcp_ports = try (listOf (fw.allowedTCPPorts or [ ])) [ ];
      };
      users = map (n: user n users.${n}) interesting;
      sops = if hasSops then {
        ssh_key_paths = try (map toString (listOf (c.sops.age.sshKeyPaths or [ ]))) [ ];
        key_file = try (strOr (c.sops.age.keyFile or null)) null;
        default_sops_file = try (strOr (c.sops.defaultSopsFile or null)) null;
        secrets = try (builtins.attrNames (c.sops.secrets or { })) [ ];
      } else null;
    };
in
{ inherit names found; nix_version = builtins.nixVersion; } // (if found then { config = read configs.${name}; } else { })
