"""The report's views of designs and sweeps: each design the way its users read it, and the arms
of a sweep side by side.

They read the design factor columns of the queries table (`design`, `design_kind`, `bait`,
`prey`, `target`, `ligand_id`, `mutation`, `copies`) and a sweep's `arm` column, and appear only
where those columns are present and filled. Every score is the one the queries table carries: the
query's best sample (rank 1 by ranking score over all its seeds and samples); `ipsae`, `pdockq2`
and `lis` are that sample's highest over its chain pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

from .markup import capped, cell, is_missing, table

HEATMAP_SIDE = 60  # baits and preys drawn at most, per axis
LIST_ROWS = 200  # rows of a ligand ranking (per target) or a mutant table
ARM_TOP = 20  # the top queries of each arm compared between arms
FACTORS = ["design", "design_kind", "bait", "prey", "target", "ligand_id", "mutation", "copies",
           "bait_copies", "prey_copies"]
SCORES = [("ranking score", "sample_ranking_score"), ("ipTM", "iptm"), ("pTM", "ptm"),
          ("ipSAE", "ipsae"), ("pDockQ2", "pdockq2"), ("LIS", "lis"), ("pLDDT", "avg_plddt")]
PAIR_METRICS = [("ipSAE", "ipsae"), ("ipTM", "iptm")]
DELTAS = [("ranking score", "sample_ranking_score"), ("ipTM", "iptm"), ("ipSAE", "ipsae"),
          ("pDockQ2", "pdockq2"), ("LIS", "lis"), ("pLDDT", "avg_plddt")]
HEAT_LOW, HEAT_HIGH = (255, 255, 255), (31, 79, 138)  # 0 white -> 1 dark blue


@dataclass(frozen=True)
class Design:
    """The queries of one design (of one arm, in a sweep)."""

    name: str
    kind: str
    arm: str | None
    rows: pd.DataFrame


def is_wild_type(mutation: pd.Series) -> pd.Series:
    """The wild-type rows of a mutants design: mutation "wt" (any case) or empty. The one place
    this is decided."""
    return mutation.isna() | mutation.astype("string").str.strip().str.lower().eq("wt")


def arms(queries: pd.DataFrame) -> list[str]:
    """The arms of a sweep, sorted; none without an `arm` column."""
    return sorted(queries["arm"].dropna().astype(str).unique()) if "arm" in queries else []


def designs(queries: pd.DataFrame) -> list[Design]:
    """Every design with a view, by name (and by arm when the screen is a sweep of several)."""
    if not {"design", "design_kind"} <= set(queries.columns):
        return []
    rows = queries[queries["design"].notna() & queries["design_kind"].isin(list(VIEWS))]
    by_arm = len(arms(rows)) > 1
    keys = ["design", "arm"] if by_arm else ["design"]
    return [Design(str(key[0]), str(group["design_kind"].iloc[0]), str(key[1]) if by_arm else None, group)
            for key, group in rows.groupby(keys, sort=True)]


def designs_html(queries: pd.DataFrame) -> str:
    """The designs section's content; empty when the screen has no design."""
    return "".join(_design_html(i, d) for i, d in enumerate(designs(queries)))


def _design_html(index: int, design: Design) -> str:
    arm = f", arm <code>{escape(design.arm)}</code>" if design.arm is not None else ""
    arm_attr = f' data-arm="{escape(design.arm)}"' if design.arm is not None else ""
    n = len(design.rows)
    predicted = int((design.rows["status"] == "predicted").sum())
    return (f'<article class="design" id="design-{index}" data-design="{escape(design.name)}" '
            f'data-kind="{escape(design.kind)}"{arm_attr}><h3>{escape(design.name)} '
            f'<span class="kind">{escape(design.kind.replace("_", " "))}</span>{arm}</h3>'
            f'<p class="facts">{n:,} queries, {predicted:,} predicted.</p>'
            f"{VIEWS[design.kind](f'design{index}', design.rows)}</article>")


# pulldown and all_vs_all: a bait x prey heatmap per metric


def pair_cells(rows: pd.DataFrame, column: str, symmetric: bool) -> pd.DataFrame:
    """One row per (bait, prey): the best `column` over the design's queries of that pair, and that
    query; an all_vs_all pair (symmetric) fills both (a, b) and (b, a)."""
    named = rows["bait"].notna() & rows["prey"].notna()
    pairs = rows.loc[named, ["bait", "prey", "query_id", "status", column]]
    if symmetric:
        pairs = pd.concat([pairs, pairs.rename(columns={"bait": "prey", "prey": "bait"})], ignore_index=True)
    pairs = pairs.astype({"bait": str, "prey": str})
    best = pairs.sort_values([column, "query_id"], ascending=[False, True], na_position="last",
                             kind="mergesort")
    return best.drop_duplicates(["bait", "prey"]).set_index(["bait", "prey"])


