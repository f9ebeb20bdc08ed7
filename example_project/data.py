"""The example's domain logic: plain pandas/numpy, no Dagster.

A synthetic retail dataset made deterministically from a seed (no network), a
cleaning step, features, a least-squares model and its evaluation. Kept apart
from the asset definitions so it can be read (and tested) on its own.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

STORES = [f"store-{i:02d}" for i in range(12)]
PRODUCTS = [f"sku-{i:03d}" for i in range(40)]
ROWS_PER_DAY = 24_000
FEATURES = ["price", "promo", "weekday", "store_idx", "temp_c"]


def day_seed(day: str) -> int:
    return zlib.crc32(day.encode())


def generate_day(day: str) -> pd.DataFrame:
    """One day of sales: the same day always gives the same rows."""
    rng = np.random.default_rng(day_seed(day))
    n = ROWS_PER_DAY
    store_idx = rng.integers(0, len(STORES), n)
    price = rng.uniform(1.0, 50.0, n).round(2)
    promo = rng.random(n) < 0.15
    weekday = pd.Timestamp(day).dayofweek
    temp = rng.normal(12 + 8 * np.sin(pd.Timestamp(day).dayofyear / 58), 4, n).round(1)
    demand = 30 - 0.4 * price + 9 * promo + 1.5 * (weekday >= 5) + 0.3 * store_idx + 0.2 * temp
    units = np.maximum(0, rng.normal(demand, 4)).round().astype("int64")
    units[rng.random(n) < 0.01] = -1  # a few bad scanner reads, removed by cleaning
    price[rng.random(n) < 0.005] = np.nan
    return pd.DataFrame(
        {
            "day": day,
            "store": np.array(STORES)[store_idx],
            "sku": np.array(PRODUCTS)[rng.integers(0, len(PRODUCTS), n)],
            "price": price,
            "promo": promo,
            "temp_c": temp,
            "units": units,
        }
    )


def clean(days: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate days in order, drop bad reads and rows without a price."""
    df = pd.concat([days[k] for k in sorted(days)], ignore_index=True)
    df = df[(df["units"] >= 0) & df["price"].notna()]
    return df.reset_index(drop=True)


def build_features(sales: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "price": sales["price"],
            "promo": sales["promo"].astype("float64"),
            "weekday": pd.to_datetime(sales["day"]).dt.dayofweek.astype("float64"),
            "store_idx": sales["store"].str[-2:].astype("float64"),
            "temp_c": sales["temp_c"],
            "units": sales["units"].astype("float64"),
            "day": sales["day"],
        }
    )
    return out


def split(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on every day but the last two; test on those."""
    days = sorted(features["day"].unique())
    test_days = set(days[-2:])
    test = features["day"].isin(test_days)
    return features[~test], features[test]


def fit(train: pd.DataFrame, n_boot: int = 200) -> dict:
    """Least squares, plus bootstrap standard errors (the expensive part, ~seconds)."""
    x = np.column_stack([np.ones(len(train)), train[FEATURES].to_numpy()])
    y = train["units"].to_numpy()
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    rng = np.random.default_rng(0)
    boots = np.empty((n_boot, x.shape[1]))
    for i in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        boots[i], *_ = np.linalg.lstsq(x[idx], y[idx], rcond=None)
    se = boots.std(axis=0)
    names = ["intercept", *FEATURES]
    return {
        **{n: float(c) for n, c in zip(names, coef, strict=True)},
        "stderr": {n: float(e) for n, e in zip(names, se, strict=True)},
    }


def predict(model: dict, df: pd.DataFrame) -> np.ndarray:
    return model["intercept"] + sum(model[f] * df[f].to_numpy() for f in FEATURES)


def evaluate(model: dict, test: pd.DataFrame) -> dict:
    pred = predict(model, test)
    y = test["units"].to_numpy()
    resid = y - pred
    return {
        "rows": len(test),
        "mae": float(np.abs(resid).mean()),
        "rmse": float(np.sqrt((resid**2).mean())),
        "r2": float(1 - (resid**2).sum() / ((y - y.mean()) ** 2).sum()),
    }


def write_report(folder: Path, model: dict, metrics: dict, test: pd.DataFrame) -> None:
    """A PNG of predicted vs actual units and a markdown summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    sample = test.sample(min(len(test), 3000), random_state=0)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter(sample["units"], predict(model, sample), s=3, alpha=0.4)
    ax.set_xlabel("actual units")
    ax.set_ylabel("predicted units")
    ax.set_title(f"Least-squares demand model (R² = {metrics['r2']:.3f})")
    # Fixed metadata keeps the PNG byte-stable, so an unchanged report is a cache hit.
    fig.savefig(folder / "pred_vs_actual.png", metadata={"Software": None})
    plt.close(fig)
    lines = ["# Demand model report", "", "| metric | value |", "|---|---|"]
    lines += [
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in metrics.items()
    ]
    lines += ["", "## Coefficients", "", "| feature | weight |", "|---|---|"]
    lines += [
        f"| {k} | {v:.4f} ± {model['stderr'][k]:.4f} |" for k, v in model.items() if k != "stderr"
    ]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
