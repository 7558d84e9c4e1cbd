"""Static checks of the Slicer module (CSFNet.py, its .ui, packaging): the Slicer application cannot run here.

What these cannot check is run inside Slicer by `CSFNetTest` (see docs/development.md, "Tests that need Slicer").
"""

import ast
import json
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from CSFNetLib.clinical import FIELDS
from CSFNetLib.shipped_weights import read_manifest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "CSFNetModule"
UI = MODULE / "Resources" / "UI" / "CSFNet.ui"
INDEX_ENTRY = ROOT / "CSFNetExtension" / "CSFNet.json"
#: Slicer/ExtensionsIndex scripts/check_description_files.py ACCEPTED_EXTENSION_CATEGORIES (2026), in part
ACCEPTED_CATEGORIES = {"Analysis", "Chest Imaging Platform", "Quantification", "Registration", "Segmentation",
                       "Informatics", "Filtering", "Examples", "DICOM", "Nuclear Medicine"}
CODE = (MODULE / "CSFNet.py").read_text(encoding="utf-8")
TREE = ast.parse(CODE)
#: The widget class each kind of parameter binds to (Slicer's connectors match the exact type).
WIDGET_FOR = {"bool": {"QCheckBox", "ctkCheckBox"}, "Choice": {"QComboBox", "ctkComboBox"},
              "node": {"qMRMLNodeComboBox"}, "float": {"QDoubleSpinBox", "ctkDoubleSpinBox", "ctkSliderWidget"},
              "str": {"QLineEdit"}}
NODE_SELECTORS = {"qMRMLNodeComboBox", "qMRMLCheckableNodeComboBox"}


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
        kind = ("Choice" if "Choice(" in annotation else "node" if annotation.startswith("vtkMRML") else
                "float" if annotation.startswith(("float", "Annotated[float")) else annotation)
        assert widget.get("class") in WIDGET_FOR[kind], (name, widget.get("class"), annotation)
        if kind == "node":
            types = [s.text for s in widget.find("property[@name='nodeTypes']").iter("string")]
            assert types == [annotation], name


def test_every_parameter_shown_in_the_panel_is_bound_or_handled_in_code():
    bound = {name for _, name in bound_widgets()}
    parameters = {f"{field}.{member}" if annotation in PACKS else field
                  for field, annotation in WRAPPER.items()
                  for member in (PACKS[annotation] if annotation in PACKS else [None])}
    # set from the path widget, and the checkable list of later scans, in code (Slicer has no binding for them)
    assert parameters - bound == {"settings.checkpointPath", "laterVolumes"}
    assert "settings.checkpointPath" in CODE and "parameterNode.laterVolumes = " in CODE


def test_the_later_scans_list_holds_volumes_and_is_shown_from_the_parameter_node():
    assert WRAPPER["laterVolumes"] == "List[vtkMRMLScalarVolumeNode]"
    (selector,) = [w for w in ui_widgets() if w.get("name") == "laterVolumesSelector"]
    assert selector.get("class") == "qMRMLCheckableNodeComboBox"
    assert [s.text for s in selector.find("property[@name='nodeTypes']").iter("string")] == ["vtkMRMLScalarVolumeNode"]
    assert '"checkedNodesChanged()"' in CODE and "setCheckState(" in CODE


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
    selectors = {w.get("name") for w in root.iter("widget") if w.get("class") in NODE_SELECTORS}
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


