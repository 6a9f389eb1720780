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
from .figures import Point, chain_lines_svg, heatmap_png, histogram_svg, profile_svg, scatter_svg

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
    """A top query's best sample: its scores, per-token pLDDT and chain, PAE, and chain pairs."""

    row: pd.Series
    plddt: list[float]
    chains: list[str]
    pae: np.ndarray | None
    pairs: pd.DataFrame


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
    hits = load_hits(tables, predicted.head(top_hits))
    screen = tables.resolve().name
    body = "".join([
        _glance(screen, queries, failures, n_samples),
        _run(pq.read_schema(tables / "queries.parquet").metadata or {}),
        _section("Failures", _failures(failures)),
        _section("Ranking scores", _figures(predicted)),
        _section(f"Top {len(hits)} hits", "".join(_hit(h) for h in hits) or "<p>No predictions yet.</p>"),
        _section("All queries", _queries_table(queries, table_rows)),
    ])
    return _page(f"foldscreen report: {screen}", body)


def load_hits(tables: Path, top: pd.DataFrame) -> list[Hit]:
    """The best sample of each query in `top`: rows of the residues and chain_pairs tables, and its PAE."""
    ids = list(top["query_id"])
    if not ids:
        return []
    best = [("rank", "=", 1), ("query_id", "in", ids)]
    paths = pd.read_parquet(tables / "samples.parquet", columns=["query_id", "confidences_path"],
                            filters=best).set_index("query_id")["confidences_path"]
    residues = pd.read_parquet(tables / "residues.parquet", filters=best,
                               columns=["query_id", "token_index", "chain_id", "plddt"])
    plddt = {q: t.sort_values("token_index") for q, t in residues.groupby("query_id")}
    pairs = pd.read_parquet(tables / "chain_pairs.parquet", filters=best,
                            columns=["query_id", "chain_a", "chain_b"] + [c for _, c in PAIR_COLUMNS[1:]])
    hits = []
    for _, row in top.iterrows():
        tokens = plddt.get(row.query_id, pd.DataFrame(columns=["plddt", "chain_id"]))
        hits.append(Hit(row, list(tokens["plddt"]), list(tokens["chain_id"]),
                        read_pae(tables, row.query_id, paths.get(row.query_id)),
                        pairs[pairs["query_id"] == row.query_id]))
    return hits


def read_pae(tables: Path, query_id: str, path: str | None) -> np.ndarray | None:
    """The PAE matrix of a sample's full confidences; None (and a warning) when it cannot be read."""
    try:
        return np.asarray(json.loads(sample_file(tables, str(path)).read_text())["pae"], dtype=float)
    except (OSError, ValueError, KeyError) as err:
        log.warning("report: no PAE for %s (%s: %s)", query_id, type(err).__name__, err)
        return None


def sample_file(tables: Path, path: str) -> Path:
    """A path from the tables: as written (relative to the workflow's folder) or under `tables`."""
    given = Path(path)
    if given.exists() or "predictions" not in given.parts:
        return given
    return tables.joinpath(*given.parts[given.parts.index("predictions"):])


def _page(title: str, body: str) -> str:
    assets = files("foldscreen.reports") / "templates"
    style, script = (assets / "report.css").read_text(), (assets / "report.js").read_text()
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{style}</style></head>"
            f"<body><main>{body}</main><script>{script}</script></body></html>\n")


def _section(title: str, content: str) -> str:
    anchor = title.lower().replace(" ", "-")
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{content}</section>'


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
    table = _table("failures", ["query", "stage", "field", "reason", "source"],
                   [[_cell(r.query_id), _cell(r.stage), _cell(r.field), _cell(r.reason), _cell(r.source)]
                    for r in rows.itertuples(index=False)])
    return table + _capped(len(rows), len(failures), "failures.parquet")


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
                    f"are hollow.{_capped_text(len(shown), len(predicted), 'queries.parquet')}</p>")
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


def _hit(hit: Hit) -> str:
    r = hit.row
    facts = " · ".join([f"ranking score {r.sample_ranking_score:.3f}", f"ipTM {r.iptm:.3f}",
                        f"pTM {r.ptm:.3f}", f"pLDDT {r.avg_plddt:.1f}", f"{r.n_tokens} tokens",
                        f"seed {r.best_seed}, sample {r.best_sample}"])
    pairs = [[_cell(f"{p.chain_a}-{p.chain_b}")] + [_cell(getattr(p, c)) for _, c in PAIR_COLUMNS[1:]]
             for p in hit.pairs.itertuples(index=False)]
    pair_table = _table(f"pairs-{r.query_id}", [h for h, _ in PAIR_COLUMNS], pairs) if pairs else ""
    profile = profile_svg(hit.plddt, hit.chains) if hit.plddt else '<p class="note">No pLDDT rows.</p>'
    return (f'<article class="hit" data-query="{escape(r.query_id)}"><h3>{escape(r.query_id)}</h3>'
            f'<p class="facts">{escape(facts)}</p><div class="figures">'
            f"<figure>{profile}<figcaption>pLDDT per token.</figcaption></figure>"
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
    body = [[_cell(row[c]) for _, c in QUERY_COLUMNS] for _, row in rows.iterrows()]
    table = _table("queries", [h for h, _ in QUERY_COLUMNS], body)
    return ('<p class="note">Click a column header to sort.</p>' + table
            + _capped(len(rows), len(queries), "queries.parquet"))


def _table(name: str, headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return (f'<div class="scroll"><table class="sortable" id="table-{escape(name)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _cell(value: object) -> str:
    """A table cell; numbers carry their exact value in `data-v` for sorting."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return '<td class="num" data-v="">-</td>'
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td class="num" data-v="{value}">{value}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num" data-v="{value!r}">{value:.3f}</td>'
    return f"<td>{escape(str(value))}</td>"


def _capped(shown: int, total: int, table: str) -> str:
    text = _capped_text(shown, total, table)
    return f'<p class="note capped">{text}</p>' if text else ""


def _capped_text(shown: int, total: int, table: str) -> str:
    return f" Showing {shown:,} of {total:,}; all are in <code>{table}</code>." if shown < total else ""
