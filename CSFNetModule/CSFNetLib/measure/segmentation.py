"""One nodule's 3-D mask from a point on it: the whole nodule (solid and ground glass) and its solid part.

Method (every length in mm, every level in HU, so any spacing, orientation or slice thickness; the
full account, with its figures, is docs/measurement.md):
1. The scan around the point is resampled (linear) onto an analysis grid of 0.5 mm cubes aligned with
   the patient's axes, and lightly smoothed (sigma 0.5 mm) against noise.
2. Levels: the lung's (the median of what is below -600 HU around the point) and the nodule's core (the
   median within 1 mm of the seed: the point when it is on tissue, else the nearest tissue within 3 mm).
   Only lung there means no nodule; a core above 200 HU is bone or contrast.
3. Rays from the seed in 1,800 directions: each ray's edge is where its profile falls below the
   half-way level between the nodule and the lung (partial volume puts the true edge there). A solid
   core with a ground-glass plateau around it, or a rim too thin for a plateau (its edge falls more
   slowly than blur alone allows), makes the nodule part-solid, and the whole nodule's edge is then
   the half-way level between that ground glass and the lung. So does ground glass whose peak stands
   CORE_RISE_HU above its plateau (a core of 2-3 mm that blur holds under SOLID_HU). The rays are cast
   again from the first mask's centroid, the core's level read again there.
4. Rays whose edge lies beyond 1.5 times the median edge run into a vessel or the chest wall: they take
   the median edge of their 48 nearest free rays, and a 1 mm opening cuts vessel stubs. A nodule with
   fewer than a quarter of its rays free is refused, as is a thin tube running on both ways (a vessel).
5. The mask is every voxel inside the rays' edges whose level is above the edge level, connected to the
   seed; the solid part is what of it is at least -300 HU (SOLID_HU; for a core that blur holds under
   it, half-way between its peak and the ground glass), without vessels crossing it. The volume counts
   each voxel's share of nodule tissue at and just beyond the edge (partial volume), the ground glass's
   level read inside the mask clear of its edge and of the solid part.

Limits: nodules are assumed star-shaped around the seed (cavities and very irregular shapes are
under-segmented), at most 40 mm across; a nodule cut by the scan's edge is flagged, not refused.
"""

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..geometry import PointsLike, VoxelGrid, as_lps_point
from ..preprocessing import sample_in_scan
from .size import NoduleSize, nodule_size

VOXEL_MM = 0.5  # the analysis grid's voxel
REACH_MM = 24.0  # the analysis cube's half-size: a 40 mm nodule and the lung around it
SEARCH_MM = 3.0  # how far from the given point the nodule's core is looked for
SOLID_HU = -300.0  # the solid component: Lung-RADS / Fleischner's soft-tissue attenuation starts about here
GROUND_GLASS_RISE_HU = 100.0  # a seed must be this far above the lung to be a nodule at all
BONE_HU = 200.0  # a seed brighter than this is bone or contrast, not a nodule
#: Under SMALL_MM, partial volume lowers a solid nodule's peak below SOLID_HU: there a peak of at least
#: SMALL_SOLID_HU is solid (a small ground-glass nodule, -750 to -450 HU, peaks lower), and its tissue is taken
#: to be SOLID_TISSUE_HU where the peak is lower, for the partial-volume volume.
SMALL_MM, SMALL_SOLID_HU, SOLID_TISSUE_HU = 6.0, -550.0, 0.0
#: A solid core whose peak stays under FULL_PEAK_HU is small enough for partial volume to lower it: there a
#: ground-glass rim too thin for a plateau shows as an edge that falls slowly (`_thin_rim`). A blurred solid
#: edge falls from half its height to a fifth within 0.84 sigma of the blur, under 0.9 mm at clinical blur
#: (sigma <= 1 mm with the 0.5 mm smoothing); a rim holds it up longer than RIM_GAP_MM.
FULL_PEAK_HU, RIM_GAP_MM = -100.0, 1.0
CORE_RISE_HU = 150.0  # a peak this far above the ground glass around it is a solid core, however small
VESSEL_RADIUS_MM = 2.5  # a tube up to this thick, running on both ways, is a vessel (nodules under 5 mm on
                        # a vessel's axis are taken for the vessel: say so in the docs)
