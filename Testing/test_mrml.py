"""Scene logic on real MRML (slicer-core): volumes + fiducials -> table and attention nodes."""

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
import vtk.util.numpy_support

from conftest import Phantom, rotation

slicer = pytest.importorskip("slicer")

from CSFNetLib.checkpoint import CheckpointError  # noqa: E402
from CSFNetLib.geometry import lps_to_ras, ras_to_lps  # noqa: E402
from CSFNetLib.options import DEFAULT_ATTENTION_METHOD  # noqa: E402
from CSFNetLib.progress import Cancelled  # noqa: E402
from CSFNetLib.scene.files import StandaloneScene, load_scene, save_scene  # noqa: E402
from CSFNetLib.scene.logic import predict_scene  # noqa: E402
from CSFNetLib.scene.measurements import SEGMENTATION_NAMES  # noqa: E402
from CSFNetLib.scene.nodes import (  # noqa: E402
    add_fiducials,
    add_volume_node,
    ct_volume_nodes,
    is_ct_volume_node,
    output_node_ids,
)
from CSFNetLib.scene.parameter_node import keep_choices_known, reset_unknown_choice  # noqa: E402
from CSFNetLib.scene.results_table import (  # noqa: E402
    ATTENTION_METHOD_ATTRIBUTE,
    MEASURE_ROLE,
    ROLE,
    table_nodules,
    table_rows,
)


@pytest.fixture
def scene():
    """A scene with the application, subject hierarchy, markups and tables logics, as inside Slicer."""
    standalone = StandaloneScene()
    slicer.mrmlScene = standalone.scene
    yield standalone.scene
    standalone.close()


def column(table, name):
    index = table.GetColumnIndex(name)
    return [table.GetCellText(row, index) for row in range(table.GetNumberOfRows())]


def add_points(scene, name, points_ras, labels=None):
    return add_fiducials(scene, name, [ras_to_lps(p) for p in points_ras],
                         labels or [str(i + 1) for i in range(len(points_ras))])


def ras_centre(node):
    bounds = [0.0] * 6
    node.GetRASBounds(bounds)
    return np.array([(bounds[2 * i] + bounds[2 * i + 1]) / 2 for i in range(3)])


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
    volumes = add_volume_node(scene, t0.image(), "baseline"), add_volume_node(scene, t1.image(), "follow-up")
    ras = [lps_to_ras(n) for n in nodules]
    return volumes, add_points(scene, "T0 nodules", ras), add_points(scene, "T1 nodules", ras), ras


def attention_nodes(table):
    return [table.GetNthNodeReference(ROLE, i) for i in range(table.GetNumberOfNodeReferences(ROLE))]


def test_table_and_attention_nodes_land_on_the_nodules(scene, case):
    (v0, v1), f0, f1, ras = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False)
    rows = table_rows(table)
    assert [r["nodule"] for r in rows] == ["1", "2", "3"]
    assert all(0 <= r["p_malignant"] <= 1 and r["prediction"] == ("malignant" if r["p_malignant"] >= 0.5 else "benign")
               and r["model"] == "csfnet-small-demo" and r["device"] == "cpu" and r["seconds"] > 0 for r in rows)
    assert table.GetTable().GetColumnByName("p_malignant").IsA("vtkDoubleArray")  # sortable, plottable
    assert "synthetic phantoms" in rows[0]["model_note"]
    nodes = attention_nodes(table)
    assert len(nodes) == 3 * 2 * 2
    for label, position in zip("123", ras):
        for timepoint in ("T0", "T1"):
            heat = scene.GetFirstNodeByName(f"{label} {timepoint} attention heat")
            assert heat in nodes and np.allclose(ras_centre(heat), position, atol=0.5)
    labels = [n for n in nodes if n.IsA("vtkMRMLLabelMapVolumeNode")]
    assert len(labels) == 6 and set(np.unique(slicer.util.arrayFromVolume(labels[0]))) == {0, 1, 2, 3}
    assert labels[0].GetDisplayNode().GetColorNode().GetName() == "CSF-net attention levels"


