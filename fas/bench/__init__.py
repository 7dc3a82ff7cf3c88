"""``fas bench``: each distributed path side by side with the plain loop it replaces, in one run, as a table of
rates and ratios (``fas.bench.run``); the GPU section (``fas.bench.gpu``) measures paper-size steps on a GPU."""


def pair(section: str, what: str, plain: float, distributed: float, unit: str, target: str, bound: str,
         digits: int = 1, **extra) -> dict:
    """One row of a pair: both rates rounded alike, the ratio of the rounded rates (what the table shows)."""
    plain, distributed = round(float(plain), digits), round(float(distributed), digits)
    return {"section": section, "what": what, "plain": plain, "distributed": distributed, "unit": unit,
            "ratio": round(distributed / plain, 2) if plain else None, "target": target, "bound": bound, **extra}