_RAY_STEP_MM = 0.25
_ESCAPE = 1.5  # a ray is blocked (vessel, wall) when its edge lies beyond this times the median edge
_NEIGHBOURS = 48
_OPENING_MM = 1.0  # attachments thinner than twice this are cut off (vessel stubs)
_PARTIAL_VOLUME_MM = 1.5  # how far beyond the edge, towards the lung, partial volume is counted


class NoNoduleError(ValueError):
    """There is no nodule at the point given (lung, air, a vessel, bone, outside the scan)."""


class OnlyLungError(NoNoduleError):
    """Nothing but lung around the point: at a follow-up of a nodule measured before, it has resolved (or the
    point misses it)."""


@dataclass(frozen=True)
class NoduleSegmentation:
    """A nodule's masks on its analysis grid (identity direction, `voxel_mm` cubes, scan LPS)."""

    grid: VoxelGrid
    whole: np.ndarray  # bool (z, y, x): the whole nodule, ground glass included
    solid: np.ndarray  # bool (z, y, x): its solid component
    centre_lps: np.ndarray  # the mask's centroid
    levels_hu: Tuple[float, float, float]  # lung, ground glass (nan when none), core
    volume_mm3: float  # partial-volume corrected: the nodule's share of each voxel at and around its edge
    flags: Tuple[str, ...] = field(default=())  # what a reader should check: cut by the scan's edge, ...

    @property
    def voxel_mm(self) -> float:
        return self.grid.spacing_xyz[0]


@dataclass(frozen=True)
class NoduleMeasurement:
    segmentation: NoduleSegmentation
    size: NoduleSize


def measure_nodule(image: sitk.Image, point_lps: PointsLike) -> NoduleMeasurement:
    """Segment the nodule at `point_lps` (LPS mm, on or near the nodule) in a CT `image` (HU) and measure it."""
    segmentation = segment_nodule(image, point_lps)
    size = nodule_size(segmentation.whole, segmentation.solid, segmentation.voxel_mm)
    volume = segmentation.volume_mm3
    solid_volume = volume if size.type == "solid" else min(size.solid_volume_mm3, volume)
    return NoduleMeasurement(segmentation, replace(size, volume_mm3=volume, solid_volume_mm3=solid_volume))


