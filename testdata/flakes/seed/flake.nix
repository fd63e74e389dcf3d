# A fixture flake without inputs whose nixosConfigurations have the attribute
# shape of real `nixpkgs.lib.nixosSystem` results (config.disko.devices,
# config.users.users, config.sops, pkgs.stdenv.hostPlatform), so that bigbang's
# flake introspection can be tested with real nix and no downloads.
# vps-arm mirrors the seed: /dev/sda, 512M ESP, 80G /nix, the rest /persistent,
# systemd-boot, sops with the pre-generated host key.
{
  description = "bigbang fixture: seed-shaped NixOS configurations";

  outputs = { self }:
    let
      # Stand-in for nixosSystem: what bigbang reads of the result.
      nixosSystem = { system, config }: {
        inherit config;
        pkgs = { inherit system; stdenv.hostPlatform = { inherit system; }; };
        options = { };
        _type = "configuration";
      };
      # The operator's key; the tests write their own operator.pub.
      operatorKey = builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile ./operator.pub);
      esp = {
        size = "512M";
        type = "EF00";
        priority = 1000;
        content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; mountOptions = [ "umask=0077" ]; };
      };
      seedDisk = nixSize: {
        device = "/dev/sda";
        type = "disk";
        content = {
          type = "gpt";
          partitions = {
            ESP = esp;
            nix = { size = nixSize; content = { type = "filesystem"; format = "ext4"; mountpoint = "/nix"; }; };
            persistent = { size = "100%"; content = { type = "filesystem"; format = "ext4"; mountpoint = "/persistent"; }; };
          };
        };
      };
      seedConfig = { nixSize ? "80G", rootKeys ? [ operatorKey ], sops ? true, disko ? true }: {
        nixpkgs.hostPlatform = { system = "aarch64-linux"; config = "aarch64-unknown-linux-gnu"; };
        boot.loader.systemd-boot.enable = true;
        boot.loader.efi.canTouchEfiVariables = true;
        boot.loader.grub.enable = false;
        services.openssh = { enable = true; ports = [ 22 ]; openFirewall = true; settings.PermitRootLogin = "prohibit-password"; settings.PasswordAuthentication = false; };
        networking.firewall = { enable = true; allowedTCPPorts = [ 22 ]; };
        users.users = {
          root = { name = "root"; group = "root"; extraGroups = [ ]; openssh.authorizedKeys.keys = rootKeys; openssh.authorizedKeys.keyFiles = [ ]; };
          nobody = { name = "nobody"; group = "nogroup"; extraGroups = [ ]; openssh.authorizedKeys.keys = [ ]; };
          sshd = { name = "sshd"; group = "sshd"; isSystemUser = true; extraGroups = [ ]; openssh.authorizedKeys.keys = [ ]; };
        };
        users.groups.wheel.members = [ ];
        system.configurationRevision = self.rev or "dirty";
      } // (if disko then {
        disko.devices = { disk.main = seedDisk nixSize; nodev."/" = { fsType = "tmpfs"; mountOptions = [ "size=2G" "mode=755" ]; }; };
      } else { }) // (if sops then {
        sops = {
          defaultSopsFile = ./secrets/secrets.yaml;
          age.sshKeyPaths = [ "/persistent/etc/ssh/ssh_host_ed25519_key" ];
          secrets."users/admin/password" = { neededForUsers = true; };
        };
      } else { });
    in
    {
      nixosConfigurations = {
        vps-arm = nixosSystem { system = "aarch64-linux"; config = seedConfig { }; };

        # A layout bigger than any free-tier boot volume.
        too-big = nixosSystem { system = "aarch64-linux"; config = seedConfig { nixSize = "1T"; }; };

        # Root has no key and no wheel user has one: the operator is locked out.
        lockout = nixosSystem { system = "aarch64-linux"; config = seedConfig { rootKeys = [ ]; }; };

        # No disko and no sops; the system is known from pkgs only (the
        # hostPlatform option is used but not defined, as in older configs).
        no-disko = {
          pkgs = { system = "x86_64-linux"; stdenv.hostPlatform.system = "x86_64-linux"; };
          config = (seedConfig { disko = false; sops = false; }) // {
            nixpkgs.hostPlatform = throw "The option `nixpkgs.hostPlatform' is used but not defined.";
          };
        };

        # An admin in wheel holds the key, grub boots with BIOS (legacy
        # nixpkgs.system), and sshd listens on 2222 with the firewall open for it.
        grub-bios = nixosSystem {
          system = "x86_64-linux";
          config = (builtins.removeAttrs (seedConfig { rootKeys = [ ]; sops = false; }) [ "nixpkgs" ]) // {
            nixpkgs.system = "x86_64-linux";
            boot.loader = { grub = { enable = true; efiSupport = false; device = "/dev/vda"; }; systemd-boot.enable = false; };
            services.openssh = { enable = true; ports = [ 2222 ]; openFirewall = false; settings.PermitRootLogin = "no"; };
            networking.firewall = { enable = true; allowedTCPPorts = [ 2222 ]; };
            users.users = {
              root = { openssh.authorizedKeys.keys = [ ]; };
              admin = { isNormalUser = true; group = "users"; extraGroups = [ "wheel" ]; openssh.authorizedKeys.keys = [ operatorKey ]; };
            };
            disko.devices.disk.vda = {
              device = "/dev/vda";
              content = {
                type = "gpt";
                partitions = {
                  boot = { size = "1M"; type = "EF02"; };
                  swap = { size = "4G"; content = { type = "swap"; }; };
                  root = { size = "100%"; content = { type = "filesystem"; format = "ext4"; mountpoint = "/"; }; };
                };
              };
            };
          };
        };

        # sshd is not enabled: nobody can log in after the reboot.
        no-sshd = nixosSystem { system = "aarch64-linux"; config = (seedConfig { }) // { services.openssh.enable = false; }; };

        # An evaluation error deep in the configuration.
        broken = nixosSystem { system = "aarch64-linux"; config = (seedConfig { }) // { disko.devices.disk.main.device = 1 + "x"; }; };
      };
    };
}
