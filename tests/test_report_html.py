"""The HTML report of a real small screen, opened in a real headless Chromium (driven by Selenium)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import requested_urls, require_viewer, run_snakemake

from foldscreen.cli import main
from foldscreen.reports.figures import PAE_HIGH, PAE_LOW, PAE_MAX, heatmap_png
from foldscreen.reports.html import SCATTER_POINTS, TABLE_ROWS, render_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(finished_screen) -> Path:
    return finished_screen / "results" / "test"


@pytest.fixture(scope="module")
def page(browser, out):
    browser.get((out / "report.html").resolve().as_uri())
    return browser


def texts(page, selector: str) -> list[str]:
    return page.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)", selector)


def test_glance_and_failures(page, out):
    assert "Demo weights" in page.find_element("id", "demo-warning").text
    counts = {k: page.find_element("css selector", f"#count-{k} .n").text
              for k in ("queries", "predicted", "failed", "pending", "samples")}
    assert counts == {"queries": "5", "predicted": "3", "failed": "2", "pending": "0", "samples": "6"}
    run = dict(zip(texts(page, "#run dt"), texts(page, "#run dd")))
    metadata = pq.read_schema(out / "queries.parquet").metadata
    assert run["config sha256"] == metadata[b"config_sha256"].decode() and run["weights"] == "demo"
    failures = pd.read_parquet(out / "failures.parquet")
    assert texts(page, "#table-failures tbody td:nth-child(1)") == list(failures["query_id"])
    assert texts(page, "#table-failures tbody td:nth-child(4)") == list(failures["reason"])


def test_histogram_and_scatter(page, out):
    queries = pd.read_parquet(out / "queries.parquet")
    bars = page.execute_script(
        "return Array.from(document.querySelectorAll('svg.histogram rect.bar'))"
        ".map(b => [+b.dataset.count, b.getBoundingClientRect().height])")
    assert len(bars) == 20 and sum(count for count, _ in bars) == 3
    assert all((height > 1) == (count > 0) for count, height in bars)  # drawn: tall where counted

    dots = page.find_elements("css selector", "svg.scatter circle.dot")
    titles = sorted(texts(page, "svg.scatter circle.dot title"))
    assert len(dots) == 3 and all(d.size["width"] > 0 for d in dots)
    expected = sorted(f"{r.query_id}: ipTM {r.iptm:.3f}, pTM {r.ptm:.3f}, score {r.sample_ranking_score:.3f}"
                      for r in queries.itertuples())
    assert titles == expected


def test_top_hits_profiles_and_heatmaps(page, out):
    queries = pd.read_parquet(out / "queries.parquet")
    hits = page.find_elements("css selector", "article.hit")
    assert [h.get_attribute("data-query") for h in hits] == list(queries["query_id"])  # best first
    for hit, row in zip(hits, queries.itertuples()):
        line = hit.find_element("css selector", "polyline.plddt").get_attribute("points")
        assert len(line.split()) == row.n_tokens
        confidences = json.loads(Path(out.parents[1], row.best_model_path.replace(
            "_model.cif", "_confidences.json")).read_text())
        # the PAE image drawn onto a canvas in the page: one pixel per token, coloured by PAE
        pixels = page.execute_script("""
            const img = arguments[0], canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
            return [img.naturalWidth, Array.from(ctx.getImageData(0, 0, img.naturalWidth, 1).data)];""",
            hit.find_element("css selector", "img.pae"))
        width, first_row = pixels
        assert width == row.n_tokens
        t = np.clip(np.asarray(confidences["pae"][0]) / PAE_MAX, 0, 1)[:, None]
        expected = np.rint(PAE_LOW * (1 - t) + PAE_HIGH * t)
        drawn = np.asarray(first_row).reshape(-1, 4)[:, :3]
        assert np.abs(drawn - expected).max() <= 1
        assert (drawn != 255).any()  # not blank


PLDDT_BANDS = [(90, 0x0053D6), (70, 0x65CBF3), (50, 0xFFDB13), (-np.inf, 0xFF7D45)]


def plddt_colour(plddt: float) -> int:
    return next(colour for low, colour in PLDDT_BANDS if plddt > low)


def viewer_atoms(page, key: str) -> list[list]:
    return page.execute_script("""
        return window.foldscreenViewers[arguments[0]].getModel().selectedAtoms({})
            .map(a => [a.chain, a.hetflag, a.b, a.color]);""", key)


def test_top_hits_3d_views(page, out):
    """Each top hit's best structure in a 3Dmol.js viewer: every atom, chain and ligand atom of its
    mmCIF (read with gemmi), coloured by pLDDT, and by chain after a click."""
    require_viewer()
    queries = pd.read_parquet(out / "queries.parquet")
    hits = page.find_elements("css selector", "article.hit")
    assert len(hits) == len(queries) == 3
    for hit, row in zip(hits, queries.itertuples()):
        key = hit.find_element("css selector", ".viewer").get_attribute("data-model")
        structure = gemmi.read_structure(str(out.parents[1] / row.best_model_path))
        expected = [(chain.name, residue.het_flag == "H", atom.b_iso)
                    for chain in structure[0] for residue in chain for atom in residue]
        atoms = viewer_atoms(page, key)
        assert [(c, h) for c, h, _, _ in atoms] == [(c, h) for c, h, _ in expected]
        assert np.allclose([b for _, _, b, _ in atoms], [b for _, _, b in expected], atol=1e-4)
        assert [colour for *_, colour in atoms] == [plddt_colour(b) for *_, b in expected]
        assert any(h for _, h, _ in expected) == ("ligand" in row.molecule_types)  # the ligand is drawn
        hit.find_element("css selector", "button[data-scheme=chain]").click()
        by_chain = {}
        for chain, _, _, colour in viewer_atoms(page, key):
            by_chain.setdefault(chain, set()).add(colour)
        assert all(len(c) == 1 for c in by_chain.values())  # one colour per chain, a different one each
        assert len(set().union(*by_chain.values())) == len(by_chain) == row.n_chains


def test_report_requests_nothing_external(page):
    """Everything the report needs is inside it: the page loads nothing but itself and data: URIs."""
    urls = requested_urls(page)
    assert any(u.startswith("file:") and u.endswith("report.html") for u in urls)
    assert [u for u in urls if not u.startswith(("file:", "data:"))] == []


def test_table_sorts_on_header_click(page, out):
    queries = pd.read_parquet(out / "queries.parquet")
    header = page.find_elements("css selector", "#table-queries th")
    names = [h.text for h in header]

    def column(name: str) -> list[str]:
        return texts(page, f"#table-queries tbody td:nth-child({names.index(name) + 1})")

    assert column("query") == list(queries["query_id"])  # as ranked
    header[names.index("query")].click()
    assert column("query") == sorted(queries["query_id"])
    header[names.index("query")].click()
    assert column("query") == sorted(queries["query_id"], reverse=True)
    tokens = header[names.index("tokens")]
    tokens.click()  # numbers sort as numbers
    assert [int(v) for v in column("tokens")] == sorted(queries["n_tokens"])
    assert tokens.get_attribute("aria-sort") == "ascending"
    header[names.index("pLDDT")].click()
    assert [float(v) for v in column("pLDDT")] == sorted(round(v, 3) for v in queries["avg_plddt"])
    header[names.index("ipSAE")].click()  # the single-chain query has none: blanks go last
    assert column("query")[-1] == "mono" and column("ipSAE")[-1] == "-"


def test_cli_writes_the_same_report(out, tmp_path, monkeypatch):
    copy = tmp_path / "copy" / "results" / "test"
    shutil.copytree(out, copy, symlinks=True)
    (copy / "report.html").unlink()
    monkeypatch.chdir(tmp_path)  # not the workflow's folder: sample files are found under --out
    main(["report", "--out", str(copy)])
    assert (copy / "report.html").read_bytes() == (out / "report.html").read_bytes()


def test_large_screen_report_is_bounded(out, tmp_path, monkeypatch):
    """100,000 queries: the table keeps the best 1,000, the scatter 5,000 points, the file stays small."""
    queries = pd.read_parquet(out / "queries.parquet")
    n = 100_000
    rng = np.random.default_rng(0)
    big = queries.iloc[np.arange(n - len(queries)) % len(queries)].reset_index(drop=True)
    big["query_id"] = [f"q{i:06d}" for i in range(len(big))]
    big["iptm"], big["ptm"] = rng.random(len(big)), rng.random(len(big))
    big["sample_ranking_score"] = 0.8 * big["iptm"] + 0.2 * big["ptm"]
    queries["sample_ranking_score"] += 1  # the real queries stay on top: the hits read their files
    big = pd.concat([queries, big.sort_values("sample_ranking_score", ascending=False)], ignore_index=True)
    big.to_parquet(tmp_path / "queries.parquet")
    for name in ("samples", "failures", "residues", "chain_pairs"):
        shutil.copy(out / f"{name}.parquet", tmp_path / f"{name}.parquet")
    monkeypatch.chdir(out.parents[1])  # the tables' paths are relative to the workflow's folder
    html = render_report(tmp_path, top_hits=len(queries))
    assert len(re.findall(r'<circle class="dot', html)) == SCATTER_POINTS
    rows = re.search(r'<table class="sortable" id="table-queries">.*?</table>', html).group(0)
    assert rows.count("<tr>") == TABLE_ROWS + 1
    assert "Showing 1,000 of 100,000" in html and len(html.encode()) < 3_000_000
    assert html.count('<article class="hit"') == len(queries)


def test_unreadable_sample_file_loses_one_figure_only(out, tmp_path, monkeypatch):
    copy = tmp_path / "results" / "test"
    shutil.copytree(out, copy, symlinks=True)
    top = pd.read_parquet(copy / "queries.parquet").iloc[0]
    Path(copy, *Path(top["best_model_path"].replace("_model.cif", "_confidences.json")).parts[2:]).unlink()
    monkeypatch.chdir(tmp_path)
    html = render_report(copy)
    assert html.count('<img class="pae"') == 2 and "could not be read: no PAE" in html


def test_report_before_any_prediction(out, tmp_path):
    queries = pd.read_parquet(out / "queries.parquet")
    pending = queries[["query_id", "n_tokens", "n_chains", "molecule_types", "notes"]].assign(
        status="pending", n_samples=0).reindex(columns=queries.columns)
    pending.to_parquet(tmp_path / "queries.parquet")
    for name in ("samples", "failures", "residues", "chain_pairs"):
        shutil.copy(out / f"{name}.parquet", tmp_path / f"{name}.parquet")
    html = render_report(tmp_path)
    assert html.count("No predictions yet.") == 2 and 'id="demo-warning"' not in html


def test_heatmap_of_a_long_query_is_downsampled():
    png = heatmap_png(np.full((1000, 1000), 5.0))
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") == 250  # 1000 / 4


def test_snakemake_report(finished_screen, out, tmp_path):
    archive = tmp_path / "report.zip"
    run_snakemake(finished_screen, "--report", str(archive))
    with zipfile.ZipFile(archive) as z:
        ours = [n for n in z.namelist() if n.startswith("report/data/raw/") and n.endswith("/report.html")]
        assert len(ours) == 1 and z.read(ours[0]) == (out / "report.html").read_bytes()
        index = z.read("report/report.html").decode()
    assert "Screen report" in index and "sorts when a column header" in index  # category, caption
