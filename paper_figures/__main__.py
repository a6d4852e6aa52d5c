"""``python -m paper_figures all [--quick] [--out DIR] [--seed N]``: every figure in turn."""

import importlib
import sys
import time

from . import FIGURES


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("figures: " + ", ".join(FIGURES) + "; or one of them: python -m paper_figures.<name> --help")
        return 0
    which, rest = argv[0], argv[1:]
    names = FIGURES if which == "all" else tuple(which.split(","))
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"error: unknown figure {unknown[0]!r}; choose from all, {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    from ._common import run_figure

    rows, failed = [], []
    for n in names:
        t0 = time.perf_counter()
        try:
            rec = run_figure(importlib.import_module(f"paper_figures.{n}"), rest)
        except SystemExit as exc:  # a figure's one-line error (e.g. a missing optional dependency)
            if exc.code in (0, None):
                raise
            print(f"[{n}] FAILED: {exc.code}", file=sys.stderr)
            failed.append(n)
            rows.append((n, time.perf_counter() - t0, None))
            continue
        rows.append((n, time.perf_counter() - t0, rec.get("findings", {})))
    print(f"{'figure':<14} {'wall (s)':>9}  findings held")
    for n, w, f in rows:
        status = "failed" if f is None else f"{sum(bool(v) for v in f.values())}/{len(f)}"
        print(f"{n:<14} {w:9.1f}  {status}")
    if failed:
        print(f"error: {len(failed)} figure(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