def test_progress_is_reported_step_by_step_and_a_cancel_leaves_the_scene_as_it_was(scene, case):
    (v0, v1), f0, f1, _ = case
    steps = []
    predict_scene(scene, v0, v1, f0, f1, device="cpu", attention=False,
                  progress=lambda step, fraction: steps.append((step, fraction)))
    fractions = [fraction for _, fraction in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] < 1.0
    assert [step for step, _ in steps if step.startswith("Nodule")] == [
        f"Nodule {n}: cutting its regions of interest" for n in "123"] + [
        f"Nodule {n}: measuring it in both scans" for n in "123"]
    count = scene.GetNumberOfNodes()
    for stop_at in ("Running CSF-net", "Nodule 2: measuring", "Writing the results"):
        def cancel(step, fraction, stop_at=stop_at):
            if step.startswith(stop_at):
                raise Cancelled()
        with pytest.raises(Cancelled):
            predict_scene(scene, v0, v1, f0, f1, device="cpu", progress=cancel, table=None)
        assert scene.GetNumberOfNodes() == count


def test_inputs_are_left_untouched(scene, case):
    (v0, v1), f0, f1, _ = case
    before = [slicer.util.arrayFromVolume(v).copy() for v in (v0, v1)], [node_matrix(v) for v in (v0, v1)]
    points = [slicer.util.arrayFromMarkupsControlPoints(f).copy() for f in (f0, f1)]
    modified = [n.GetMTime() for n in (v0, v1, f0, f1)]
    predict_scene(scene, v0, v1, f0, f1, device="cpu")
    assert all(np.array_equal(a, slicer.util.arrayFromVolume(v)) for a, v in zip(before[0], (v0, v1)))
    assert all(np.array_equal(m, node_matrix(v)) for m, v in zip(before[1], (v0, v1)))
    assert all(np.array_equal(p, slicer.util.arrayFromMarkupsControlPoints(f)) for p, f in zip(points, (f0, f1)))
    assert [n.GetMTime() for n in (v0, v1, f0, f1)] == modified


def test_a_rerun_refills_the_same_table_without_duplicates(scene, case):
    (v0, v1), f0, f1, _ = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False)
    count = scene.GetNumberOfNodes()
    assert table.GetAttribute(ATTENTION_METHOD_ATTRIBUTE) == DEFAULT_ATTENTION_METHOD
    first = slicer.util.arrayFromVolume(scene.GetFirstNodeByName("1 T1 attention heat")).copy()
    again = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False, attention_method="input-x-gradient")
    assert again is table and table.GetNumberOfRows() == 3
    assert scene.GetNumberOfNodes() == count
    assert table.GetNumberOfNodeReferences(ROLE) == 12
    assert table.GetAttribute(ATTENTION_METHOD_ATTRIBUTE) == "input-x-gradient"  # the maps say how they were made
    assert not np.array_equal(slicer.util.arrayFromVolume(scene.GetFirstNodeByName("1 T1 attention heat")), first)


def test_a_parent_transform_is_applied_to_volumes_and_fiducials(scene, case):
    (v0, v1), f0, f1, ras = case
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (12.0, -7.0, 5.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    for node in (v1, f1):
        node.SetAndObserveTransformNodeID(transform.GetID())
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False)
    heat = scene.GetFirstNodeByName("1 T1 attention heat")
    assert np.allclose(ras_centre(heat), np.asarray(ras[0]) + shift[:3, 3], atol=0.5)  # where the user sees it
    assert table.GetNumberOfRows() == 3


def test_a_fiducial_near_the_border_gives_a_roi_that_runs_off_the_scan(scene, case):
    (v0, v1), f0, f1, _ = case
    ijk_to_ras = node_matrix(v1)
    near_corner = (ijk_to_ras @ np.array([1.0, 2.0, 0.5, 1.0]))[:3]  # 1-2 voxels in from the scan's edges
    for node in (f0, f1):
        node.SetNthControlPointPosition(2, *near_corner.tolist())
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False)
    assert 0.0 <= table_rows(table)[2]["p_malignant"] <= 1.0
    assert np.allclose(ras_centre(scene.GetFirstNodeByName("3 T1 attention heat")), near_corner, atol=0.5)


