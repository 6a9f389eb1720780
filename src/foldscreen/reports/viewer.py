"""The top hits' interactive 3D views, from 3Dmol.js inlined in the report with the hits' mmCIF.

`./install.sh` vendors the library: it packs a pinned `3dmol` release from the npm registry and
copies its minified build and licence into this package's templates folder (git-ignored). The
report inlines both, so it opens offline and fetches nothing. Without them the report says so in
place of each view.
"""

from __future__ import annotations

import json
from html import escape
from importlib.resources import files

VIEWER_JS, VIEWER_LICENSE = "3Dmol-min.js", "3Dmol-LICENSE.txt"
VIEWED_HITS = 5  # the top hits with a 3D view (their mmCIF text is in the page)
MODEL_BYTES = 4_000_000  # a larger structure is not embedded
MISSING = ('<p class="note viewer-missing">No 3D view: the report\'s viewer library (3Dmol.js) is not '
           "installed; run <code>./install.sh</code> (or <code>./install.sh --viewer</code>) and write "
           "the report again.</p>")
PLDDT_LEGEND = " ".join(f'<span class="plddt-key {band}"></span> {label}' for band, label in [
    ("very-high", "&gt; 90"), ("confident", "70-90"), ("low", "50-70"), ("very-low", "&lt; 50")])


def viewer_library() -> str | None:
    """The viewer's script (its licence first, as a comment), or None when it is not installed."""
    assets = files("foldscreen.reports") / "templates"
    library, licence = assets / VIEWER_JS, assets / VIEWER_LICENSE
    if not library.is_file():
        return None
    notice = licence.read_text().replace("*/", "* /") if licence.is_file() else ""
    return f"/*! 3Dmol.js, bundled by foldscreen's install.sh.\n{notice}*/\n{library.read_text()}"


def structure_view(key: str, query_id: str, model: str | None, available: bool) -> str:
    """One hit's 3D view: its mmCIF as JSON text in the page, a viewer box and its controls."""
    if not available:
        return MISSING
    if model is None:
        return '<p class="note">The structure file could not be read: no 3D view.</p>'
    data = json.dumps(model).replace("</", "<\\/")  # never closes the script element
    return (f'<figure class="structure"><div class="viewer" data-model="{escape(key)}" '
            f'aria-label="3D view of {escape(query_id)}"></div>'
            f'<script type="application/json" id="{escape(key)}">{data}</script>'
            f'<figcaption>Colour by <button type="button" data-scheme="plddt" aria-pressed="true">pLDDT'
            f'</button> <button type="button" data-scheme="chain" aria-pressed="false">chain</button>; '
            f"polymers as cartoon, ligands as ball and stick; drag to turn, scroll to zoom, hover an "
            f"atom for its chain, residue and pLDDT.<br>pLDDT: {PLDDT_LEGEND}</figcaption></figure>")
