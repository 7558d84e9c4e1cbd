"""One click in the scene: a nodule's point in one scan's list placed on the same nodule in the other scan.

For every control point of one fiducial list whose label the other list lacks, the nodule is found in the
other volume (`match.nodule.match_nodule`) and a point with the same label is added to the other list:
at the nodule's centre when found (the user may drag it; the prediction uses wherever it is), or marked
missing (Slicer's "skipped" point) with the reason in its description when the nodule is not present or
could not be decided, so it is never paired with something else. Each pair of volumes is registered
once (either way round) and remembered while neither changes.
"""

from dataclasses import dataclass
from typing import Dict, List, Tuple

from ..geometry import lps_to_ras, ras_to_lps
from ..match.nodule import FOUND, NoduleMatch, match_nodule
from ..match.registration import LungRegistration, register_lungs
from .nodes import ct_volume, point_label

MATCHED_BY = "found by CSF-net in the other scan"


@dataclass(frozen=True)
class PlacedMatch:
    """A point added to the other list: its label, and what matching found."""

    label: str
    match: NoduleMatch


class Registrations:
    """Each pair of volumes' lung registration (either way round), kept while neither volume's voxels or
    placement change."""

    def __init__(self) -> None:
        self._known: Dict[Tuple, LungRegistration] = {}

    def between(self, source_node, target_node) -> LungRegistration:
        key = (_version(source_node), _version(target_node))
        if key[::-1] in self._known:
            return self._known[key[::-1]].reversed()
        if key not in self._known:
            source = ct_volume(source_node, "source").image()
            target = ct_volume(target_node, "target").image()
            current = {version[0]: version for version in key}  # a volume changed since: its pairs are forgotten
            self._known = {pair: known for pair, known in self._known.items()
                           if all(current.get(version[0], version) == version for version in pair)}
            self._known[key] = register_lungs(source, target, (source_node.GetName(), target_node.GetName()))
        return self._known[key]


def match_points(source_volume, source_fiducials, target_volume, target_fiducials,
                 registrations: Registrations) -> List[PlacedMatch]:
    """Place in `target_fiducials` every nodule of `source_fiducials` that it lacks (by label); what was placed."""
    present = {point_label(target_fiducials, i) for i in range(target_fiducials.GetNumberOfControlPoints())}
    wanted = [i for i in range(source_fiducials.GetNumberOfControlPoints())
              if source_fiducials.GetNthControlPointPositionStatus(i) == source_fiducials.PositionDefined
              and point_label(source_fiducials, i) not in present]
    if not wanted:
        return []
    registration = registrations.between(source_volume, target_volume)
    source = ct_volume(source_volume, "the clicked scan").image()
    target = ct_volume(target_volume, "the other scan").image()
    placed = []
    for i in wanted:
        label = point_label(source_fiducials, i)
        position = [0.0, 0.0, 0.0]
        source_fiducials.GetNthControlPointPositionWorld(i, position)
        match = match_nodule(source, ras_to_lps(position), target, registration)
        _add_point(target_fiducials, label, match)
        placed.append(PlacedMatch(label, match))
    return placed


def _add_point(fiducials, label: str, match: NoduleMatch) -> None:
    if match.status == FOUND and match.centre_lps is not None:
        index = fiducials.AddControlPointWorld(*lps_to_ras(match.centre_lps).tolist())
        moved = match.moved_mm or 0.0
        fiducials.SetNthControlPointDescription(index, f"{MATCHED_BY} ({moved:.1f} mm from the registration)")
    else:  # a skipped point: the nodule is listed, with the reason, and has no position to pair
        index = fiducials.AddControlPoint(0.0, 0.0, 0.0)
        fiducials.SetNthControlPointPositionMissing(index)
        fiducials.SetNthControlPointDescription(index, f"{match.status}: {match.note}" if match.note else match.status)
    fiducials.SetNthControlPointLabel(index, label)


def _version(volume) -> Tuple[str, int, int, int]:
    """Changes when the volume's voxels, geometry or placement do."""
    image, transform = volume.GetImageData(), volume.GetParentTransformNode()
    return (volume.GetID(), volume.GetMTime(), 0 if image is None else image.GetMTime(),
            0 if transform is None else transform.GetMTime())
