#!/usr/bin/env bash
# Create or update one of the project's two virtualenvs without ever losing a working one.
#   envs/make_env.sh clean|legacy
#
# .venvs/<env> is a symlink to a built env, .venvs/<env>-<hash>: venvs hard-code their own path, so
# a rebuild happens beside the old env, under its final name, and only a complete build is swapped in
# (one rename of the link); the old env is removed after the swap. A failed or interrupted build
# leaves the old env exactly as it was.
#
# When is it rebuilt? Only when what it would install changes: the lock, the fastai_audio spec, the
# Python 3.11 fix and RECIPE below (the "env" stamp). A pyproject.toml change only re-runs the
# project's editable install in place (the "project" stamp): seconds, not a 4.7 GB rebuild.
#
# Which fastai_audio? FASTAI_AUDIO_SPEC from the environment (or `make ... FASTAI_AUDIO_SPEC=`), else
# envs/local.mk, else the spec the existing legacy env was built from (remembered in it), else the
# public upstream tag. So after one `make env-legacy FASTAI_AUDIO_SPEC=/local/tree`, every later target
# finds the env up to date without the variable.
set -euo pipefail
cd "$(dirname "$0")/.."

RECIPE=2   # bump when the build steps below change what ends up installed
which=${1:?usage: envs/make_env.sh clean|legacy}
case "$which" in clean|legacy) ;; *) echo "error: unknown env '$which' (clean|legacy)" >&2; exit 2 ;; esac
PYTHON=${PYTHON:-python3.11}
LINK=".venvs/$which"
LOCK="envs/$which.lock.txt"
UPSTREAM_SPEC="git+https://github.com/fastaudio/fastai_audio@0.1"
[ -f "$LOCK" ] || { echo "error: $LOCK missing; restore it from git" >&2; exit 2; }
fail() { echo "error: $*" >&2; exit 3; }

spec_source=""
if [ "$which" = legacy ]; then
  if [ -n "${FASTAI_AUDIO_SPEC:-}" ]; then spec_source="FASTAI_AUDIO_SPEC"
  elif [ -f envs/local.mk ]; then
    FASTAI_AUDIO_SPEC=$(sed -n 's/^FASTAI_AUDIO_SPEC[[:space:]]*[:?]\{0,1\}=[[:space:]]*//p' envs/local.mk | tail -n 1)
    [ -n "$FASTAI_AUDIO_SPEC" ] && spec_source="envs/local.mk"
  fi
  if [ -z "${FASTAI_AUDIO_SPEC:-}" ] && [ -f "$LINK/.spec" ]; then
    FASTAI_AUDIO_SPEC=$(cat "$LINK/.spec"); spec_source="the spec $LINK was built from"
  fi
  if [ -z "${FASTAI_AUDIO_SPEC:-}" ]; then FASTAI_AUDIO_SPEC=$UPSTREAM_SPEC; spec_source="the default upstream tag"; fi
fi

env_inputs() {
  echo "recipe $RECIPE"; "$PYTHON" -c 'import sys; print(sys.version)' 2>/dev/null || true
  sha256sum "$LOCK"
  if [ "$which" = legacy ]; then echo "spec $FASTAI_AUDIO_SPEC"; sha256sum envs/fix_fastai_audio.py; fi
}
project_inputs() { sha256sum pyproject.toml; }
command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 2; }
want_env=$(env_inputs | sha256sum | cut -c1-64)
want_project=$(project_inputs | sha256sum | cut -c1-64)
# This machine's pip config lists local indexes that spam one warning per package: drop those.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
install_project() {   # the project itself, editable, without dependencies: the lock is the whole truth
  # Built with the env's own setuptools when it can make wheels (no index needed), else isolated.
  local isolation=(--no-build-isolation)
  "$1/bin/python" -c "import wheel" 2>/dev/null || "$1/bin/python" -c "import setuptools.command.bdist_wheel" \
    2>/dev/null || isolation=()
  quiet_pip "$1/bin/python" -m pip --disable-pip-version-check -q install --no-deps "${isolation[@]}" -e . \
    || fail "could not install the project into $1 (pip's message above)"
  echo "$want_project" > "$1/.stamp-project"
}

if [ -f "$LINK/.stamp-env" ] && [ "$(cat "$LINK/.stamp-env")" = "$want_env" ]; then
  if [ "$(cat "$LINK/.stamp-project" 2>/dev/null)" != "$want_project" ]; then
    echo "$LINK: pyproject.toml changed; re-installing the project (editable) in place"
    install_project "$LINK"
  fi
  echo "$LINK is up to date${spec_source:+ (fastai_audio: $FASTAI_AUDIO_SPEC, from $spec_source)}"; exit 0
fi

# A source that cannot be reached fails here, before anything is built or touched.
if [ "$which" = legacy ]; then
  hint="set FASTAI_AUDIO_SPEC to a local fastai_audio 0.1 source tree (make env-legacy FASTAI_AUDIO_SPEC=/path/to/fastai_audio-0.1)"
  case "$FASTAI_AUDIO_SPEC" in
    git+*)
      url=${FASTAI_AUDIO_SPEC#git+}; url=${url%@*}
      GIT_TERMINAL_PROMPT=0 timeout 30 git ls-remote --exit-code "$url" >/dev/null 2>&1 \
        || fail "fastai_audio source $FASTAI_AUDIO_SPEC (from $spec_source) is not reachable; $hint; $LINK is unchanged" ;;
    *://*) ;;   # another URL: pip reports what it cannot reach
    *) [ -e "$FASTAI_AUDIO_SPEC" ] \
        || fail "fastai_audio source $FASTAI_AUDIO_SPEC (from $spec_source) does not exist; $hint; $LINK is unchanged" ;;
  esac
fi

target=".venvs/$which-${want_env:0:12}"
echo "building $target (then $LINK -> it) ..."
mkdir -p .venvs
rm -rf "$target"   # a build of the same inputs that was interrupted: never linked, never used
built=0
cleanup() { [ "$built" = 1 ] || { rm -rf "$target"; echo "error: building $target failed; $LINK is unchanged" >&2; }; }
trap cleanup EXIT
"$PYTHON" -m venv "$target"
pip=(quiet_pip "$target/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r "$LOCK"
if [ "$which" = legacy ]; then
  # fastai pins 2020-era packages; its runtime needs are all in the lock.
  "${pip[@]}" install --no-deps fastai==1.0.61
  "${pip[@]}" install --no-deps "$FASTAI_AUDIO_SPEC"
  "$target/bin/python" envs/fix_fastai_audio.py
  echo "$FASTAI_AUDIO_SPEC" > "$target/.spec"
fi
install_project "$target"
echo "$want_env" > "$target/.stamp-env"
built=1

# Swap: one rename of a fresh link over the old one. An old-style env (a real folder) is moved
# aside first; whatever the link pointed at before is removed only after the swap.
old=""
if [ -L "$LINK" ]; then old=$(readlink -f "$LINK")
elif [ -e "$LINK" ]; then old=".venvs/$which-replaced-$$"; mv -T "$LINK" "$old"; fi
ln -sfn "$(basename "$target")" ".venvs/.$which.link.tmp"
mv -T ".venvs/.$which.link.tmp" "$LINK"
if [ -n "$old" ] && [ "$(readlink -f "$old")" != "$(readlink -f "$target")" ]; then rm -rf "$old"; fi
echo "built $target; $LINK now points at it"
