"""The report's design and sweep views and a 3D view, rendered from tables built here (the
contracts' schemas plus the design factor and sweep columns, written as real Parquet files) and
read back from the DOM of the real headless Chromium."""

from __future__ import annotations

import base64
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import requested_urls, require_viewer
from scipy.stats import spearmanr

from foldscreen.contracts.schema import table_schema
from foldscreen.reports.html import write_report

pytestmark = pytest.mark.slow

FACTORS = [*[(name, pa.string()) for name in ("design", "design_kind", "bait", "prey", "target", "ligand_id",
                                              "mutation")],
           *[(name, pa.int64()) for name in ("copies", "bait_copies", "prey_copies")]]
SWEEP = [("arm", pa.string()), ("recycles", pa.int64())]
DEFAULTS = {pa.string(): "", pa.int64(): 0, pa.float64(): 0.0, pa.bool_(): False}
BACKBONE = [("N", "N", (-1.2, 0.5)), ("CA", "C", (0, 0)), ("C", "C", (1.2, 0.5)), ("O", "O", (1.2, 1.7)),
            ("CB", "C", (0, -1.5))]  # an extended strand: consecutive residues 3.8 A apart
SCORES = ["sample_ranking_score", "iptm", "ptm", "ipsae", "pdockq2", "lis", "avg_plddt"]


def write(path: Path, name: str, rows: list[dict], extra: list[tuple[str, pa.DataType]]) -> None:
    """A table with the schema `name` plus the `extra` columns it lacks; what a row leaves out is
    null where the schema allows it, else a default of its type."""
    schema = table_schema(name).arrow()
    for field, kind in extra:
        if field not in schema.names:
            schema = schema.append(pa.field(field, kind))
    filled = [{f.name: row.get(f.name, None if f.nullable else DEFAULTS[f.type]) for f in schema}
              for row in rows]
    pq.write_table(pa.Table.from_pylist(filled, schema=schema), path)


def query(query_id: str, rng: np.random.Generator, status: str = "predicted", **columns) -> dict:
    row = {"query_id": query_id, "status": status, "n_tokens": 40, "n_chains": 2, "molecule_types": "protein",
           "notes": ""}
    if status == "predicted":
        iptm, ptm = rng.random(2)
        row |= {"n_samples": 2, "best_seed": 1, "best_sample": 1,
                "sample_ranking_score": 0.8 * iptm + 0.2 * ptm, "iptm": iptm, "ptm": ptm,
                "avg_plddt": 100 * rng.random(), "ipsae": rng.random(), "pdockq2": rng.random(),
                "lis": rng.random(), "has_clash": False, "demo_weights": False}
    return row | columns


def screen(folder: Path, rows: list[dict], extra: list, **tables: list[dict]) -> Path:
    """A screen's tables folder (queries sorted best first, as the aggregate stage writes them)."""
    folder.mkdir(parents=True)
    rows = sorted(rows, key=lambda r: (-r.get("sample_ranking_score", -np.inf), r["query_id"]))
    write(folder / "queries.parquet", "queries", rows, extra)
    for name in ("samples", "residues", "chain_pairs"):
        write(folder / f"{name}.parquet", name, tables.get(name, []), [e for e in extra if e[0] == "arm"])
    write(folder / "failures.parquet", "failures", [], [])
    return folder


