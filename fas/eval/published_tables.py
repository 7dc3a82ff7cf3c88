"""Published figures of the tables ``fas ablation`` reproduces, shown beside ours and labelled as published.

Only figures read from a stated source are recorded; a table or cell not read is absent (``None``), never guessed.
On the machine this project is built on the papers' full texts could not be read (the stored copies end before the
experiments), so what is here is what the project's issue 19 quotes from AG-FAS: the mean HTER over the four OCIM
leave-one-out protocols of Tables IV and VIII. Per-protocol cells and the other tables (AG-FAS III, V, VI, VII;
CLIPC8 Table 8, arXiv 2311.17583; PDLE Table 2, arXiv 2302.09461) are to be added from the papers.

An entry: ``paper``, ``table``, ``source``, ``metric``, ``columns`` (protocol names as ``fas`` writes them, and
``mean``), ``rows`` ({row label as the paper prints it: one value or None per column}).
"""

from __future__ import annotations

AGFAS = "Long, Zhang, Shan: Generalized Face Liveness Detection via De-fake Face Generator (arXiv 2401.09006)"
OCIM_COLUMNS = ["O&C&I->M", "O&M&I->C", "O&C&M->I", "I&C&M->O", "mean"]


def _means(rows: dict[str, float]) -> dict[str, list]:
    """Rows with only the mean over the four protocols known."""
    return {label: [None] * 4 + [mean] for label, mean in rows.items()}


PUBLISHED_TABLES = {
    "agfas_iv": {"paper": AGFAS, "table": "IV", "metric": "HTER %", "columns": OCIM_COLUMNS,
                 "source": "mean over OCIM as quoted in the project's issue 19",
                 "rows": _means({"MemAE": 7.67, "Deep SVDD": 8.37, "DFG†": 6.83, "DFG": 6.82})},
    "agfas_viii": {"paper": AGFAS, "table": "VIII", "metric": "HTER %", "columns": OCIM_COLUMNS,
                   "source": "mean over OCIM as quoted in the project's issue 19",
                   "rows": _means({"SSDG-R": 11.29, "SSAN-R": 9.82, "SA-FAS": 7.83, "SSDG-R*": 11.06,
                                   "SSAN-R*": 16.32, "SA-FAS*": 24.45, "AG-FAS": 6.82})},
}