def segment_nodule(image: sitk.Image, point_lps: PointsLike) -> NoduleSegmentation:
    """The nodule at `point_lps`; NoNoduleError when there is none there."""
    point = as_lps_point(point_lps, "nodule point")
    n = int(round(2 * REACH_MM / VOXEL_MM)) + 1
    grid = VoxelGrid.centred(point, (n, n, n), (VOXEL_MM,) * 3)
    hu, in_scan = sample_in_scan(image, grid)
    if not in_scan[n // 2, n // 2, n // 2]:
        raise NoNoduleError(f"the point {_mm(point)} lies outside the scan")
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(grid.image(hu), 0.5))

    lung_voxels = smooth[in_scan & (smooth < -600.0)]
    if lung_voxels.size < 0.05 * smooth.size:
        raise NoNoduleError(f"the point {_mm(point)} is not in the lung (little lung around it)")
    lung = float(np.median(lung_voxels))
    seed = _seed(smooth, grid.lps_to_index_zyx(point), lung)
    if seed is None:
        raise OnlyLungError(f"no nodule at {_mm(point)}: only lung within {SEARCH_MM:g} mm")
    core = _core_level(smooth, seed)
    if core > BONE_HU:
        raise NoNoduleError(f"no nodule at {_mm(point)}: {core:.0f} HU is bone or contrast, not a nodule")

    for _pass in range(2):  # the second pass casts the rays from the first mask's centroid
        whole, edge_hu, ground_glass, free_share, shell, local_lung, tube = _star_mask(smooth, seed, lung, core)
        if free_share < 0.25:
            raise NoNoduleError(f"no separable nodule at {_mm(point)}: most of what is there is vessel or wall")
        if tube:
            raise NoNoduleError(f"no nodule at {_mm(point)}: a vessel (tissue runs on both ways, "
                                f"at most {2 * VESSEL_RADIUS_MM:g} mm across)")
        seed = np.argwhere(whole).mean(axis=0)
        # the core's level read again at the nodule's centre: a click a millimetre off a small nodule, or off
        # a small solid core, lands on its edge
        core = max(core, _core_level(smooth, seed))
    small = _equivalent_diameter(whole) < SMALL_MM
    solid_core = core >= SOLID_HU or (core >= SMALL_SOLID_HU and small)
    solid = _solid_part(whole, smooth, seed, solid_core, ground_glass, _solid_level(core, ground_glass))
    if np.isnan(ground_glass):  # the level of tissue that fills a voxel whole (a small nodule's peak does not)
        inner = max(core, SOLID_TISSUE_HU) if solid_core else core
    elif solid_core and core < SOLID_HU:  # a small solid nodule whose peak blur holds under SOLID_HU
        inner = ground_glass
    else:
        inner = _ground_glass_inside(whole, solid, smooth, ground_glass)
    tail = shell & ~whole & (smooth < edge_hu)  # the blurred edge's outer half; not a vessel or the wall beyond it
    share = np.clip((smooth[whole | tail] - local_lung) / max(inner - local_lung, 1.0), 0.0, 1.0)
    volume = float(share.sum()) * VOXEL_MM ** 3
    flags = []
    beyond_scan = ~_eroded(in_scan, 2 * VOXEL_MM)  # the scan's last millimetre and what lies past it
    if np.any(whole & beyond_scan) or np.any(_touches_border(whole)):
        flags.append("cut by the scan's edge: volume and diameters are too small")
    if free_share < 0.9:
        flags.append(f"attached ({100 * (1 - free_share):.0f} % of its surface to a vessel or the wall)")
    return NoduleSegmentation(grid, whole, solid, grid.index_zyx_to_lps(seed), (lung, ground_glass, core),
                              volume, tuple(flags))  # the seed is the mask's centroid after the last pass


def _mm(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{c:.1f}" for c in point) + ") mm LPS"


def _ball(centre_zyx: np.ndarray, radius_mm: float, shape) -> Tuple[np.ndarray, ...]:
    """Index arrays of the voxels within `radius_mm` of a (fractional) voxel position."""
    r = int(np.ceil(radius_mm / VOXEL_MM))
    offsets = np.argwhere(np.ones((2 * r + 1,) * 3, dtype=bool)) - r
    offsets = offsets[np.linalg.norm(offsets, axis=1) * VOXEL_MM <= radius_mm]
    index = np.clip(np.round(centre_zyx).astype(int) + offsets, 0, np.asarray(shape) - 1)
    return tuple(index.T)


def _core_level(smooth: np.ndarray, seed: np.ndarray) -> float:
    """The nodule's level at `seed`: the median within 1 mm (a level, not a noisy voxel)."""
    return float(np.median(smooth[_ball(seed, 1.0, smooth.shape)]))


def _seed(smooth: np.ndarray, point_zyx: np.ndarray, lung: float) -> Optional[np.ndarray]:
    """Where the rays start: the point when it is on tissue, else the nearest tissue voxel within SEARCH_MM
    (a click just off a small nodule); None when there is only lung."""
    tissue = lung + GROUND_GLASS_RISE_HU
    if _sample(smooth, point_zyx[None])[0] >= tissue:
        return point_zyx
    near = np.stack(_ball(point_zyx, SEARCH_MM, smooth.shape), axis=1)
    near = near[smooth[tuple(near.T)] >= tissue]
    if len(near) == 0:
        return None
    return near[np.argmin(np.linalg.norm(near - point_zyx, axis=1))].astype(float)


