"""Static checks of the Slicer module (CSFNet.py, its .ui, packaging): the Slicer application cannot run here.

What these cannot check is run inside Slicer by `CSFNetTest` (see the README).
"""

import ast
import json
import re
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from CSFNetLib.clinical import FIELDS
from CSFNetLib.shipped_weights import read_manifest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "CSFNetModule"
UI = MODULE / "Resources" / "UI" / "CSFNet.ui"
CODE = (MODULE / "CSFNet.py").read_text(encoding="utf-8")
TREE = ast.parse(CODE)
#: The widget class each kind of parameter binds to (Slicer's connectors match the exact type).
WIDGET_FOR = {"bool": {"QCheckBox", "ctkCheckBox"}, "Choice": {"QComboBox", "ctkComboBox"},
              "node": {"qMRMLNodeComboBox"}}


def decorated_classes(decorator: str):
    """{class name: {field: annotation source}} of the classes carrying `decorator`."""
    found = {}
    for node in TREE.body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(d) == decorator for d in node.decorator_list):
            found[node.name] = {item.target.id: ast.unparse(item.annotation)
                                for item in node.body if isinstance(item, ast.AnnAssign)}
    return found


PACKS = decorated_classes("parameterPack")
(WRAPPER,) = decorated_classes("parameterNodeWrapper").values()


def field_annotation(name: str) -> str:
    """The annotation of a parameter, `pack.member` names included; KeyError when there is none."""
    head, _, rest = name.partition(".")
    annotation = WRAPPER[head]
    return PACKS[annotation][rest] if rest else annotation


def ui_widgets():
    return ElementTree.parse(UI).getroot().iter("widget")


def bound_widgets():
    for widget in ui_widgets():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                yield widget, prop.find("string").text


def test_every_bound_widget_names_a_parameter_of_the_right_kind():
    bound = list(bound_widgets())
    assert bound
    for widget, name in bound:
        annotation = field_annotation(name)
        kind = "Choice" if "Choice(" in annotation else "node" if annotation.startswith("vtkMRML") else annotation
        assert widget.get("class") in WIDGET_FOR[kind], (name, widget.get("class"), annotation)
        if kind == "node":
            types = [s.text for s in widget.find("property[@name='nodeTypes']").iter("string")]
            assert types == [annotation], name


def test_every_parameter_shown_in_the_panel_is_bound_or_handled_in_code():
    bound = {name for _, name in bound_widgets()}
    parameters = {f"{field}.{member}" if annotation in PACKS else field
                  for field, annotation in WRAPPER.items()
                  for member in (PACKS[annotation] if annotation in PACKS else [None])}
    assert parameters - bound == {"settings.checkpointPath"}  # set from the path widget in code
    assert "settings.checkpointPath" in CODE


def test_bindings_can_be_undone_on_slicer_5_8():
    """connectGui returns no tag on 5.8, so its bindings pile up on re-entry and reset the combo boxes."""
    assert "connectParametersToGui(" in CODE and ".connectGui(" not in CODE


def test_the_clinical_pack_holds_exactly_the_model_s_fields():
    assert list(PACKS[WRAPPER["clinical"]]) == list(FIELDS)


def test_every_widget_the_code_uses_exists_in_the_ui():
    names = {w.get("name") for w in ui_widgets()}
    used = set(re.findall(r"self\.ui\.(\w+)", CODE))
    assert used and used - names == set()


def test_the_ui_connects_every_node_selector_to_the_scene():
    root = ElementTree.parse(UI).getroot()
    selectors = {w.get("name") for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    connected = {c.find("receiver").text for c in root.iter("connection")
                 if c.find("signal").text == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert selectors and selectors == connected


def test_the_module_has_the_four_classes_slicer_expects():
    classes = {node.name: [ast.unparse(b) for b in node.bases] for node in TREE.body if isinstance(node, ast.ClassDef)}
    assert classes["CSFNet"] == ["ScriptedLoadableModule"]
    assert classes["CSFNetWidget"][0] == "ScriptedLoadableModuleWidget"
    assert classes["CSFNetLogic"] == ["ScriptedLoadableModuleLogic"]
    assert classes["CSFNetTest"] == ["ScriptedLoadableModuleTest"]
    assert "synthetic phantoms" in CODE and "2501.16400" in CODE  # help text and acknowledgement


def test_torch_is_never_imported_when_the_module_loads():
    """Module level and class bodies import only what Slicer has before the PyTorch extension runs."""
    top_imports = [ast.unparse(n) for n in TREE.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [line for line in top_imports if "torch" in line or "CSFNetLib.scene.logic" in line]
    assert "installTorch(" in CODE and "confirmOkCancelDisplay" in CODE


def listed(cmake: Path, variable: str):
    block = re.search(rf"set\({variable}\s+(.*?)\)", cmake.read_text(encoding="utf-8"), re.S).group(1)
    return {token.replace("${MODULE_NAME}", "CSFNet").replace("${LIB_NAME}", "CSFNetLib") for token in block.split()}


def test_the_module_cmake_lists_every_file_it_must_install():
    cmake = MODULE / "CMakeLists.txt"
    scripts = {p.relative_to(MODULE).as_posix() for p in MODULE.rglob("*.py")}
    assert listed(cmake, "MODULE_PYTHON_SCRIPTS") == scripts
    resources = {p.relative_to(MODULE).as_posix() for p in (MODULE / "Resources").rglob("*") if p.is_file()}
    assert listed(cmake, "MODULE_PYTHON_RESOURCES") == resources
    models = {entry["file"] for entry in read_manifest(ROOT / "Resources" / "models")["models"]}
    assert listed(cmake, "MODULE_MODEL_FILES") == models | {"manifest.json", "quality.json"}
    assert "WITH_GENERIC_TESTS" in cmake.read_text(encoding="utf-8")


def test_the_extension_metadata_is_complete():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf"set\(EXTENSION_{key}\s+\S", cmake), key
    assert "synthetic phantoms" in cmake
    assert (ROOT / "LICENSE.txt").is_file()
    for icon in (ROOT / "Resources" / "Icons" / "CSFNet.png", MODULE / "Resources" / "Icons" / "CSFNet.png"):
        header = icon.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (128, 128)


def test_the_extensions_index_entry_follows_its_schema():
    """slicer-extension-catalog-entry v1.0.1: required $schema, category, scm_url; nothing unknown."""
    entry = json.loads((ROOT / "CSFNetExtension" / "SlicerCSFNet.json").read_text(encoding="utf-8"))
    allowed = {"$schema", "build_dependencies", "build_subdirectory", "category", "enabled", "scm_revision",
               "scm_type", "scm_url", "tier"}
    assert {"$schema", "category", "scm_url"} <= set(entry) <= allowed
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry.get("scm_type", "git") in ("git", "local") and entry["scm_url"].startswith("https://")


@pytest.mark.parametrize("name", ["test_SamplePairGivesATableAndAttentionMaps"])
def test_the_in_slicer_test_runs_every_test_method(name):
    test_class = next(n for n in TREE.body if isinstance(n, ast.ClassDef) and n.name == "CSFNetTest")
    methods = {n.name: ast.unparse(n) for n in test_class.body if isinstance(n, ast.FunctionDef)}
    assert name in methods and f"self.{name}()" in methods["runTest"] and "slicer.mrmlScene.Clear()" in methods["setUp"]
