"""The config schema, the example configs, and the agreement of envs/ with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import tomllib
import yaml
from conftest import REPO, SNAKEMAKE, make_screen, run_snakemake, snakemake_cmd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_fill_in():
    config = {"screen": "s", "queries": ["q.csv"]}
    validate(config, SCHEMA)
    assert config["inference"]["backend"] == "mlx"
    assert config["inference"]["seeds"] == [42]
    assert config["msa"]["mode"] == "single_sequence"
    validate(default_config(), SCHEMA)


@pytest.mark.parametrize("change, words", [
    (lambda c: c["inference"].update(sampels=3), "sampels"),
    (lambda c: c["inference"].update(samples="many"), "samples"),
    (lambda c: c["inference"].update(chunk_size="big"), "chunk_size"),
    (lambda c: c["inference"].update(token_budget=0), "token_budget"),
    (lambda c: c["msa"].update(mode="colabfold_typo"), "mode"),
    (lambda c: c.update(screen="../escape"), "screen"),
    (lambda c: c.update(designs=[{"name": "d", "kind": "pulldwn"}]), "pulldwn"),
])
def test_schema_rejects_broken_config_naming_the_key(change, words):
    config = default_config()
    change(config)
    with pytest.raises(WorkflowError) as error:
        validate(config, SCHEMA)
    assert words in str(error.value)


def test_workflow_refuses_broken_config_before_running(tmp_path):
    folder = make_screen(tmp_path, samples=0)
    result = run_snakemake(folder, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "['inference']['samples']" in message and "less than the minimum of 1" in message
    assert not (folder / "results").exists()


def test_a_missing_queries_file_is_named_under_its_key(tmp_path):
    folder = make_screen(tmp_path)
    (folder / "queries.csv").unlink()
    result = run_snakemake(folder, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"queries: no such file queries.csv (relative paths start at {folder})" in message
    assert "FileNotFoundError" not in message and len(message.splitlines()) < 6


def test_the_workflow_profile_applies_without_flags(tmp_path):
    """profiles/default beside the Snakefile: greedy scheduler, keep-going, rerun-incomplete, retries."""
    folder = make_screen(tmp_path)
    # from the repository (profiles/default under the current folder) or elsewhere (beside the Snakefile)
    for cwd, found in ((REPO, "profiles/default"), (folder, REPO / "profiles" / "default")):
        result = subprocess.run(snakemake_cmd(folder, "-n"), cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert f"Using workflow specific profile {found} for setting" in result.stderr
    settings = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert settings["rerun-incomplete"] and settings["keep-going"] and settings["retries"] >= 1
    assert settings["scheduler"] == "greedy"


def test_install_and_ci_agree_with_the_tests_on_the_debian_tools():
    from conftest import DEBIAN_TOOLS

    install = (REPO / "install.sh").read_text()
    (packages,) = re.findall(r'^DEBS="([^"]+)"$', install, flags=re.M)
    assert sorted(packages.split()) == sorted(set(DEBIAN_TOOLS.values()))
    assert "FOLDSCREEN_REQUIRE_TOOLS=1 python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_lint_is_clean():
    result = subprocess.run([*SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_rules_are_snakefmt_clean():
    command = [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_conda_environment_lists_the_pyproject_packages():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / "foldscreen.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # The rule environment holds no Snakemake nor its Slurm plugin (the workflow's own process
    # brings them) and installs openfold3 normally (pyproject lists its requirements; install.sh
    # adds it).
    snakemake = {"snakemake>=9,<10", "snakemake-executor-plugin-slurm>=2.8,<2.9"}
    expected = sorted(set(project["dependencies"]) - snakemake | {"openfold3==0.5.0"})
    assert sorted(pip) == expected
    install = (REPO / "install.sh").read_text()
    assert '"openfold3==0.5.0"' in install and '"torch==2.13.0"' in install
    assert {_name(r) for r in project["dependencies"]} >= {
        "snakemake", "mlx", "torch", "biopython", "pandas", "pyarrow", "gemmi", "rdkit"}


@pytest.mark.parametrize("example", sorted((REPO / "config" / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_configs_are_valid_and_their_queries_all_read(example, monkeypatch):
    from foldscreen.contracts import Query
    from foldscreen.plan import read_screen

    config = yaml.safe_load(example.read_text())
    validate(config, SCHEMA)
    monkeypatch.chdir(REPO)  # the examples' paths start at the repository
    items = read_screen(config)  # the query files and the designs
    assert items and all(isinstance(item, Query) for item in items), items


def foldscreen(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foldscreen.cli", *args], cwd=cwd, capture_output=True,
                          text=True)


def test_cli_validates_its_config_against_the_workflow_schema(tmp_path):
    (tmp_path / "q.csv").write_text("id,sequence\np,MKTAYIAK\n")
    made = foldscreen("ingest", "q.csv", "--out", "results/quick", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    kept = yaml.safe_load((tmp_path / "results" / "quick" / "config.yaml").read_text())
    defaults = {"screen": "s", "queries": ["q.csv"]}
    validate(defaults, SCHEMA)
    assert kept == {**defaults, "screen": "quick"}  # every default is the schema's

    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**defaults, "msa": {"mdoe": "server"}}))
    refusals = [(("msa", "--config", "typo.yaml"), "'mdoe' was unexpected"),
                (("predict", "--out", "results/quick", "--samples", "0"), "less than the minimum of 1")]
    for args, words in refusals:
        refused = foldscreen(*args, cwd=tmp_path)
        assert refused.returncode != 0
        assert words in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (tmp_path / "results" / "quick" / "msa").exists()
