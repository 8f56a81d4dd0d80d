r"""CPU-seconds per A4 300-dpi page (3508 x 2480 grey) of LiteUNet variants, side by side.

The variants are built in one process (random weights: speed does not depend on them) and timed
in alternating rounds through binjax.inference's sliding window, exactly as binarize runs a
model (eval mode, tiles of a batch spread over every local device); the minimum over rounds is
kept. CPU-seconds of the process are the figure to compare on a machine shared with other work:
wall time grows with the load, CPU time much less.

  python docs/benchmarks/lite_variants_speed.py --overlap=0.25
  python docs/benchmarks/lite_variants_speed.py --overlap=0.5 --rounds=3 \
      --variants='{"released": {}, "fast": {"head": "space_to_depth", "expansion": 2, "decoder_expansion": 1}}'

Results: docs/benchmarks/lite_profile.md.
"""

from launch import common  # noqa: F401  (first: splits the CPU into host devices before JAX loads)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from binjax import inference, models, train  # noqa: E402
from configs import lite  # noqa: E402

VARIANTS = {
    "released": {},
    "fast": {"head": "space_to_depth", "expansion": 2, "decoder_expansion": 1},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=json.loads, default=VARIANTS,
                        help="JSON {name: {model argument: value}} over configs/lite.py's model")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--inference_batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    page = np.random.default_rng(0).integers(0, 256, (3508, 2480, 1), dtype=np.uint8)
    predictors = {}
    for name, arguments in args.variants.items():
        config = lite.get_config()
        config.model.update(arguments)
        model = train.build_model(config, nnx.Rngs(0))
        predict = inference.make_predict_fn(model, devices=jax.local_devices())
        inference.sliding_window_predict(predict, page[:args.tile, :args.tile], tile=args.tile,
                                         overlap=args.overlap, batch_size=args.inference_batch)  # compiles
        predictors[name] = (models.count_params(model), predict)
    best = {name: (float("inf"), float("inf")) for name in predictors}
    for _ in range(args.rounds):
        for name, (_, predict) in predictors.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            inference.sliding_window_predict(predict, page, tile=args.tile, overlap=args.overlap,
                                             batch_size=args.inference_batch)
            cpu, wall = time.process_time() - cpu_start, time.perf_counter() - start
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    print(f"| variant | parameters | CPU-s / page | wall s / page | (tile {args.tile}, overlap {args.overlap}, "
          f"{jax.local_device_count()} devices, min of {args.rounds}) |")
    print("|---|---:|---:|---:|---|")
    for name, (cpu, wall) in best.items():
        print(f"| {name} | {predictors[name][0]:,} | {cpu:.2f} | {wall:.2f} | |")


if __name__ == "__main__":
    main()