def _strongest(cells: pd.DataFrame, level: str, limit: int) -> list[str]:
    """The names on one axis, sorted; the `limit` with the highest best value when there are more."""
    best = cells.iloc[:, -1].groupby(level=level).max()
    if len(best) > limit:
        best = best.sort_values(ascending=False, na_position="last", kind="mergesort").head(limit)
    return sorted(best.index)


def _pairs_view(name: str, rows: pd.DataFrame, symmetric: bool) -> str:
    first = pair_cells(rows, PAIR_METRICS[0][1], symmetric)
    if first.empty:
        return '<p class="note">No query of this design names a bait and a prey.</p>'
    baits, preys = _strongest(first, "bait", HEATMAP_SIDE), _strongest(first, "prey", HEATMAP_SIDE)
    n_baits, n_preys = (first.index.get_level_values(k).nunique() for k in ("bait", "prey"))
    cap = (f'<p class="note capped">Showing the {len(baits)} of {n_baits} baits and {len(preys)} of '
           f"{n_preys} preys with the highest ipSAE; all are in <code>queries.parquet</code>.</p>"
           if (len(baits), len(preys)) != (n_baits, n_preys) else "")
    axes = ("member", "member") if symmetric else ("bait", "prey")
    maps = "".join(
        f'<figure class="heatmap-box">'
        f'{_heatmap(f"{name}-{column}", label, pair_cells(rows, column, symmetric), baits, preys, axes)}'
        f"<figcaption>{escape(label)} per {axes[0]} (row) and {axes[1]} (column).</figcaption></figure>"
        for label, column in PAIR_METRICS)
    return (f'<div class="figures">{maps}</div>{cap}<p class="note">Each cell is the best sample of its pair '
            f"(rank 1 by ranking score over all seeds and samples): ipSAE is its highest over the "
            f"query's chain pairs (<code>queries.ipsae</code>; for a complex bait or prey that includes "
            f"the pairs inside it), ipTM its interface pTM (<code>queries.iptm</code>); several queries "
            f"of one pair (other copies) give their best. A dash: not predicted.</p>")


