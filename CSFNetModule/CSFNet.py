"""CSF-net in 3D Slicer: is a lung nodule malignant, from a baseline and a follow-up CT and clinical data.

The Qt side only: the panel, its parameter node, torch installation, showing results. All the
work (geometry, model, results in the scene) is done by the Qt-free `CSFNetLib`.
"""

import logging
import os
import re
import time
from typing import Annotated, Callable, Dict, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper, parameterPack
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from CSFNetLib.clinical import FIELDS, NOT_GIVEN, choice_labels, record_from_choices
from CSFNetLib.errors import UsageError
from CSFNetLib.options import DEVICES, MINIMUM_TORCH, OUTPUT_ATTRIBUTE
from CSFNetLib.progress import Cancelled
from CSFNetLib.shipped_weights import model_entries
from CSFNetLib.version import __version__

BROWSE = "Browse for a checkpoint..."
DEMO_NOTE = ("The shipped model is a demo trained on synthetic phantoms, for demonstration and testing only: "
             "not for clinical use.")


def _shipped_models() -> Dict[str, str]:
    """Name -> note of each entry of the shipped model manifest."""
    try:
        return {entry["name"]: entry.get("note", "") for entry in model_entries()}
    except (OSError, ValueError, KeyError) as exc:  # an installation without its models
        logging.warning(f"CSF-net: no model manifest ({exc})")
        return {}


MODEL_NOTES = _shipped_models()
MODEL_NAMES = list(MODEL_NOTES) + [BROWSE]