def structure_file(path: Path) -> None:
    """A small model with sane geometry: a 12-residue strand (chain A), 6 residues (B), a ligand (C);
    B-factors (pLDDT) spread over the four bands."""
    structure = gemmi.Structure()
    model = gemmi.Model("1")
    for name, n, y in (("A", 12, 0.0), ("B", 6, 6.0)):
        chain = gemmi.Chain(name)
        for i in range(n):
            residue = gemmi.Residue()
            residue.name, residue.seqid = "ALA", gemmi.SeqId(i + 1, " ")
            residue.entity_type = gemmi.EntityType.Polymer
            for atom_name, element, (dx, dy) in BACKBONE:
                atom = gemmi.Atom()
                atom.name, atom.element = atom_name, gemmi.Element(element)
                atom.pos = gemmi.Position(3.8 * i + dx, y + dy, 0.0)
                atom.b_iso = [95.0, 80.0, 60.0, 30.0][i % 4]
                residue.add_atom(atom)
            chain.add_residue(residue)
        model.add_chain(chain)
    ligand = gemmi.Chain("C")
    residue = gemmi.Residue()
    residue.name, residue.seqid, residue.het_flag = "LIG", gemmi.SeqId(1, " "), "H"
    residue.entity_type = gemmi.EntityType.NonPolymer
    for i, element in enumerate("CCOC"):
        atom = gemmi.Atom()
        atom.name, atom.element, atom.b_iso = f"{element}{i + 1}", gemmi.Element(element), 75.0
        atom.pos = gemmi.Position(20.0 + 1.4 * i, 3.0, 1.0)
        residue.add_atom(atom)
    ligand.add_residue(residue)
    model.add_chain(ligand)
    structure.add_model(model)
    structure.setup_entities()
    structure.make_mmcif_document().write_file(str(path))


def design_rows(rng: np.random.Generator, model: Path) -> list[dict]:
    rows = []
    for bait in ("b1", "b2", "b3"):
        for prey in ("p1", "p2"):
            failed = (bait, prey) == ("b3", "p2")
            rows.append(query(f"{bait}__{prey}", rng, "failed" if failed else "predicted", design="screen A",
                              design_kind="pulldown", bait=bait, prey=prey, bait_copies=1, prey_copies=1))
    rows.append(query("b1x2__p1", rng, design="screen A", design_kind="pulldown", bait="b1", prey="p1",
                      bait_copies=2, prey_copies=1) | {"ipsae": 0.99, "sample_ranking_score": 2.0,
                                                       "best_model_path": str(model)})  # the top hit
    members = ["m1", "m2", "m3"]
    for i, a in enumerate(members):
        for b in members[i:]:
            rows.append(query(f"{a}__{b}", rng, design="complex", design_kind="all_vs_all", bait=a, prey=b))
    for target in ("t1", "t2"):
        for ligand in ("L1", "L2", "L3", "L4"):
            status = "failed" if (target, ligand) == ("t2", "L3") else "predicted"
            rows.append(query(f"{target}__{ligand}", rng, status, design="library", design_kind="ligands",
                              target=target, ligand_id=ligand, molecule_types="ligand,protein"))
    for protein in ("o1", "o2"):
        for copies in (1, 2, 3, 6):
            rows.append(query(f"{protein}__x{copies}", rng, design="states", design_kind="oligomers",
                              target=protein, copies=copies, n_chains=copies))
    rows.append(query("w1", rng, design="scan", design_kind="mutants", target="w1", mutation="wt"))
    for mutation in ("L5P", "K48R/K63R", "A23G", "G23A"):
        rows.append(query(f"w1__{mutation.replace('/', '_')}", rng, design="scan", design_kind="mutants",
                          target="w1", mutation=mutation))
    rows.append(query("w2", rng, design="scan2", design_kind="mutants", target="w2"))  # wild type: null
    rows += [query(f"w2__{m}", rng, design="scan2", design_kind="mutants", target="w2", mutation=m)
             for m in ("R7A", "Q3E")]
    rows += [query(f"plain{i}", rng) for i in range(2)]  # an ordinary query: no factor
    return rows


