"""Tables of the synthetic-page study: configs/ablations/synthetic_mix.py against the recipe it builds on.

Reads the protocol's per-run scores of the chosen recipe (stretched pages, contrast.py's arm) and
the classic methods' from <protocol_root>, the synthetic arm's from <synthetic_root>
(arg=*/protocol/pages.csv in each), and writes tables.md beside this file (also printed), through
the fast-model study's table (docs/ablations/dibco/lite_speed/make_tables.py). Needs only Python.

  python docs/ablations/dibco/synthetic_mix/make_tables.py docs/ablations/dibco/protocol_baseline /work/protocol/synthetic_stretch
"""

import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
_spec = importlib.util.spec_from_file_location("lite_speed_tables", HERE.parent / "lite_speed" / "make_tables.py")
lite_speed_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lite_speed_tables)

# binjax.protocol.recipe_name of each arm -> its column. synthetic_mix.py puts the stretch into the
# config itself, so its runs are named by the synthetic fraction alone.
ARMS = {"binjax data.contrast=stretch": "stretch recipe",
        "binjax data.mix.synthetic_fraction=0.25": "synthetic 0.25",
        "binjax data.mix.synthetic_fraction=0.5": "synthetic 0.5"}


if __name__ == "__main__":
    protocol_root, synthetic_root = map(pathlib.Path, sys.argv[1:3])
    text = lite_speed_tables.tables(protocol_root, ARMS, synthetic_root)
    (HERE / "tables.md").write_text(text)
    print(text)
