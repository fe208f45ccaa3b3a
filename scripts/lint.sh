#!/usr/bin/env bash
# Offline azdev checks for the virtual-node extension, as azure-cli-extensions CI runs them:
#   1. azdev linter virtual-node -t params commands command_groups help_entries --min-severity low
#      (plus azdev's custom pylint rules, e.g. show-command E5001)
#   2. azdev style virtual-node   (pylint with azdev's ext_pylintrc + flake8 with azdev's ext.flake8; max line 120)
# Exits non-zero if either fails. Nothing outside the repo's .azdev/ and a temp dir is written (no ~/.azure,
# no ~/.azdev) and nothing is downloaded:
#   - azdev reads <AZDEV_CLI_REPO_PATH>/scripts/ci/cmdcov.yml on import (else fetches it from GitHub):
#     tools/azdev/cli-stub holds a copy.
#   - rule type command_test_coverage is not selected: its missing_command_example rule downloads a threshold
#     file, and the coverage rules look for azure-cli-extensions style recorded tests this project does not use.
#   - broken_site_link_* rules GET every URL in help; the help text keeps URLs out, so they pass offline.
# azdev only finds extensions in an "extension repo" (<repo>/src/<name>/<name>.egg-info), so a throw-away copy of
# the extension is laid out in a temp dir and registered with az as a dev extension (AZURE_EXTENSION_DEV_SOURCES).
# It is a copy, not symlinks, because flake8 does not descend into symlinked directories.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
EXT_NAME=virtual-node
EXT_PKG=azext_virtualnode

if [[ ! -x "$VENV/bin/azdev" ]]; then
    echo "lint.sh: $VENV/bin/azdev missing: run 'make venv' (azdev is in requirements-dev.txt)" >&2
    exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/virtual-node-lint.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Extension repo layout: $WORK/ext-repo/src/virtual-node/{setup.py,...,azext_virtualnode,virtual_node.egg-info}
SRC="$WORK/ext-repo/src/$EXT_NAME"
mkdir -p "$SRC"
cp "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/README.md" "$ROOT/HISTORY.rst" "$SRC/"
[[ -f "$ROOT/linter_exclusions.yml" ]] && cp "$ROOT/linter_exclusions.yml" "$SRC/"
cp -r "$ROOT/$EXT_PKG" "$SRC/"
find "$SRC" -name __pycache__ -type d -prune -exec rm -rf {} +
(cd "$SRC" && "$VENV/bin/python" setup.py -q egg_info >/dev/null 2>&1) || {
    echo "lint.sh: 'setup.py egg_info' failed" >&2
    (cd "$SRC" && "$VENV/bin/python" setup.py -q egg_info)
    exit 2
}

# azdev config: everything through env vars (prefix AZDEV), files under the repo's .azdev/ (gitignored).
# With VIRTUAL_ENV set (azdev requires it) azdev's config dir is $AZDEV_CONFIG_DIR/env_config$VIRTUAL_ENV.
export VIRTUAL_ENV="$VENV"
export AZDEV_CONFIG_DIR="$ROOT/.azdev"
export AZDEV_CLI_REPO_PATH="$ROOT/tools/azdev/cli-stub"
export AZDEV_EXT_REPO_PATHS="$WORK/ext-repo"
AZDEV_ENV_CONFIG_DIR="$AZDEV_CONFIG_DIR/env_config$VIRTUAL_ENV"
mkdir -p "$AZDEV_ENV_CONFIG_DIR/config_files"
AZDEV_PKG="$("$VENV/bin/python" -c 'import os, azdev; print(os.path.dirname(azdev.__file__))')"
# What 'azdev setup' would copy: ext_pylintrc for the linter's custom pylint step and for 'azdev style'.
for f in ext_pylintrc ext.flake8 cli_pylintrc cli.flake8; do
    cp "$AZDEV_PKG/config/$f" "$AZDEV_ENV_CONFIG_DIR/config_files/$f"
done

# az itself: private config and extension dirs, the extension only as a dev source; no telemetry or prompts.
# (Not "$WORK/azure": azdev runs pylint in $WORK, and isort would then take a directory named azure there
# for first-party code.)
export AZURE_CONFIG_DIR="$WORK/az-config"
export AZURE_EXTENSION_DIR="$WORK/az-extensions"
export AZURE_EXTENSION_DEV_SOURCES="$WORK/ext-repo/src"
export AZURE_CORE_COLLECT_TELEMETRY=false AZURE_CORE_SURVEY_MESSAGE=false AZURE_CORE_NO_COLOR=true
unset AZURE_EXTENSION_SYS_DIR AZURE_EXTENSION_USE_DYNAMIC_INSTALL
mkdir -p "$AZURE_CONFIG_DIR" "$AZURE_EXTENSION_DIR"
export PATH="$VENV/bin:$PATH"

# Report findings against the project's files, not the temp copy.
show() { sed -e "s#$SRC/#$ROOT/#g" -e "s#^ext-repo/src/$EXT_NAME/#$ROOT/#"; }

# The two steps are independent and mostly single-threaded (the linter spends most of its time loading the whole
# CLI command table), so they run side by side; each log is printed when both are done.
# Each gets its own PYLINTHOME (pylint keeps run stats there; default ~/.cache/pylint).
run() {
    local step=$1
    shift
    (cd "$WORK" && PYLINTHOME="$WORK/pylint-home-$step" "$@") >"$WORK/$step.log" 2>&1
}
echo "lint: running azdev linter and azdev style on $EXT_NAME..."
SECONDS=0
run linter azdev linter "$EXT_NAME" -t params commands command_groups help_entries --min-severity low &
linter_pid=$!
run style azdev style "$EXT_NAME" &
style_pid=$!
status=0
wait $linter_pid || status=1
wait $style_pid || status=1

echo "== azdev linter $EXT_NAME -t params commands command_groups help_entries --min-severity low"
show <"$WORK/linter.log"
echo "== azdev style $EXT_NAME (pylint + flake8)"
show <"$WORK/style.log"
if [[ $status -eq 0 ]]; then
    echo "lint: PASSED (${SECONDS}s)"
else
    echo "lint: FAILED (${SECONDS}s)" >&2
fi
exit $status