def no_image_volume(scene, *_):
    return scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")


def not_hu_volume(scene, image):
    mr_like = sitk.Cast(sitk.RescaleIntensity(image, 0, 255), sitk.sitkUInt8)
    return add_volume_node(scene, mr_like, "MR-like")


@pytest.mark.parametrize("problem,message", [
    ("count", "2 baseline and 3 follow-up points"),
    ("some labels", r"share some labels but not all \(baseline only \['n2'\], follow-up only \['n4'\]"),
    ("unplaced", "'T0 nodules' point 2 \\('2'\\) is not placed"),
    ("empty", "'T0 nodules' hold no control points"),
    ("outside", "nodule '1' in the baseline volume: nodule centre .* lies outside the scan"),
    ("labelmap", "CT scalar volume node, got vtkMRMLLabelMapVolumeNode 'not a CT'"),
    ("no image", "baseline volume 'empty' has no image data"),
    ("not HU", "baseline volume 'MR-like' does not look like CT in HU"),
    ("checkpoint", "broken.pt"),
])
def test_bad_input_is_refused_before_any_output_node_exists(scene, case, problem, message, tmp_path):
    (v0, v1), f0, f1, ras = case
    checkpoint = None
    if problem == "count":
        f0.RemoveNthControlPoint(2)
        for i in range(2):
            f0.SetNthControlPointLabel(i, f"T0-{i + 1}")  # no shared labels: pairing by index
    elif problem == "some labels":  # one nodule resolved, one new: by index they would be mixed up
        for i, (before, after) in enumerate(zip(["n1", "n2", "n3"], ["n1", "n3", "n4"])):
            f0.SetNthControlPointLabel(i, before)
            f1.SetNthControlPointLabel(i, after)
    elif problem == "unplaced":
        f0.UnsetNthControlPointPosition(1)
    elif problem == "empty":
        f0.RemoveAllControlPoints()
    elif problem == "outside":
        f0.SetNthControlPointPosition(0, 500.0, 500.0, 500.0)
    elif problem == "labelmap":
        v0 = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "not a CT")
    elif problem == "no image":
        v0 = no_image_volume(scene)
    elif problem == "not HU":
        v0 = not_hu_volume(scene, chest((0.0, 0.0, 0.0), np.eye(3), [], 0).image())
    else:
        checkpoint = tmp_path / "broken.pt"
        checkpoint.write_bytes(b"not a checkpoint")
    count = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match=message) as raised:
        predict_scene(scene, v0, v1, f0, f1, checkpoint=checkpoint, device="cpu", measure=False)
    assert problem != "checkpoint" or isinstance(raised.value, CheckpointError)
    assert scene.GetNumberOfNodes() == count


def test_points_pair_by_label_when_the_lists_share_labels_and_the_rule_is_reported(scene, case):
    (v0, v1), _, f1, ras = case
    f0 = add_points(scene, "T0 by label", ras[::-1], labels=["3", "2", "1"])
    for pair_by in ("auto", "label"):
        table = predict_scene(scene, v0, v1, f0, f1, pair_by=pair_by, device="cpu", measure=False)
        assert column(table, "nodule") == ["3", "2", "1"]
        assert table.GetAttribute("csfnet.pairing") == "baseline and follow-up points with equal labels"
        assert np.allclose(ras_centre(scene.GetFirstNodeByName("3 T0 attention heat")), ras[2], atol=0.5)
    forced = predict_scene(scene, v0, v1, f0, f1, pair_by="index", device="cpu", measure=False, attention=False)
    assert forced.GetAttribute("csfnet.pairing") == "the n-th baseline point with the n-th follow-up point"
    for i in range(3):
        f0.SetNthControlPointLabel(i, f"T0-{i + 1}")  # Slicer's default labels differ between lists: by index
    assert predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False, attention=False).GetAttribute(
        "csfnet.pairing").startswith("the n-th")


