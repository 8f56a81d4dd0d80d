#!/usr/bin/env bash
# binjax's accelerator check: one run, within 8 minutes, on a GPU machine lent for a few minutes.
#
# Stages, each its own process under its own timeout (and all under one deadline), so that one
# hang cannot eat the loan: install the carried wheels if binjax's dependencies are missing;
# print the device and versions; run the tests that matter on a GPU (models, train step,
# inference, one-device sharding, the CPU kernels staying off) with JAX_PLATFORMS=cuda,cpu; the
# train benchmark in float32 and bfloat16 (images/s, MFU against the chip's peak); inference MP/s
# at doubling tile batches up to the largest that fits; a short DIBCO training (the synthetic
# default when the DIBCO pages are not found). OUT_DIR gets device_check.json, device_check.md
# (the tables), stages.tsv and logs/<stage>.log. The exit status is 0 only when every stage
# passed; otherwise the last line names the failed stages. --dry runs every stage on the CPU at
# toy sizes, about a CPU-minute (tests/test_device_check.py), with the synthetic training unless
# BINJAX_DIBCO is set, and limits stretched BINJAX_DRY_SCALE (4) times for a shared CPU.
#
# Environment: PYTHON (default python3); BINJAX_WHEELS (default gpu_wheels/, from
# launch/gpu_wheels.sh); BINJAX_DIBCO (the DIBCO pages; default shared/data/dibco, else
# ../shared/data/dibco; 'none' trains the synthetic config); BINJAX_CHECK_SECONDS (the deadline,
# default 470).
#
#   launch/device_check.sh /tmp/device_check            # on the GPU machine
#   launch/device_check.sh /tmp/device_check_dry --dry  # here, on the CPU
#   BINJAX_DIBCO=none launch/device_check.sh "$OUT"     # skip DIBCO, train the synthetic config
set -uo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  echo
  echo "Usage: launch/device_check.sh OUT_DIR [--dry]"
}

OUT="" DRY=0
for arg in "$@"; do
  case $arg in
    -h|--help) usage; exit 0 ;;
    --dry) DRY=1 ;;
    -*) echo "device_check.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    *) if [[ -n $OUT ]]; then echo "device_check.sh: one OUT_DIR, got '$OUT' and '$arg'" >&2; exit 2; fi
       OUT=$arg ;;
  esac
done
if [[ -z $OUT ]]; then echo "device_check.sh: no OUT_DIR (usage: launch/device_check.sh OUT_DIR [--dry]; --help)" >&2; exit 2; fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then echo "device_check.sh: PYTHON=$PY not found" >&2; exit 2; fi
mkdir -p "$OUT/logs" || exit 2
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/stages.tsv" "$OUT/benchmark_train.jsonl" "$OUT/inference.json" "$OUT"/tests_*.xml "$OUT/DRY"
rm -rf "$OUT/train"
# Dry runs share a loaded CPU (the suite, other jobs): their limits are stretched SCALE times.
SCALE=1
(( DRY )) && SCALE=${BINJAX_DRY_SCALE:-4}
CHECK_SECONDS=$(( ${BINJAX_CHECK_SECONDS:-470} * SCALE ))
DEADLINE=$(( $(date +%s) + CHECK_SECONDS ))
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# One JAX compilation cache for all the stages: the model's initialisers, the same in each, compile once.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/binjax-device-check.XXXXXX")  # the cache, the installed wheels
trap 'rm -rf "$SCRATCH"' EXIT
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$SCRATCH/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0

if (( DRY )); then
  touch "$OUT/DRY"
  # The CPU, one device (as the one-GPU machine has), no huge-page re-exec of the launchers.
  export JAX_PLATFORMS=cpu BINJAX_TEST_HOST_DEVICES=1 BINJAX_HOST_DEVICES=1 BINJAX_HUGE_PAGES=0
  TEST_PLATFORMS=cpu
else
  TEST_PLATFORMS=cuda,cpu  # the GPU by default; the CPU still there for tests that ask for it
fi

# stage NAME LIMIT_S NOTE -- COMMAND...: runs COMMAND under min(LIMIT_S, time to the deadline),
# output to logs/NAME.log (and the last lines to the terminal), a row in stages.tsv.
stage() {
  local name=$1 limit=$(( $2 * SCALE )) note=$3; shift 4
  local left=$(( DEADLINE - $(date +%s) - 5 ))
  (( left < limit )) && limit=$left
  if (( limit < 10 )); then
    printf '%s\t-1\t0\t0\tskipped: the %s s deadline was reached\n' "$name" "$CHECK_SECONDS" >> "$OUT/stages.tsv"
    echo "== $name: skipped (deadline)"; return
  fi
  echo "== $name (limit ${limit} s)"
  local start rc ms
  start=$(date +%s%N)
  timeout -k 10 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  tail -n 6 "$OUT/logs/$name.log" | sed 's/^/   /'
  printf '%s\t%s\t%d.%03d\t%s\t%s\n' "$name" "$rc" $(( ms / 1000 )) $(( ms % 1000 )) "$limit" "$note" >> "$OUT/stages.tsv"
  echo "   -> exit $rc"
}

