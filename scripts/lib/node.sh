# Sourced by scripts that need Node packages (scripts/browser-deps, scripts/client).
#   node_ensure           installs Debian's nodejs and npm when node or npm is missing
#   npm_ci_once DIR       `npm ci` in DIR from its package-lock.json, skipped while DIR's
#                         node_modules matches the lock file (a stamp holds the lock's digest)
# Both need `say` from the caller. Concurrent callers should hold a lock of their own.

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    say "need root (or password-less sudo) to run: $*"
    return 1
  fi
}

apt_install() {
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

node_ensure() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
}

npm_ci_once() {
  local dir="$1"
  local stamp="$dir/node_modules/.bountyline-lock-sha256"
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "$dir/node_modules matches package-lock.json"
    return 0
  fi
  say "npm ci in $dir"
  # No install scripts run: nothing is downloaded beside the registry's own packages.
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  echo "$want" >"$stamp"
}
