#!/usr/bin/env bash
# Multi-host training on a Cloud TPU VM slice (v4-16, v5litepod-16, ...): one JAX process per
# TPU VM worker, started on all workers at once over `gcloud compute tpus tpu-vm ssh --worker=all`.
# Run it from the root of the binjax checkout on your workstation:
#
#   export TPU_NAME=my-tpu ZONE=us-central2-b            # and PROJECT=... unless gcloud's default
#   export REMOTE_PYTHON=python3.11                       # the workers' Python (>= 3.11)
#   launch/tpu_vm.sh setup                                # once: this checkout + a venv on every worker
#   launch/tpu_vm.sh train configs/default.py /mnt/shared/binjax/default --config.batch_size=64
#   launch/tpu_vm.sh stop                                 # stop the training processes on every worker
#
# train: CONFIG, WORKDIR, then any --config.x=y overrides. --distributed makes
# jax.distributed.initialize() read the TPU metadata (coordinator = worker 0, process count and
# index), so no addresses are passed. config.batch_size is the global batch; each worker reads
# its share of every batch, and the run trains as the same config would on one host with as
# many devices.
#
# The WORKDIR must be one directory that every worker sees at the same path (a Filestore/NFS
# mount, say): every process writes its part of each Orbax checkpoint there; worker 0 alone
# writes metrics, TensorBoard events, samples and config.json. (binjax writes the workdir with
# pathlib, so it has to be a mounted path, not gs://.) Running `train` again with the same
# arguments resumes from the last checkpoint, e.g. after a preemption. Data other than the
# built-in synthetic pages (folders, the DIBCO tfds dataset) must be readable on every worker.
set -euo pipefail

if [[ ! ${1:-} =~ ^(setup|train|stop)$ ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
: "${TPU_NAME:?set TPU_NAME to the name of the TPU VM}" "${ZONE:?set ZONE to its zone}"
remote_dir=${REMOTE_DIR:-binjax}  # the checkout's place on each worker, relative to the home directory
pid_file=/tmp/binjax-train.pid    # on each worker: the training process, for `stop`
# binjax needs Python >= 3.11 on the workers; Ubuntu 22.04 TPU VM images ship 3.10, so install a
# newer one there first (e.g. python3.11 from the deadsnakes PPA) and name it here.
remote_python=${REMOTE_PYTHON:-python3}
gcloud_tpu=(gcloud compute tpus tpu-vm)
where=("$TPU_NAME" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"} --worker=all)

on_all_workers() {  # one shell command, run on every worker at the same time
  "${gcloud_tpu[@]}" ssh "${where[@]}" --command="$1"
}

case ${1:-} in
  setup)
    # The committed tree (git archive): uncommitted edits are not copied.
    archive=$(mktemp -t binjax.XXXXXX.tar.gz)
    trap 'rm -f "$archive"' EXIT
    git archive --format=tar.gz -o "$archive" HEAD
    "${gcloud_tpu[@]}" scp "$archive" "${where[0]}:/tmp/binjax.tar.gz" "${where[@]:1}"
    # jax[tpu] pulls in libtpu; the version is binjax's pin (pyproject.toml).
    on_all_workers "mkdir -p $remote_dir && tar -xzf /tmp/binjax.tar.gz -C $remote_dir && cd $remote_dir \
      && $remote_python -m venv .venv && .venv/bin/pip install -q -e . 'jax[tpu]==0.10.2'"
    ;;
  train)
    shift
    if (($# < 2)); then
      echo "usage: $0 train CONFIG WORKDIR [--config.x=y ...]" >&2
      exit 2
    fi
    config=$1 workdir=$2
    shift 2
    # printf %q quotes every argument for the remote shell. `exec` makes the recorded pid the
    # training process itself.
    command=$(printf '%q ' .venv/bin/python -m launch.train --config="$config" --workdir="$workdir" --distributed "$@")
    on_all_workers "cd $remote_dir && echo \$\$ > $pid_file && exec $command"
    ;;
  stop)
    on_all_workers "if [ -f $pid_file ]; then kill \$(cat $pid_file) 2>/dev/null || true; rm -f $pid_file; fi"
    ;;
esac
