"""Render the module panel's .ui to a PNG without Slicer (a documentation tool, not part of the package).

    pip install PySide6-Essentials && python docs/render_panel.py docs/panel.png

Slicer's own widgets are not available outside Slicer, so each is drawn as the closest Qt widget:
ctkCollapsibleButton as a group box, qMRMLNodeComboBox (and its checkable kind) as a combo box holding an
example node name,
ctkPathLineEdit as a line edit. Combo boxes are filled the way the parameter node fills them (the
clinical choices, the model manifest, the devices). The layout, texts, order and sizes are the .ui's;
Slicer's style, icons and the node selectors' extra buttons are not shown.
"""

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLabel, QLineEdit, QPushButton

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CSFNetModule"))

from CSFNetLib.clinical import FIELDS, choice_labels  # noqa: E402
from CSFNetLib.options import DEVICES  # noqa: E402
from CSFNetLib.shipped_weights import model_entries  # noqa: E402

STAND_INS = {"ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox",
             "qMRMLCheckableNodeComboBox": "QComboBox", "ctkPathLineEdit": "QLineEdit", "qMRMLWidget": "QWidget"}
EXAMPLE_NODES = {"baselineVolumeSelector": "baseline CT", "followupVolumeSelector": "follow-up CT",
                 "baselineFiducialsSelector": "baseline nodules", "followupFiducialsSelector": "follow-up nodules",
                 "laterVolumesSelector": "CT T2", "outputTableSelector": "CSF-net results"}
COMBO_FOR_FIELD = {"race": "raceComboBox", "cigsmok": "cigsmokComboBox", "gender": "genderComboBox",
                   "age": "ageComboBox", "scr_res0": "scrRes0ComboBox", "scr_iso0": "scrIso0ComboBox"}


def stand_in_ui(path: Path) -> bytes:
    """The .ui with Slicer's widget classes replaced by plain Qt ones."""
    root = ElementTree.parse(path).getroot()
    for widget in root.iter("widget"):
        original = widget.get("class")
        if original in STAND_INS:
            widget.set("class", STAND_INS[original])
            if original == "ctkCollapsibleButton":
                for prop in widget.findall("property[@name='text']"):
                    prop.set("name", "title")
            for prop in widget.findall("property"):  # Slicer widgets' own properties
                if prop.get("name") in ("filters", "nameFilters", "nodeTypes", "showChildNodeTypes", "addEnabled",
                                        "removeEnabled", "editEnabled", "noneEnabled"):
                    widget.remove(prop)
    for section in ("customwidgets", "connections"):
        for element in root.findall(section):
            root.remove(element)
    return ElementTree.tostring(root, encoding="utf-8")


def main(out: str) -> int:
    app = QApplication(["render_panel", "-platform", "offscreen"])
    buffer = QBuffer()
    buffer.setData(QByteArray(stand_in_ui(ROOT / "CSFNetModule" / "Resources" / "UI" / "CSFNet.ui")))
    buffer.open(QIODevice.ReadOnly)
    panel = QUiLoader().load(buffer)
    combos = {combo.objectName(): combo for combo in panel.findChildren(QComboBox)}
    for name, node in EXAMPLE_NODES.items():
        combos[name].addItem(node)
    picked = {"cigsmok": "Current smoker", "gender": "Female", "age": "63 years"}
    for field in FIELDS:
        combo = combos[COMBO_FOR_FIELD[field]]
        combo.addItems(choice_labels(field))
        combo.setCurrentText(picked.get(field, choice_labels(field)[0]))
    combos["modelComboBox"].addItems([entry["name"] for entry in model_entries()] + ["Browse for a checkpoint..."])
    combos["deviceComboBox"].addItems(list(DEVICES))
    combos["noduleComboBox"].addItem("1")
    entries = model_entries()
    panel.findChild(QLabel, "modelNoteLabel").setText(entries[0].get("note", ""))
    panel.findChild(QLabel, "statusLabel").setText("(after a run: the number of nodules, the device used and the time)")
    # the state connectGui and the widget give it: parameter defaults, inputs chosen so Apply is enabled
    panel.findChild(QCheckBox, "showAttentionCheckBox").setChecked(True)
    panel.findChild(QLineEdit, "checkpointPathLineEdit").setEnabled(False)
    panel.findChild(QLabel, "checkpointPathLabel").setEnabled(False)
    panel.findChild(QPushButton, "applyButton").setEnabled(True)
    panel.resize(440, panel.sizeHint().height())
    panel.grab().save(out)
    print(f"wrote {out} ({panel.width()} x {panel.height()})")
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "panel.png"))
