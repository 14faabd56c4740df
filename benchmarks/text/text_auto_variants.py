"""The auto recipe with some of its constants changed, on text_vs_setfit's draws: how defaults are chosen.

Every ``--set NAME=JSON`` replaces one module constant of kshot/text/auto.py (``BLEND``, ``LR``,
``PASSES``, ``STEP_RANGE``, ``TRAIN_COST``, ``FINETUNE_SHARE``, ``C_GRID``, ...) for this process; every
other argument goes to benchmarks/text/text_vs_setfit.py (use ``--eval val``: defaults are chosen on
training-split texts outside the draw, never on the test split). The tag of each row defaults to the
changes, so ``text_vs_setfit.py --summary --eval val`` lists the variants side by side.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 KSHOT_DATA=/path/to/data python benchmarks/text/text_auto_variants.py \\
        --set 'STEP_RANGE=[80, 2000]' -- --systems kshot --sets subj mr --shots 8 --eval val --log runs/variants.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]  # the repository, benchmarks/, benchmarks/text/


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=JSON", help="a constant of kshot.text.auto")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then text_vs_setfit.py's arguments")
    a = ap.parse_args()
    from common import parse_sets

    from kshot.text import auto

    changes = parse_sets(
        a.set,
        lambda name: hasattr(auto, name) and name.isupper(),
        "kshot.text.auto has no constant {name!r}",
        "0.5 or [80, 2000]",
    )
    for name, value in changes.items():
        setattr(auto, name, value)
    rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
    if "--tag" not in rest:
        rest += ["--tag", json.dumps(changes, sort_keys=True) if changes else "default"]
    import text_vs_setfit

    sys.argv = ["text_vs_setfit.py", *rest]
    text_vs_setfit.main()


if __name__ == "__main__":
    main()
