"""Customer segments for fairness monitoring: a region from the grid, an age band drawn.

The simulator places customers uniformly on a 100 x 100 grid (`mlsd.data.profiles`); the
region is the quadrant of that grid a customer lives in. The age band is drawn with the
simulator's seed from a stream of its own, after every other draw is fixed, so adding the
segments changes no value of any other column. Neither segment takes part in generating
transactions or frauds: a model that treats segments differently learned it from nothing
but noise, which is what a fairness monitor must then not report as a gap.

Both are small closed sets (`REGIONS`, `AGE_BANDS`): safe as metric labels.

>>> import numpy as np
>>> regions(np.array([[10.0, 90.0], [75.0, 20.0]])).tolist()
['north-west', 'south-east']
>>> bands = age_bands(10_000, np.random.default_rng(0))
>>> sorted(set(bands.tolist())) == sorted(AGE_BANDS)
True
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.data import schema
from mlsd.data.profiles import GRID_SIZE

REGIONS: Final = ("north-west", "north-east", "south-west", "south-east")
AGE_BANDS: Final = ("18-29", "30-44", "45-64", "65+")
#: Shares of the age bands among adult card holders (round figures, roughly the EU's).
AGE_BAND_SHARES: Final = (0.20, 0.26, 0.34, 0.20)
SEGMENTS: Final = {schema.REGION: REGIONS, schema.AGE_BAND: AGE_BANDS}


def regions(customer_xy: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
    """The grid quadrant of each (x, y): x grows east, y grows north."""
    half = GRID_SIZE / 2.0
    east = customer_xy[:, 0] >= half
    south = customer_xy[:, 1] < half
    out: npt.NDArray[np.str_] = np.asarray(REGIONS)[east.astype(np.int64) + 2 * south]
    return out


def age_bands(n: int, rng: np.random.Generator) -> npt.NDArray[np.str_]:
    """`n` age bands drawn at `AGE_BAND_SHARES`."""
    return np.asarray(AGE_BANDS)[rng.choice(len(AGE_BANDS), size=n, p=AGE_BAND_SHARES)]


def with_segments(customers: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The customer table with REGION and AGE_BAND appended (other columns untouched)."""
    xy = customers[["x_customer_id", "y_customer_id"]].to_numpy(dtype=np.float64)
    out = customers.copy()
    out[schema.REGION] = regions(xy)
    out[schema.AGE_BAND] = age_bands(len(customers), rng)
    return out
