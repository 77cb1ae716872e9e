"""The scraped samples of `server_metrics.csv`, read the way every server figure needs them.

Counters are summed over label sets after correcting resets (a value that drops restarted from 0), so
a restart mid-run or several engine processes (DP) still add up. A label set that first appears
mid-run (prometheus_client creates a labelled counter at its first increment) counts from 0.
Histograms give their buckets' increase and Prometheus' `histogram_quantile`. Which names hold which
figure is each server's mapping (analysis/engines.py, analysis/router.py, analysis/epp.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd


def parse_labels(text: str) -> dict[str, str]:
    """`k=v;k=v` (loadgen/monitors/servermetrics.py) → dict; tolerant of quoted values (`k="v"`)."""
    out = {}
    for part in (text or "").split(";"):
        k, sep, v = part.partition("=")
        if sep:
            v = unquote(v)
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            out[k.strip()] = v
    return out


class Samples:
    """One run's scraped samples, indexed for the per-metric questions the analysis asks."""

    def __init__(self, df: pd.DataFrame) -> None:
        if "labels" not in df:
            df = df.assign(labels="")
        self.times = np.sort(df["t"].unique())
        self._by_metric = {str(m): g for m, g in df.groupby("metric", sort=False)}

    @property
    def metrics(self) -> list[str]:
        return list(self._by_metric)

    def has(self, name: str) -> bool:
        return name in self._by_metric

    def first(self, names: Iterable[str]) -> str | None:
        return next((n for n in names if n in self._by_metric), None)

    def gauge(self, name: str, how: str = "sum") -> pd.Series:
        """Label sets combined per scrape (`sum` for counts, `mean` for fractions), indexed by scrape time."""
        g = self._by_metric[name]
        return g.groupby("t")["value"].agg(how).sort_index()

    def _labels(self, name: str) -> list[dict[str, str]]:
        """Each sample's labels of `name` as a dict, in its rows' order (each distinct set parsed once)."""
        text = self._by_metric[name]["labels"].astype(str)
        parsed = {x: parse_labels(x) for x in pd.unique(text)}
        return [parsed[x] for x in text]

    def gauge_where(self, name: str, key: str, value: str) -> pd.Series:
        """`gauge` (summed) over the label sets whose label `key` is `value`, at every scrape of `name`
        (0 where the metric was scraped without such a set)."""
        g = self._by_metric[name]
        mine = np.array([labels.get(key) == value for labels in self._labels(name)], dtype=bool)
        every = pd.Index(np.sort(g["t"].unique()))
        return g[mine].groupby("t")["value"].sum().reindex(every, fill_value=0.0).astype(float)

    def latest_labels(self, name: str, by: str | tuple[str, ...] = "engine") -> pd.Series:
        """Per scrape of `name`, the labels (dicts) of its sample with the largest value, one per value
        of label `by` (one engine of several; a tuple: per combination, as two scraped URLs' engines
        can both be "0"): the current state of an info gauge that stamps its label set with the time
        of its last update, whose older sets stay on the page."""
        g = self._by_metric[name].reset_index(drop=True)
        labels = self._labels(name)
        names = (by,) if isinstance(by, str) else by
        key = pd.Series(["\x1f".join(x.get(n, "") for n in names) for x in labels])
        states: dict[float, list[dict[str, str]]] = {}
        for (t, _), i in g.groupby([g["t"], key])["value"].idxmax().items():
            states.setdefault(float(t), []).append(labels[int(i)])
        times = sorted(states)
        return pd.Series([states[t] for t in times], index=np.array(times, dtype=float), dtype=object)

    def _wide(self, name: str) -> pd.DataFrame:
        g = self._by_metric[name]
        return g.pivot_table(index="t", columns="labels", values="value", aggfunc="last").reindex(self.times)

    def counter(self, name: str) -> pd.Series:
        """Increase since the first scrape, summed over label sets, at every scrape time."""
        return _increase(self._wide(name)).sum(axis=1)

    def counter_by(self, name: str, key: str | tuple[str, ...]) -> dict:
        """`counter`, one per value of label `key` (the other labels summed over); a tuple of keys: one
        per combination of their values, keyed by the tuple of values."""
        inc = _increase(self._wide(name))
        parsed = [parse_labels(str(c)) for c in inc.columns]
        values = (
            [x.get(key, "") for x in parsed]
            if isinstance(key, str)
            else [tuple(x.get(k, "") for k in key) for x in parsed]
        )
        return {v: inc.loc[:, [x == v for x in values]].sum(axis=1) for v in dict.fromkeys(values)}

    def label_values(self, name: str, key: str) -> list[str]:
        """The values label `key` takes on `name`'s samples, each once, in the order first seen."""
        return list(dict.fromkeys(x[key] for x in self._labels(name) if key in x))

    def buckets(self, base: str) -> pd.DataFrame | None:
        """Histogram `base`: increase since the first scrape per bucket bound (columns sorted by bound)."""
        name = base + "_bucket"
        if name not in self._by_metric:
            return None
        inc = _increase(self._wide(name))
        bounds = [parse_labels(c).get("le", "") for c in inc.columns]
        inc.columns = bounds
        out = inc.T.groupby(level=0).sum().T
        return out[sorted(out.columns, key=bound)]


def bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return float("inf")


def _increase(wide: pd.DataFrame) -> pd.DataFrame:
    """Per label set: cumulative increase with counter resets corrected (Prometheus `increase` without
    extrapolation). Before a label set's first sample it is 0 if it appeared after the first scrape."""
    base = wide.ffill().fillna(0.0)
    d = base.diff()
    d = d.where(d >= 0, base)  # a drop is a restart: the new value is what accrued since
    if len(d):
        d.iloc[0] = 0.0  # present at the first scrape: counts from its value there
    return d.cumsum()


def histogram_quantile(bounds: list[float], counts: np.ndarray, q: float) -> float | None:
    """Prometheus `histogram_quantile` on cumulative bucket counts (linear within a bucket; the +Inf
    bucket answers its lower bound). None without observations."""
    if not len(counts) or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    i = int(np.searchsorted(counts, rank, side="left"))
    i = min(i, len(counts) - 1)
    hi = bounds[i]
    lo = bounds[i - 1] if i > 0 else 0.0
    if np.isinf(hi):
        return float(lo)
    below = counts[i - 1] if i > 0 else 0.0
    in_bucket = counts[i] - below
    if in_bucket <= 0:
        return float(hi)
    return float(lo + (hi - lo) * (rank - below) / in_bucket)


def load_server_metrics(run_dir: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """The samples, or None when the file is absent; a broken file is a warning, never fatal."""
    p = run_dir / "server_metrics.csv"
    if not p.exists():
        return None, []
    try:
        df = pd.read_csv(
            p, dtype={"metric": str, "labels": str}, keep_default_na=False, na_values={"value": [""]}
        )
    except (OSError, ValueError, pd.errors.ParserError) as e:
        return None, [f"{p}: unreadable ({' '.join(str(e).split())[:160]}); server series skipped"]
    missing = {"t", "metric", "value"} - set(df.columns)
    if missing:
        return None, [f"{p}: missing column(s) {', '.join(sorted(missing))}; server series skipped"]
    df["t"] = pd.to_numeric(df["t"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.dropna(subset=["t", "value"]), []
