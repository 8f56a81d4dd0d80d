#!/usr/bin/env bash
# Prepares a folder of wheels for a GPU machine that has JAX but cannot reach a package index.
#
# The lent GPU machine (README, "On a GPU") comes with Python 3.12, jax/jaxlib 0.11 and the CUDA
# plugin, flax, optax, orbax-checkpoint, chex, numpy, pillow, scikit-image, tifffile, tqdm,
# matplotlib, absl-py and pytest, but not the rest of what binjax imports. This downloads exactly
# that rest, as CPython 3.12 manylinux wheels at the versions of constraints/py312.txt, without
# their dependencies (--no-deps: pip would otherwise pull a second JAX). pyarrow, which
# tensorflow-datasets declares but binjax's array_record data sources never import, is left out:
# 42 MiB, where the whole folder is 12 MiB without it. launch/device_check.sh installs the folder with
#   pip install --no-index --no-deps --find-links DIR ...
# when the packages are missing there. Never commit the wheels (the folder is .gitignored).
#
#   launch/gpu_wheels.sh gpu_wheels            # then carry gpu_wheels/ to the GPU machine
#   launch/gpu_wheels.sh --help
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  echo
  echo "Usage: launch/gpu_wheels.sh DIR   (DIR: created if absent; PIP: the pip to run, default 'python -m pip')"
}

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then usage; exit 0; fi
if [[ $# -ne 1 || "$1" == -* ]]; then
  echo "gpu_wheels.sh: give one DIR, got: ${*:-nothing} (usage: launch/gpu_wheels.sh DIR; --help)" >&2
  exit 2
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=$1
CONSTRAINTS="$REPO/constraints/py312.txt"
PIP=${PIP:-python -m pip}

# What binjax imports (directly, or through grain and tensorflow-datasets' import chains) that
# the GPU machine lacks; device_check.sh's WHEEL_MODULES is the import-level view of the same set.
PACKAGES=(
  grain array_record cloudpickle portpicker
  ml_collections
  doxapy
  tensorboardX
  tensorflow-datasets dm-tree wrapt immutabledict simple-parsing docstring_parser
  tensorflow-metadata googleapis-common-protos termcolor toml attrs promise
  requests certifi charset-normalizer idna urllib3 six
)

pinned() {  # the constraints file's "name==version" for $1 (names compared as pip does)
  local want line name
  want=$(echo "$1" | tr 'A-Z_.' 'a-z--')
  while IFS= read -r line; do
    name=${line%%==*}
    if [[ "$(echo "$name" | tr 'A-Z_.' 'a-z--')" == "$want" ]]; then echo "$line"; return; fi
  done < <(grep '==' "$CONSTRAINTS")
  echo "gpu_wheels.sh: $1 is not pinned in $CONSTRAINTS" >&2
  exit 2
}

mkdir -p "$DIR"
REQUIREMENTS=()
for package in "${PACKAGES[@]}"; do
  [[ $package == promise ]] && continue  # an sdist only: built below
  REQUIREMENTS+=("$(pinned "$package")")
done

$PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$DIR" "${REQUIREMENTS[@]}" 2>&1 | grep -v "is ignored" || true
# promise (tensorflow-datasets imports it) is published as source only; it is pure Python, so a
# wheel built here installs anywhere.
if ! ls "$DIR"/promise-*.whl >/dev/null 2>&1; then
  $PIP wheel --quiet --no-deps --no-build-isolation -w "$DIR" "$(pinned promise)" 2>&1 | grep -v "is ignored" || true
fi

missing=()
for package in "${PACKAGES[@]}"; do
  glob=$(echo "$package" | tr 'A-Z.-' 'a-z__')
  ls "$DIR" | tr 'A-Z' 'a-z' | grep -q "^${glob}-" || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "gpu_wheels.sh: no wheel came for: ${missing[*]} (see pip's messages above)" >&2
  exit 1
fi
echo "gpu_wheels.sh: $(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
