"""``python -m chaos``: one chaos run (or ``--check FILE``: the checks again over a history a failed run kept).

Prints the seed first (a run is replayed by its seed, up to the timing of the machine), then one summary line;
exit status 1 when a check found an anomaly, with the path of the history it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from pathlib import Path

from chaos.checker import check
from chaos.history import History
from chaos.run import Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of load and faults (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="the schedule's and the devices' seed (default: random)")
    parser.add_argument("--identities", type=int, default=3)
    parser.add_argument("--devices", type=int, default=3, help="devices per identity")
    parser.add_argument("--interval", type=float, default=6.0, help="seconds between two faults")
    parser.add_argument("--history-out", type=Path, default=Path("chaos-history.jsonl"))
    parser.add_argument("--folder", type=Path, default=None, help="data and logs of the processes (default: temp)")
    parser.add_argument("--check", type=Path, default=None, metavar="FILE", help="only check a kept history")
    args = parser.parse_args(argv)
    # the devices' push clients log each sync a fault cut short (expected here, by the hundred); errors still show
    logging.getLogger("syncsvc.client").setLevel(logging.ERROR)
    if args.check is not None:
        report = check(History.read(args.check))
    else:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
        print(f"chaos: seed {seed}", flush=True)
        options = Options(
            args.seconds, seed, args.identities, args.devices, args.interval, args.history_out.resolve(), args.folder
        )
        report, _ = asyncio.run(run(options))
    print(report.summary())
    for anomaly in report.anomalies[:50]:
        print(f"  {anomaly.check}: {anomaly.detail}")
    if report.anomalies and args.check is None:
        print(f"chaos: the history is in {args.history_out.resolve()}")
    return 1 if report.anomalies else 0


if __name__ == "__main__":
    sys.exit(main())
