"""Fill ``derived`` in benchmarks/published_serving.json from each record's published numbers.

Deterministic rules, first match wins:
  1. ``output_tokens_per_s`` published (whole system)  -> copied.
  2. ``output_tokens_per_s_per_gpu`` published          -> times ``num_gpus``.
  3. ``requests_per_s`` published and fixed output length -> times ``output_tokens``.
Otherwise ``output_tokens_per_s`` is null and ``derivation`` says why.

    python benchmarks/published_serving_derive.py          # rewrites the file in place
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "published_serving.json"


def derive(record: dict) -> dict:
    pub = record["published"]
    if pub.get("output_tokens_per_s") is not None:
        return {"output_tokens_per_s": float(pub["output_tokens_per_s"]),
                "derivation": "published output_tokens_per_s (whole system)"}
    if pub.get("output_tokens_per_s_per_gpu") is not None:
        n = record["num_gpus"]
        return {"output_tokens_per_s": round(float(pub["output_tokens_per_s_per_gpu"]) * n, 6),
                "derivation": f"published output_tokens_per_s_per_gpu x num_gpus ({n})"}
    wl = record["workload"]
    if pub.get("requests_per_s") is not None and wl.get("output_tokens_fixed") and wl.get("output_tokens"):
        return {"output_tokens_per_s": round(float(pub["requests_per_s"]) * wl["output_tokens"], 6),
                "derivation": "published requests_per_s x fixed output_tokens"}
    return {"output_tokens_per_s": None, "derivation": "no published throughput to derive from"}


def dump(data: dict) -> str:
    """The JSON layout used for the file: one record per line, so diffs stay readable."""
    head = {k: v for k, v in data.items() if k != "records"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, indent=2, ensure_ascii=False).replace(chr(10), chr(10) + '  ')},")
    lines.append('  "records": [')
    recs = data["records"]
    for i, r in enumerate(recs):
        lines.append("    " + json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) + ("," if i < len(recs) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(path: Path = DATA) -> int:
    data = json.loads(path.read_text(encoding="utf-8"))
    for r in data["records"]:
        r["derived"] = derive(r)
    path.write_text(dump(data), encoding="utf-8")
    n = sum(1 for r in data["records"] if r["derived"]["output_tokens_per_s"] is not None)
    print(f"derived output_tokens_per_s for {n} of {len(data['records'])} records -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA))
