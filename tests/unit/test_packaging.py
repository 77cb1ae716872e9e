"""pyproject.toml installs every package of the tree and the data they read, and no `datasets` package.

The wheel itself is built and run in tests/e2e/test_install_e2e.py; this is the cheap check that a
package added to the tree is added to the list too (setuptools installs only what is listed).
"""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

TOP = ("goodput", "core", "workloads", "shapes", "users", "loadgen", "analysis", "arena", "simserver")


def config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_of_the_tree_is_installed() -> None:
    tree = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in TOP
        for p in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    listed = set(config()["tool"]["setuptools"]["packages"])
    assert tree - listed == set(), "packages missing from pyproject.toml [tool.setuptools] packages"
    assert listed - tree == {"workloads.datasets"}, "only the shipped data sets are mapped from elsewhere"
    assert not (ROOT / "datasets" / "__init__.py").exists(), (
        "datasets/ holds data: a package would shadow HF's"
    )


def test_data_files_read_at_run_time_are_package_data() -> None:
    st = config()["tool"]["setuptools"]
    assert st["package-dir"] == {"workloads.datasets": "datasets"}
    data = st["package-data"]
    for pkg, folder in (("loadgen.live.webui", "loadgen/live/webui"), ("simserver", "simserver"),
                        ("workloads.datasets", "datasets")):  # fmt: skip
        files = {p for pattern in data[pkg] for p in (ROOT / folder).glob(pattern)}
        assert files, (pkg, data[pkg])
    shipped = {p.name for p in (ROOT / "datasets").glob("*.jsonl")}
    assert shipped and all(any((ROOT / "datasets").glob(g)) for g in data["workloads.datasets"])
    assert {p.name for p in (ROOT / "simserver" / "profiles").iterdir()} <= {
        p.name for g in data["simserver"] for p in (ROOT / "simserver").glob(g)
    }


def test_console_scripts_name_real_mains() -> None:
    import importlib

    scripts = config()["project"]["scripts"]
    assert set(scripts) == {
        "goodput",
        "goodput-analysis",
        "goodput-sim",
        "goodput-arena",
        "goodput-workloads",
    }
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target
