{
  description = "bigbang: install a NixOS flake onto a fresh VPS with nixos-anywhere, checked before the wipe and verified after the reboot";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      version = "0.1.0";
    in
    {
      packages = forAllSystems (pkgs: {
        default = pkgs.buildGoModule {
          pname = "bigbang";
          inherit version;
          src = ./.;
          # Kept equal to `nix hash path` of the `go mod vendor` output by a
          # test (flake_test.go); scripts/update-vendor-hash.sh rewrites it.
          vendorHash = "sha256-kgfoa6lSJTd4u1JRSWyfQP0f7nG17pk6hdyY7D/PWo0=";
          subPackages = [ "." ];
          ldflags = [ "-s" "-w" "-X main.version=${version}" ];
          # The tests need a real sshd, tmux and a writable Nix store.
          doCheck = false;
          meta = {
            description = "Terminal installer that puts a NixOS flake onto a fresh VPS via nixos-anywhere";
            mainProgram = "bigbang";
          };
        };
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/bigbang";
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [ go gopls gotools openssh tmux age sops gnumake ];
        };
      });
    };
}
