"""One nodule's 3-D mask from a point on it: the whole nodule (solid and ground glass) and its solid part.

Method (every length in mm, every level in HU, so any spacing, orientation or slice thickness; the
full account, with its figures, is docs/measurement.md):
1. The scan around the point is resampled (linear) onto an analysis grid of 0.5 mm cubes aligned with
   the patient's axes, and lightly smoothed (sigma 0.5 mm) against noise. The grid is a 24 mm cube
   first; when what the rays find (the nodule's edges, the lung read beyond them, how far a blocked ray
   runs) comes within 2 mm of its faces, the nodule is segmented again in a cube as large as that needs
   (48 mm at most; 48 mm when more than a tenth of its rays run on past the first cube): the same
   result, at an eighth of the cost for most nodules.
2. Levels: the lung's (the median of what is below -600 HU within 24 mm of the point) and the nodule's core (the
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
FIRST_REACH_MM = 12.0  # the cube tried first: a nodule up to about 12 mm across and the lung around it
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
_RAYS = 1800
_NEIGHBOURS = 48  # a blocked ray's edge is the median of this many free rays nearest it
_NEAR_RAYS = 240  # each ray's nearest rays kept in order, where its free neighbours are looked for first
_OPENING_MM = 1.0  # attachments thinner than twice this are cut off (vessel stubs)
_PARTIAL_VOLUME_MM = 1.5  # how far beyond the edge, towards the lung, partial volume is counted
_LOCAL_LUNG_MM = (2.0, 2.0)  # the lung around the nodule is read from this far beyond its edge, over this length
_LUNG_SAMPLE_MM = 1.0  # the lung level's sampling
_RUN_ON_SHARE = 0.1  # rays running on past a cube (into a vessel or the wall) it may leave out of the median edge
_CUBE_MARGIN_MM = 2.0  # what a result must keep clear of its cube's faces (the smoothing's reach, and more)


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
    """The nodule at `point_lps`; NoNoduleError when there is none there.

    Segmented first in a cube of FIRST_REACH_MM (8 times fewer voxels than the largest: most nodules and
    the lung around them fit in it). A nodule whose findings (its edges, the lung read around it, how far
    its blocked rays run) come near that cube's faces is segmented again in a cube as large as they need;
    in the largest, of REACH_MM, when they still do not fit, when more than _RUN_ON_SHARE of its rays run
    on past the first cube, or when nothing was found there. The lung level is read once, for all.
    """
    point = as_lps_point(point_lps, "nodule point")
    lung = _lung_level(image, point)
    reach = FIRST_REACH_MM
    for _attempt in range(2):
        try:
            return _segment_in_cube(image, point, lung, reach, must_fit=True)
        except _BeyondCube as beyond:
            reach = beyond.reach_needed_mm + _CUBE_MARGIN_MM  # room for the findings to move a little
        except OnlyLungError:  # the same in any cube
            raise
        except NoNoduleError:  # in a larger cube there may be room for a large nodule's rays
            break
        if reach >= REACH_MM:
            break
    return _segment_in_cube(image, point, lung, REACH_MM, must_fit=False)


def _lung_level(image: sitk.Image, point: np.ndarray) -> float:
    """The lung's level around `point`: the median of what is below -600 HU in the largest cube, sampled
    at 1 mm (the same whichever cube the nodule is segmented in: in a cube little larger than a
    ground-glass nodule, the ground glass would pass for lung)."""
    n = int(round(2 * REACH_MM / _LUNG_SAMPLE_MM)) + 1
    hu, in_scan = sample_in_scan(image, VoxelGrid.centred(point, (n, n, n), (_LUNG_SAMPLE_MM,) * 3))
    if not in_scan[n // 2, n // 2, n // 2]:
        raise NoNoduleError(f"the point {_mm(point)} lies outside the scan")
    lung_voxels = hu[in_scan & (hu < -600.0)]
    if lung_voxels.size < 0.05 * hu.size:
        raise NoNoduleError(f"the point {_mm(point)} is not in the lung (little lung around it)")
    return float(np.median(lung_voxels))


class _BeyondCube(Exception):
    """The nodule's findings reach too near the analysis cube's faces."""

    def __init__(self, reach_needed_mm: float):
        super().__init__(f"a cube of half-size {reach_needed_mm:.1f} mm is needed")
        self.reach_needed_mm = reach_needed_mm


def _segment_in_cube(image: sitk.Image, point: np.ndarray, lung: float, reach_mm: float,
                     must_fit: bool) -> NoduleSegmentation:
    """The nodule at `point` segmented in the cube of half-size `reach_mm` around it; with `must_fit`,
    _BeyondCube when what the segmentation reads of the scan comes within _CUBE_MARGIN_MM of its faces."""
    n = int(round(2 * reach_mm / VOXEL_MM)) + 1
    grid = VoxelGrid.centred(point, (n, n, n), (VOXEL_MM,) * 3)
    hu, in_scan = sample_in_scan(image, grid)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(grid.image(hu), 0.5))
    seed = _seed(smooth, grid.lps_to_index_zyx(point), lung)
    if seed is None:
        raise OnlyLungError(f"no nodule at {_mm(point)}: only lung within {SEARCH_MM:g} mm")
    core = _core_level(smooth, seed)
    if core > BONE_HU:
        raise NoNoduleError(f"no nodule at {_mm(point)}: {core:.0f} HU is bone or contrast, not a nodule")

    for _pass in range(2):  # the second pass casts the rays from the first mask's centroid
        rays = _cast_rays(smooth, seed, lung, core, reach_mm)
        if np.isnan(rays.edge_hu):
            raise NoNoduleError(f"the nodule at {_mm(point)} is larger than this measures: its edge lies "
                                f"beyond {reach_mm - 1.0:g} mm of its centre")
        if rays.free.mean() < 0.25:
            raise NoNoduleError(f"no separable nodule at {_mm(point)}: most of what is there is vessel or wall")
        if _is_tube(rays):
            raise NoNoduleError(f"no nodule at {_mm(point)}: a vessel (tissue runs on both ways, "
                                f"at most {2 * VESSEL_RADIUS_MM:g} mm across)")
        reach_needed = rays.extent_mm + float(np.abs(seed - n // 2).max()) * VOXEL_MM + _CUBE_MARGIN_MM
        if must_fit and reach_needed > reach_mm:
            raise _BeyondCube(min(reach_needed, REACH_MM))
        whole, shell = _star_masks(smooth, seed, rays)
        if not whole.any():
            raise NoNoduleError(f"no nodule at {_mm(point)}: nothing around it stands above its edge level")
        seed = _centroid(whole)
        # the core's level read again at the nodule's centre: a click a millimetre off a small nodule, or off
        # a small solid core, lands on its edge
        core = max(core, _core_level(smooth, seed))
    edge_hu, ground_glass, local_lung, free_share = rays.edge_hu, rays.ground_glass, rays.local_lung, rays.free.mean()
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
    if np.any(_touches_border(whole)) or (not in_scan.all() and np.any(whole & ~_eroded(in_scan, 2 * VOXEL_MM))):
        flags.append("cut by the scan's edge: volume and diameters are too small")  # within its last millimetre
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


@dataclass(frozen=True)
class _Rays:
    """What the rays cast from a seed found."""

    edges: np.ndarray  # mm from the seed to each ray's edge (a blocked ray: its free neighbours' median)
    free: np.ndarray  # bool: the rays that reach the lung, not a vessel or the wall
    edge_hu: float  # the whole nodule's edge level
    ground_glass: float  # nan when the nodule has none
    local_lung: float  # the lung just around the nodule (at most the edge level)
    extent_mm: float  # how far from the seed what they read of the scan reaches (inf: beyond their length)


def _cast_rays(smooth: np.ndarray, seed: np.ndarray, lung: float, core: float, reach_mm: float) -> _Rays:
    """Rays from `seed`, each to its edge: the edge and ground-glass levels, the free rays, the lung around."""
    directions = _directions()
    radii = np.arange(0.0, reach_mm - 1.0, _RAY_STEP_MM)
    profiles = _sample(smooth, seed[None, None, :] + directions[:, None, :] * radii[None, :, None] / VOXEL_MM)
    edge_hu, ground_glass = _edge_level(profiles, radii, lung, core, directions)
    crossings = _first_below(profiles, edge_hu, radii)
    edges, free = _unblocked(crossings)
    beyond, length = _LOCAL_LUNG_MM
    around = _windows(profiles[free], edges[free] + beyond, length)  # the lung just around the nodule
    local_lung = float(np.nanmedian(around)) if np.isfinite(around).any() else lung
    free_edges = edges[free]
    extent = (max(float(free_edges.max()) + beyond + length, _ESCAPE * float(np.median(free_edges)))
              if len(free_edges) else np.inf)  # the lung read beyond the edge; how far a ray runs to be blocked
    if np.mean(~np.isfinite(crossings)) > _RUN_ON_SHARE:  # where the rays that run on end tells blocked rays
        extent = np.inf                                     # (the median edge) too much to be left unknown
    return _Rays(edges, free, edge_hu, ground_glass, min(local_lung, edge_hu), extent)


def _star_masks(smooth: np.ndarray, seed: np.ndarray, rays: _Rays) -> Tuple[np.ndarray, np.ndarray]:
    """The whole nodule (inside the rays' edges, above the edge level, connected to the seed), and the shell
    of its partial volume (the free rays' edges moved out by _PARTIAL_VOLUME_MM)."""
    shell_edges = np.where(rays.free, rays.edges + _PARTIAL_VOLUME_MM, rays.edges)
    inside, shell = _inside_rays(seed, (rays.edges, shell_edges), smooth.shape)
    whole = _connected_to(_opened(inside & (smooth >= rays.edge_hu), _OPENING_MM), seed)
    return whole, shell


def _is_tube(rays: _Rays) -> bool:
    """A vessel rather than a nodule: thin (free edges within VESSEL_RADIUS_MM) with the blocked rays in
    opposite pairs (tissue runs on both ways). A nodule on a vessel is thicker than the vessel, or blocked one way."""
    blocked = ~rays.free
    if blocked.mean() < 0.05 or np.median(rays.edges[rays.free]) > VESSEL_RADIUS_MM:
        return False
    directions = _directions()
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
    bounds = _bounds(mask)
    if bounds is None:
        return mask.copy()
    low = np.maximum(bounds[0] - radius - 1, 0)
    high = np.minimum(bounds[1] + radius + 2, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    result = np.zeros_like(mask)
    part = operation(sitk.GetImageFromArray(mask[box].astype(np.uint8)), (radius,) * 3)
    result[box] = sitk.GetArrayFromImage(part).astype(bool)
    return result


def _bounds(mask: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The lowest and highest (z, y, x) index of `mask`'s voxels; None when it has none."""
    spans = []
    for axis in range(3):
        along = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if len(along) == 0:
            return None
        spans.append((along[0], along[-1]))
    low, high = zip(*spans)
    return np.array(low), np.array(high)


def _centroid(mask: np.ndarray) -> np.ndarray:
    """The mean (z, y, x) index of `mask`'s voxels."""
    bounds = _bounds(mask)
    if bounds is None:
        raise ValueError("no voxels: an empty mask has no centroid")
    box = tuple(slice(a, b + 1) for a, b in zip(*bounds))
    return np.argwhere(mask[box]).mean(axis=0) + bounds[0]


@lru_cache(maxsize=1)
def _directions() -> np.ndarray:
    """_RAYS nearly uniform unit vectors (z, y, x) on the sphere (a Fibonacci lattice)."""
    i = np.arange(_RAYS) + 0.5
    z = 1.0 - 2.0 * i / _RAYS
    azimuth = np.pi * (1.0 + 5.0 ** 0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([z, r * np.sin(azimuth), r * np.cos(azimuth)], axis=1)


@lru_cache(maxsize=1)
def _rays_by_nearness() -> np.ndarray:
    """For each ray, the _NEAR_RAYS rays nearest its direction, nearest first (itself first)."""
    directions = _directions()
    closeness = directions @ directions.T
    near = np.argpartition(-closeness, _NEAR_RAYS - 1, axis=1)[:, :_NEAR_RAYS]
    order = np.argsort(-np.take_along_axis(closeness, near, axis=1), axis=1, kind="stable")
    return np.take_along_axis(near, order, axis=1)


def _sample(volume: np.ndarray, points_zyx: np.ndarray) -> np.ndarray:
    """Trilinear samples of `volume` at fractional (z, y, x) positions (clamped to the volume)."""
    shape = np.asarray(volume.shape)
    p = np.clip(points_zyx, 0, shape - 1 - 1e-6)
    low = p.astype(np.intp)  # the floor: p is not negative
    tz, ty, tx = np.moveaxis((p - low).astype(np.float32), -1, 0)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    base = low @ strides
    flat = np.ravel(volume)

    def along_x(offset: int) -> np.ndarray:
        at = base + offset
        left = flat[at]
        return left + tx * (flat[at + 1] - left)

    def along_y(offset: int) -> np.ndarray:
        near = along_x(offset)
        return near + ty * (along_x(offset + strides[1]) - near)

    front = along_y(0)
    return (front + tz * (along_y(strides[0]) - front)).astype(np.float32)


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
    if not finite.any():
        return float("nan")  # no ray crosses both within its reach: the nodule is larger than the rays
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


def _unblocked(edges: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Edges with the blocked rays (into a vessel or the wall) given their free neighbours' median; which are free."""
    finite = edges[np.isfinite(edges)]
    if len(finite) == 0:
        return edges, np.zeros(len(edges), dtype=bool)
    free = edges <= _ESCAPE * max(float(np.median(finite)), 1.0)
    if free.sum() < _NEIGHBOURS:
        return edges, free
    blocked = np.flatnonzero(~free)
    near = _rays_by_nearness()[blocked]
    near_free = free[near]
    counted = np.cumsum(near_free, axis=1)
    found = counted[:, -1] >= _NEIGHBOURS  # among the nearest rays kept; the others look at every free ray
    nearest = np.empty((len(blocked), _NEIGHBOURS), dtype=int)
    nearest[found] = near[found][near_free[found] & (counted[found] <= _NEIGHBOURS)].reshape(-1, _NEIGHBOURS)
    if not found.all():
        directions, free_index = _directions(), np.flatnonzero(free)
        closeness = directions[blocked[~found]] @ directions[free].T
        nearest[~found] = free_index[np.argpartition(-closeness, _NEIGHBOURS - 1, axis=1)[:, :_NEIGHBOURS]]
    result = edges.copy()
    result[blocked] = np.median(edges[nearest], axis=1)
    return result, free


def _inside_rays(seed: np.ndarray, edges: Tuple[np.ndarray, ...], shape) -> Tuple[np.ndarray, ...]:
    """For each set of ray edges (mm, one per `_directions()` ray), the voxels whose distance from the seed
    is within the edge of the ray nearest their direction."""
    reach = max(float(e.max()) for e in edges) + VOXEL_MM
    low = np.maximum(np.floor(seed - reach / VOXEL_MM).astype(int), 0)
    high = np.minimum(np.ceil(seed + reach / VOXEL_MM).astype(int) + 1, np.asarray(shape))
    z, y, x = np.meshgrid(*[(np.arange(lo, hi) - c) * VOXEL_MM for lo, hi, c in zip(low, high, seed)], indexing="ij")
    distance = np.sqrt(z * z + y * y + x * x)
    nearest = _nearest_ray(z, y, x, distance)
    masks = []
    for ray_edges in edges:
        mask = np.zeros(shape, dtype=bool)
        mask[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = distance <= ray_edges[nearest]
        masks.append(mask)
    return tuple(masks)


_POLAR, _AZIMUTHAL = 90, 180  # the direction lookup table's cells


@lru_cache(maxsize=1)
def _ray_table() -> np.ndarray:
    """For each (polar, azimuth) cell of the sphere, the index of the nearest of `_directions()`."""
    polar = (np.arange(_POLAR) + 0.5) * np.pi / _POLAR
    azimuth = (np.arange(_AZIMUTHAL) + 0.5) * 2 * np.pi / _AZIMUTHAL - np.pi
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    cells = np.stack([np.cos(p), np.sin(p) * np.sin(a), np.sin(p) * np.cos(a)], axis=-1).reshape(-1, 3)
    return np.argmax(cells.astype(np.float32) @ _directions().T.astype(np.float32), axis=1).reshape(_POLAR, _AZIMUTHAL)


def _nearest_ray(z: np.ndarray, y: np.ndarray, x: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """The index of the ray nearest each offset's direction (z, y, x in mm), by table lookup."""
    polar = np.arccos(np.clip(z / np.maximum(distance, 1e-9), -1.0, 1.0))
    azimuth = np.arctan2(y, x)
    i = np.minimum((polar * _POLAR / np.pi).astype(int), _POLAR - 1)
    j = np.minimum(((azimuth + np.pi) * _AZIMUTHAL / (2 * np.pi)).astype(int), _AZIMUTHAL - 1)
    return _ray_table()[i, j]


def _connected_to(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The part of `mask` connected to the seed voxel (or to the mask's largest part if the seed is off it)."""
    result = np.zeros_like(mask)
    bounds = _bounds(mask)
    if bounds is None:
        return result
    box = tuple(slice(a, b + 1) for a, b in zip(*bounds))
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask[box].astype(np.uint8))))
    at = np.round(seed).astype(int) - bounds[0]
    label = labels[tuple(at)] if np.all((at >= 0) & (at < labels.shape)) else 0
    if label == 0:
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        label = int(np.argmax(counts))
    result[box] = labels == label
    return result


def _touches_border(mask: np.ndarray) -> np.ndarray:
    return np.array([mask[0].any(), mask[-1].any(), mask[:, 0].any(), mask[:, -1].any(), mask[:, :, 0].any(),
                     mask[:, :, -1].any()])
