"""`pip install .` (not editable) gives a working package: the schemas travel inside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO

from foldscreen.contracts import TABLES
from foldscreen.contracts.schema import table_schema

SKIP = shutil.ignore_patterns(".git", ".venv", "results", "resources", "build", "*.egg-info", "__pycache__",
                              ".snakemake", ".pytest_cache", "*.so")
CHECK = """
import sys, foldscreen
assert foldscreen.__file__.startswith(sys.argv[1]), foldscreen.__file__
from foldscreen.config import validate_config
from foldscreen.contracts import TABLES
from foldscreen.contracts.schema import table_schema
config = validate_config({"screen": "s", "queries": ["q.csv"]})
print(config["inference"]["samples"], [len(table_schema(name).names) for name in TABLES])
"""


def test_an_installed_wheel_reads_its_schemas_from_the_package(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=SKIP)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("foldscreen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "foldscreen/contracts/schemas/config.schema.yaml" in names
    assert "foldscreen/contracts/schemas/tables/samples.yaml" in names
    assert "foldscreen/reports/templates/viewer.js" in names
    viewer = "foldscreen/reports/templates/3Dmol-min.js"  # vendored by install.sh, when it has run
    assert (viewer in names) == (REPO / "src" / viewer).is_file()
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    shutil.rmtree(source)  # nothing may be read from the source tree
    result = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    expected = [len(table_schema(name).names) for name in TABLES]
    assert result.stdout.strip() == f"5 {expected}"


def test_the_package_schemas_are_the_workflow_schemas():
    from foldscreen.config import CONFIG_SCHEMA
    from foldscreen.contracts.schema import SCHEMAS

    workflow = REPO / "workflow" / "schemas"
    assert CONFIG_SCHEMA.read_text() == (workflow / "config.schema.yaml").read_text()
    assert sorted(p.name for p in SCHEMAS.joinpath("tables").iterdir()) == sorted(
        p.name for p in (workflow / "tables").glob("*.yaml"))