def _versionTuple(version: str):
    """(major, minor) of a version string such as '2.5.1+cu121'."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


class CSFNet(ScriptedLoadableModule):
    """Module metadata, and the sample data registered at startup."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CSF-net"
        self.parent.categories = ["Chest Imaging"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerCSFNet developers"]
        self.parent.helpText = (
            "Predicts whether lung nodules are malignant from two CT scans of the same patient (a baseline "
            "and a follow-up) and the patient's clinical data (six NLST fields), with CSF-net: ResNet+CBAM "
            "spatial features, temporal residual fusion and cross-modal attention between imaging and "
            "clinical data. Mark each nodule in both scans, fill in what is known of the clinical data and "
            "press Apply: a table gives each nodule's probability of malignancy, and attention maps show "
            "where the network looked.<br><br><b>" + DEMO_NOTE + "</b><br><br>Version " + __version__ + "."
        )
        self.parent.acknowledgementText = (
            "CSF-net: Shen et al., 'CSF-Net: Cross-modal spatiotemporal fusion network for pulmonary nodule "
            "malignancy prediction', arXiv:2501.16400 (2025). Clinical fields follow the National Lung "
            "Screening Trial (NLST) data dictionary. This implementation is independent of the authors' code."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The synthetic baseline / follow-up pair, generated locally on first use (nothing is downloaded)."""
    import SampleData

    from CSFNetLib.sample_data import DESCRIPTION, NAME

    icons = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="CSF-net",
        sampleName=NAME,
        uris=NAME,  # never fetched: the custom downloader generates the pair
        fileNames=NAME + ".nrrd",
        nodeNames=NAME,
        thumbnailFileName=os.path.join(icons, "CSFNet.png"),
        customDownloader=lambda source: _loadSampleData(),
    )
    logging.info(f"CSF-net sample data: {DESCRIPTION}")


def _loadSampleData():
    """Sample Data's button for this entry (SampleData.downloadSample cannot generate it: use the logic)."""
    with slicer.util.tryWithErrorDisplay("The CSF-net sample pair could not be made.", waitCursor=True):
        CSFNetLogic().loadSampleData()


@parameterPack
class CSFNetClinical:
    """The six NLST clinical fields, as the labels shown in the panel."""

    race: Annotated[str, Choice(choice_labels("race"))] = NOT_GIVEN
    cigsmok: Annotated[str, Choice(choice_labels("cigsmok"))] = NOT_GIVEN
    gender: Annotated[str, Choice(choice_labels("gender"))] = NOT_GIVEN
    age: Annotated[str, Choice(choice_labels("age"))] = NOT_GIVEN
    scr_res0: Annotated[str, Choice(choice_labels("scr_res0"))] = NOT_GIVEN
    scr_iso0: Annotated[str, Choice(choice_labels("scr_iso0"))] = NOT_GIVEN


@parameterPack
class CSFNetSettings:
    """Which model runs where, and whether attention maps are made."""

    model: Annotated[str, Choice(MODEL_NAMES)] = MODEL_NAMES[0]
    checkpointPath: str = ""
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    showAttention: bool = True


@parameterNodeWrapper
class CSFNetParameterNode:
    """Everything the panel shows, saved with the scene."""

    baselineVolume: vtkMRMLScalarVolumeNode
    followupVolume: vtkMRMLScalarVolumeNode
    baselineFiducials: vtkMRMLMarkupsFiducialNode
    followupFiducials: vtkMRMLMarkupsFiducialNode
    clinical: CSFNetClinical
    settings: CSFNetSettings
    outputTable: vtkMRMLTableNode


class CSFNetWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs bound to the parameter node, Apply / Cancel, progress, results shown."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._running = False
        self._cancelRequested = False
        self._boundWidgets = {}  # SlicerParameterName -> widget
        self._pair = None  # while placing a nodule pair: (list expected next, label)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CSFNet.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.progressBar.hide()
        # connectParametersToGui rather than connectGui: on Slicer 5.8 connectGui returns no tag, so the
        # binding could never be undone and every re-entry would stack another one (resetting the combos)
        self._boundWidgets = {widget.property("SlicerParameterName"): widget
                              for widget in uiWidget.findChildren(qt.QWidget)
                              if widget.property("SlicerParameterName")}
        self.logic = CSFNetLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.placeNodulePairButton.connect("clicked(bool)", self.onPlaceNodulePair)
        self.ui.noduleComboBox.connect("currentIndexChanged(int)", self.onNoduleSelected)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.updateModelWidgets)
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onCheckpointPathChanged)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)

    def onSceneStartClose(self, caller, event):
        self._cancelRequested = self._running
        self._stopPairPlacement()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        """The scene's parameter node; unset volumes get the scene's first CT volumes not chosen already."""
        self.setParameterNode(self.logic.getParameterNode())
        node = self._parameterNode
        free = [v for v in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                if not v.IsA("vtkMRMLLabelMapVolumeNode") and not v.GetAttribute(OUTPUT_ATTRIBUTE)
                and v not in (node.baselineVolume, node.followupVolume)]
        for attribute in ("baselineVolume", "followupVolume"):
            if not getattr(node, attribute) and free:
                setattr(node, attribute, free.pop(0))

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(self._boundWidgets)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)
            self.updateApplyButton()
            self.updateModelWidgets()

    def updateApplyButton(self, caller=None, event=None):
        node = self._parameterNode
        if self._running:
            return
        ready = bool(node and node.baselineVolume and node.followupVolume and node.followupFiducials)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = ("Predict whether each nodule is malignant." if ready else
                                       "Select both scans and the nodules (at least the follow-up list).")

    def updateModelWidgets(self, index=None):
        browsing = self.ui.modelComboBox.currentText == BROWSE
        self.ui.checkpointPathLineEdit.enabled = browsing
        self.ui.checkpointPathLabel.enabled = browsing
        if self._parameterNode and browsing:
            self.ui.checkpointPathLineEdit.currentPath = self._parameterNode.settings.checkpointPath
        self.ui.modelNoteLabel.text = MODEL_NOTES.get(self.ui.modelComboBox.currentText, "")

    def onCheckpointPathChanged(self, path):
        if self._parameterNode:
            self._parameterNode.settings.checkpointPath = path

    def onPlaceNodulePair(self):
        """Place one point in the baseline list, then one in the follow-up list, with the same new label."""
        node = self._parameterNode
        self._stopPairPlacement()
        for attribute, name in (("baselineFiducials", "baseline nodules"), ("followupFiducials", "follow-up nodules")):
            if not getattr(node, attribute):
                setattr(node, attribute, slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name))
        lists = (node.baselineFiducials, node.followupFiducials)
        numbers = [int(fiducials.GetNthControlPointLabel(i)) for fiducials in lists
                   for i in range(fiducials.GetNumberOfControlPoints())
                   if re.fullmatch(r"\d+", fiducials.GetNthControlPointLabel(i))]
        label = str(max(numbers, default=0) + 1)
        for fiducials in lists:
            self.addObserver(fiducials, fiducials.PointPositionDefinedEvent, self.onPairPointPlaced)
        self._pair = (node.baselineFiducials, label)
        self._startPlacing(node.baselineFiducials, node.baselineVolume)
        self.ui.statusLabel.text = f"Click nodule {label} in the baseline scan."

    def onPairPointPlaced(self, caller, event):
        if self._pair is None or caller is not self._pair[0]:
            return  # a point placed some other way, or in the other list
        node = self._parameterNode
        fiducials, label = self._pair
        fiducials.SetNthControlPointLabel(fiducials.GetNumberOfControlPoints() - 1, label)
        if fiducials is node.baselineFiducials:
            self._pair = (node.followupFiducials, label)
            # after the markups widget has finished this placement (it ends place mode when it returns)
            qt.QTimer.singleShot(0, lambda: self._startPlacing(node.followupFiducials, node.followupVolume))
            self.ui.statusLabel.text = f"Now click nodule {label} in the follow-up scan."
        else:
            self._stopPairPlacement()
            self.ui.statusLabel.text = f"Nodule {label} placed in both scans."

    def _stopPairPlacement(self):
        if self._pair is None:
            return
        self._pair = None
        node = self._parameterNode
        for fiducials in (node.baselineFiducials, node.followupFiducials) if node else ():
            if fiducials and self.hasObserver(fiducials, fiducials.PointPositionDefinedEvent, self.onPairPointPlaced):
                self.removeObserver(fiducials, fiducials.PointPositionDefinedEvent, self.onPairPointPlaced)

    def _startPlacing(self, fiducials, volume):
        if volume:
            slicer.util.setSliceViewerLayers(background=volume, fit=True)
        markupsLogic = slicer.modules.markups.logic()
        markupsLogic.SetActiveList(fiducials)
        markupsLogic.StartPlaceMode(False)  # one point, then back to the usual mouse mode

    def onApplyButton(self):
        """Apply, or Cancel while running (the run stops at its next step and the scene stays as it was)."""
        if self._running:
            self._cancelRequested = True
            self.ui.statusLabel.text = "Cancelling at the next step..."
            return
        with slicer.util.tryWithErrorDisplay("PyTorch could not be installed."):
            if not self.logic.ensureTorch():
                self.ui.statusLabel.text = f"CSF-net needs PyTorch (version {MINIMUM_TORCH} or later)."
                return
        samePosition = not self._parameterNode.baselineFiducials
        if samePosition and not slicer.util.confirmOkCancelDisplay(
                "There is no baseline nodule list. Use each follow-up point at the same physical position in "
                "the baseline scan? (Right only when the two scans are registered.)"):
            return
        self._running, self._cancelRequested = True, False
        self._setInputsEnabled(False)
        self.ui.applyButton.text = "Cancel"
        self.ui.progressBar.show()
        started = time.perf_counter()
        try:
            with slicer.util.tryWithErrorDisplay("CSF-net could not run."):
                try:
                    table = self.logic.process(self._parameterNode, self.onProgress, samePosition)
                except Cancelled:
                    self.ui.statusLabel.text = "Cancelled: the scene is as it was."
                    return
                self._parameterNode.outputTable = table
                self.showResults(table)
                rows = self.logic.tableRows(table)
                self.ui.statusLabel.text = (f"{len(rows)} nodule(s) on {rows[0]['device']} in "
                                            f"{time.perf_counter() - started:.1f} s. {rows[0]['model_note']}")
        finally:
            self._running = False
            self._setInputsEnabled(True)
            self.ui.applyButton.text = "Apply"
            self.ui.progressBar.hide()
            self.updateApplyButton()

    def _setInputsEnabled(self, enabled: bool):
        """Inputs are locked during a run; only Cancel stays live."""
        for section in (self.ui.inputsCollapsibleButton, self.ui.clinicalCollapsibleButton,
                        self.ui.modelCollapsibleButton, self.ui.outputsCollapsibleButton):
            section.enabled = enabled

    def onProgress(self, step, fraction):
        """Show the step, let Qt handle clicks (Cancel) and repaint, then stop if cancelled."""
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = step
        slicer.app.processEvents()
        if self._cancelRequested:
            raise Cancelled()

    def showResults(self, table):
        nodules = [row["nodule"] for row in self.logic.tableRows(table)]
        self.ui.noduleComboBox.blockSignals(True)
        self.ui.noduleComboBox.clear()
        for nodule in nodules:
            self.ui.noduleComboBox.addItem(nodule)
        self.ui.noduleComboBox.blockSignals(False)
        self.logic.showTable(table)
        if nodules:
            self.onNoduleSelected(0)

    def onNoduleSelected(self, index):
        node = self._parameterNode
        if index < 0 or not node or not node.outputTable:
            return
        self.logic.showNodule(node.outputTable, self.ui.noduleComboBox.itemText(index), node.followupVolume,
                              node.settings.showAttention)


