"""The `foldscreen` command: each workflow stage on a screen folder, without Snakemake.

    foldscreen ingest queries.csv --out results/my_screen
    foldscreen msa --out results/my_screen
    foldscreen predict --out results/my_screen --samples 5
    foldscreen aggregate --out results/my_screen
    foldscreen report --out results/my_screen

Every stage works from a screen config: the screen folder's `config.yaml` (which every stage
writes), with the keys of `--config` (a config such as Snakemake takes) and the options given
on the command line set into it; it is validated against workflow/schemas/config.schema.yaml,
which fills in every default, exactly as the workflow validates its config. The stages then
call the functions the workflow's rules call, on one chunk named `all` (`aggregate` also runs
`tables_chunk` on every inference table it finds). `convert-weights` converts an OpenFold3
checkpoint once to safetensors, for the MLX backend:

    foldscreen convert-weights of3-p2-155k.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import logs

ALL = "all"
SCREEN_CONFIG = "config.yaml"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logs.setup()
    args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foldscreen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True, metavar="STAGE")

    ingest = sub.add_parser("ingest", help="validate queries into records and tables")
    ingest.add_argument("sources", nargs="*", type=str, help="FASTA, CSV/TSV or JSON query files (queries)")
    _key(ingest, "--max-tokens", "ingest.max_tokens", type=int)
    _key(ingest, "--max-chain-length", "ingest.max_chain_length", type=int)
    ingest.set_defaults(run=_ingest)

    msa = sub.add_parser("msa", help="fill the MSA cache for the ingested queries")
    _key(msa, "--mode", "msa.mode")
    _key(msa, "--cache", "msa.cache")
    _key(msa, "--server-url", "msa.server.url")
    _key(msa, "--folder", "msa.folder")
    msa.set_defaults(run=_msa)

    predict = sub.add_parser("predict", help="predict every (query, seed) task not yet done")
    _key(predict, "--backend", "inference.backend")
    _key(predict, "--weights", "inference.weights", help="OpenFold3 checkpoint, or demo")
    _key(predict, "--seeds", "inference.seeds", type=int, nargs="+")
    _key(predict, "--samples", "inference.samples", type=int)
    _key(predict, "--diffusion-steps", "inference.diffusion_steps", type=int)
    _key(predict, "--recycles", "inference.recycles", type=int)
    _key(predict, "--model-chunk-size", "inference.model_chunk_size", type=int)
    _key(predict, "--threads", "inference.threads", type=int)
    _key(predict, "--device", "inference.device")
    predict.set_defaults(run=_predict)

    aggregate = sub.add_parser("aggregate", help="combine every chunk into the ranked tables")
    aggregate.set_defaults(run=_aggregate)

    report = sub.add_parser("report", help="write report.html from the screen's tables")
    report.set_defaults(run=_report)

    for stage in (ingest, msa, predict, aggregate, report):
        stage.add_argument("--out", type=Path, help="the screen's results folder (default: "
                           "<results>/<screen> of --config)")
        stage.add_argument("--config", type=Path, help="a screen config (default: the screen "
                           f"folder's {SCREEN_CONFIG})")

    convert = sub.add_parser("convert-weights", help="convert an OpenFold3 checkpoint to safetensors")
    convert.add_argument("checkpoint", type=Path, help="checkpoint file (.pt, .ckpt) or DeepSpeed folder")
    convert.set_defaults(run=_convert_weights)
    return parser


def _key(stage: argparse.ArgumentParser, flag: str, key: str, **options: Any) -> None:
    """An option that sets the config key `key` (dotted); its default is the schema's."""
    stage.add_argument(flag, dest=key, default=None, help=options.pop("help", f"sets {key}"), **options)