def test_pairing_by_label_refuses_a_repeated_label_rather_than_dropping_a_point():
    from CSFNetLib.pairing import pair_nodules

    point = np.zeros(3)
    baseline, followup = [("a", point), ("b", point)], [("a", point), ("b", point), ("b", point + 1)]
    for pair_by in ("label", "auto"):
        with pytest.raises(ValueError, match=r"repeated \['b'\]"):
            pair_nodules(baseline, followup, pair_by)


def test_a_follow_up_list_alone_is_reused_in_the_baseline_only_when_asked(scene, case):
    (v0, v1), _, f1, _ = case
    with pytest.raises(ValueError, match="same_position=True"):
        predict_scene(scene, v0, v1, None, f1, device="cpu", measure=False)
    table = predict_scene(scene, v0, v1, None, f1, same_position=True, device="cpu", measure=False, attention=False)
    assert table.GetNumberOfRows() == 3 and "same physical position" in table.GetAttribute("csfnet.pairing")


def test_outputs_go_under_each_volume_s_study_in_the_subject_hierarchy(scene, case):
    (v0, v1), f0, f1, _ = case
    tree = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = tree.CreateSubjectItem(tree.GetSceneItemID(), "patient")
    studies = [tree.CreateStudyItem(patient, name) for name in ("CT 2019", "CT 2020")]
    for study, volume in zip(studies, (v0, v1)):
        tree.CreateItem(study, volume)  # as after DICOM import
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    assert tree.GetItemParent(tree.GetItemByDataNode(table)) == studies[1]
    for node in attention_nodes(table):
        folder = tree.GetItemParent(tree.GetItemByDataNode(node))
        assert tree.GetItemName(folder) == "CSF-net attention"
        assert tree.GetItemParent(folder) == studies[" T1 " in node.GetName()]
    for t, name in enumerate(SEGMENTATION_NAMES):  # each scan's segmentation goes with that scan
        assert tree.GetItemParent(tree.GetItemByDataNode(scene.GetFirstNodeByName(name))) == studies[t]
    items = tree.GetNumberOfItems()
    predict_scene(scene, v0, v1, f0, f1, device="cpu")
    assert tree.GetNumberOfItems() == items  # a rerun leaves no stale items or folders


@pytest.mark.parametrize("suffix", [".mrb", ".mrml"])
def test_results_survive_a_scene_save_and_reload(tmp_path, case, scene, suffix):
    (v0, v1), f0, f1, _ = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu")
    path = save_scene(scene, tmp_path / f"case{suffix}")
    reloaded = StandaloneScene()
    try:
        load_scene(reloaded.scene, path)
        again = reloaded.scene.GetFirstNodeByName("CSF-net results")
        assert np.allclose([r["p_malignant"] for r in table_rows(again)],
                           [r["p_malignant"] for r in table_rows(table)], atol=1e-6)
        nodes = attention_nodes(again)
        assert len(nodes) == 12 and all(n is not None for n in nodes)
        labels = [n for n in nodes if n.IsA("vtkMRMLLabelMapVolumeNode")][0]
        assert labels.GetDisplayNode().GetColorNode().GetName() == "CSF-net attention levels"
        original = scene.GetFirstNodeByName(labels.GetName())
        assert np.array_equal(slicer.util.arrayFromVolume(labels), slicer.util.arrayFromVolume(original))
        assert np.allclose(node_matrix(labels), node_matrix(original))
        assert reloaded.scene.GetFirstNodeByName("T1 nodules").GetNumberOfControlPoints() == 3
        measured = [again.GetNthNodeReference(MEASURE_ROLE, i) for i in range(again.GetNumberOfNodeReferences(
            MEASURE_ROLE))]
        assert len(measured) == len([table.GetNthNodeReference(MEASURE_ROLE, i) for i in range(
            table.GetNumberOfNodeReferences(MEASURE_ROLE))]) and all(node is not None for node in measured)
        segmentation = reloaded.scene.GetFirstNodeByName(SEGMENTATION_NAMES[1])
        assert segmentation.GetSegmentation().GetNumberOfSegments() == 3
        assert np.allclose([r["volume_t1_mm3"] for r in table_rows(again)],
                           [r["volume_t1_mm3"] for r in table_rows(table)], atol=0.01)
    finally:
        reloaded.close()


