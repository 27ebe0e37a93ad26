#!/usr/bin/env bash
# Create or update one of the project's two virtualenvs, idempotently.
#   envs/make_env.sh clean|legacy
# The venv is rebuilt only when its inputs (lock file, this script, the fastai_audio spec) change:
# a stamp inside the venv holds their sha256, so re-running with nothing changed is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:?usage: envs/make_env.sh clean|legacy}
PYTHON=${PYTHON:-python3.11}
VENV=".venvs/$which"
LOCK="envs/$which.lock.txt"
[ -f "$LOCK" ] || { echo "error: $LOCK missing; restore it from git" >&2; exit 2; }

# The public upstream tag; air-gapped users (and these machines) point it at a local source tree,
# in the environment or once in envs/local.mk (git-ignored; the Makefile reads it too).
if [ -z "${FASTAI_AUDIO_SPEC:-}" ] && [ -f envs/local.mk ]; then
  FASTAI_AUDIO_SPEC=$(sed -n 's/^FASTAI_AUDIO_SPEC[[:space:]]*[:?]\{0,1\}=[[:space:]]*//p' envs/local.mk | tail -n 1)
fi
FASTAI_AUDIO_SPEC=${FASTAI_AUDIO_SPEC:-git+https://github.com/fastaudio/fastai_audio@0.1}

inputs() {
  sha256sum "$LOCK" envs/make_env.sh
  if [ "$which" = legacy ]; then echo "$FASTAI_AUDIO_SPEC"; sha256sum envs/fix_fastai_audio.py; fi
  sha256sum pyproject.toml
}
want=$(inputs | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$want" ]; then
  echo "$VENV is up to date"; exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 2; }
# This machine's pip config lists local indexes that spam one warning per package: drop those.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
echo "building $VENV ..."
# Built in place (venvs hard-code their path); the stamp is written last, so an interrupted build
# has none and is rebuilt from scratch next time.
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=(quiet_pip "$VENV/bin/python" -m pip --disable-pip-version-check -q)
case "$which" in
  clean)
    "${pip[@]}" install -r "$LOCK"
    # The project itself, without dependencies: the lock is the whole truth about what is installed.
    "${pip[@]}" install --no-deps --no-build-isolation -e . ;;
  legacy)
    "${pip[@]}" install -r "$LOCK"
    # fastai pins 2020-era packages; its runtime needs are all in the lock.
    "${pip[@]}" install --no-deps fastai==1.0.61
    "${pip[@]}" install --no-deps "$FASTAI_AUDIO_SPEC"
    "$VENV/bin/python" envs/fix_fastai_audio.py
    # convert/ imports the runtime as orcaport.model / orcaport.parity, as the clean env does
    # (built in isolation: this venv's setuptools has no `wheel` beside it).
    "${pip[@]}" install --no-deps -e . ;;
  *) echo "error: unknown env '$which' (clean|legacy)" >&2; exit 2 ;;
esac
echo "$want" > "$VENV/.stamp"
echo "built $VENV"
