"""The screen's HTML report: one self-contained file a biologist reads first, written from the tables."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from html import escape
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_text
from .designs import arms_html, designs_html
from .figures import Point, chain_lines_svg, heatmap_png, histogram_svg, profile_svg, scatter_svg
from .markup import capped, capped_text, cell, is_missing, section, table
from .viewer import MODEL_BYTES, VIEWED_HITS, structure_view, viewer_library

TOP_HITS = 10
TABLE_ROWS = 1000
SCATTER_POINTS = 5000
FAILURE_ROWS = 500
CLASH_SCORE = -50.0  # OpenFold3 takes 100 off the ranking score of a sample with a clash
log = logging.getLogger(__name__)


PAIR_COLUMNS = [("chains", None), ("ipTM", "chain_pair_iptm"), ("ipSAE", "ipsae"), ("pDockQ2", "pdockq2"),
                ("LIS", "lis"), ("min PAE (\u212b)", "pae_min"), ("contacts", "n_contacts"),
                ("interface pLDDT", "interface_plddt")]


@dataclass(frozen=True)
class Hit:
    """A top query's best sample: its scores, per-token pLDDT and chain, PAE, chain pairs, and its
    mmCIF text when it gets a 3D view."""

    row: pd.Series
    plddt: list[float]
    chains: list[str]
    pae: np.ndarray | None
    pairs: pd.DataFrame
    model: str | None = None


def write_report(tables: Path, report: Path, top_hits: int = TOP_HITS, table_rows: int = TABLE_ROWS) -> None:
    """Write the HTML report of the screen whose tables are in the folder `tables`."""
    html = render_report(tables, top_hits, table_rows)
    atomic_write_text(report, html)
    log.info("report: %s (%.1f kB)", report, len(html.encode()) / 1e3)


def render_report(tables: Path, top_hits: int = TOP_HITS, table_rows: int = TABLE_ROWS) -> str:
    """The report as one HTML document (inline CSS, JS and figures; no network)."""
    import pyarrow.parquet as pq

    queries = pd.read_parquet(tables / "queries.parquet")
    failures = pd.read_parquet(tables / "failures.parquet")
    n_samples = pq.ParquetFile(tables / "samples.parquet").metadata.num_rows
    predicted = queries[queries["status"] == "predicted"]
    library = viewer_library()
    hits = load_hits(tables, predicted.head(top_hits), VIEWED_HITS if library else 0)
    screen = tables.resolve().name
    designs, sweep = designs_html(queries), arms_html(queries)
    body = "".join([
        _glance(screen, queries, failures, n_samples),
        _run(pq.read_schema(tables / "queries.parquet").metadata or {}),
        section("Failures", _failures(failures)),
        section("Ranking scores", _figures(predicted)),
        section("Designs", designs) if designs else "",
        section("Sweep arms", sweep) if sweep else "",
        section(f"Top {len(hits)} hits", "".join(_hit(i, h, library is not None) for i, h in enumerate(hits))
                or "<p>No predictions yet.</p>", anchor="top-hits"),
        section("All queries", _queries_table(queries, table_rows)),
    ])
    viewed = library is not None and any(h.model is not None for h in hits)
    return _page(f"foldscreen report: {screen}", body, [library] if viewed and library else [])


def load_hits(tables: Path, top: pd.DataFrame, viewed: int = VIEWED_HITS) -> list[Hit]:
    """The best sample of each query in `top` (of each arm, in a sweep): rows of the residues and
    chain_pairs tables, its PAE, and for the first `viewed` its mmCIF text."""
    ids = list(top["query_id"])
    if not ids:
        return []
    keys = _hit_keys(tables, top)
    best = [("rank", "=", 1), ("query_id", "in", ids)]

    def read(name: str, columns: list[str]) -> dict[tuple, pd.DataFrame]:
        frame = pd.read_parquet(tables / f"{name}.parquet", columns=keys + columns, filters=best)
        frame = _keyed(frame, keys)
        return {key: rows for key, rows in frame.groupby(keys)}

    paths = read("samples", ["confidences_path"])
    plddt = read("residues", ["token_index", "chain_id", "plddt"])
    pairs = read("chain_pairs", ["chain_a", "chain_b"] + [c for _, c in PAIR_COLUMNS[1:]])
    hits = []
    for i, (_, row) in enumerate(_keyed(top, keys).iterrows()):
        key = tuple(row[k] for k in keys)
        tokens = plddt.get(key, pd.DataFrame(columns=["token_index", "plddt", "chain_id"]))
        tokens = tokens.sort_values("token_index")
        path = paths[key]["confidences_path"].iloc[0] if key in paths else None
        model = read_model(tables, row.query_id, row.best_model_path) if i < viewed else None
        hits.append(Hit(row, list(tokens["plddt"]), list(tokens["chain_id"]),
                        read_pae(tables, row.query_id, path),
                        pairs.get(key, pd.DataFrame(columns=["chain_a", "chain_b"])), model))
    return hits


def _hit_keys(tables: Path, top: pd.DataFrame) -> list[str]:
    """What names a query's best sample in the tables: its id, and its arm in a sweep."""
    import pyarrow.parquet as pq

    names = [pq.read_schema(tables / f"{t}.parquet").names for t in ("samples", "residues", "chain_pairs")]
    return ["query_id", "arm"] if "arm" in top and all("arm" in n for n in names) else ["query_id"]


