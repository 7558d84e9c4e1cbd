"""Pulmonary nodules: shape, density and how they change between two scans.

A nodule is a sphere deformed by smooth bumps (lobulation), optionally with thin spicules, drawn
with partial-volume edges. Solid nodules replace the lung; ground-glass (non-solid) ones raise its
density to about -600 HU and leave vessels visible; part-solid ones are ground glass around a solid core.
"""

from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import VoxelGrid, float3
from .raster import Tube, block_around, block_points, tube_occupancy

KINDS = ("solid", "part-solid", "non-solid")
MAX_DIAMETER_MM = 40.0  # a nodule growing over several follow-ups stops here (larger is a mass)
MARGINS = ("smooth", "lobulated", "spiculated")
ATTACHMENTS = ("free", "pleural", "vascular")


@dataclass(frozen=True)
class NoduleShape:
    """Bumps (unit directions, relative heights) and spicules (unit directions, lengths / radius)."""

    bump_directions: Tuple[Tuple[float, float, float], ...]
    bump_heights: Tuple[float, ...]
    spicule_directions: Tuple[Tuple[float, float, float], ...] = ()
    spicule_lengths: Tuple[float, ...] = ()

    @classmethod
    def sample(cls, rng: np.random.Generator, margin: str) -> "NoduleShape":
        n_bumps = int(rng.integers(4, 8))
        height = {"smooth": 0.04, "lobulated": 0.22, "spiculated": 0.12}[margin]
        directions = _unit_vectors(rng, n_bumps)
        heights = rng.uniform(0.5, 1.0, n_bumps) * height
        spicules, lengths = np.zeros((0, 3)), np.zeros(0)
        if margin == "spiculated":
            spicules = _unit_vectors(rng, int(rng.integers(8, 16)))
            lengths = rng.uniform(0.5, 1.2, len(spicules))
        return cls(_tuples(directions), tuple(heights.tolist()), _tuples(spicules), tuple(lengths.tolist()))

    def radius_along(self, directions: np.ndarray, radius: float) -> np.ndarray:
        """The surface radius in each unit direction."""
        bumps = np.asarray(self.bump_directions)
        relief = np.exp(6.0 * (directions @ bumps.T - 1.0)) @ np.asarray(self.bump_heights)
        return radius * (1.0 + relief)


@dataclass
class Nodule:
    """One nodule of a synthetic patient, at both time points."""

    nodule_id: int
    kind: str
    margin: str
    attachment: str
    diameter_t0: float
    diameter_t1: float  # 0 when it has resolved
    solid_fraction_t0: float  # core diameter / nodule diameter (part-solid); 1 solid; 0 non-solid
    solid_fraction_t1: float
    solid_hu: float
    ground_glass_hu: float
    label: int
    course: str  # grows / stable / shrinks / resolves
    volume_doubling_days: Optional[float]
    shape: NoduleShape
    wanted_upper_lobe: bool
    center_body: Optional[Tuple[float, float, float]] = None
    upper_lobe: Optional[bool] = None

    def diameter(self, timepoint: str) -> float:
        """At T0, T1, T2, ...: each follow-up interval changes the diameter by the same ratio as the first
        (a doubling time holds), up to MAX_DIAMETER_MM; a resolved nodule stays resolved."""
        k = scan_number(timepoint)
        if k <= 1:
            return self.diameter_t0 if k == 0 else self.diameter_t1
        ratio = self.diameter_t1 / self.diameter_t0
        return min(self.diameter_t0 * ratio ** k, MAX_DIAMETER_MM)

    def solid_fraction(self, timepoint: str) -> float:
        return self.solid_fraction_t0 if timepoint == "T0" else self.solid_fraction_t1

    def kind_at(self, timepoint: str) -> str:
        """The type a reader would record at that scan (ground glass may gain a solid core)."""
        fraction = self.solid_fraction(timepoint)
        return "solid" if fraction >= 1.0 else "non-solid" if fraction <= 0.0 else "part-solid"

    def reach_mm(self, timepoint: str) -> float:
        """How far from its centre the nodule can reach at `timepoint`: bumps, spicules and a 2 mm margin
        for the smoothed edge (what `paint` draws into, and the truth covers)."""
        radius = self.diameter(timepoint) / 2.0
        return radius * (1.0 + max(self.shape.bump_heights) + max(self.shape.spicule_lengths, default=0.0)) + 2.0

    def paint(self, hu: np.ndarray, grid: VoxelGrid, timepoint: str) -> None:
        """Draw the nodule as it is at `timepoint` into a body-frame volume."""
        radius = self.diameter(timepoint) / 2.0
        if radius <= 0 or self.center_body is None:
            return
        center = np.asarray(self.center_body)
        reach = self.reach_mm(timepoint)
        block = block_around(grid, center - reach, center + reach)
        if block is None:
            return
        voxel_mm = float(min(grid.spacing_xyz))
        points = block_points(grid, block)
        outer = self._occupancy(points, center, radius, voxel_mm, with_spicules=True)
        fraction = self.solid_fraction(timepoint)
        region = hu[block]
        if fraction >= 1.0:
            region += outer * (self.solid_hu - region)
        else:
            ground_glass = region + outer * (self.ground_glass_hu - region)
            region[...] = np.maximum(region, ground_glass)  # ground glass leaves vessels visible
            if fraction > 0.0:
                core = self._occupancy(points, center, radius * fraction, voxel_mm, with_spicules=False)
                region += core * (self.solid_hu - region)

    def _occupancy(self, points, center, radius, voxel_mm, with_spicules: bool) -> np.ndarray:
        offset = points - center
        distance = np.linalg.norm(offset, axis=-1)
        directions = offset / np.maximum(distance, 1e-6)[..., None]
        surface = self.shape.radius_along(directions, radius)
        occupancy = np.clip((surface - distance) / voxel_mm + 0.5, 0.0, 1.0)
        if with_spicules:
            for direction, length in zip(self.shape.spicule_directions, self.shape.spicule_lengths):
                d = np.asarray(direction)
                spicule = Tube(tuple(center + d * radius * 0.8), tuple(center + d * radius * (1.0 + length)), 0.9, 0.25)
                occupancy = np.maximum(occupancy, tube_occupancy(points, spicule, voxel_mm))
        return occupancy

    def moved_to(self, center_body: np.ndarray, upper_lobe: bool) -> "Nodule":
        return replace(self, center_body=float3(float(c) for c in center_body), upper_lobe=bool(upper_lobe))