def _heatmap(name: str, label: str, cells: pd.DataFrame, baits: list[str], preys: list[str],
             axes: tuple[str, str]) -> str:
    column = cells.columns[-1]
    index = cells.index
    shown = cells[index.get_level_values("bait").isin(baits) & index.get_level_values("prey").isin(preys)]
    grid = {k: shown[k].unstack().reindex(index=baits, columns=preys).to_numpy(dtype=object)
            for k in ("query_id", "status", column)}
    head = "".join(f'<th scope="col" title="{escape(p)}"><span>{escape(p)}</span></th>' for p in preys)
    body = []
    for i, bait in enumerate(baits):
        tds = [_heat_cell(f"{bait} x {prey}", label, grid["query_id"][i, j], grid["status"][i, j],
                          grid[column][i, j]) for j, prey in enumerate(preys)]
        body.append(f'<tr><th scope="row">{escape(bait)}</th>{"".join(tds)}</tr>')
    return (f'<div class="scroll"><table class="heatmap" id="heatmap-{escape(name)}">'
            f'<thead><tr><th class="corner">{escape(axes[0])} \\ {escape(axes[1])}</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _heat_cell(where: str, label: str, query_id: object, status: object, value: object) -> str:
    if is_missing(query_id):
        return f'<td class="heat empty" data-v="" title="{escape(where)}: no query"></td>'
    if is_missing(value):
        return (f'<td class="heat missing" data-v="" title="{escape(where)}: {escape(str(query_id))} '
                f'{escape(str(status))}">-</td>')
    t = min(max(float(value), 0.0), 1.0)
    rgb = "".join(f"{round(lo * (1 - t) + hi * t):02x}" for lo, hi in zip(HEAT_LOW, HEAT_HIGH))
    ink = ' class="heat dark"' if t > 0.55 else ' class="heat"'
    return (f'<td{ink} data-v="{float(value)!r}" style="background:#{rgb}" '
            f'title="{escape(where)}: {label} {value:.3f} ({escape(str(query_id))})">{value:.2f}</td>')


def _pulldown(name: str, rows: pd.DataFrame) -> str:
    return _pairs_view(name, rows, symmetric=False)


def _all_vs_all(name: str, rows: pd.DataFrame) -> str:
    return _pairs_view(name, rows, symmetric=True)


# ligands: ranked per target


def ranked(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows by ranking score within each `by` group (best first, unpredicted last), with `rank`."""
    ordered = rows.sort_values([by, "sample_ranking_score", "query_id"], ascending=[True, False, True],
                               na_position="last", kind="mergesort").copy()
    scored = ordered["sample_ranking_score"].notna()
    ordered["rank"] = pd.Series(pd.NA, index=ordered.index, dtype="Int64")
    ordered.loc[scored, "rank"] = ordered[scored].groupby(by, dropna=False).cumcount() + 1
    return ordered


def _ligands(name: str, rows: pd.DataFrame) -> str:
    headers = ["rank", "ligand", *[h for h, _ in SCORES], "query", "status"]
    parts = []
    for j, (target, group) in enumerate(ranked(rows.assign(target=rows["target"].astype("string")),
                                               "target").groupby("target", sort=True, dropna=False)):
        shown = group.head(LIST_ROWS)
        body = [[cell(r["rank"]), cell(r["ligand_id"]), *[cell(r[c]) for _, c in SCORES], cell(r["query_id"]),
                 cell(r["status"])] for _, r in shown.iterrows()]
        parts.append(f'<h4>target <code>{escape(str(target))}</code></h4>'
                     f'{table(f"{name}-ligands-{j}", headers, body)}'
                     f"{capped(len(shown), len(group), 'queries.parquet')}")
    return ("".join(parts) + '<p class="note">Ligands ranked per target by the ranking score of their '
            "best sample; ipSAE, pDockQ2 and LIS are the highest over the query's chain pairs (the "
            "target-ligand pairs, and a complex target's own pairs).</p>")


# oligomers: the states of each protein side by side


def _oligomers(name: str, rows: pd.DataFrame) -> str:
    ordered = rows.assign(target=rows["target"].astype("string")).sort_values(
        ["target", "copies", "query_id"], kind="mergesort")
    scored = ordered[ordered["sample_ranking_score"].notna()]
    best = set(scored.sort_values("sample_ranking_score", ascending=False, kind="mergesort")
               .drop_duplicates("target").index)
    headers = ["protein", "copies", *[h for h, _ in SCORES], "best state", "query", "status"]
    body = [[cell(r["target"]), cell(_integer(r["copies"])), *[cell(r[c]) for _, c in SCORES],
             f"<td>{'best' if i in best else ''}</td>", cell(r["query_id"]), cell(r["status"])]
            for i, r in ordered.iterrows()]
    return (table(f"{name}-oligomers", headers, body)
            + '<p class="note">Each protein as 1, 2, ... copies: the state with the highest ranking score is '
            "marked best. ipTM and ipSAE compare the copies' interfaces; pTM the whole assembly.</p>")


def _integer(value: object) -> int | None:
    return None if is_missing(value) else int(value)


# mutants: each mutant against the wild type of its design


def mutant_deltas(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The wild-type rows, and each mutant with `wt_query` and `delta_<score>` (mutant - wild type):
    a mutant's wild type is the wild-type row of its target, else the design's only wild type."""
    wild = is_wild_type(rows["mutation"])
    wild_type, mutants = rows[wild], rows[~wild].copy()
    by_target = wild_type[wild_type["target"].notna()].drop_duplicates("target").set_index("target")
    mutants["wt_query"] = mutants["target"].map(by_target["query_id"])
    if len(wild_type) == 1:
        mutants["wt_query"] = mutants["wt_query"].fillna(wild_type["query_id"].iloc[0])
    reference = wild_type.drop_duplicates("query_id").set_index("query_id")
    for _, column in DELTAS:
        mutants[f"delta_{column}"] = mutants[column] - mutants["wt_query"].map(reference[column])
    position = mutants["mutation"].astype(str).str.extract(r"(\d+)", expand=False).astype(float)
    order = mutants.assign(_position=position).sort_values(["_position", "mutation"], kind="mergesort").index
    return wild_type, mutants.loc[order]


def _mutants(name: str, rows: pd.DataFrame) -> str:
    wild_type, mutants = mutant_deltas(rows)
    references = "".join(
        f'<p class="facts wild-type" data-query="{escape(r["query_id"])}">wild type <code>'
        f'{escape(r["query_id"])}</code>: ' + " · ".join(
            f"{label} {r[c]:.3f}" if not is_missing(r[c]) else f"{label} -" for label, c in DELTAS)
        + (f" ({escape(r['status'])})" if r["status"] != "predicted" else "") + "</p>"
        for _, r in wild_type.iterrows()) or '<p class="warning">This design has no wild-type query.</p>'
    shown = mutants.head(LIST_ROWS)
    headers = ["mutation", "ranking score", *[f"\u0394 {h}" for h, _ in DELTAS], "wild type", "query",
               "status"]
    body = [[cell(r["mutation"]), cell(r["sample_ranking_score"]),
             *[_delta(r[f"delta_{c}"]) for _, c in DELTAS], cell(r["wt_query"]), cell(r["query_id"]),
             cell(r["status"])] for _, r in shown.iterrows()]
    return (references + table(f"{name}-mutants", headers, body)
            + capped(len(shown), len(mutants), "queries.parquet")
            + '<p class="note">\u0394: the mutant\'s best sample minus the wild type\'s (positive: the '
            "mutant scores higher). Ordered by residue position.</p>")


def _delta(value: object) -> str:
    """A change, signed and coloured (up: the mutant scores higher)."""
    if is_missing(value):
        return cell(value)
    sign = "up" if value > 0 else "down" if value < 0 else "same"
    return f'<td class="num {sign}" data-v="{float(value)!r}">{value:+.3f}</td>'


VIEWS = {"pulldown": _pulldown, "all_vs_all": _all_vs_all, "ligands": _ligands, "oligomers": _oligomers,
         "mutants": _mutants}


# sweeps: the arms side by side


def arm_ranks(queries: pd.DataFrame) -> pd.DataFrame:
    """Each predicted query's rank within each arm (1 = best ranking score; ties by query id):
    one row per query, one column per arm, empty where the arm did not predict it."""
    predicted = queries[(queries["status"] == "predicted") & queries["arm"].notna()].astype({"arm": str})
    ordered = predicted.sort_values(["arm", "sample_ranking_score", "query_id"],
                                    ascending=[True, False, True], kind="mergesort")
    ordered = ordered.drop_duplicates(["arm", "query_id"])
    ordered["arm_rank"] = ordered.groupby("arm").cumcount() + 1
    ranks = ordered.pivot(index="query_id", columns="arm", values="arm_rank")
    return ranks.reindex(columns=arms(queries)).astype("Int64")


def top_ranks(ranks: pd.DataFrame, top: int = ARM_TOP) -> pd.DataFrame:
    """The queries in the top `top` of any arm, by their rank in the first arm, then the next."""
    shown = ranks[(ranks <= top).fillna(False).any(axis=1)]
    return shown.sort_values(list(shown.columns), na_position="last", kind="mergesort")


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation over the queries ranked in both (NaN below two)."""
    both = pd.concat([a, b], axis=1).dropna().astype(float)
    if len(both) < 2:
        return float("nan")
    x, y = (both.iloc[:, i].rank().to_numpy() for i in (0, 1))
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def arm_settings(queries: pd.DataFrame) -> pd.DataFrame:
    """The swept settings, one row per arm: the columns (design factors aside) that hold one value
    within each arm and differ between arms."""
    rows = queries[queries["arm"].notna()].astype({"arm": str})
    grouped = rows.groupby("arm", sort=True)
    candidates = [c for c in rows.columns if c not in {"arm", "query_id", *FACTORS}]
    settings = [c for c in candidates if (grouped[c].nunique(dropna=False) == 1).all()
                and grouped[c].first().nunique(dropna=False) > 1]
    return grouped[settings].first() if settings else pd.DataFrame(index=arms(queries))


def arms_html(queries: pd.DataFrame, top: int = ARM_TOP) -> str:
    """The sweep section's content; empty unless the screen has two arms or more."""
    names = arms(queries)
    if len(names) < 2:
        return ""
    settings = arm_settings(queries)
    predicted = queries[queries["status"] == "predicted"].astype({"arm": str})["arm"].value_counts()
    arm_rows = [[cell(a), *[cell(settings.at[a, c]) for c in settings.columns],
                 cell(int(predicted.get(a, 0)))] for a in names]
    arm_table = table("arms", ["arm", *settings.columns, "predicted"], arm_rows)
    ranks = arm_ranks(queries)
    shown = top_ranks(ranks, top)
    rank_rows = [[cell(q), *[cell(_integer(r[a])) for a in names]] for q, r in shown.iterrows()]
    rank_table = table("arm-ranks", ["query", *[f"rank in {a}" for a in names]], rank_rows)
    pairs = [[cell(a), cell(b), cell(int((ranks[a].notna() & ranks[b].notna()).sum())),
              cell(spearman(ranks[a], ranks[b])), cell(int(((ranks[a] <= top) & (ranks[b] <= top)).sum()))]
             for i, a in enumerate(names) for b in names[i + 1:]]
    pair_table = table("arm-correlation", ["arm", "other arm", "queries in both", "Spearman \u03c1",
                                           f"shared top {top}"], pairs)
    return (f"{arm_table}<h3>Top {top} queries of each arm, ranked in every arm</h3>{rank_table}"
            f'<p class="note">Rank 1 = the best ranking score within the arm; a dash: not predicted in '
            f"that arm.</p><h3>How much the ranking changes between arms</h3>{pair_table}"
            f'<p class="note">Spearman\'s rank correlation of the queries ranked in both arms (1: the same '
            f"order), and how many queries the two arms' top {top} share.</p>")
