"""A synthetic chest in the patient's own body frame (LPS mm, origin near the carina).

Each patient gets their own proportions; structures are analytic shapes (body and lungs as
elliptic cylinders carved by mediastinum, heart and diaphragm) plus branching tubes (airways,
vessels) and bones (ribs, spine, sternum). HU values follow typical unenhanced chest CT.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import numpy as np
import SimpleITK as sitk

from ..geometry import VoxelGrid
from .raster import Tube, paint_tubes

HU = {
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 45.0,
    "soft_tissue": 40.0,
    "lung": -860.0,
    "emphysema": -970.0,
    "blood": 40.0,
    "bone_cortex": 750.0,
    "bone_marrow": 260.0,
    "csf": 15.0,
}


@dataclass
class Anatomy:
    """One patient's chest: proportions, airway and vessel trees, ribs."""

    body_half_width: float
    body_half_depth: float
    body_center_y: float
    fat_mm: float
    wall_mm: float
    lung_top_z: float
    lung_base_z: float
    heart_center: Tuple[float, float, float]
    heart_axes: Tuple[float, float, float]
    emphysema_fraction: float
    texture_seed: int
    airways: List[Tube] = field(default_factory=list)
    vessels: List[Tube] = field(default_factory=list)
    ribs: List[Tube] = field(default_factory=list)

    # ------------------------------------------------------------------ construction
    @classmethod
    def sample(cls, rng: np.random.Generator, emphysema: bool) -> "Anatomy":
        scale = rng.uniform(0.9, 1.1)
        anatomy = cls(
            body_half_width=165.0 * scale * rng.uniform(0.95, 1.05),
            body_half_depth=112.0 * scale * rng.uniform(0.93, 1.07),
            body_center_y=12.0,
            fat_mm=rng.uniform(8.0, 25.0),
            wall_mm=rng.uniform(12.0, 18.0),
            lung_top_z=95.0 * scale,
            lung_base_z=-150.0 * scale,
            heart_center=(22.0, -38.0 * scale, -100.0 * scale),
            heart_axes=(62.0 * scale, 52.0 * scale, 50.0 * scale),
            emphysema_fraction=rng.uniform(0.05, 0.15) if emphysema else 0.0,
            texture_seed=int(rng.integers(2**31)),
        )
        anatomy.airways = anatomy._airway_tree(rng)
        anatomy.vessels = anatomy._vessel_trees(rng)
        anatomy.ribs = anatomy._ribs(rng)
        return anatomy

    @property
    def thorax_half_width(self) -> float:
        return self.body_half_width - self.fat_mm - self.wall_mm

    @property
    def thorax_half_depth(self) -> float:
        return self.body_half_depth - self.fat_mm - self.wall_mm

    @property
    def spine_center_y(self) -> float:
        return self.body_center_y + self.thorax_half_depth - 6.0

    # ------------------------------------------------------------------ analytic regions
    def _apex_taper(self, z: np.ndarray) -> np.ndarray:
        """The thorax narrows to the lung apex over its top 80 mm."""
        start = self.lung_top_z - 80.0
        rel = np.clip((z - start) / (self.lung_top_z + 10.0 - start), 0.0, 1.0)
        return np.sqrt(np.clip(1.0 - rel**2, 0.0, 1.0))

    def _ellipse(self, x, y, half_width, half_depth) -> np.ndarray:
        return (x / half_width) ** 2 + ((y - self.body_center_y) / half_depth) ** 2

    def inside_body(self, x, y) -> np.ndarray:
        """The body outline: the same at every height (an axial cross-section)."""
        return self._ellipse(x, y, self.body_half_width, self.body_half_depth) < 1.0

    def inside_muscle(self, x, y) -> np.ndarray:
        return self._ellipse(x, y, self.body_half_width - self.fat_mm, self.body_half_depth - self.fat_mm) < 1.0

    def inside_thorax(self, x, y, z) -> np.ndarray:
        taper = self._apex_taper(z)
        return self._ellipse(x, y, self.thorax_half_width * taper + 1e-6, self.thorax_half_depth * taper + 1e-6) < 1.0

    def inside_heart(self, x, y, z, grow: float = 1.0) -> np.ndarray:
        c, a = self.heart_center, self.heart_axes
        return ((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2 < grow

    def diaphragm_z(self, x, y) -> np.ndarray:
        """Height of the diaphragm dome under each lung (the right dome sits higher, over the liver)."""
        lateral = np.abs(x) - 0.5 * self.thorax_half_width
        depth = (y - self.body_center_y) / self.thorax_half_depth
        dome = 1.0 - (lateral / (0.6 * self.thorax_half_width)) ** 2 - depth**2
        return self.lung_base_z + 60.0 * np.clip(dome, 0.0, 1.0) + np.where(x < 0, 15.0, 0.0)

    def mediastinum_half_width(self, y) -> np.ndarray:
        """Half-width of the mediastinum: wider in front (anterior = -y), narrow at the spine."""
        return 28.0 + 22.0 * np.clip(-(y - self.body_center_y) / self.thorax_half_depth, 0.0, 1.0)

    def inside_lung(self, x, y, z) -> np.ndarray:
        """The two lungs, as a boolean of the broadcast shape of x, y, z."""
        return (
            self.inside_thorax(x, y, z)
            & (np.abs(x) > self.mediastinum_half_width(y))
            & (z < self.lung_top_z)
            & (z > self.diaphragm_z(x, y))
            & ~self.inside_heart(x, y, z, grow=1.15)
        )

    def inside_lung_points(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=float)
        return self.inside_lung(points[..., 0], points[..., 1], points[..., 2])

    def upper_lobe(self, points: np.ndarray) -> np.ndarray:
        """Above the oblique fissure, which runs from high at the back to low at the front."""
        points = np.asarray(points, dtype=float)
        y_rel = (points[..., 1] - self.body_center_y) / self.thorax_half_depth
        return points[..., 2] > -40.0 + 45.0 * y_rel

    def random_lung_point(self, rng: np.random.Generator, upper: bool, margin_mm: float = 15.0) -> np.ndarray:
        """A random point inside a lung (in the asked-for lobe), at least `margin_mm` from its edges."""
        low = np.array([-self.thorax_half_width, self.body_center_y - self.thorax_half_depth, self.lung_base_z])
        high = np.array([self.thorax_half_width, self.body_center_y + self.thorax_half_depth, self.lung_top_z])
        offsets = np.array([[dx, dy, dz] for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]) * margin_mm
        for _ in range(200):
            candidates = rng.uniform(low, high, size=(256, 3))
            deep = np.all(self.inside_lung_points(candidates[:, None, :] + offsets[None]), axis=1)
            ok = deep & (self.upper_lobe(candidates) == upper)
            if ok.any():
                return candidates[np.argmax(ok)]
        raise RuntimeError("no lung point found: anatomy parameters out of range")

    def tissue_masks(self, points: np.ndarray) -> Dict[str, np.ndarray]:
        """Which body-frame points lie well inside each tissue (3 mm from its edges), for measuring HU."""
        x, y, z = (np.asarray(points, dtype=float)[..., i] for i in range(3))
        spine = np.sqrt(x**2 + (y - self.spine_center_y) ** 2)
        shrink = 3.0
        fat = self.inside_body(x, y) & ~self._within(x, y, self.body_half_width - self.fat_mm + shrink,
                                                     self.body_half_depth - self.fat_mm + shrink)
        fat &= self._within(x, y, self.body_half_width - shrink, self.body_half_depth - shrink) & (spine > 45.0)
        return {
            "outside air": ~self._within(x, y, self.body_half_width + 10.0, self.body_half_depth + 10.0),
            "subcutaneous fat": fat,
            "lung": self.inside_lung(x, y, z),
            "vertebral marrow": (spine < 12.0) & (z < self.lung_top_z) & (z > self.lung_base_z),
        }

    def _within(self, x, y, half_width, half_depth) -> np.ndarray:
        return self._ellipse(x, y, half_width, half_depth) < 1.0

    def landmarks(self) -> Dict[str, np.ndarray]:
        """Body-frame points of known tissue, for checks of the rendered scans."""
        lung_x = 0.55 * self.thorax_half_width
        return {
            "right_lung": np.array([-lung_x, self.body_center_y, 0.0]),
            "left_lung": np.array([lung_x, self.body_center_y, 30.0]),
            "vertebral_body": np.array([0.0, self.spine_center_y, -40.0]),
            "trachea": np.array([0.0, -17.0, 30.0]),
            "subcutaneous_fat": np.array([0.0, self.body_center_y - self.body_half_depth + self.fat_mm / 2, -40.0]),
            "outside_body": np.array([0.0, self.body_center_y - self.body_half_depth - 15.0, 0.0]),
        }

    # ------------------------------------------------------------------ trees and bones
    def _airway_tree(self, rng: np.random.Generator) -> List[Tube]:
        carina = np.array([0.0, -12.0, 0.0])
        trachea = Tube((0.0, -22.0, self.lung_top_z + 60.0), tuple(carina), 8.5, 8.0)
        tubes = [trachea]
        for side in (-1.0, 1.0):
            hilum = carina + np.array([side * 38.0, 8.0, -22.0])
            tubes.append(Tube(tuple(carina), tuple(hilum), 6.5, 5.5))
            for heading in (1.0, 0.0, -1.2):
                direction = np.array([side, rng.normal(0.0, 0.3), heading])
                tubes += branching_tree(rng, hilum, direction, 4.0, 22.0, 4, self.inside_lung_points)
        return tubes

    def _vessel_trees(self, rng: np.random.Generator) -> List[Tube]:
        tubes = []
        for side in (-1.0, 1.0):
            hilum = np.array([side * 42.0, 2.0, -18.0])
            for heading in (1.4, 0.8, 0.2, -0.4, -1.0):
                for depth in (-0.5, 0.6):  # anterior and posterior branches
                    direction = np.array([side, depth + rng.normal(0.0, 0.2), heading])
                    tubes += branching_tree(
                        rng, hilum, direction, 5.0, 24.0, 7, self.inside_lung_points, free_generations=1
                    )
        return tubes

    def _ribs(self, rng: np.random.Generator) -> List[Tube]:
        tubes = []
        a = self.thorax_half_width + 0.45 * self.wall_mm
        b = self.thorax_half_depth + 0.45 * self.wall_mm
        angles = np.linspace(0.3, 2.4, 15)  # from beside the spine round to the front
        for z0 in np.arange(self.lung_top_z - 5.0, self.lung_base_z + 10.0, -rng.uniform(22.0, 26.0)):
            for side in (-1.0, 1.0):
                x = side * a * np.sin(angles)
                y = self.body_center_y + b * np.cos(angles)
                z = z0 - 28.0 * (1.0 - np.cos(angles)) * 0.5
                path = np.stack([x, y, z], axis=1)
                tubes += [Tube(tuple(p), tuple(q), 5.0, 4.5) for p, q in zip(path[:-1], path[1:])]
        return tubes

    # ------------------------------------------------------------------ rendering
    def breathed(self, points: np.ndarray, factor: float) -> np.ndarray:
        """Body-frame points as they lie when the lungs' height is `factor` times the baseline's: the chest
        below the lung apex stretched or squeezed in z (the diaphragm moves, the apex stays)."""
        points = np.asarray(points, dtype=float)
        if factor == 1.0:
            return points
        moved = points.copy()
        moved[..., 2] = self.lung_top_z + factor * (points[..., 2] - self.lung_top_z)
        return moved

    def breathe(self, hu: np.ndarray, grid: VoxelGrid, factor: float) -> np.ndarray:
        """The rendered chest (HU on `grid`) as it lies at breath `factor` (`breathed`)."""
        if factor == 1.0:
            return hu.copy()
        back = sitk.AffineTransform(3)  # output (breathed) points to input (baseline) points
        back.SetMatrix([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0 / factor])
        back.SetCenter((0.0, 0.0, self.lung_top_z))
        image = sitk.Resample(grid.image(hu), back, sitk.sitkLinear, HU["air"], sitk.sitkFloat32)
        return sitk.GetArrayFromImage(image)

    def render(self, grid: VoxelGrid) -> Tuple[np.ndarray, np.ndarray]:
        """HU (float32, z y x) and the lung mask on an identity-direction body-frame grid."""
        z, y, x = _axes(grid)
        hu = np.full(grid.size_zyx, HU["air"], dtype=np.float32)
        body = np.broadcast_to(self.inside_body(x, y), grid.size_zyx)
        hu[body] = HU["fat"]
        hu[np.broadcast_to(self.inside_muscle(x, y), grid.size_zyx)] = HU["muscle"]
        thorax = self.inside_thorax(x, y, z)
        hu[thorax] = HU["soft_tissue"]
        epicardial_fat = self.inside_heart(x, y, z, grow=1.15) & ~self.inside_heart(x, y, z) & thorax
        hu[epicardial_fat] = HU["fat"]
        lung = self.inside_lung(x, y, z)
        texture = smooth_noise(grid, sigma_mm=2.5, seed=self.texture_seed)
        gravity = 35.0 * np.clip((y - self.body_center_y) / self.thorax_half_depth * 0.5 + 0.5, 0.0, 1.0)
        parenchyma = HU["lung"] + 22.0 * texture + gravity
        hu[lung] = np.broadcast_to(parenchyma, grid.size_zyx)[lung]
        hu[body & ~lung] += 8.0 * np.broadcast_to(texture, grid.size_zyx)[body & ~lung]
        if self.emphysema_fraction > 0:
            blobs = smooth_noise(grid, sigma_mm=4.0, seed=self.texture_seed + 1)
            destroyed = lung & (blobs > np.quantile(blobs, 1.0 - self.emphysema_fraction))
            hu[destroyed] = HU["emphysema"] + 10.0 * texture[destroyed]
        paint_tubes(hu, grid, self.vessels, HU["blood"], where=lung.astype(np.float32))
        paint_tubes(hu, grid, [t.widened(0.6 + 0.15 * t.radius_start) for t in self.airways], HU["soft_tissue"])
        paint_tubes(hu, grid, self.airways, HU["air"])
        self._paint_bones(hu, grid, x, y, z)
        return hu, lung

    def _paint_bones(self, hu: np.ndarray, grid: VoxelGrid, x, y, z) -> None:
        paint_tubes(hu, grid, self.ribs, HU["bone_cortex"])
        paint_tubes(hu, grid, [t.widened(-1.6) for t in self.ribs], HU["bone_marrow"])
        def column(mask_yx: np.ndarray) -> np.ndarray:  # an axial cross-section repeated at every height
            return np.broadcast_to(mask_yx, hu.shape)

        r = np.sqrt(x**2 + (y - self.spine_center_y) ** 2)
        hu[column(r < 17.0)] = HU["bone_cortex"]
        hu[column(r < 15.0)] = HU["bone_marrow"]
        canal = np.sqrt(x**2 + (y - self.spine_center_y - 25.0) ** 2)
        hu[column((canal < 11.0) & (canal >= 7.0))] = HU["bone_cortex"]
        hu[column(canal < 7.0)] = HU["csf"]
        sternum_y = self.body_center_y - self.thorax_half_depth - 0.5 * self.wall_mm
        sternum = (np.abs(x) < 14.0) & (np.abs(y - sternum_y) < 5.0) & (z < 40.0) & (z > -130.0)
        hu[sternum] = HU["bone_marrow"] + 100.0


def _axes(grid: VoxelGrid):
    """Broadcastable coordinate vectors z (n,1,1), y (1,n,1), x (1,1,n) of an identity-direction grid."""
    origin, spacing = np.asarray(grid.origin_lps), np.asarray(grid.spacing_xyz)
    nz, ny, nx = grid.size_zyx
    x = origin[0] + spacing[0] * np.arange(nx, dtype=np.float32)
    y = origin[1] + spacing[1] * np.arange(ny, dtype=np.float32)
    z = origin[2] + spacing[2] * np.arange(nz, dtype=np.float32)
    return z[:, None, None], y[None, :, None], x[None, None, :]


def smooth_noise(grid: VoxelGrid, sigma_mm: float, seed: int) -> np.ndarray:
    """A smooth random field of unit SD on the grid, fixed in the body frame by its seed."""
    coarse_mm = sigma_mm
    extent = np.asarray(grid.spacing_xyz) * (np.asarray(grid.size_xyz) - 1)
    coarse_size = [int(np.ceil(e / coarse_mm)) + 3 for e in extent]
    rng = np.random.default_rng(seed)
    coarse = sitk.GetImageFromArray(rng.standard_normal(coarse_size[::-1]).astype(np.float32))
    coarse.SetSpacing((coarse_mm,) * 3)
    coarse.SetOrigin(tuple(np.asarray(grid.origin_lps) - coarse_mm))
    smooth = sitk.SmoothingRecursiveGaussian(coarse, sigma_mm)
    values = sitk.GetArrayViewFromImage(smooth)
    smooth = (smooth - float(values.mean())) / (float(values.std()) + 1e-6)
    fine = sitk.Resample(smooth, list(grid.size_xyz), sitk.Transform(), sitk.sitkLinear, grid.origin_lps,
                         grid.spacing_xyz, grid.direction, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(fine)


def branching_tree(
    rng: np.random.Generator,
    root: np.ndarray,
    direction: np.ndarray,
    radius: float,
    length: float,
    generations: int,
    inside: Callable[[np.ndarray], np.ndarray],
    free_generations: int = 0,
    radius_ratio: float = 0.72,
    length_ratio: float = 0.82,
) -> List[Tube]:
    """A binary tree of tapering tubes that stays inside a region (`inside` tests points).

    Each branch splits in two at 20-45 degrees about a random axis; a branch whose end would leave
    the region is shortened once and otherwise dropped with its subtree.
    """
    tubes = []
    stack = [(np.asarray(root, float), _unit(direction), radius, length, 0)]
    while stack:
        start, heading, r, span, generation = stack.pop()
        end = start + heading * span
        if generation >= free_generations and not inside(np.array([end, (start + end) / 2])).all():
            end = start + heading * span * 0.5
            if not inside(end[None])[0]:
                continue
        tubes.append(Tube(tuple(start), tuple(end), r, r * radius_ratio))
        if generation + 1 >= generations:
            continue
        axis = _unit(np.cross(heading, rng.normal(size=3)))
        for sign in (1.0, -1.0):
            angle = sign * rng.uniform(20.0, 45.0)
            child = _rotate_about(heading, axis, angle)
            stack.append((end, child, r * radius_ratio, span * length_ratio * rng.uniform(0.8, 1.2), generation + 1))
    return tubes


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _rotate_about(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues' rotation of v about a unit axis."""
    theta = np.radians(degrees)
    return v * np.cos(theta) + np.cross(axis, v) * np.sin(theta) + axis * (axis @ v) * (1 - np.cos(theta))