def test_saving_a_mrml_leaves_the_rest_of_its_folder_as_it_was(tmp_path, case, scene):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "study.mrml").write_text("the user's scene")  # the name MRML itself would give a scene saved here
    (folder / "notes.txt").write_text("the user's notes")
    predict_scene(scene, *case[0], case[1], case[2], device="cpu", measure=False)
    first = save_scene(scene, folder / "results.mrml")
    with pytest.raises(FileExistsError, match="would overwrite .* data file"):
        save_scene(scene, folder / "again.mrml")  # the same nodes: the same data file names
    assert not (folder / "again.mrml").exists()
    assert (folder / "study.mrml").read_text() == "the user's scene"
    assert (folder / "notes.txt").read_text() == "the user's notes"
    assert sorted(p.name for p in folder.iterdir()) == ["Data", "notes.txt", "results.mrml", "results_Private",
                                                          "study.mrml"]
    reloaded = StandaloneScene()
    try:
        load_scene(reloaded.scene, first)
        assert len(table_rows(reloaded.scene.GetFirstNodeByName("CSF-net results"))) == 3
    finally:
        reloaded.close()


def test_a_scene_file_is_never_overwritten_unless_asked(tmp_path, case, scene):
    path = tmp_path / "case.mrb"
    path.write_bytes(b"the user's scene")
    with pytest.raises(FileExistsError, match="case.mrb exists"):
        save_scene(scene, path)
    assert path.read_bytes() == b"the user's scene"
    save_scene(scene, path, overwrite=True)
    assert path.stat().st_size > 1000 and list(tmp_path.iterdir()) == [path]  # no temporary left behind


def node_matrix(node):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def test_a_bad_bundle_is_refused_by_name_and_leaves_the_working_directory(tmp_path, scene):
    import os
    import zipfile

    not_zip = tmp_path / "text.mrb"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="text.mrb: not a Slicer bundle"):
        load_scene(scene, not_zip)
    no_scene = tmp_path / "empty.mrb"
    with zipfile.ZipFile(no_scene, "w") as bundle:
        bundle.writestr("empty/readme.txt", "no scene in here")
    here = os.getcwd()
    with pytest.raises(ValueError, match="empty.mrb: the scene could not be read"):
        load_scene(scene, no_scene)
    assert os.getcwd() == here


def test_the_sample_pair_loads_into_a_scene_and_its_nodule_is_found(scene, tmp_path):
    from CSFNetLib.scene.results_table import nodule_attention
    from CSFNetLib.scene.sample import load_sample_pair

    nodes = load_sample_pair(scene, tmp_path)
    table = predict_scene(scene, nodes.baseline_volume, nodes.followup_volume, nodes.baseline_fiducials,
                          nodes.followup_fiducials, clinical=nodes.clinical, device="cpu")
    (row,) = table_rows(table)
    assert row["nodule"] == "1" and 0.0 <= row["p_malignant"] <= 1.0
    assert not row["measure_error"] and row["type"] == "solid" and row["volume_t1_mm3"] > 4 * row["volume_t0_mm3"]
    heat, labels = nodule_attention(table, "1", "T1")
    position = [0.0, 0.0, 0.0]
    nodes.followup_fiducials.GetNthControlPointPositionWorld(0, position)
    assert np.allclose(ras_centre(heat), position, atol=0.5) and labels.IsA("vtkMRMLLabelMapVolumeNode")
    with pytest.raises(ValueError, match="no attention maps for nodule '2'"):
        nodule_attention(table, "2")