def scan_number(timepoint: str) -> int:
    """k of the timepoint Tk."""
    return int(timepoint[1:])


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _tuples(array: np.ndarray) -> Tuple[Tuple[float, float, float], ...]:
    return tuple(float3(float(c) for c in row) for row in array)


def place_nodules(
    nodules: List[Nodule],
    rng: np.random.Generator,
    grid: VoxelGrid,
    lung_depth_mm: np.ndarray,
    upper_lobe_of,
    vessels: List[Tube],
    in_view: Callable[[np.ndarray], np.ndarray],
    timepoints: Sequence[str] = ("T0", "T1"),
) -> List[Nodule]:
    """Positions inside the lungs (and the scanned region) as each nodule's attachment asks.

    `lung_depth_mm` is each body-grid voxel's distance to the lung's edge (0 outside the lung).
    Free nodules sit deeper than their radius + 3 mm; pleural ones touch the pleura (depth about 0.8
    radius); vascular ones touch a vessel of 1-4 mm radius. The lobe asked for is honoured when the
    region offers room there; the lobe actually used is recorded. `in_view` tells which body-frame
    points every scan sees with room to spare.
    """
    index = np.argwhere(lung_depth_mm > 0)
    if len(index) > 300_000:  # plenty of candidate positions, at a fraction of the cost
        index = index[np.sort(rng.choice(len(index), 300_000, replace=False))]
    points = grid.index_zyx_to_lps(index)
    inside_region = in_view(points)
    index, points = index[inside_region], points[inside_region]
    depth = lung_depth_mm[tuple(index.T)]
    upper = upper_lobe_of(points)
    placed: List[Nodule] = []
    for nodule in nodules:
        radius = nodule.diameter_t0 / 2.0 if nodule.diameter_t0 > 0 else 2.0
        grown = max(nodule.diameter(t) for t in timepoints) / 2.0
        taken = np.zeros(len(points), dtype=bool)
        for other in placed:
            gap = np.linalg.norm(points - np.asarray(other.center_body), axis=1)
            taken |= gap < grown + max(other.diameter(t) for t in timepoints) / 2.0 + 5.0
        free = (depth > grown + 3.0) & ~taken
        if nodule.attachment == "pleural":
            candidates = (np.abs(depth - 0.8 * radius) < 0.75) & (depth < grown) & ~taken
        elif nodule.attachment == "vascular":
            candidates = _touching_vessels(points, free, vessels, radius, rng)
        else:
            candidates = free
        if not candidates.any():  # no room for that attachment here: a free nodule instead
            nodule, candidates = replace(nodule, attachment="free"), free
        in_lobe = candidates & (upper == nodule.wanted_upper_lobe)
        pool = np.flatnonzero(in_lobe if in_lobe.any() else candidates)
        if len(pool) == 0:
            raise RuntimeError("no room for the nodule in the scanned lung region")
        choice = int(rng.choice(pool))
        placed.append(nodule.moved_to(points[choice], bool(upper[choice])))
    return placed


def _touching_vessels(
    points: np.ndarray, allowed: np.ndarray, vessels: List[Tube], radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Allowed points (a random subset of at most 20000) whose distance to a 1-4 mm vessel is the radius."""
    touching = np.zeros(len(points), dtype=bool)
    allowed_index = np.flatnonzero(allowed)
    if len(allowed_index) == 0:
        return touching
    sample = rng.choice(allowed_index, size=min(20000, len(allowed_index)), replace=False)
    subset = points[sample]
    low, high = subset.min(axis=0) - 10, subset.max(axis=0) + 10
    for tube in vessels:
        ends = np.array([tube.start, tube.end])
        if not 1.0 <= tube.radius_start <= 4.0 or np.any(ends.max(axis=0) < low) or np.any(ends.min(axis=0) > high):
            continue
        shell = Tube(tube.start, tube.end, tube.radius_start + radius, tube.radius_end + radius)
        occupancy = tube_occupancy(subset, shell, 1.0)
        touching[sample[(occupancy > 0.2) & (occupancy < 0.8)]] = True
    return touching