# ---------------------------------------------------------------- dependencies
# What binjax imports that the lent GPU machine lacks (launch/gpu_wheels.sh downloads them).
WHEEL_MODULES="grain ml_collections tensorflow_datasets doxapy tensorboardX array_record"
imports_ok() { "$PY" -c "import $(echo "$WHEEL_MODULES" | tr ' ' ',')" 2>/dev/null; }
install_wheels() {
  local wheels=${BINJAX_WHEELS:-$REPO/gpu_wheels}
  if [[ ! -d $wheels ]]; then
    echo "missing modules (some of: $WHEEL_MODULES) and no wheel folder at $wheels: prepare it with launch/gpu_wheels.sh"
    return 1
  fi
  # into a folder of its own on PYTHONPATH: the machine's own site-packages stay as they are
  "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$wheels"/*.whl && imports_ok
}
if imports_ok; then
  printf 'wheels\t0\t0\t0\tnot needed: binjax'"'"'s dependencies import\n' >> "$OUT/stages.tsv"
else
  SITE=$SCRATCH/site-packages
  export PYTHONPATH="$PYTHONPATH:$SITE"
  export -f install_wheels imports_ok; export PY SITE REPO WHEEL_MODULES BINJAX_WHEELS
  stage wheels 90 "pip install --no-index --no-deps" -- bash -c install_wheels
fi

# ---------------------------------------------------------------- device and versions
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; } \
  > "$OUT/nvidia_smi.txt" 2>&1 || true
stage environment 60 "$(head -n 1 "$OUT/nvidia_smi.txt" 2>/dev/null)" -- \
  "$PY" -m binjax.device_check environment "$OUT/environment.json"

# ---------------------------------------------------------------- tests
# On one GPU: the models, inference and the CPU paths staying off first; the train step and its
# variants, checkpoints and losses last (after the figures), with what time is left. Tests that
# need 8 devices (or the slow end-to-end ones) are left out; -v puts each test's name in the log.
run_tests() {  # NAME LIMIT TESTS...
  local name=$1 limit=$2; shift 2
  local select=()
  (( DRY )) || select=(-m "not slow" -k "not eight_devices and not global_under_data_parallel and not fsdp_shards and not sharded_over_devices")
  stage "$name" "$limit" "$*, JAX_PLATFORMS=$TEST_PLATFORMS" -- \
    env JAX_PLATFORMS=$TEST_PLATFORMS "$PY" -m pytest -v -p no:cacheprovider --junitxml="$OUT/$name.xml" \
    "${select[@]}" "$@"
}
if (( DRY )); then  # the plumbing, on one quick test each
  CORE_TESTS=(tests/test_cpu_paths_off_on_accelerators.py::test_the_kernels_are_allowed_on_the_cpu_backend_only)
  TRAIN_TESTS=(tests/test_losses.py::test_bce_matches_hand_computation)
else
  CORE_TESTS=(tests/test_cpu_paths_off_on_accelerators.py tests/test_models.py tests/test_inference.py)
  TRAIN_TESTS=(tests/test_train.py tests/test_checkpointing.py tests/test_losses.py)
fi
run_tests tests_models 100 "${CORE_TESTS[@]}"

# ---------------------------------------------------------------- benchmark
if (( DRY )); then
  BENCH=(--config=configs/default.py:smoke --steps=2)
  INFER=(--config=configs/default.py:smoke --tile=32 --page=96x80 --cap=4 --seconds=30)
else
  # the default U-Net, a batch large enough to fill an H100/H200-class chip
  BENCH=(--config=configs/default.py --config.batch_size=128 --config.data.patch_size=256 --steps=20)
  INFER=(--config=configs/default.py --tile=512 --cap=512 --seconds=90)
fi
for dtype in float32 bfloat16; do
  stage "benchmark_$dtype" 75 "launch/benchmark.py --what=train" -- \
    "$PY" -m launch.benchmark "${BENCH[@]}" --what=train --config.compute_dtype=$dtype \
    --json_out="$OUT/benchmark_train.jsonl" --markdown_out="$OUT/logs/benchmark_$dtype.md"
done
stage inference 110 "tile batches doubling from 4" -- \
  "$PY" -m binjax.device_check inference "$OUT/inference.json" "${INFER[@]}"

# ---------------------------------------------------------------- a short training
DIBCO=${BINJAX_DIBCO:-}
if [[ -z $DIBCO ]] && (( ! DRY )); then  # a dry run reads DIBCO only when BINJAX_DIBCO says where
  for candidate in "$REPO/shared/data/dibco" "$REPO/../shared/data/dibco"; do
    [[ -f $candidate/MANIFEST.tsv ]] && { DIBCO=$(cd "$candidate" && pwd); break; }
  done
fi
if [[ -n $DIBCO && $DIBCO != none && -f $DIBCO/MANIFEST.tsv ]]; then
  CONFIG=configs/dibco_unet.py SOURCE="DIBCO pages at $DIBCO"
  TRAIN=(--config.data.tfds.manual_dir="$DIBCO" --config.data.tfds.data_dir="$OUT/tfds")
else
  CONFIG=configs/default.py SOURCE="synthetic: DIBCO pages not found (BINJAX_DIBCO=${BINJAX_DIBCO:-unset}, shared/data/dibco, ../shared/data/dibco)"
  TRAIN=()
fi
if (( DRY )); then
  CONFIG=$CONFIG:smoke
  TRAIN+=(--config.num_steps=4)
else
  TRAIN+=(--config.num_steps=300 --config.eval_every=150 --config.checkpoint_every=300)
fi
printf '{"source": "%s", "config": "%s"}\n' "$SOURCE" "$CONFIG" > "$OUT/train_source.json"
stage train 120 "$CONFIG; $SOURCE" -- \
  "$PY" -m launch.train --config="$CONFIG" --workdir="$OUT/train" "${TRAIN[@]}"

run_tests tests_train 200 "${TRAIN_TESTS[@]}"

# ---------------------------------------------------------------- the report
echo "== report"
"$PY" -m binjax.device_check report "$OUT"
