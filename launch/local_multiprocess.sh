#!/usr/bin/env bash
# Runs one binjax launcher as N JAX processes on this machine, talking over 127.0.0.1 only:
# a rehearsal of a multi-host run (jax.distributed, cross-process collectives, Orbax saving
# from every process) without a cluster.
#
#   launch/local_multiprocess.sh N COMMAND...
#
#   XLA_FLAGS=--xla_force_host_platform_device_count=2 launch/local_multiprocess.sh 2 \
#       .venv/bin/python -m launch.train --config=configs/default.py:smoke --workdir=/tmp/mp
#
# Process i runs COMMAND --distributed --coordinator_address=127.0.0.1:PORT --num_processes=N
# --process_id=i. Process 0 writes to this terminal; process i > 0 to LOG_DIR/process_<i>.log.
# A process that fails stops its peers itself (binjax/host_failures.py); the script also stops
# the others when one exits non-zero (a process killed outright cannot tell them), and exits
# with that process's status.
#
# Environment:
#   PORT      coordinator port (default: a free one)
#   LOG_DIR   where the logs of processes 1..N-1 go (default: a new temporary directory)
#   XLA_FLAGS passed through. On CPU each process otherwise splits the CPU into one device per
#             core (--host_devices=auto), N times over; give each process its share instead,
#             e.g. --xla_force_host_platform_device_count=2, or --host_devices=2 in COMMAND.
set -euo pipefail

if [[ $# -lt 2 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
num_processes=$1
shift

port=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log_dir=${LOG_DIR:-$(mktemp -d -t binjax_processes.XXXXXX)}
mkdir -p "$log_dir"
# jax.distributed's coordinator (process 0) listens on [::]:PORT unless told otherwise.
export JAX_COORDINATOR_BIND_ADDRESS=127.0.0.1:$port
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}

pids=()
stop_all() { kill "${pids[@]}" 2>/dev/null || true; }
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

for ((i = 0; i < num_processes; i++)); do
  args=("$@" --distributed --coordinator_address="127.0.0.1:$port" --num_processes="$num_processes" --process_id="$i")
  if ((i == 0)); then
    "${args[@]}" &
  else
    "${args[@]}" >"$log_dir/process_$i.log" 2>&1 &
  fi
  pids+=($!)
done
echo "local_multiprocess: $num_processes process(es) on 127.0.0.1:$port; logs of processes 1+ in $log_dir" >&2

status=0
for ((i = 0; i < num_processes; i++)); do
  code=0
  wait -n || code=$?  # the next of our processes to end
  if ((code != 0 && status == 0)); then
    status=$code
    echo "local_multiprocess: a process exited with status $code; stopping the others" >&2
    stop_all
  fi
done
exit "$status"