def _equivalent_diameter(mask: np.ndarray) -> float:
    """The diameter (mm) of the sphere as large as `mask`."""
    return float((6.0 * mask.sum() * VOXEL_MM ** 3 / np.pi) ** (1.0 / 3.0))


def _star_mask(smooth: np.ndarray, seed: np.ndarray, lung: float, core: float):
    """The whole nodule as seen by rays from `seed`, the edge and ground-glass levels, the free rays' share."""
    directions = _directions()
    radii = np.arange(0.0, REACH_MM - 1.0, _RAY_STEP_MM)
    profiles = _sample(smooth, seed[None, None, :] + directions[:, None, :] * radii[None, :, None] / VOXEL_MM)
    edge_hu, ground_glass = _edge_level(profiles, radii, lung, core, directions)
    edges, free = _unblocked(_first_below(profiles, edge_hu, radii), directions)
    whole = _opened(_inside_rays(seed, edges, directions, smooth.shape) & (smooth >= edge_hu), _OPENING_MM)
    shell = _inside_rays(seed, np.where(free, edges + _PARTIAL_VOLUME_MM, edges), directions, smooth.shape)
    around = _windows(profiles[free], edges[free] + 2.0, 2.0)  # the lung just around the nodule
    local_lung = float(np.nanmedian(around)) if np.isfinite(around).any() else lung
    return (_connected_to(whole, seed), edge_hu, ground_glass, float(free.mean()), shell, min(local_lung, edge_hu),
            _is_tube(edges, free, directions))


def _is_tube(edges: np.ndarray, free: np.ndarray, directions: np.ndarray) -> bool:
    """A vessel rather than a nodule: thin (free edges within VESSEL_RADIUS_MM) with the blocked rays in
    opposite pairs (tissue runs on both ways). A nodule on a vessel is thicker than the vessel, or blocked one way."""
    blocked = ~free
    if blocked.mean() < 0.05 or np.median(edges[free]) > VESSEL_RADIUS_MM:
        return False
    opposite = np.argmax(-directions[blocked] @ directions.T, axis=1)
    return bool(np.mean(blocked[opposite]) >= 0.7)


def _ground_glass_inside(whole: np.ndarray, solid: np.ndarray, smooth: np.ndarray, estimate: float) -> float:
    """The ground glass's level read inside the mask, a millimetre clear of its edge and of the solid part
    (the profile's `estimate` where too little of it is clear of both)."""
    clear = _eroded(whole, 1.0) & ~_dilated(solid, 1.0)
    return float(np.median(smooth[clear])) if clear.sum() * VOXEL_MM ** 3 >= 4.0 else estimate


def _solid_level(core: float, ground_glass: float) -> float:
    """Where the solid component ends: SOLID_HU, or half-way between a small core's peak and the ground
    glass around it when partial volume holds the peak under solid attenuation (a core of 2 to 4 mm)."""
    if np.isnan(ground_glass) or core - ground_glass < CORE_RISE_HU:
        return SOLID_HU
    return min(SOLID_HU, (core + ground_glass) / 2.0)


def _solid_part(whole: np.ndarray, smooth: np.ndarray, seed: np.ndarray, solid_core: bool,
                ground_glass: float, level: float) -> np.ndarray:
    """The solid component: what of the nodule is at least `level`, without the vessels that cross it.

    A solid nodule is its own solid component. In a part-solid one, the part connected to the solid
    core (its vessel stubs opened off). In ground glass, the solid islands that stay inside the
    nodule: a vessel enters and leaves it, a solid core does not.
    """
    if solid_core and np.isnan(ground_glass):
        return whole
    candidates = whole & (smooth >= level)
    if solid_core:
        return _connected_to(_opened(candidates, _OPENING_MM), seed)
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(candidates.astype(np.uint8))))
    rim = whole & ~_eroded(whole, 1.0)
    crossing = np.unique(labels[rim & (labels > 0)])
    return (labels > 0) & ~np.isin(labels, crossing)