def _panelOption(option: str) -> str:
    """How the panel names a library option in an error message."""
    return {"device": "the Device setting (Model section)"}.get(option, option)


class CSFNetLogic(ScriptedLoadableModuleLogic):
    """Drives CSFNetLib from the panel; adds only what needs the Slicer application (torch, views).

    It keeps the models it loaded (`predictors`) for the next Apply; a checkpoint file that changed
    since is loaded again.
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._predictors = None  # a CSFNetLib.inference.PredictorCache, made at the first run (it needs torch)

    def getParameterNode(self) -> "CSFNetParameterNode":
        node = super().getParameterNode()
        if node.GetParameter("settings.model") not in ("", *MODEL_NAMES):  # a model no longer installed
            node.SetParameter("settings.model", MODEL_NAMES[0])
        return CSFNetParameterNode(node)

    def ensureTorch(self, askConfirmation: bool = True) -> bool:
        """torch from the PyTorch extension (installed after asking, never on import); True when usable."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            slicer.util.errorDisplay("CSF-net needs the PyTorch extension: install 'PyTorch' from the "
                                     "Extensions Manager and restart Slicer.")
            return False
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if not torchLogic.torchInstalled():
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                    "CSF-net needs PyTorch, which is not installed yet. Install it now? This can take several "
                    "minutes and download a few GB (a build that matches this computer's GPU, if it has one)."):
                return False
            if torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=f">={MINIMUM_TORCH}") is None:
                return False
        import torch

        if _versionTuple(torch.__version__) < _versionTuple(MINIMUM_TORCH):
            slicer.util.errorDisplay(f"CSF-net needs PyTorch {MINIMUM_TORCH} or later; this Slicer has "
                                     f"{torch.__version__}. Update it in the PyTorch Utils module.")
            return False
        return True

    def process(self, parameterNode: "CSFNetParameterNode", progress: Optional[Callable[[str, float], None]] = None,
                samePosition: bool = False) -> "vtkMRMLTableNode":
        """Run CSF-net on the panel's inputs; returns the results table node.

        Without a baseline list, the follow-up points are used at the same position in the baseline
        scan only when `samePosition` says so.
        """
        from CSFNetLib.inference import PredictorCache
        from CSFNetLib.scene.logic import predict_scene

        if self._predictors is None:
            self._predictors = PredictorCache()

        settings = parameterNode.settings
        checkpoint = settings.checkpointPath if settings.model == BROWSE else self.modelPath(settings.model)
        if not checkpoint:
            raise ValueError("Choose a checkpoint file, or one of the shipped models.")
        clinical = record_from_choices({field: getattr(parameterNode.clinical, field) for field in FIELDS})
        try:
            return predict_scene(
                slicer.mrmlScene, parameterNode.baselineVolume, parameterNode.followupVolume,
                parameterNode.baselineFiducials, parameterNode.followupFiducials, clinical=clinical,
                checkpoint=checkpoint, device=settings.device, attention=settings.showAttention,
                same_position=samePosition, table=parameterNode.outputTable, progress=progress,
                predictors=self._predictors)
        except UsageError as error:
            raise ValueError(error.worded(_panelOption)) from error

    @staticmethod
    def modelPath(name: str) -> str:
        from CSFNetLib.shipped_weights import model_path

        return str(model_path(name))

    @staticmethod
    def tableRows(table: "vtkMRMLTableNode"):
        from CSFNetLib.scene.logic import table_rows

        return table_rows(table)

    def loadSampleData(self):
        """The synthetic pair with its nodule marked in both scans, generated once into Slicer's cache."""
        from CSFNetLib.clinical import choices_from_record
        from CSFNetLib.scene.sample import load_sample_pair

        nodes = load_sample_pair(slicer.mrmlScene, os.path.join(slicer.app.cachePath, "CSFNet"))
        parameterNode = self.getParameterNode()
        parameterNode.baselineVolume, parameterNode.followupVolume = nodes.baseline_volume, nodes.followup_volume
        parameterNode.baselineFiducials = nodes.baseline_fiducials
        parameterNode.followupFiducials = nodes.followup_fiducials
        for field, label in choices_from_record(nodes.clinical).items():
            setattr(parameterNode.clinical, field, label)
        slicer.util.setSliceViewerLayers(background=nodes.followup_volume, fit=True)
        return nodes

    @staticmethod
    def showTable(table: "vtkMRMLTableNode") -> None:
        """A layout with a table view, showing the results table."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # no main window (batch)
            return
        layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    @staticmethod
    def showNodule(table: "vtkMRMLTableNode", nodule: str, followupVolume: "vtkMRMLScalarVolumeNode",
                   showAttention: bool = True) -> None:
        """The nodule's attention labels over the follow-up scan, the slice views centred on it."""
        from CSFNetLib.scene.logic import nodule_attention

        try:
            heat, labels = nodule_attention(table, nodule, "T1")
        except ValueError:  # run without attention maps
            heat, labels = None, None
        slicer.util.setSliceViewerLayers(background=followupVolume,
                                         label=labels if (labels and showAttention) else None, labelOpacity=0.6)
        if heat is not None:
            bounds = [0.0] * 6
            heat.GetRASBounds(bounds)
            centre = [(bounds[2 * i] + bounds[2 * i + 1]) / 2.0 for i in range(3)]
            slicer.modules.markups.logic().JumpSlicesToLocation(centre[0], centre[1], centre[2], True)


class CSFNetTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: sample data through the logic on the CPU with the demo weights."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SamplePairGivesATableAndAttentionMaps()

    def test_SamplePairGivesATableAndAttentionMaps(self):
        self.delayDisplay("Generating (first time) and loading the sample pair")
        logic = CSFNetLogic()
        self.assertTrue(logic.ensureTorch(askConfirmation=False))
        nodes = logic.loadSampleData()
        parameterNode = logic.getParameterNode()
        parameterNode.settings.device = "cpu"
        parameterNode.settings.model = MODEL_NAMES[0]
        steps = []
        table = logic.process(parameterNode, progress=lambda step, fraction: steps.append(step))
        self.assertGreater(len(steps), 3)

        self.delayDisplay("Checking the table and the attention maps")
        rows = logic.tableRows(table)
        self.assertEqual([row["nodule"] for row in rows], ["1"])
        self.assertTrue(0.0 <= rows[0]["p_malignant"] <= 1.0)
        self.assertIn("synthetic phantoms", rows[0]["model_note"])
        from CSFNetLib.scene.logic import nodule_attention

        heat, labels = nodule_attention(table, "1", "T1")
        values = set(slicer.util.arrayFromVolume(labels).ravel().tolist())
        self.assertEqual(values, {0, 1, 2, 3})
        bounds = [0.0] * 6
        heat.GetRASBounds(bounds)
        position = [0.0, 0.0, 0.0]
        nodes.followup_fiducials.GetNthControlPointPositionWorld(0, position)
        for axis in range(3):
            self.assertAlmostEqual((bounds[2 * axis] + bounds[2 * axis + 1]) / 2.0, position[axis], delta=0.5)
        logic.showTable(table)
        logic.showNodule(table, "1", nodes.followup_volume)
        self.delayDisplay("Test passed")
