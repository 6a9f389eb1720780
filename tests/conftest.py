"""Shared helpers: a small screen in a temporary folder, run with the real Snakemake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import foldscreen.model  # noqa: F401  (before any test imports MLX: its CPU BLAS is OpenBLAS)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

SHEET = """id,sequence,molecule_type,copies,smiles
mono,MKTAYIAKQRQISFVKSHFS,protein,1,
dimer,GSHMKELEEKLRKL:NLYIQWLKDGG,protein,1,
with_ligand,GSWTWENGKWTWK,protein,1,CC(=O)OC1=CC=CC=C1C(=O)O
bad_letters,MKTJZQLL,protein,1,
bad_smiles,GSWTWENGK,protein,1,C1CC(
"""


# The Debian tools some tests run, and their packages. ./install.sh installs them where it can (as
# root, with apt-get); elsewhere the tests that need one skip, naming it and how to install it.
# CI sets FOLDSCREEN_REQUIRE_TOOLS=1 (.ci/run): there they run, and fail if a tool is missing.
DEBIAN_TOOLS = {"mmseqs": "mmseqs2", "jackhmmer": "hmmer", "chromium": "chromium",
                "chromedriver": "chromium-driver", "munged": "munge",
                **dict.fromkeys(("slurmctld", "slurmd", "sbatch", "squeue", "scancel"), "slurm-wlm")}


def missing_tools(*tools: str) -> str | None:
    """Why tests that run `tools` cannot, or None when they can (or must, under CI)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing or os.environ.get("FOLDSCREEN_REQUIRE_TOOLS"):
        return None
    packages = " ".join(DEBIAN_TOOLS[tool] for tool in missing)
    return f"needs {', '.join(missing)} on PATH: apt-get install {packages} (as root; ./install.sh does it)"


def needs(*tools: str) -> pytest.MarkDecorator:
    """Mark a test (or a parameter) that runs these Debian tools."""
    reason = missing_tools(*tools)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def require(*tools: str) -> None:
    """In a fixture: skip the tests that use it when these Debian tools are missing."""
    reason = missing_tools(*tools)
    if reason is not None:
        pytest.skip(reason)


def require_viewer() -> None:
    """In a test of the report's 3D view: skip when ./install.sh has not vendored the viewer library
    (under CI: fail)."""
    from foldscreen.reports.viewer import viewer_library

    if viewer_library() is None:
        reason = "the report's 3D viewer (3Dmol.js from npm) is not vendored: run ./install.sh --viewer"
        pytest.fail(reason) if os.environ.get("FOLDSCREEN_REQUIRE_TOOLS") else pytest.skip(reason)


def screen_config(folder: Path, **inference) -> dict:
    return {
        "screen": "test",
        "queries": ["queries.csv"],
        "results": "results",
        "msa": {"mode": "single_sequence", "cache": str(folder / "msa_cache")},
        "inference": {"weights": "demo", "seeds": [7], "samples": 2,
                      "diffusion_steps": 4, "recycles": 0, "chunk_size": 2, "threads": 1,
                      **inference},
    }


def make_screen(folder: Path, **inference) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "queries.csv").write_text(SHEET)
    (folder / "config.yaml").write_text(yaml.safe_dump(screen_config(folder, **inference)))
    return folder


def snakemake_cmd(folder: Path, *args: str) -> list[str]:
    # --configfile takes several files: an option must follow it, or targets become config files
    return [*SNAKEMAKE, "--configfile", str(folder / "config.yaml"), "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(folder), *args]


def run_snakemake(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(snakemake_cmd(folder, *args), capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--enable-unsafe-swiftshader", "--window-size=1280,1600"]  # WebGL in software


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Selenium, recording every request the pages make."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    require("chromium", "chromedriver")
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        yield driver
        driver.quit()


def requested_urls(browser) -> list[str]:
    """The URLs the browser requested since the last call (from its performance log)."""
    import json

    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]


@pytest.fixture(scope="session")
def finished_screen(tmp_path_factory) -> Path:
    """The small screen, run once to the end with 2 cores."""
    folder = make_screen(tmp_path_factory.mktemp("screen"))
    run_snakemake(folder, "--cores", "2")
    return folder


@pytest.fixture(scope="session")
def slurm():
    """A real single-node Slurm (tests/slurm_cluster.py), started as root for the session's cluster
    tests and stopped after them; skipped where its Debian packages or the executor plugin are
    missing (not under CI) or where it cannot be started without root."""
    import importlib.util

    import slurm_cluster

    require(*slurm_cluster.TOOLS)
    required = os.environ.get("FOLDSCREEN_REQUIRE_TOOLS")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None and not required:
        pytest.skip("needs snakemake-executor-plugin-slurm: pip install -e . (./install.sh does it)")
    if os.geteuid() != 0 and not slurm_cluster.responding() and not required:
        pytest.skip("starting the test Slurm needs root (or a Slurm already running)")
    pids = slurm_cluster.start()
    yield
    slurm_cluster.stop(pids)
