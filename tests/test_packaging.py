"""The package as users install it (issue 18): pyproject.toml, the version, the console script and its
``dashboard`` command, the extras and what a missing one says, and the wheel's contents. The end-to-end check
(wheel into a fresh venv outside the tree, no torch) is in .ci/run."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import costmodel
from costmodel import extras
from costmodel.cli import dashboard, main
from costmodel.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_source(capsys):
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "costmodel.__version__"}
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"costmodel {costmodel.__version__}"


def test_core_dependencies_leave_torch_to_the_profile_extra():
    core = " ".join(PYPROJECT["project"]["dependencies"])
    assert "torch" not in core and "transformers" not in core
    profile = PYPROJECT["project"]["optional-dependencies"]["profile"]
    assert "torch==2.13.0" in profile  # pinned: an unpinned torch pulls a multi-GB CUDA build
    assert PYPROJECT["project"]["scripts"]["costmodel"] == "costmodel.cli:entry_point"
    # the extras costmodel.extras names are the ones pyproject declares
    assert set(extras.EXTRAS) <= set(PYPROJECT["project"]["optional-dependencies"])


def test_the_dashboard_command_mirrors_the_checkouts_streamlit_config(capsys):
    assert main(["dashboard", "--print-command"]) == 0
    cmd = capsys.readouterr().out.split()
    app = Path(cmd[cmd.index("run") + 1])
    assert app == ROOT / "costmodel_dashboard" / "app.py" and app.is_file()
    flags = dict(a[2:].split("=", 1) for a in cmd if a.startswith("--"))
    assert flags["server.address"] == "127.0.0.1" and flags["server.port"] == "8501"
    # every setting of .streamlit/config.toml travels as a flag (an installed copy runs from any folder)
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    for section, values in config.items():
        for key, value in values.items():
            if key in ("folderWatchBlacklist", "address"):
                continue
            want = str(value).lower() if isinstance(value, bool) else str(value)
            assert flags.get(f"{section}.{key}") == want, (section, key)


@pytest.mark.parametrize("argv, field", [(["--server.port", "80"], "server.port"),
                                         (["--server.address", "a b"], "server.address")])
def test_dashboard_refuses_bad_settings_in_one_line(argv, field, capsys, monkeypatch):
    monkeypatch.setattr(dashboard, "launch", lambda cmd: pytest.fail("must not start"))
    assert main(["dashboard", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}: ") and err.count("\n") == 1


def test_a_missing_extra_names_its_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert extras.missing("profile") == ["torch"]
    with pytest.raises(InputError, match=r"pip install 'costmodel\[profile\]'"):
        extras.require("profile")
    assert main(["profile", "--model", "gpt2", "--device", "cpu", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "costmodel[profile]" in err


def test_the_profile_page_says_which_extra_to_install(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(extras, "available", lambda extra: False)
    at = AppTest.from_file(str(ROOT / "costmodel_dashboard" / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("app_pages/profile.py")
    at.run()
    assert not at.exception
    assert any("costmodel[profile]" in e.value for e in at.error), [e.value for e in at.error]


def test_the_wheel_carries_the_catalogs_and_the_app(tmp_path):
    src = tmp_path / "src"  # a copy: setuptools builds in the source folder (build/, *.egg-info)
    for package in ("costmodel", "costmodel_dashboard"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, cwd=tmp_path, capture_output=True)
    wheel = next((tmp_path / "dist").glob("costmodel-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "costmodel", "costmodel_dashboard"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    want = {p for p in tracked if p.endswith((".py", ".json"))}
    assert want and want <= names, sorted(want - names)[:10]
    assert f"costmodel-{costmodel.__version__}.dist-info/entry_points.txt" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)


def test_the_start_page_shows_the_version():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "costmodel_dashboard" / "app.py"), default_timeout=90).run()
    assert any(c.value == f"costmodel {costmodel.__version__}" for c in at.caption)
