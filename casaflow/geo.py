"""Local east/north metres around a city origin, and back to lon/lat.

An equirectangular tangent-plane approximation: over the ~20 km of a city the error stays under
a few centimetres per hundred metres, far below what a camera can resolve.
"""

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class LocalFrame:
    """A city's local ground frame: x east, y north, in metres from (origin_lon, origin_lat)."""

    origin_lon: float
    origin_lat: float

    def to_lonlat(self, xy_m: np.ndarray) -> np.ndarray:
        """(n,2) east/north metres -> (n,2) lon/lat degrees."""
        xy_m = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        lat = self.origin_lat + np.degrees(xy_m[:, 1] / EARTH_RADIUS_M)
        lon = self.origin_lon + np.degrees(
            xy_m[:, 0] / (EARTH_RADIUS_M * np.cos(np.radians(self.origin_lat)))
        )
        return np.stack([lon, lat], axis=1)

    def to_xy(self, lonlat: np.ndarray) -> np.ndarray:
        """(n,2) lon/lat degrees -> (n,2) east/north metres."""
        lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        y = np.radians(lonlat[:, 1] - self.origin_lat) * EARTH_RADIUS_M
        x = (
            np.radians(lonlat[:, 0] - self.origin_lon)
            * EARTH_RADIUS_M
            * np.cos(np.radians(self.origin_lat))
        )
        return np.stack([x, y], axis=1)