def test_the_module_loads_without_torch_or_simpleitk():
    """What CSF-net.py imports at Slicer start-up (and the sample's name) must not import torch (the
    PyTorch extension installs it only at the first Apply) nor SimpleITK (start-up time)."""
    imports = [ast.unparse(n) for n in TREE.body if isinstance(n, ast.ImportFrom) and n.module.startswith("CSFNetLib")]
    assert len(imports) >= 5
    code = "; ".join(imports + ["from CSFNetLib.sample_data import NAME", "import sys",
                                "print(sorted({'torch', 'SimpleITK'} & set(sys.modules)))"])
    out = subprocess.run([sys.executable, "-c", code], cwd=MODULE, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def class_named(name: str) -> ast.ClassDef:
    return next(n for n in TREE.body if isinstance(n, ast.ClassDef) and n.name == name)


def test_the_logic_opens_no_dialogs_and_the_widget_takes_its_logic_and_torch_installer():
    """Asking the user is the panel's job (scripts and batch runs use the logic); tests give the panel stand-ins."""
    calls = {ast.unparse(n.func) for n in ast.walk(class_named("CSFNetLogic")) if isinstance(n, ast.Call)}
    assert calls and not [c for c in calls if c.endswith("Display") or "QMessageBox" in c or "Dialog" in c]
    init = next(n for n in class_named("CSFNetWidget").body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "parent", "logic", "torchInstaller", "showDialogs"]


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
    entry = json.loads(INDEX_ENTRY.read_text(encoding="utf-8"))
    allowed = {"$schema", "build_dependencies", "build_subdirectory", "category", "enabled", "scm_revision",
               "scm_type", "scm_url", "tier"}
    assert {"$schema", "category", "scm_url"} <= set(entry) <= allowed
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry.get("scm_type", "git") in ("git", "local") and entry["scm_url"].startswith("https://")
    assert "\r" not in INDEX_ENTRY.read_text(encoding="utf-8")  # the index refuses CR line endings


def test_the_extension_passes_the_index_s_name_category_and_contributor_checks():
    """Slicer/ExtensionsIndex scripts/check_description_files.py: the entry's file name is the extension's
    name, equals the CMake project(), does not start with "Slicer" (the repository's does), and the
    category is one the index accepts."""
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    project = re.search(r"project\s*\(\s*([^\s)]+)", cmake).group(1)
    entry = json.loads(INDEX_ENTRY.read_text(encoding="utf-8"))
    assert INDEX_ENTRY.stem == project and not project.lower().startswith("slicer")
    assert "slicer" in entry["scm_url"].rsplit("/", 1)[-1].lower()
    category = re.search(r'set\(EXTENSION_CATEGORY\s+"([^"]+)"\)', cmake).group(1)
    assert category == entry["category"] in ACCEPTED_CATEGORIES
    contributors = re.search(r'set\(EXTENSION_CONTRIBUTORS\s+"([^"]+)"\)', cmake).group(1)
    assert all(re.fullmatch(r"[^()]+ \([^()]+\)", c.strip()) for c in contributors.split(","))


def test_the_module_s_help_links_its_documentation_and_its_texts_are_translatable():
    module = class_named("CSFNet")
    init = ast.unparse(module)
    assert "helpText = _(" in init and "<a href" in init and "DOCUMENTATION" in CODE
    assert "title = _(" in init and "translate('qSlicerAbstractCoreModule', 'Quantification')" in init
    widget = ast.unparse(class_named("CSFNetWidget"))
    shown = re.findall(r"(?:statusLabel\.text|toolTip) = (.+)", widget)
    assert shown and all(line.startswith(("_(", "step", "text", "(_(")) for line in shown), shown


def test_the_in_slicer_test_runs_every_test_method_and_skips_without_torch():
    test_class = class_named("CSFNetTest")
    methods = {n.name: ast.unparse(n) for n in test_class.body if isinstance(n, ast.FunctionDef)}
    tests = [name for name in methods if name.startswith("test_")]
    assert len(tests) >= 4 and all(f"self.{name}" in methods["runTest"] for name in tests)
    assert "slicer.mrmlScene.Clear()" in methods["setUp"] and "self.skipTest(" in methods["_needTorch"]
    assert "except unittest.SkipTest" in methods["runTest"] and "self.tearDown()" in methods["runTest"]
    assert "installTorch" not in ast.unparse(test_class) and ".install()" not in ast.unparse(test_class)