def _keyed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The frame with an empty arm (a screen that is no sweep) as "", so that keys compare."""
    return frame.assign(arm=frame["arm"].astype("string").fillna("")) if "arm" in keys else frame


def read_model(tables: Path, query_id: str, path: object) -> str | None:
    """A best sample's mmCIF text; None (and a warning) when it cannot be read or is too large."""
    if path is None or pd.isna(path):
        return None
    try:
        file = sample_file(tables, str(path))
        if file.stat().st_size > MODEL_BYTES:
            log.warning("report: no 3D view for %s (%s is over %d bytes)", query_id, file, MODEL_BYTES)
            return None
        return file.read_text()
    except (OSError, ValueError) as err:
        log.warning("report: no 3D view for %s (%s: %s)", query_id, type(err).__name__, err)
        return None


def read_pae(tables: Path, query_id: str, path: str | None) -> np.ndarray | None:
    """The PAE matrix of a sample's full confidences; None (and a warning) when it cannot be read."""
    try:
        return np.asarray(json.loads(sample_file(tables, str(path)).read_text())["pae"], dtype=float)
    except (OSError, ValueError, KeyError) as err:
        log.warning("report: no PAE for %s (%s: %s)", query_id, type(err).__name__, err)
        return None


def sample_file(tables: Path, path: str) -> Path:
    """A path from the tables: as written (relative to the workflow's folder) or under `tables`
    (`predictions/...`, or `arms/<arm>/predictions/...` in a sweep)."""
    given = Path(path)
    if given.exists() or "predictions" not in given.parts:
        return given
    start = given.parts.index("predictions")
    if start >= 2 and given.parts[start - 2] == "arms":
        start -= 2
    return tables.joinpath(*given.parts[start:])


def _page(title: str, body: str, libraries: list[str]) -> str:
    """The document; `libraries` (scripts) come before the report's own, the viewer's after them."""
    assets = files("foldscreen.reports") / "templates"
    style, script = (assets / "report.css").read_text(), (assets / "report.js").read_text()
    scripts = [*libraries, script, *([(assets / "viewer.js").read_text()] if libraries else [])]
    inline = "".join(f"<script>{s}</script>" for s in scripts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{style}</style></head>"
            f"<body><main>{body}</main>{inline}</body></html>\n")


