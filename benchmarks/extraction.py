"""Extraction quality of the pipeline's own extractor on the Zyte article-extraction benchmark.

    python benchmarks/extraction.py --data ../shared/benchmarks/zyte-article-extraction \
        [--scorer ../shared/benchmarks/zyte_eval.py] [--worst 10]

Scores `monitor.extract.extract_article` (what the pipeline stores in
`items.text`) with the benchmark's own scorer, in the same run as bare
trafilatura with the settings published for it (the baseline). Pages whose
id sorts into the first half are the development set (tune only on those);
F1 is reported on the held-out second half and on all pages. Prints F1,
precision, recall, empty pages, errors and pages per CPU-second (both
extractors run page by page, alternately, after a warm-up).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load_scorer(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("zyte_eval", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ours(html: str, url: str) -> str:
    from monitor.extract import extract_article

    return extract_article(html, url).text or ""


def bare_trafilatura(html: str, url: str) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url, favor_precision=True, include_comments=False) or ""


def run(fns: list[Callable[[str, str], str]], items: list[Any]) -> list[tuple[list[str], int, float]]:
    """Each extractor on each page, page by page, in alternating order, so that a
    machine busy with something else for a while slows them all alike."""
    outs: list[list[str]] = [[] for _ in fns]
    errors, cpu = [0] * len(fns), [0.0] * len(fns)
    for n, (_key, url, html, _truth) in enumerate(items):
        order = range(len(fns)) if n % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.process_time()
            try:
                out = fns[i](html, url) or ""
            except Exception:  # a failure counts as an empty page, as the scorer does
                errors[i] += 1
                out = ""
            cpu[i] += time.process_time() - start
            outs[i].append(out)
    return list(zip(outs, errors, cpu, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the zyte-article-extraction folder")
    ap.add_argument("--scorer", type=Path, help="zyte_eval.py (default: beside --data)")
    ap.add_argument("--worst", type=int, default=0, help="list the N held-out pages with the lowest F1")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    scorer = load_scorer(args.scorer or args.data.parent / "zyte_eval.py")
    items = sorted(scorer.load_data(args.data), key=lambda it: it[0])
    half = len(items) // 2
    sets = {"development": items[:half], "held-out": items[half:], "all": items}
    print(f"{len(items)} pages: {half} development (ids sorting first), {len(items) - half} held out")
    extractors = {"bare trafilatura (favor_precision, no comments)": bare_trafilatura, "monitor": ours}
    for fn in extractors.values():  # imports and lazily loaded tables (justext's stop words) before timing
        fn("<html><body><article><p>warm up</p></article></body></html>", "http://localhost/")
    results = run(list(extractors.values()), items)
    for (name, fn), (outs, errors, cpu) in zip(extractors.items(), results, strict=True):
        by_key = {it[0]: o for it, o in zip(items, outs, strict=True)}
        print(
            f"{name}: {len(items) / cpu:.1f} pages per CPU-second, {errors} errors, "
            f"{sum(1 for o in outs if not o.strip())} empty"
        )
        for set_name, subset in sets.items():
            m = scorer.score([it[3] for it in subset], [by_key[it[0]] for it in subset], 200)
            print(f"  {set_name:12s} F1 {m['f1']:.3f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}")
        if args.worst and fn is ours:
            held = sets["held-out"]
            m = scorer.score([it[3] for it in held], [by_key[it[0]] for it in held], 0)
            per = []
            for it, (tp, fp, fn_) in zip(held, m["_per_doc"], strict=True):
                p, r = scorer._precision(tp, fp, fn_), scorer._recall(tp, fp, fn_)
                per.append((2 * p * r / (p + r) if p + r else 0.0, it[0][:12], it[1]))
            for f1, key, url in sorted(per)[: args.worst]:
                print(f"    {f1:.3f} {key} {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