@pytest.fixture(scope="module")
def designs(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    folder = tmp_path_factory.mktemp("designs")
    structure_file(folder / "model.cif")
    tables = screen(folder / "tables", design_rows(np.random.default_rng(1), folder / "model.cif"), FACTORS)
    write_report(tables, folder / "report.html")
    return pd.read_parquet(tables / "queries.parquet"), folder / "report.html"


@pytest.fixture(scope="module")
def design_page(browser, designs):
    browser.get(designs[1].as_uri())
    return browser


def design(queries: pd.DataFrame, name: str) -> pd.DataFrame:
    return queries[queries["design"] == name]


def dom_table(page, selector: str) -> dict:
    """A table's header texts and, per body row, its header cell's text and each cell's [text, data-v]."""
    return page.execute_script("""
        const t = document.querySelector(arguments[0]);
        return {head: Array.from(t.tHead.rows[0].cells).map(c => c.textContent),
                rows: Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells).map(
                    c => [c.textContent, c.tagName === 'TH' ? null : c.getAttribute('data-v')]))};""",
        selector)


def value(data_v: str | None) -> float:
    return np.nan if data_v in ("", None) else float(data_v)


def column(table: dict, name: str) -> list:
    i = table["head"].index(name)
    return [row[i] for row in table["rows"]]


@pytest.mark.parametrize("name, symmetric", [("screen A", False), ("complex", True)])
@pytest.mark.parametrize("metric", ["ipsae", "iptm"])
def test_heatmap_cells_equal_the_table(design_page, designs, name, symmetric, metric):
    rows = design(designs[0], name)
    pairs = rows[["bait", "prey", metric]]
    if symmetric:
        pairs = pd.concat([pairs, pairs.rename(columns={"bait": "prey", "prey": "bait"})])
    expected = pairs.groupby(["bait", "prey"])[metric].max()  # best over the pair's queries
    article = design_page.find_element("css selector", f'article.design[data-design="{name}"]')
    heatmap = dom_table(design_page, f'#{article.get_attribute("id")} table[id$="-{metric}"]')
    preys = heatmap["head"][1:]
    assert preys == sorted(pairs["prey"].unique())
    assert [row[0][0] for row in heatmap["rows"]] == sorted(pairs["bait"].unique())
    for row in heatmap["rows"]:
        bait = row[0][0]
        for prey, (text, data_v) in zip(preys, row[1:]):
            want = expected.get((bait, prey), np.nan)
            assert value(data_v) == want or (np.isnan(want) and np.isnan(value(data_v))), (bait, prey)
            assert text == ("" if (bait, prey) not in expected else "-" if np.isnan(want) else f"{want:.2f}")
    if name == "screen A" and metric == "ipsae":
        assert heatmap["rows"][0][1][1] == "0.99"  # b1 x p1: the two-copy query's, the higher
        assert heatmap["rows"][2][2][0] == "-"  # b3 x p2 failed


def test_ligands_ranked_per_target(design_page, designs):
    rows = design(designs[0], "library")
    article = design_page.find_element("css selector", 'article.design[data-design="library"]')
    tables = article.find_elements("css selector", "table")
    assert [t.get_attribute("id").rsplit("-", 1)[1] for t in tables] == ["0", "1"]
    for target, element in zip(("t1", "t2"), tables):
        ranked = rows[rows["target"] == target].sort_values(["sample_ranking_score", "query_id"],
                                                            ascending=[False, True], na_position="last")
        table = dom_table(design_page, f"#{element.get_attribute('id')}")
        assert [t for t, _ in column(table, "ligand")] == list(ranked["ligand_id"])
        assert [value(v) for _, v in column(table, "ranking score")] == pytest.approx(
            list(ranked["sample_ranking_score"]), nan_ok=True)
        n = int(ranked["sample_ranking_score"].notna().sum())
        ranks = [str(i + 1) for i in range(n)] + ["-"] * (len(ranked) - n)
        assert [t for t, _ in column(table, "rank")] == ranks


def test_oligomer_states_per_protein(design_page, designs):
    rows = design(designs[0], "states").sort_values(["target", "copies"])
    table = dom_table(design_page, 'article.design[data-design="states"] table')
    assert [t for t, _ in column(table, "protein")] == list(rows["target"])
    assert [int(t) for t, _ in column(table, "copies")] == list(rows["copies"])
    for label, name in (("ranking score", "sample_ranking_score"), ("ipTM", "iptm"), ("pTM", "ptm")):
        assert [value(v) for _, v in column(table, label)] == list(rows[name])
    best = rows.loc[rows.groupby("target")["sample_ranking_score"].idxmax(), "query_id"]
    marked = [q for (q, _), (b, _) in zip(column(table, "query"), column(table, "best state")) if b]
    assert marked == list(best)


@pytest.mark.parametrize("name, wild_type", [("scan", "w1"), ("scan2", "w2")])
def test_mutant_deltas_against_the_wild_type(design_page, designs, name, wild_type):
    rows = design(designs[0], name).set_index("query_id")
    table = dom_table(design_page, f'article.design[data-design="{name}"] table')
    mutants = [t for t, _ in column(table, "query")]
    assert sorted(mutants) == sorted(set(rows.index) - {wild_type})
    first = ["Q3E", "R7A"] if name == "scan2" else ["L5P", "A23G"]  # by residue position
    assert [t for t, _ in column(table, "mutation")][:2] == first
    for label, score in (("ranking score", "sample_ranking_score"), ("ipTM", "iptm"), ("ipSAE", "ipsae"),
                         ("pDockQ2", "pdockq2"), ("LIS", "lis")):
        deltas = [value(v) for _, v in column(table, f"\u0394 {label}")]
        assert deltas == pytest.approx([rows.at[m, score] - rows.at[wild_type, score] for m in mutants])
    assert set(t for t, _ in column(table, "wild type")) == {wild_type}


def test_only_designs_get_views(design_page, designs):
    articles = design_page.find_elements("css selector", "article.design")
    assert [a.get_attribute("data-design") for a in articles] == ["complex", "library", "scan", "scan2",
                                                                  "screen A", "states"]
    assert "plain0" not in design_page.find_element("id", "designs").text
    assert design_page.find_elements("id", "sweep-arms") == []  # no arm column: no sweep view


def test_3d_view_draws_the_structure_offline(design_page, designs):
    """The top hit's model in the viewer: its atoms and chains, drawn (pixels on the canvas), recoloured
    by chain on a click; the page requested nothing but itself and data: URIs."""
    require_viewer()
    structure = gemmi.read_structure(str(designs[1].parent / "model.cif"))
    atoms = design_page.execute_script("""return window.foldscreenViewers['model-0'].getModel()
        .selectedAtoms({}).map(a => [a.chain, a.hetflag]);""")
    assert atoms == [[c.name, r.het_flag == "H"] for c in structure[0] for r in c for _ in r]

    def drawn() -> bytes:
        uri = design_page.execute_script("return window.foldscreenViewers['model-0'].pngURI();")
        return base64.b64decode(uri.split(",", 1)[1])

    by_plddt = drawn()
    pixels = design_page.execute_async_script("""
        const done = arguments[arguments.length - 1], img = new Image();
        img.onload = () => {
            const c = document.createElement('canvas'), ctx = c.getContext('2d');
            c.width = img.width; c.height = img.height; ctx.drawImage(img, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) { if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++; }
            done(n); };
        img.src = window.foldscreenViewers['model-0'].pngURI();""")
    assert pixels > 500  # the strands and the ligand are on the canvas, not a blank box
    design_page.find_element("css selector", "article.hit button[data-scheme=chain]").click()
    assert drawn() != by_plddt
    urls = requested_urls(design_page)
    assert urls and [u for u in urls if not u.startswith(("file:", "data:"))] == []


# sweeps


def sweep_rows(rng: np.random.Generator) -> list[dict]:
    rows = []
    for arm, recycles in (("a", 0), ("b", 3), ("c", 10)):
        for i in range(30):
            status = "failed" if arm == "c" and i % 7 == 0 else "predicted"
            rows.append(query(f"q{i:02d}", rng, status, arm=arm, recycles=recycles))
    return rows


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    rows = sweep_rows(np.random.default_rng(2))
    top = "q01"  # predicted in every arm
    for row in rows:
        if row["query_id"] == top:
            row["sample_ranking_score"] = 5.0 + ord(row["arm"])  # one query tops every arm
    tables = {
        "samples": [{"query_id": top, "arm": arm, "rank": 1, "confidences_path": "missing.json"}
                    for arm in "abc"],
        "residues": [{"query_id": top, "arm": arm, "rank": 1, "token_index": t, "chain_id": "A",
                      "plddt": 50.0} for arm, n in (("a", 3), ("b", 5), ("c", 7)) for t in range(n)],
    }
    path = screen(folder / "tables", rows, SWEEP, **tables)
    write_report(path, folder / "report.html")
    return pd.read_parquet(path / "queries.parquet"), folder / "report.html"


@pytest.fixture(scope="module")
def sweep_page(browser, sweep):
    browser.get(sweep[1].as_uri())
    return browser


def expected_ranks(queries: pd.DataFrame) -> pd.DataFrame:
    predicted = queries[queries["status"] == "predicted"]
    ranks = {arm: {q: i + 1 for i, q in enumerate(group.sort_values(["sample_ranking_score", "query_id"],
                                                                      ascending=[False, True])["query_id"])}
             for arm, group in predicted.groupby("arm")}
    return pd.DataFrame(ranks)


def test_arms_ranks_and_correlations_equal_the_tables(sweep_page, sweep):
    ranks = expected_ranks(sweep[0])
    top = ranks[(ranks <= 20).any(axis=1)].sort_values(["a", "b", "c"], na_position="last")
    table = dom_table(sweep_page, "#table-arm-ranks")
    assert table["head"] == ["query", "rank in a", "rank in b", "rank in c"]
    assert [t for t, _ in column(table, "query")] == list(top.index)
    for arm in "abc":
        drawn = [value(v) for _, v in column(table, f"rank in {arm}")]
        assert drawn == pytest.approx(list(top[arm]), nan_ok=True)
    pairs = dom_table(sweep_page, "#table-arm-correlation")
    assert [(a, b) for (a, _), (b, _) in zip(column(pairs, "arm"), column(pairs, "other arm"))] == [
        ("a", "b"), ("a", "c"), ("b", "c")]
    for (a, _), (b, _), (_, rho), (_, shared), (_, n) in zip(
            column(pairs, "arm"), column(pairs, "other arm"), column(pairs, "Spearman \u03c1"),
            column(pairs, "shared top 20"), column(pairs, "queries in both")):
        both = ranks[[a, b]].dropna()
        assert int(n) == len(both) and value(rho) == pytest.approx(spearmanr(both[a], both[b]).statistic)
        assert int(shared) == int(((ranks[a] <= 20) & (ranks[b] <= 20)).sum())
    settings = dom_table(sweep_page, "#table-arms")
    assert settings["head"] == ["arm", "recycles", "predicted"]
    assert [[t for t, _ in row] for row in settings["rows"]] == [["a", "0", "30"], ["b", "3", "30"],
                                                                  ["c", "10", "25"]]


def test_sweep_hits_keep_their_arm(sweep_page, sweep):
    """The same query tops every arm: each arm's hit shows that arm's own residues."""
    hits = sweep_page.find_elements("css selector", "article.hit")
    first = [(h.get_attribute("data-query"), h.get_attribute("data-arm")) for h in hits[:3]]
    assert len({q for q, _ in first}) == 1 and [a for _, a in first] == ["c", "b", "a"]
    for hit, tokens in zip(hits[:3], (7, 5, 3)):
        line = hit.find_element("css selector", "polyline.plddt").get_attribute("points")
        assert len(line.split()) == tokens
    assert sweep_page.find_elements("id", "designs") == []


def test_report_without_the_viewer_library(designs, monkeypatch):
    """Without the vendored viewer the report still renders, says how to get the 3D view, and
    carries neither the library nor any structure."""
    from foldscreen.reports import html

    monkeypatch.setattr(html, "viewer_library", lambda: None)
    page = html.render_report(designs[1].parent / "tables")
    assert page.count("viewer-missing") == 5 and "run <code>./install.sh</code>" in page
    assert "$3Dmol" not in page and 'class="viewer"' not in page
    assert '<article class="design"' in page and "<h3>b1x2__p1" in page


def test_large_pulldown_heatmap_keeps_the_strongest():
    """70 baits x 3 preys: the heatmap keeps the 60 baits with the highest ipSAE, and says so."""
    from foldscreen.reports.designs import HEATMAP_SIDE, designs_html

    rng = np.random.default_rng(3)
    rows = [query(f"b{i:02d}__p{j}", rng, design="big", design_kind="pulldown", bait=f"b{i:02d}",
                  prey=f"p{j}") for i in range(70) for j in range(3)]
    queries = pd.DataFrame(rows)
    page = designs_html(queries)
    best = queries.groupby("bait")["ipsae"].max().sort_values(ascending=False)
    table = page[page.index('id="heatmap-design0-ipsae"'):].split("</table>")[0]
    shown = [line.split("</th>")[0] for line in table.split('<th scope="row">')[1:]]
    assert shown == sorted(best.index[:HEATMAP_SIDE])
    assert "Showing the 60 of 70 baits and 3 of 3 preys" in page