def screen_config(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The stage's config, validated, and the screen's folder: the folder's config.yaml, then
    `--config` over it, then the options; kept as the folder's config.yaml."""
    import yaml
    from snakemake.exceptions import WorkflowError

    from .config import validate_config
    from .io import atomic_write_text

    if args.config and not args.config.is_file():
        sys.exit(f"foldscreen: config file {args.config} does not exist")
    given = (yaml.safe_load(args.config.read_text()) or {}) if args.config else {}
    if not (args.out or "screen" in given):
        sys.exit("foldscreen: name the screen's folder with --out, or give its config with --config")
    folder = args.out or Path(given.get("results", "results")) / given["screen"]
    kept = folder / SCREEN_CONFIG
    if not (kept.is_file() or args.config or getattr(args, "sources", None)):
        sys.exit(f"foldscreen: {folder} holds no {SCREEN_CONFIG} (foldscreen ingest writes one): "
                 "give the screen's config with --config")
    config = _merged(yaml.safe_load(kept.read_text()) if kept.is_file() else {}, given)
    for key, value in vars(args).items():
        if "." in key and value is not None:
            _set(config, key.split("."), value)
    if getattr(args, "sources", None):
        config["queries"] = args.sources
    if args.out:
        config.update(screen=args.out.name, results=str(args.out.parent))
    try:
        validate_config(config)
    except WorkflowError as err:  # its message names the key
        sys.exit(f"foldscreen: the screen config is not valid: {err}")
    atomic_write_text(kept, yaml.safe_dump(config, sort_keys=False))
    return config, folder


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over`'s keys set into `base`, section by section."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def _set(config: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def _table(out: Path, stage: str, suffix: str = "") -> Path:
    return out / stage / f"{ALL}{suffix}.parquet"


def _ingest(args: argparse.Namespace) -> None:
    from .plan import PlanError, read_screen
    from .queries.ingest import ingest
    from .queries.validate import Limits

    config, out = screen_config(args)
    try:
        items = read_screen(config)  # the query files, then the designs
    except PlanError as err:
        sys.exit(f"foldscreen: {err}")
    accepted, rejected = ingest(items, Limits(**config["ingest"]), out / "queries",
                                _table(out, "ingest"), _table(out, "ingest", ".failures"))
    print(f"{accepted} queries accepted, {rejected} rejected")


def _one_arm(config: dict[str, Any], stage: str) -> None:
    """The stages run one arm: a sweep (arms of settings) is the workflow's to run."""
    if config.get("sweep"):
        sys.exit(f"foldscreen {stage}: the config has a sweep: section; run it with snakemake "
                 "(the command line runs a screen without a sweep)")


def _msa(args: argparse.Namespace) -> None:
    from .msa import build_msa_table

    config, out = screen_config(args)
    _one_arm(config, "msa")
    build_msa_table(_table(out, "ingest"), config["msa"], _table(out, "msa"))


def _predict(args: argparse.Namespace) -> None:
    from .inference import InferenceSettings, run_chunk

    config, out = screen_config(args)
    _one_arm(config, "predict")
    run_chunk(_table(out, "ingest"), _table(out, "msa"), InferenceSettings.from_config(config["inference"]),
              out / "predictions", _table(out, "inference"), _table(out, "inference", ".failures"))


def _aggregate(args: argparse.Namespace) -> None:
    from .config import config_sha256
    from .reports import ArmTables, aggregate, chunk_parts, tables_chunk
    from .sweep import sweep_arms

    config, out = screen_config(args)
    _one_arm(config, "aggregate")
    (arm,) = sweep_arms(config)
    inference = _tables(out, "inference")
    parts = chunk_parts(out / "tables", [p.stem for p in inference])
    for index, table in enumerate(inference):
        outputs = {name: paths[index] for name, paths in parts.items()}
        tables_chunk(table, out / "ingest" / table.name, outputs, arm.columns)
    tables = ArmTables(arm.columns, _tables(out, "msa"), _tables(out, "inference", True), parts,
                       out / "ranked")
    aggregate(_tables(out, "ingest"), _tables(out, "ingest", True), [tables], out, config_sha256(config))
    print(f"{out}/{{samples,queries,chains,chain_pairs,residues,failures}}.parquet")


def _tables(out: Path, stage: str, failures: bool = False) -> list[Path]:
    found = sorted((out / stage).glob("*.parquet"))
    return [p for p in found if p.name.endswith(".failures.parquet") == failures]


def _report(args: argparse.Namespace) -> None:
    from .reports.html import write_report

    out = args.out or screen_config(args)[1]  # the report reads only the tables
    write_report(out, out / "report.html")
    print(out / "report.html")


def _convert_weights(args: argparse.Namespace) -> None:
    from .io import file_sha256
    from .model.weights import convert, load_weights

    path = convert(args.checkpoint)
    weights = load_weights(path)
    print(f"{path}\nsha256 {file_sha256(path)}\n"
          f"{sum(w.size for w in weights.values()):,} parameters in {len(weights)} arrays")


if __name__ == "__main__":
    main()