def test_a_roi_cut_from_the_part_of_the_scan_around_it_equals_one_cut_from_the_whole_scan(scene, case):
    from CSFNetLib.preprocessing import extract_roi, roi_grid
    from CSFNetLib.scene.nodes import ct_volume

    (_, v1), _, _, ras = case
    volume = ct_volume(v1, "follow-up")
    ijk_to_ras = node_matrix(v1)
    near_edge = (ijk_to_ras @ np.array([1.0, 2.0, 0.5, 1.0]))[:3]
    for point in [*ras, near_edge]:  # oblique, anisotropic; a ROI that runs off the scan too
        centre = ras_to_lps(point)
        part = volume.image_around(roi_grid(centre).corners_lps)
        assert np.prod(part.GetSize()) < 0.5 * volume.array.size
        assert np.allclose(extract_roi(part, centre), extract_roi(volume.image(), centre), atol=1e-6)


def test_the_ct_selectors_offer_plain_scalar_volumes_and_never_csf_net_s_own(scene, case):
    """Vector, tensor and diffusion volumes and label maps are scalar volumes by IsA, but no CT."""
    (v0, v1), f0, f1, _ = case
    others = [scene.AddNewNodeByClass(name, name) for name in (
        "vtkMRMLLabelMapVolumeNode", "vtkMRMLVectorVolumeNode", "vtkMRMLDiffusionTensorVolumeNode",
        "vtkMRMLDiffusionWeightedVolumeNode")]
    assert all(node.IsA("vtkMRMLScalarVolumeNode") and not is_ct_volume_node(node) for node in others)
    assert ct_volume_nodes(scene) == [v0, v1] and output_node_ids(scene, "vtkMRMLScalarVolumeNode") == []

    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False)
    heat = [node for node in attention_nodes(table) if node.GetClassName() == "vtkMRMLScalarVolumeNode"]
    assert len(heat) == 6 and ct_volume_nodes(scene) == [v0, v1]  # the heat maps are listed as outputs only
    assert sorted(output_node_ids(scene, "vtkMRMLScalarVolumeNode")) == sorted(node.GetID() for node in heat)
    with pytest.raises(ValueError, match="vtkMRMLVectorVolumeNode"):
        predict_scene(scene, others[1], v1, f0, f1, device="cpu", measure=False)


def test_the_nodule_chooser_reads_a_results_table_and_nothing_from_other_tables(scene, case):
    (v0, v1), f0, f1, _ = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", measure=False)
    assert table_nodules(table) == ["1", "2", "3"] == [row["nodule"] for row in table_rows(table)]
    foreign = scene.AddNewNodeByClass("vtkMRMLTableNode", "measurements")
    foreign.AddColumn().SetName("nodule")
    foreign.AddEmptyRow()
    assert table_nodules(foreign) == [] and table_nodules(None) == []


def test_a_saved_parameter_node_with_a_model_not_installed_here_is_reset_before_anything_sees_it(scene, tmp_path):
    models = ["csfnet-small-demo", "Browse for a checkpoint..."]
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    node.SetSingletonTag("CSFNet")
    node.SetParameter("settings.model", "a model installed elsewhere")
    node.SetParameter("settings.device", "cpu")
    save_scene(scene, tmp_path / "elsewhere.mrml")
    assert reset_unknown_choice(node, "settings.model", models) == "a model installed elsewhere"
    assert node.GetParameter("settings.model") == models[0]
    assert reset_unknown_choice(node, "settings.model", models) is None  # a known value stays
    assert reset_unknown_choice(node, "settings.unset", models) == ""  # a parameter missing: its default
    assert node.GetParameter("settings.unset") == models[0]

    keep_choices_known(node, {"settings.model": models, "settings.device": ["auto", "cpu"]})
    seen = []  # what an observer of the node (the panel's binding) reads on each change
    node.AddObserver(vtk.vtkCommand.ModifiedEvent,
                     lambda caller, event: seen.append(caller.GetParameter("settings.model")))
    node.SetParameter("settings.model", models[1])
    node.SetParameter("settings.model", "another unknown model")
    assert node.GetParameter("settings.model") == models[0] and "another unknown model" not in seen

    node.SetParameter("settings.model", models[1])
    scene.SetURL(str(tmp_path / "elsewhere.mrml"))
    assert scene.Import() == 1  # as File > Add Data does: into the open scene, onto its singleton
    assert node.GetParameter("settings.model") == models[0] and node.GetParameter("settings.device") == "cpu"
    assert "a model installed elsewhere" not in seen


