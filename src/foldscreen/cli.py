"""The `foldscreen` command: each workflow stage on a screen folder, without Snakemake.

    foldscreen ingest queries.csv --out results/my_screen
    foldscreen msa --out results/my_screen
    foldscreen predict --out results/my_screen --samples 5
    foldscreen aggregate --out results/my_screen
    foldscreen report --out results/my_screen

Stages read and write the same files as the workflow's rules, with one chunk named `all`.
`convert-weights` converts an OpenFold3 checkpoint once to safetensors, for the MLX backend:

    foldscreen convert-weights of3-p2-155k.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import logs

ALL = "all"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logs.setup()
    args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foldscreen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True, metavar="STAGE")

    ingest = sub.add_parser("ingest", help="validate queries into records and tables")
    ingest.add_argument("sources", nargs="+", type=Path, help="FASTA, CSV/TSV or JSON query files")
    ingest.add_argument("--max-tokens", type=int, default=5120)
    ingest.add_argument("--max-chain-length", type=int, default=4000)
    ingest.set_defaults(run=_ingest)

    msa = sub.add_parser("msa", help="fill the MSA cache for the ingested queries")
    msa.add_argument("--config", type=Path,
                     help="a screen config; its `msa:` section sets the source (mode, cache, server, local)")
    msa.add_argument("--mode", help="single_sequence, precomputed, server or local (overrides --config)")
    msa.add_argument("--cache", type=Path, help="the MSA cache folder (default resources/msa_cache)")
    msa.add_argument("--server-url", help="the ColabFold server of mode server")
    msa.add_argument("--folder", type=Path, help="precomputed alignments named <query>[_<chain>].a3m")
    msa.set_defaults(run=_msa)

    predict = sub.add_parser("predict", help="predict every (query, seed) task not yet done")
    predict.add_argument("--backend", default="mlx", choices=["mlx", "torch"])
    predict.add_argument("--weights", default="demo", help="OpenFold3 checkpoint, or demo")
    predict.add_argument("--seeds", type=int, nargs="+", default=[42])
    predict.add_argument("--samples", type=int, default=5)
    predict.add_argument("--diffusion-steps", type=int, default=None)
    predict.add_argument("--recycles", type=int, default=None)
    predict.add_argument("--model-chunk-size", type=int, default=None,
                         help="mlx: chunk the N^2 and N^3 parts (bounds memory)")
    predict.add_argument("--threads", type=int, default=2)
    predict.add_argument("--device", default="cpu")
    predict.set_defaults(run=_predict)

    aggregate = sub.add_parser("aggregate", help="combine every chunk into the ranked tables")
    aggregate.add_argument("--config", type=Path, help="the screen's config (digest kept in metadata)")
    aggregate.set_defaults(run=_aggregate)

    report = sub.add_parser("report", help="write report.html from the screen's tables")
    report.set_defaults(run=_report)

    for stage in (ingest, msa, predict, aggregate, report):
        stage.add_argument("--out", type=Path, required=True, help="the screen's results folder")

    convert = sub.add_parser("convert-weights", help="convert an OpenFold3 checkpoint to safetensors")
    convert.add_argument("checkpoint", type=Path, help="checkpoint file (.pt, .ckpt) or DeepSpeed folder")
    convert.set_defaults(run=_convert_weights)
    return parser


def _ingest(args: argparse.Namespace) -> None:
    from .queries import Limits, ingest, read_queries

    accepted, rejected = ingest(
        read_queries(args.sources), Limits(args.max_tokens, args.max_chain_length),
        args.out / "queries", _table(args.out, "ingest"), _table(args.out, "ingest", ".failures"))
    print(f"{accepted} queries accepted, {rejected} rejected")


def _table(out: Path, stage: str, suffix: str = "") -> Path:
    return out / stage / f"{ALL}{suffix}.parquet"


def _msa(args: argparse.Namespace) -> None:
    import yaml

    from .msa import build_msa_table

    section = dict(yaml.safe_load(args.config.read_text()).get("msa") or {}) if args.config else {}
    if args.mode:
        section["mode"] = args.mode
    if args.cache:
        section["cache"] = args.cache
    if args.server_url:
        section["server"] = {**section.get("server", {}), "url": args.server_url}
    if args.folder:
        section["folder"] = args.folder
    build_msa_table(_table(args.out, "ingest"), section, _table(args.out, "msa"))


def _predict(args: argparse.Namespace) -> None:
    from .inference import InferenceSettings, run_chunk

    settings = InferenceSettings(
        backend=args.backend, weights=args.weights, seeds=tuple(args.seeds), samples=args.samples,
        diffusion_steps=args.diffusion_steps, recycles=args.recycles,
        model_chunk_size=args.model_chunk_size, threads=args.threads,
        device=args.device)
    run_chunk(_table(args.out, "ingest"), _table(args.out, "msa"), settings, args.out / "predictions",
              _table(args.out, "inference"), _table(args.out, "inference", ".failures"))


def _aggregate(args: argparse.Namespace) -> None:
    import yaml

    from .reports import aggregate, chunk_parts, tables_chunk
    from .reports.metadata import config_sha256

    inference = sorted(p for p in (args.out / "inference").glob("*.parquet")
                       if not p.name.endswith(".failures.parquet"))
    chunks = [p.stem for p in inference]
    parts = chunk_parts(args.out / "tables", chunks)
    for index, table in enumerate(inference):
        outputs = {name: paths[index] for name, paths in parts.items()}
        if any(not p.exists() or p.stat().st_mtime < table.stat().st_mtime for p in outputs.values()):
            tables_chunk(table, outputs)
    config = yaml.safe_load(args.config.read_text()) if args.config else None
    aggregate(_tables(args.out, "ingest"), _tables(args.out, "ingest", True), _tables(args.out, "msa"),
              _tables(args.out, "inference", True), parts, args.out, config_sha256(config))
    print(f"{args.out}/{{samples,queries,chains,chain_pairs,residues,failures}}.parquet")


def _tables(out: Path, stage: str, failures: bool = False) -> list[Path]:
    found = sorted((out / stage).glob("*.parquet"))
    return [p for p in found if p.name.endswith(".failures.parquet") == failures]


def _report(args: argparse.Namespace) -> None:
    from .reports.html import write_report

    write_report(args.out, args.out / "report.html")
    print(args.out / "report.html")


def _convert_weights(args: argparse.Namespace) -> None:
    from .io import file_sha256
    from .model.weights import convert, load_weights

    path = convert(args.checkpoint)
    weights = load_weights(path)
    print(f"{path}\nsha256 {file_sha256(path)}\n"
          f"{sum(w.size for w in weights.values()):,} parameters in {len(weights)} arrays")


if __name__ == "__main__":
    main()
