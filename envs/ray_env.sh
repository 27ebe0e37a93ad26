#!/usr/bin/env bash
# The Ray side env: the clean env's packages plus the `ray` extra (pyproject's
# [project.optional-dependencies] ray), without touching the clean env itself.
#   envs/ray_env.sh [DEST]          (default .venvs/ray; tests read ORCAPORT_RAY_PYTHON or DEST/bin/python)
#
# DEST is a venv whose site-packages runs `site.addsitedir(<clean env's site-packages>)` at startup,
# so torch and the editable orcaport install are the clean env's, and only Ray and what it needs
# are installed here (~200 MB instead of another torch). Rebuilt when the pins below change (a build
# without its stamp, e.g. interrupted, is rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.venvs/ray}
CLEAN=.venvs/clean/bin/python
RAY_PINS="ray==2.60.0 aiohttp==3.14.5"     # keep in step with pyproject's `ray` extra
[ -x "$CLEAN" ] || { echo "error: $CLEAN missing; run \`make env-clean\` first" >&2; exit 2; }
site=$($CLEAN -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# the clean env's site-packages through its link (.venvs/clean): a rebuilt clean env is followed; a
# clean env elsewhere (another checkout) gives another stamp, so a side env of its own
stamp=$(echo "$RAY_PINS $site $($CLEAN -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-64)
if [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$stamp" ]; then exit 0; fi
base=$($CLEAN -c 'import sys; print(sys._base_executable)')
rm -rf "$DEST" && "$base" -m venv "$DEST"     # built in place (a venv hard-codes its path); the stamp comes last
own=$("$DEST/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import site; site.addsitedir('$site')" > "$own/orcaport_clean_env.pth"
"$DEST/bin/python" -m pip --disable-pip-version-check -q install $RAY_PINS \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$DEST/bin/python" -c 'import ray, fsspec, aiohttp, orcaport.model.detector' \
  || { echo "error: the Ray env at $DEST cannot import ray + orcaport" >&2; exit 3; }
echo "$stamp" > "$DEST/.stamp"
