"""Print a compact table of an evaluate scores.json (any --impact): AUCs and W1 ratios per sample.

Usage: python campaign/score_table.py DIR/scores.json
"""

from __future__ import annotations

import json
import sys


def rows(scores: dict) -> list[tuple[str, str, str]]:
    by_mode = scores.get("by_impact") or {scores.get("impact", "?"): scores}
    out = []
    for mode, s in by_mode.items():
        for label, sample in s["samples"].items():
            auc = (sample.get("auc") or {}).get("value")
            auc_ll = (sample.get("auc_low_level") or {}).get("value")
            ratios = {
                k: v["ratio"] for k, v in (sample.get("w1") or {}).items() if isinstance(v, dict) and "ratio" in v
            }
            worst = sorted(ratios.items(), key=lambda kv: -kv[1])[:4]
            text = ", ".join(f"{k} {v:.2f}x" for k, v in worst)
            a = f"{auc:.3f}" if isinstance(auc, (int, float)) else "-"
            ll = f"{auc_ll:.3f}" if isinstance(auc_ll, (int, float)) else "-"
            out.append((mode, label, f"AUC {a} low {ll} | worst W1: {text}"))
    return out


if __name__ == "__main__":
    for mode, label, text in rows(json.load(open(sys.argv[1]))):
        print(f"{mode:7s} {label:14s} {text}")
