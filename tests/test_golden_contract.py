"""The JSON contract (``to_dict()`` of estimates and plans) stays byte-for-byte what tests/golden/ pins.

The golden files were written by ``python tests/golden_cases.py`` before the results became typed records;
they change only when a number is corrected on purpose, and each such change is listed (before/after) in
the commit that regenerates them. A failure prints every differing path with both values.
"""

import json

import pytest

from golden_cases import GOLDEN_DIR, all_cases, dumps


def _diff(a, b, path="", out=None, limit=40):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            out.append(f"{path}: keys {list(a)} != {list(b)}")
        for k in a:
            if k in b:
                _diff(a[k], b[k], f"{path}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out, limit)
    elif a != b and not (a != a and b != b):  # NaN == NaN here
        out.append(f"{path}: golden {a!r} != now {b!r}")
    return out


@pytest.fixture(scope="module")
def current():
    return all_cases()


def test_every_golden_file_has_a_case(current):
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.json")) == sorted(current)


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN_DIR.glob("*.json")))
def test_json_contract_unchanged(name, current):
    golden_text = (GOLDEN_DIR / f"{name}.json").read_text(encoding="utf-8")
    now_text = dumps(current[name])
    if now_text != golden_text:
        diffs = _diff(json.loads(golden_text), json.loads(now_text))
        pytest.fail(f"{name}: the JSON contract changed:\n" + "\n".join(diffs or ["(formatting only)"]))
