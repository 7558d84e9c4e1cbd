"""Scene logic on real MRML (slicer-core): volumes + fiducials -> table and attention nodes."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import Phantom, rotation

slicer = pytest.importorskip("slicer")

from CSFNetLib.geometry import VoxelGrid, ijk_to_ras_of, lps_to_ras  # noqa: E402
from CSFNetLib.mrml import ROLE, predict_scene  # noqa: E402


@pytest.fixture
def scene():
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    return scene


def column(table, name):
    index = table.GetColumnIndex(name)
    return [table.GetCellText(row, index) for row in range(table.GetNumberOfRows())]


def add_volume(scene, image: sitk.Image, name: str):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_of(VoxelGrid.of_image(image))))
    return node


def add_points(scene, name, points_ras, labels=None):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for i, p in enumerate(points_ras):
        index = node.AddControlPoint(*[float(c) for c in p])
        node.SetNthControlPointLabel(index, labels[i] if labels else str(i + 1))
    return node


def chest(origin, direction, nodules_lps, radius):
    phantom = Phantom(size_xyz=(120, 110, 40), spacing=(0.8, 0.75, 2.0), origin=origin, direction=direction,
                      background_hu=-850.0)
    for centre in nodules_lps:
        phantom.paint_sphere(centre, radius, 40.0)
    return phantom


@pytest.fixture
def case(scene):
    base = chest((-40.0, -30.0, -100.0), rotation(10.0, -5.0, 4.0), [], 0)
    nodules = [base.centre_lps + d for d in ([0, 0, 0], [15.0, 10.0, 4.0], [-18.0, 5.0, -6.0])]
    t0 = chest((-40.0, -30.0, -100.0), rotation(10.0, -5.0, 4.0), nodules, 3.0)
    t1 = chest((-38.0, -31.0, -97.0), rotation(6.0, 0.0, 0.0), nodules, 5.0)
    volumes = add_volume(scene, t0.image(), "baseline"), add_volume(scene, t1.image(), "follow-up")
    ras = [lps_to_ras(n) for n in nodules]
    return volumes, add_points(scene, "T0 nodules", ras), add_points(scene, "T1 nodules", ras), ras


def test_table_and_attention_nodes_land_on_the_nodules(scene, case):
    (v0, v1), f0, f1, ras = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    assert table.GetNumberOfRows() == 3
    p = np.array(column(table, "p_malignant"), dtype=float)
    assert np.all((p >= 0) & (p <= 1))
    nodes = [table.GetNthNodeReference(ROLE, i) for i in range(table.GetNumberOfNodeReferences(ROLE))]
    assert len(nodes) == 3 * 2 * 2
    heat = [n for n in nodes if n.GetName() == "2 T1 attention heat"][0]
    bounds = [0.0] * 6
    heat.GetRASBounds(bounds)
    centre = [(bounds[2 * i] + bounds[2 * i + 1]) / 2 for i in range(3)]
    assert np.allclose(centre, ras[1], atol=0.5)
    labels = [n for n in nodes if n.IsA("vtkMRMLLabelMapVolumeNode")]
    assert len(labels) == 6 and set(np.unique(slicer.util.arrayFromVolume(labels[0]))) <= {0, 1, 2, 3}


def test_a_rerun_refills_the_same_table_without_duplicates(scene, case):
    (v0, v1), f0, f1, _ = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    count = scene.GetNumberOfNodes()
    again = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    assert again is table and table.GetNumberOfRows() == 3
    assert scene.GetNumberOfNodes() == count
    assert table.GetNumberOfNodeReferences(ROLE) == 12


def test_a_parent_transform_is_applied_to_volumes_and_fiducials(scene, case):
    (v0, v1), f0, f1, ras = case
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (12.0, -7.0, 5.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    for node in (v1, f1):
        node.SetAndObserveTransformNodeID(transform.GetID())
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    heat = scene.GetFirstNodeByName("1 T1 attention heat")
    bounds = [0.0] * 6
    heat.GetRASBounds(bounds)
    centre = np.array([(bounds[2 * i] + bounds[2 * i + 1]) / 2 for i in range(3)])
    assert np.allclose(centre, np.asarray(ras[0]) + shift[:3, 3], atol=0.5)  # where the user sees it
    assert table.GetNumberOfRows() == 3


@pytest.mark.parametrize("problem,message", [
    ("count", "2 baseline and 3 follow-up points"),
    ("empty", "hold no control points"),
    ("outside", "nodule '1' in the baseline volume"),
    ("labelmap", "CT scalar volume node"),
])
def test_bad_input_is_refused_before_any_output_node_exists(scene, case, problem, message):
    (v0, v1), f0, f1, ras = case
    if problem == "count":
        f0.RemoveNthControlPoint(2)
    elif problem == "empty":
        f0.RemoveAllControlPoints()
    elif problem == "outside":
        f0.SetNthControlPointPosition(0, 500.0, 500.0, 500.0)
    else:
        v0 = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "not a CT")
    count = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match=message):
        predict_scene(scene, v0, v1, f0, f1, device="cpu")
    assert scene.GetNumberOfNodes() == count


def test_points_can_be_paired_by_label_or_reused_at_the_same_position(scene, case):
    (v0, v1), _, f1, ras = case
    f0 = add_points(scene, "T0 by label", ras[::-1], labels=["3", "2", "1"])
    table = predict_scene(scene, v0, v1, f0, f1, pair_by="label", device="cpu", attention=False)
    assert column(table, "nodule") == ["3", "2", "1"]
    with pytest.raises(ValueError, match="same_position=True"):
        predict_scene(scene, v0, v1, None, f1, device="cpu")
    table = predict_scene(scene, v0, v1, None, f1, same_position=True, device="cpu", attention=False)
    assert table.GetNumberOfRows() == 3


def test_results_survive_a_scene_save_and_reload(tmp_path, case, scene):
    """.mrml with its data files (slicer-core cannot read .mrb without the application's IO manager)."""
    (v0, v1), f0, f1, _ = case
    keep = with_logics(scene)
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    for node in [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]:
        if node.IsA("vtkMRMLStorableNode"):
            storage = node.GetStorageNode() or (node.AddDefaultStorageNode() and node.GetStorageNode())
            if storage is not None:
                storage.SetFileName(str(tmp_path / f"{node.GetID()}.{storage.GetDefaultWriteFileExtension()}"))
                assert storage.WriteData(node)
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()

    reloaded = slicer.vtkMRMLScene()
    keep += with_logics(reloaded)
    reloaded.SetURL(str(tmp_path / "scene.mrml"))
    assert reloaded.Connect()
    again = reloaded.GetFirstNodeByName("CSF-net results")
    assert column(again, "p_malignant") == column(table, "p_malignant")
    nodes = [again.GetNthNodeReference(ROLE, i) for i in range(again.GetNumberOfNodeReferences(ROLE))]
    assert len(nodes) == 12 and all(n is not None for n in nodes)
    labels = [n for n in nodes if n.IsA("vtkMRMLLabelMapVolumeNode")][0]
    assert labels.GetDisplayNode().GetColorNode().GetName() == "CSF-net attention levels"
    original = scene.GetFirstNodeByName(labels.GetName())
    assert np.array_equal(slicer.util.arrayFromVolume(labels), slicer.util.arrayFromVolume(original))
    assert np.allclose(node_matrix(labels), node_matrix(original))


def with_logics(scene):
    """The application, markups and tables logics a scene needs to save and load (keep them referenced)."""
    application = slicer.vtkSlicerApplicationLogic()
    application.SetMRMLScene(scene)
    logics = [application]
    for cls in (slicer.vtkSlicerMarkupsLogic, slicer.vtkSlicerTablesLogic):
        logic = cls()
        logic.SetMRMLScene(scene)
        logics.append(logic)
    return logics


def node_matrix(node):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)