def _glance(screen: str, queries: pd.DataFrame, failures: pd.DataFrame, n_samples: int) -> str:
    rejected = set(failures.loc[failures["stage"] == "ingest", "query_id"]) - set(queries["query_id"])
    status = queries["status"].value_counts()
    counts = {
        "queries": len(queries) + len(rejected), "predicted": int(status.get("predicted", 0)),
        "failed": int(status.get("failed", 0)) + len(rejected), "pending": int(status.get("pending", 0)),
        "samples": n_samples,
    }
    cards = "".join(f'<div class="count" id="count-{k}"><span class="n">{v:,}</span>{k}</div>'
                    for k, v in counts.items())
    demo = bool(queries["demo_weights"].eq(True).any())
    warning = ('<p class="warning" id="demo-warning"><strong>Demo weights:</strong> these predictions '
               "come from RANDOM weights, not a trained OpenFold3 checkpoint. The scores mean nothing."
               "</p>") if demo else ""
    return (f"<header><h1>Screen <code>{escape(screen)}</code></h1>{warning}"
            f'<div class="counts">{cards}</div></header>')


def _run(metadata: dict[bytes, bytes]) -> str:
    """The run's metadata kept in the tables (versions, weights, config digest, backend, device)."""
    items = [(k.decode(), v.decode()) for k, v in metadata.items() if k not in (b"pandas", b"ARROW:schema")]
    rows = "".join(f"<dt>{escape(k.replace('_', ' '))}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<dl class="run" id="run">{rows}</dl>' if rows else ""


def _failures(failures: pd.DataFrame) -> str:
    if failures.empty:
        return "<p>No failures.</p>"
    rows = failures.head(FAILURE_ROWS)
    listing = table("failures", ["query", "stage", "field", "reason", "source"],
                    [[cell(r.query_id), cell(r.stage), cell(r.field), cell(r.reason), cell(r.source)]
                     for r in rows.itertuples(index=False)])
    return listing + capped(len(rows), len(failures), "failures.parquet")


def _figures(predicted: pd.DataFrame) -> str:
    if predicted.empty:
        return "<p>No predictions yet.</p>"
    scores = predicted["sample_ranking_score"]
    clashing = int((scores < CLASH_SCORE).sum())
    note = (f'<p class="note">{clashing:,} queries whose best sample has a clash (score below '
            f"{CLASH_SCORE:g}) are left out of the histogram.</p>") if clashing else ""
    shown = _spread_sample(predicted, SCATTER_POINTS)
    points = [Point(float(r.ptm), float(r.iptm),
                    f"{r.query_id}: ipTM {r.iptm:.3f}, pTM {r.ptm:.3f}, score {r.sample_ranking_score:.3f}",
                    "single-chain" if r.n_chains == 1 else "complex")
              for r in shown.itertuples(index=False)]
    histogram = histogram_svg(scores[scores >= CLASH_SCORE], "ranking score of the best sample")
    scatter = scatter_svg(points, "pTM", "ipTM")
    scatter_note = (f"<p class=\"note\">One point per query's best sample; single-chain queries (ipTM is 0) "
                    f"are hollow.{capped_text(len(shown), len(predicted), 'queries.parquet')}</p>")
    return (f'<div class="figures"><figure>{histogram}<figcaption>Best ranking score per query '
            f"(0.8 ipTM + 0.2 pTM + 0.5 disorder - 100 clash).</figcaption>{note}</figure>"
            f"<figure>{scatter}<figcaption>ipTM against pTM.</figcaption>{scatter_note}</figure></div>")


def _spread_sample(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """All rows when few; else the best fifth of `limit` and the rest spread evenly over the ranks."""
    if len(frame) <= limit:
        return frame
    head = limit // 5
    rest = np.linspace(head, len(frame) - 1, limit - head).round().astype(int)
    return frame.iloc[np.concatenate([np.arange(head), rest])]


def _hit(index: int, hit: Hit, viewer: bool) -> str:
    r = hit.row
    facts = " · ".join([f"ranking score {r.sample_ranking_score:.3f}", f"ipTM {r.iptm:.3f}",
                        f"pTM {r.ptm:.3f}", f"pLDDT {r.avg_plddt:.1f}", f"{r.n_tokens} tokens",
                        f"seed {int(r.best_seed)}, sample {int(r.best_sample)}"])
    pairs = [[cell(f"{p.chain_a}-{p.chain_b}")] + [cell(getattr(p, c)) for _, c in PAIR_COLUMNS[1:]]
             for p in hit.pairs.itertuples(index=False)]
    pair_table = table(f"pairs-{r.query_id}", [h for h, _ in PAIR_COLUMNS], pairs) if pairs else ""
    profile = profile_svg(hit.plddt, hit.chains) if hit.plddt else '<p class="note">No pLDDT rows.</p>'
    arm = r.get("arm")
    arm_attr, arm_title = (("", "") if is_missing(arm) else
                           (f' data-arm="{escape(str(arm))}"', f" <small>arm {escape(str(arm))}</small>"))
    if index < VIEWED_HITS:
        structure = structure_view(f"model-{index}", r.query_id, hit.model, viewer)
        if hit.model is not None and viewer and not is_missing(r.demo_weights) and r.demo_weights:
            structure += '<p class="note">Demo weights place the atoms at random: expect little to see.</p>'
    else:
        structure = (f'<p class="note">3D views are drawn for the top {VIEWED_HITS} hits; this structure is '
                     f"<code>{escape(str(r.ranked_model_path))}</code>.</p>")
    return (f'<article class="hit" data-query="{escape(r.query_id)}"{arm_attr}><h3>{escape(r.query_id)}'
            f'{arm_title}</h3><p class="facts">{escape(facts)}</p><div class="figures">'
            f"<div>{structure}</div><figure>{profile}<figcaption>pLDDT per token.</figcaption></figure>"
            f"<figure>{_pae(r.query_id, hit.pae, hit.chains)}</figure></div>{pair_table}</article>")


def _pae(query_id: str, pae: np.ndarray | None, chains: list[str]) -> str:
    if pae is None:
        return '<p class="note">The confidences file could not be read: no PAE.</p>'
    png = base64.b64encode(heatmap_png(pae)).decode()
    lines = chain_lines_svg(chains) if len(chains) == pae.shape[0] else ""
    return (f'<div class="pae-box"><img class="pae" alt="PAE of {escape(query_id)}" '
            f'src="data:image/png;base64,{png}">{lines}</div>'
            f"<figcaption>Predicted aligned error (row: aligned on, column: scored), "
            f'{pae.shape[0]} x {pae.shape[1]} tokens <span class="scale"></span> 0 to 32 &#8491;.'
            f"</figcaption>")


QUERY_COLUMNS = [
    ("query", "query_id"), ("status", "status"), ("ranking score", "sample_ranking_score"),
    ("ipTM", "iptm"), ("pTM", "ptm"), ("ipSAE", "ipsae"), ("pDockQ2", "pdockq2"), ("LIS", "lis"),
    ("pLDDT", "avg_plddt"), ("spread", "ranking_score_spread"), ("clash", "has_clash"),
    ("tokens", "n_tokens"), ("chains", "n_chains"), ("molecules", "molecule_types"), ("samples", "n_samples"),
]


def _queries_table(queries: pd.DataFrame, limit: int) -> str:
    rows = queries.head(limit)
    factors = [(c, c) for c in ("design", "arm") if c in queries and queries[c].notna().any()]
    shown = QUERY_COLUMNS[:1] + factors + QUERY_COLUMNS[1:]
    body = [[cell(row[c]) for _, c in shown] for _, row in rows.iterrows()]
    listing = table("queries", [h for h, _ in shown], body)
    return ('<p class="note">Click a column header to sort.</p>' + listing
            + capped(len(rows), len(queries), "queries.parquet"))