def _eroded(mask: np.ndarray, radius_mm: float) -> np.ndarray:
    return _morphology(mask, radius_mm, sitk.BinaryErode)


def _dilated(mask: np.ndarray, radius_mm: float) -> np.ndarray:
    return _morphology(mask, radius_mm, sitk.BinaryDilate)


def _opened(mask: np.ndarray, radius_mm: float) -> np.ndarray:
    """`mask` without what a ball of `radius_mm` cannot reach inside it: the stubs of vessels and thin strands."""
    result = _morphology(mask, radius_mm, sitk.BinaryMorphologicalOpening)
    return result if result.any() else mask  # smaller than the ball: nothing to open


def _morphology(mask: np.ndarray, radius_mm: float, operation) -> np.ndarray:
    """A binary ball `operation` applied to the part of `mask` around its voxels (the whole cube costs 10x more)."""
    radius = int(round(radius_mm / VOXEL_MM))
    index = np.argwhere(mask)
    if len(index) == 0:
        return mask.copy()
    low = np.maximum(index.min(axis=0) - radius - 1, 0)
    high = np.minimum(index.max(axis=0) + radius + 2, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    result = np.zeros_like(mask)
    part = operation(sitk.GetImageFromArray(mask[box].astype(np.uint8)), (radius,) * 3)
    result[box] = sitk.GetArrayFromImage(part).astype(bool)
    return result


@lru_cache(maxsize=2)
def _directions(count: int = 1800) -> np.ndarray:
    """Nearly uniform unit vectors (z, y, x) on the sphere (a Fibonacci lattice)."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    azimuth = np.pi * (1.0 + 5.0 ** 0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([z, r * np.sin(azimuth), r * np.cos(azimuth)], axis=1)


def _sample(volume: np.ndarray, points_zyx: np.ndarray) -> np.ndarray:
    """Trilinear samples of `volume` at fractional (z, y, x) positions (clamped to the volume)."""
    high = np.asarray(volume.shape) - 1
    p = np.clip(points_zyx, 0, high - 1e-6)
    low = np.floor(p).astype(int)
    t = p - low
    out = np.zeros(p.shape[:-1], dtype=np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                weight = ((t[..., 0] if dz else 1 - t[..., 0]) * (t[..., 1] if dy else 1 - t[..., 1])
                          * (t[..., 2] if dx else 1 - t[..., 2]))
                out += weight * volume[low[..., 0] + dz, low[..., 1] + dy, low[..., 2] + dx]
    return out


def _first_below(profiles: np.ndarray, level: float, radii: np.ndarray) -> np.ndarray:
    """Each ray's edge: the interpolated distance where it first falls below `level` (inf when it never does)."""
    below = profiles < level
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    edges = np.full(len(profiles), np.inf)
    ok = first > 0
    rows = np.flatnonzero(ok)
    before, after = profiles[rows, first[ok] - 1], profiles[rows, first[ok]]
    fraction = (before - level) / np.maximum(before - after, 1e-6)
    edges[ok] = radii[first[ok] - 1] + fraction * (radii[1] - radii[0])
    edges[first == 0] = 0.0
    return edges


def _edge_level(profiles: np.ndarray, radii: np.ndarray, lung: float, core: float,
                directions: np.ndarray) -> Tuple[float, float]:
    """The level at the whole nodule's edge, and the ground-glass level (nan when the nodule has none).

    A solid core whose rays, just past its edge, mostly stay well above the lung is part-solid (as is
    a small core in a rim too thin for that, `_thin_rim`): its edge is half-way between that ground
    glass and the lung. Ground glass is read on its plateau, not at its peak.
    """
    half = (core + lung) / 2.0
    across = _across_slices(profiles, directions)
    if core < SOLID_HU:  # ground glass; where its plateau lies well below its peak, around a tiny solid core
        fifth_edges = _first_below(across, lung + 0.2 * (core - lung), radii)
        plateau = _shoulder(across, np.full(len(across), 1.0), fifth_edges)  # past the core's 1 mm ball
        edges = _first_below(across, (plateau + lung) / 2.0, radii)
        core_in_rim = (core - plateau >= CORE_RISE_HU  # not the foot of a small solid nodule's blurred peak:
                       and 2.0 * float(np.median(edges)) >= SMALL_MM
                       and _median_gap(_first_below(across, (core + plateau) / 2.0, radii), edges) > RIM_GAP_MM)
        ground_glass = plateau if core_in_rim else core
        return (ground_glass + lung) / 2.0, ground_glass
    core_edges = _first_below(profiles, half, radii)
    finite = np.isfinite(core_edges)
    windows = _windows(profiles[finite], core_edges[finite] + 1.0, 1.5)
    kept = np.isfinite(windows).any(axis=1)
    values = np.nanmedian(windows[kept], axis=1) if kept.any() else np.zeros(0)
    rising = values[values > lung + 1.5 * GROUND_GLASS_RISE_HU]
    if len(values) and len(rising) > 0.5 * len(values):
        outer_edges = _first_below(across, (float(np.median(rising)) + lung) / 2.0, radii)
        ground_glass = _shoulder(across, _first_below(across, half, radii), outer_edges)
        return (ground_glass + lung) / 2.0, ground_glass
    if core < FULL_PEAK_HU:
        rim = _thin_rim(across, radii, lung, core)
        if rim is not None:
            return rim
    return half, float("nan")


def _thin_rim(across: np.ndarray, radii: np.ndarray, lung: float, core: float):
    """(edge level, ground-glass level) of a ground-glass rim too thin for a plateau, or None.

    Read on the rays across the slices (`across`: the thinnest blur): a median fall from half the
    core's height above the lung to a fifth over more than RIM_GAP_MM is a rim, not a blurred solid
    edge. The ground glass is where the rays' median profile falls slowest between those two crossings.
    """
    half_edges = _first_below(across, (core + lung) / 2.0, radii)
    fifth_edges = _first_below(across, lung + 0.2 * (core - lung), radii)
    if not _median_gap(half_edges, fifth_edges) > RIM_GAP_MM:
        return None
    ground_glass = _shoulder(across, half_edges, fifth_edges)
    return (ground_glass + lung) / 2.0, ground_glass


def _median_gap(inner_edges: np.ndarray, outer_edges: np.ndarray) -> float:
    """The rays' median distance from their inner to their outer crossing (nan when most lack one)."""
    with np.errstate(invalid="ignore"):  # rays lacking both crossings: inf - inf
        gaps = outer_edges - inner_edges
    finite = np.isfinite(gaps)
    return float(np.median(gaps[finite])) if finite.mean() >= 0.5 else float("nan")


def _across_slices(profiles: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The rays within about 17 degrees of the slice plane: the least blurred (slices are thicker than pixels)."""
    return profiles[np.abs(directions[:, 0]) < 0.3]


def _shoulder(profiles: np.ndarray, inner_edges: np.ndarray, outer_edges: np.ndarray) -> float:
    """The ground-glass level: where the rays' median profile, from the core's edge to the nodule's, falls
    slowest (its flattest third; a thin rim's blur lowers a plain median of it)."""
    finite = np.isfinite(inner_edges) & np.isfinite(outer_edges)
    length = max(float(np.median(outer_edges[finite] - inner_edges[finite])), 2 * _RAY_STEP_MM)
    outward = np.nanmedian(_windows(profiles[finite], inner_edges[finite], length), axis=0)
    slope = np.abs(np.diff(outward))
    middles = (outward[1:] + outward[:-1]) / 2.0
    return float(np.median(middles[slope <= np.quantile(slope, 1.0 / 3.0)]))


def _windows(profiles: np.ndarray, starts_mm: np.ndarray, length_mm: float) -> np.ndarray:
    """Each ray's samples from its `starts_mm` on, over `length_mm`; nan where the window runs off the ray."""
    starts = (starts_mm / _RAY_STEP_MM).astype(int)[:, None] + np.arange(int(length_mm / _RAY_STEP_MM))[None, :]
    inside = starts < profiles.shape[1]
    values = np.take_along_axis(profiles, np.minimum(starts, profiles.shape[1] - 1), axis=1)
    return np.where(inside, values, np.nan)


def _unblocked(edges: np.ndarray, directions: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Edges with the blocked rays (into a vessel or the wall) given their free neighbours' median; which are free."""
    finite = edges[np.isfinite(edges)]
    if len(finite) == 0:
        return edges, np.zeros(len(edges), dtype=bool)
    free = edges <= _ESCAPE * max(float(np.median(finite)), 1.0)
    if free.sum() < _NEIGHBOURS:
        return edges, free
    free_directions = directions[free]
    nearest = np.argsort(-(directions[~free] @ free_directions.T), axis=1)[:, :_NEIGHBOURS]
    result = edges.copy()
    result[~free] = np.median(edges[free][nearest], axis=1)
    return result, free


def _inside_rays(seed: np.ndarray, edges: np.ndarray, directions: np.ndarray, shape) -> np.ndarray:
    """Voxels whose distance from the seed is within the edge of the ray nearest their direction."""
    reach = float(edges.max()) + VOXEL_MM
    low = np.maximum(np.floor(seed - reach / VOXEL_MM).astype(int), 0)
    high = np.minimum(np.ceil(seed + reach / VOXEL_MM).astype(int) + 1, np.asarray(shape))
    z, y, x = np.meshgrid(*[(np.arange(lo, hi) - c) * VOXEL_MM for lo, hi, c in zip(low, high, seed)], indexing="ij")
    distance = np.sqrt(z * z + y * y + x * x)
    inside = distance <= edges[_nearest_ray(z, y, x, distance, len(directions))]
    mask = np.zeros(shape, dtype=bool)
    mask[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = inside
    return mask


_POLAR, _AZIMUTHAL = 90, 180  # the direction lookup table's cells


@lru_cache(maxsize=2)
def _ray_table(count: int) -> np.ndarray:
    """For each (polar, azimuth) cell of the sphere, the index of the nearest of `_directions(count)`."""
    polar = (np.arange(_POLAR) + 0.5) * np.pi / _POLAR
    azimuth = (np.arange(_AZIMUTHAL) + 0.5) * 2 * np.pi / _AZIMUTHAL - np.pi
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    cells = np.stack([np.cos(p), np.sin(p) * np.sin(a), np.sin(p) * np.cos(a)], axis=-1).reshape(-1, 3)
    return np.argmax(cells @ _directions(count).T, axis=1).reshape(_POLAR, _AZIMUTHAL)


def _nearest_ray(z: np.ndarray, y: np.ndarray, x: np.ndarray, distance: np.ndarray, count: int) -> np.ndarray:
    """The index of the ray nearest each offset's direction (z, y, x in mm), by table lookup."""
    polar = np.arccos(np.clip(z / np.maximum(distance, 1e-9), -1.0, 1.0))
    azimuth = np.arctan2(y, x)
    i = np.minimum((polar * _POLAR / np.pi).astype(int), _POLAR - 1)
    j = np.minimum(((azimuth + np.pi) * _AZIMUTHAL / (2 * np.pi)).astype(int), _AZIMUTHAL - 1)
    return _ray_table(count)[i, j]


def _connected_to(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The part of `mask` connected to the seed voxel (or to the mask's largest part if the seed is off it)."""
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    label = labels[tuple(np.round(seed).astype(int))]
    if label == 0:
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        label = int(np.argmax(counts))
    return labels == label


def _touches_border(mask: np.ndarray) -> np.ndarray:
    return np.array([mask[0].any(), mask[-1].any(), mask[:, 0].any(), mask[:, -1].any(), mask[:, :, 0].any(),
                     mask[:, :, -1].any()])