def segment_centre_ras(segmentation, index: int) -> np.ndarray:
    """The centroid (RAS) of a segment's binary labelmap, placed by the labelmap's own geometry."""
    image = slicer.vtkOrientedImageData()
    segmentation.GetBinaryLabelmapRepresentation(segmentation.GetSegmentation().GetNthSegmentID(index), image)
    values = vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(image.GetDimensions()[::-1])
    label = segmentation.GetSegmentation().GetNthSegment(index).GetLabelValue()
    ijk = np.argwhere(values == label).mean(axis=0)[::-1] + np.array(image.GetExtent()[::2])
    to_world = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(to_world)
    return (slicer.util.arrayFromVTKMatrix(to_world) @ np.r_[ijk, 1.0])[:3]


def test_each_nodule_is_measured_segmented_and_plotted_in_both_scans(scene, case):
    (v0, v1), f0, f1, ras = case
    table = predict_scene(scene, v0, v1, f0, f1, device="cpu", attention=False, interval_days=365)
    rows = table_rows(table)
    for row in rows:  # spheres of 6 mm at T0 and 10 mm at T1, a year apart
        assert row["volume_t0_mm3"] == pytest.approx(np.pi / 6 * 6 ** 3, rel=0.15)
        assert row["volume_t1_mm3"] == pytest.approx(np.pi / 6 * 10 ** 3, rel=0.1)
        assert abs(row["diameter_mm"] - 10.0) <= 1.0 and row["type"] == "solid" and not row["measure_error"]
        assert row["growth_class"] == "VDT < 400 d" and 100 < row["vdt_days"] < 250 and row["lung_rads"] == "4B"
    outputs = [table.GetNthNodeReference(MEASURE_ROLE, i) for i in range(table.GetNumberOfNodeReferences(MEASURE_ROLE))]
    segmentations = [node for node in outputs if node.IsA("vtkMRMLSegmentationNode")]
    assert [node.GetName() for node in segmentations] == list(SEGMENTATION_NAMES)
    for segmentation in segmentations:
        names = [segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(3)]
        assert names == ["1", "2", "3"] and segmentation.GetSegmentation().GetNumberOfSegments() == 3
        for i, position in enumerate(ras):  # each segment sits on its nodule
            assert np.linalg.norm(segment_centre_ras(segmentation, i) - position) < 0.6
    chart = next(node for node in outputs if node.IsA("vtkMRMLPlotChartNode"))
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    volumes = next(node for node in outputs if node.IsA("vtkMRMLTableNode"))
    assert column(volumes, "days") == ["0", "365"] and len(column(volumes, "nodule 2")) == 2

    count = scene.GetNumberOfNodes()
    predict_scene(scene, v0, v1, f0, f1, device="cpu", attention=False, table=table)  # a rerun replaces them
    assert scene.GetNumberOfNodes() == count
    assert np.isnan(table_rows(table)[0]["vdt_days"])  # no interval: no VDT, the rest as before


def test_a_nodule_that_cannot_be_measured_keeps_its_prediction_and_says_why(scene, case):
    (v0, v1), f0, f1, ras = case
    f1.SetNthControlPointPosition(2, *(ras[2] + np.array([6.0, 6.0, 0.0])))  # off the nodule, on lung
    rows = table_rows(predict_scene(scene, v0, v1, f0, f1, device="cpu", attention=False))
    assert 0 <= rows[2]["p_malignant"] <= 1 and "only lung" in rows[2]["measure_error"]
    assert np.isnan(rows[2]["volume_t1_mm3"]) and rows[2]["lung_rads"] == ""
    assert not rows[0]["measure_error"]
