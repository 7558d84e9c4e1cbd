"""CSF-net in 3D Slicer: is a lung nodule malignant, from a baseline and a follow-up CT and clinical data.

The Qt side only: the panel, its parameter node, asking before torch is installed, showing results.
All the work (geometry, model, results in the scene) is done by the Qt-free `CSFNetLib`; this file
imports only its torch-free, SimpleITK-free parts at Slicer start-up.
"""

import logging
import os
import re
import sys
import time
import traceback
import unittest
from typing import Annotated, Callable, Dict, List, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper, parameterPack
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from CSFNetLib.clinical import FIELDS, NOT_GIVEN, choice_labels, record_from_choices
from CSFNetLib.errors import UsageError
from CSFNetLib.options import ATTENTION_METHODS, DEFAULT_ATTENTION_METHOD, DEVICES
from CSFNetLib.progress import Cancelled
from CSFNetLib.shipped_weights import model_entries
from CSFNetLib.torch_setup import TorchInstaller
from CSFNetLib.version import __version__

DOCUMENTATION = "https://github.com/SlicerCSFNet/SlicerCSFNet#readme"
BROWSE = "Browse for a checkpoint..."  # stored in the parameter node, so not translated


def _shipped_models() -> Dict[str, str]:
    """Name -> note of each entry of the shipped model manifest."""
    try:
        return {entry["name"]: entry.get("note", "") for entry in model_entries()}
    except (OSError, ValueError, KeyError) as exc:  # an installation without its models
        logging.warning(f"CSF-net: no model manifest ({exc})")
        return {}


MODEL_NOTES = _shipped_models()
MODEL_NAMES = list(MODEL_NOTES) + [BROWSE]


class CSFNet(ScriptedLoadableModule):
    """Module metadata, and the sample data registered at startup."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CSF-net")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerCSFNet developers (SlicerCSFNet project)"]
        self.parent.helpText = _(
            "Predicts whether lung nodules are malignant from two CT scans of the same patient (a baseline "
            "and a follow-up) and the patient's clinical data (six NLST fields), with CSF-net: ResNet+CBAM "
            "spatial features, temporal residual fusion and cross-modal attention between imaging and "
            "clinical data. Mark each nodule in both scans, fill in what is known of the clinical data and "
            "press Apply: a table gives each nodule's probability of malignancy, and attention maps show "
            "where the network looked.<br><br><b>The shipped model is a demo trained on synthetic phantoms, "
            "for demonstration and testing only: not for clinical use.</b><br><br>"
            "See the {link_start}documentation{link_end} for use from scripts and batch runs. Version {version}."
        ).format(link_start=f'<a href="{DOCUMENTATION}">', link_end="</a>", version=__version__)
        self.parent.acknowledgementText = _(
            "CSF-net: Shen et al., 'CSF-Net: Cross-modal spatiotemporal fusion network for pulmonary nodule "
            "malignancy prediction', arXiv:2501.16400 (2025). Clinical fields follow the National Lung "
            "Screening Trial (NLST) data dictionary. This implementation is independent of the authors' code."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The synthetic baseline / follow-up pair, generated locally on first use (nothing is downloaded)."""
    import SampleData

    from CSFNetLib.sample_data import NAME  # the name only: no SimpleITK at every start-up

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=_("CSF-net"),
        sampleName=NAME,
        uris=NAME,  # never fetched: the custom downloader generates the pair
        fileNames=NAME + ".nrrd",
        nodeNames=NAME,
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "CSFNet.png"),
        customDownloader=lambda source: _loadSampleData(),
    )


def _loadSampleData():
    """Sample Data's button for this entry. From scripts use `CSFNetLogic().loadSampleData()`:
    `SampleDataLogic().downloadSamples` ignores custom downloaders."""
    with slicer.util.tryWithErrorDisplay(_("The CSF-net sample pair could not be made."), waitCursor=True):
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
    attentionMethod: Annotated[str, Choice(list(ATTENTION_METHODS))] = DEFAULT_ATTENTION_METHOD
    intervalDays: Annotated[float, WithinRange(0.0, 10000.0)] = 0.0  # 0: unknown
    laterDays: str = ""  # the later scans' days since the baseline, "730, 1095"; empty: DICOM dates or unknown


@parameterNodeWrapper
class CSFNetParameterNode:
    """Everything the panel shows, saved with the scene."""

    baselineVolume: vtkMRMLScalarVolumeNode
    followupVolume: vtkMRMLScalarVolumeNode
    baselineFiducials: vtkMRMLMarkupsFiducialNode
    followupFiducials: vtkMRMLMarkupsFiducialNode
    laterVolumes: List[vtkMRMLScalarVolumeNode]  # T2, T3, ...: a whole history (their lists hang on them)
    clinical: CSFNetClinical
    settings: CSFNetSettings
    outputTable: vtkMRMLTableNode


class CSFNetWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs bound to the parameter node, Apply / Cancel, progress, results shown.

    `logic` and `torchInstaller` can be stand-ins (tests); `showDialogs=False` answers every question with
    OK and shows errors only in the status line. Without `parent` the panel is a stand-alone window.
    """

    def __init__(self, parent=None, logic=None, torchInstaller=None, showDialogs: bool = True):
        # set before the base class runs: without a parent it calls setup() at once
        self.logic = logic
        self.torchInstaller = torchInstaller
        self.showDialogs = showDialogs
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedTable = None
        self._running = False
        self._cancelRequested = False
        self._boundWidgets = {}  # SlicerParameterName -> widget
        self._pair = None  # while placing a nodule pair: (list expected next, label, lists observed, baseline next)
        ScriptedLoadableModuleWidget.__init__(self, parent)  # also VTKObservationMixin's (cooperative super)

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
        if self.logic is None:
            self.logic = CSFNetLogic()
        if self.torchInstaller is None:
            self.torchInstaller = TorchInstaller()

        scene = slicer.mrmlScene
        self.addObserver(scene, scene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(scene, scene.EndCloseEvent, self.onSceneEndCloseOrImport)
        self.addObserver(scene, scene.EndImportEvent, self.onSceneEndCloseOrImport)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.placeNodulePairButton.connect("clicked(bool)", self.onPlaceNodulePair)
        self.ui.findInOtherScanButton.connect("clicked(bool)", self.onFindInOtherScan)
        self.ui.patientScansButton.connect("clicked(bool)", self.onTakePatientScans)
        self.ui.saveReportButton.connect("clicked(bool)", self.onSaveReport)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.laterVolumesSelector.connect("checkedNodesChanged()", self.onLaterVolumesChecked)
        self.ui.noduleComboBox.connect("currentIndexChanged(int)", self.onNoduleSelected)
        self.ui.showAttentionCheckBox.connect("toggled(bool)", self.onShowAttentionToggled)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.updateModelWidgets)
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onCheckpointPathChanged)
        self.initializeParameterNode()

    def cleanup(self):
        self._stopPairPlacement()
        self.setParameterNode(None)
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self._stopPairPlacement()
        self._stopObservingParameterNode()

    def onReload(self):
        """Reload the library too: "Reload and Test" then runs the edited CSFNetLib, not the one first imported."""
        self.logic.releaseParameterNode()
        for name in [name for name in sys.modules if name == "CSFNetLib" or name.startswith("CSFNetLib.")]:
            del sys.modules[name]  # CSFNet.py, executed again by the reload, imports it afresh
        ScriptedLoadableModuleWidget.onReload(self)

    def _isEntered(self) -> bool:
        return getattr(self.parent, "isEntered", True)  # a stand-alone panel (no module) is always shown

    def onSceneStartClose(self, caller, event):
        # the singleton parameter node outlives the close (emptied, then given its defaults): stay bound to it
        self._cancelRequested = self._running
        self._stopPairPlacement()
        self._stopObservingParameterNode()

    def onSceneEndCloseOrImport(self, caller, event):
        if self._isEntered():
            self.initializeParameterNode()

    def initializeParameterNode(self):
        """The scene's parameter node; unset volumes get the scene's first CT volumes not chosen already."""
        from CSFNetLib.scene.nodes import ct_volume_nodes

        self.setParameterNode(self.logic.getParameterNode())
        node = self._parameterNode
        free = [v for v in ct_volume_nodes(slicer.mrmlScene) if v not in (node.baselineVolume, node.followupVolume)]
        for attribute in ("baselineVolume", "followupVolume"):
            if not getattr(node, attribute) and free:
                setattr(node, attribute, free.pop(0))
        self._hideOutputVolumes()

    def setParameterNode(self, inputParameterNode):
        """Show and follow `inputParameterNode` (None: nothing).

        The widgets are bound once per wrapper and stay bound while the module is left: every
        `connectParametersToGui` adds an observer to the node that `disconnectGui` does not remove.
        """
        if inputParameterNode is not self._parameterNode:
            self._stopObservingParameterNode()
            if self._parameterNode and self._parameterNodeGuiTag is not None:
                self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNode = inputParameterNode
            self._parameterNodeGuiTag = (inputParameterNode.connectParametersToGui(self._boundWidgets)
                                         if inputParameterNode else None)
        node = self._parameterNode
        if node and not self.hasObserver(node, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified):
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def _stopObservingParameterNode(self):
        """Stop following the parameter node and the results table (leaving the module, another node)."""
        node = self._parameterNode
        if node and self.hasObserver(node, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified):
            self.removeObserver(node, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._observeTable(None)

    def onParameterNodeModified(self, caller=None, event=None):
        self.updateApplyButton()
        self.updateModelWidgets()
        self._refreshNoduleChooser()
        self._showLaterVolumes()

    def onLaterVolumesChecked(self):
        if self._parameterNode:
            self._parameterNode.laterVolumes = list(self.ui.laterVolumesSelector.checkedNodes())

    def _showLaterVolumes(self):
        """The later-scans list checks what the parameter node holds (no binding exists for a checkable list)."""
        node = self._parameterNode
        chosen = {volume.GetID() for volume in node.laterVolumes if volume is not None} if node else set()
        selector = self.ui.laterVolumesSelector
        selector.blockSignals(True)
        try:
            for index in range(selector.nodeCount()):
                volume = selector.nodeFromIndex(index)
                state = qt.Qt.Checked if volume.GetID() in chosen else qt.Qt.Unchecked
                if selector.checkState(volume) != state:
                    selector.setCheckState(volume, state)
        finally:
            selector.blockSignals(False)

    def updateApplyButton(self):
        node = self._parameterNode
        if self._running:
            return
        ready = bool(node and node.baselineVolume and node.followupVolume and node.followupFiducials)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = (_("Predict whether each nodule is malignant.") if ready else
                                       _("Select both scans and the nodules (at least the follow-up list)."))

    def updateModelWidgets(self, index=None):
        browsing = self.ui.modelComboBox.currentText == BROWSE
        self.ui.checkpointPathLineEdit.enabled = browsing
        self.ui.checkpointPathLabel.enabled = browsing
        path = self._parameterNode.settings.checkpointPath if self._parameterNode else ""
        if browsing and self.ui.checkpointPathLineEdit.currentPath != path:
            self.ui.checkpointPathLineEdit.currentPath = path
        self.ui.modelNoteLabel.text = MODEL_NOTES.get(self.ui.modelComboBox.currentText, "")

    def onCheckpointPathChanged(self, path):
        if self._parameterNode:
            self._parameterNode.settings.checkpointPath = path

    def _hideOutputVolumes(self):
        """CSF-net's own volumes (attention heat maps) are no CT: keep them out of the scan selectors."""
        from CSFNetLib.scene.nodes import output_node_ids

        hidden = output_node_ids(slicer.mrmlScene, "vtkMRMLScalarVolumeNode")
        for selector in (self.ui.baselineVolumeSelector, self.ui.followupVolumeSelector, self.ui.laterVolumesSelector):
            selector.sortFilterProxyModel().hiddenNodeIDs = hidden

    def _observeTable(self, table):
        """Follow the results table's changes (a rerun, an edit), so that the nodule chooser follows them."""
        if table is self._observedTable:
            return
        if self._observedTable is not None:
            self.removeObserver(self._observedTable, vtk.vtkCommand.ModifiedEvent, self.onTableModified)
        self._observedTable = table
        if table is not None:
            self.addObserver(table, vtk.vtkCommand.ModifiedEvent, self.onTableModified)

    def onTableModified(self, caller=None, event=None):
        self._refreshNoduleChooser()

    def _refreshNoduleChooser(self):
        """The chooser lists the results table's nodules: after a run, on entering, on loading a scene."""
        from CSFNetLib.scene.results_table import table_nodules

        table = self._parameterNode.outputTable if self._parameterNode else None
        self._observeTable(table)
        nodules = table_nodules(table)
        chooser = self.ui.noduleComboBox
        if nodules == [chooser.itemText(i) for i in range(chooser.count)]:
            return
        chooser.blockSignals(True)
        chooser.clear()
        for nodule in nodules:
            chooser.addItem(nodule)
        chooser.blockSignals(False)

    def onPlaceNodulePair(self):
        """Place one point in the baseline list, then one in the follow-up list, with the same new label."""
        node = self._parameterNode
        self._stopPairPlacement()
        for attribute, name in (("baselineFiducials", _("baseline nodules")),
                                ("followupFiducials", _("follow-up nodules"))):
            if not getattr(node, attribute):
                setattr(node, attribute, slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name))
        lists = (node.baselineFiducials, node.followupFiducials)
        numbers = [int(fiducials.GetNthControlPointLabel(i)) for fiducials in lists
                   for i in range(fiducials.GetNumberOfControlPoints())
                   if re.fullmatch(r"\d+", fiducials.GetNthControlPointLabel(i))]
        label = str(max(numbers, default=0) + 1)
        observed = [fiducials for i, fiducials in enumerate(lists) if fiducials not in lists[:i]]
        for fiducials in observed:
            self.addObserver(fiducials, fiducials.PointPositionDefinedEvent, self.onPairPointPlaced)
        self._pair = (node.baselineFiducials, label, observed, True)
        self._startPlacing(node.baselineFiducials, node.baselineVolume)
        self.ui.statusLabel.text = _("Click nodule {label} in the baseline scan.").format(label=label)

    def onTakePatientScans(self):
        """The baseline's patient's studies become the scans: baseline, follow-up and later scans, dated."""
        try:
            count = self.logic.takePatientScans(self._parameterNode)
        except Exception as error:
            self._report(_("The patient's scans could not be taken: {error}").format(error=error),
                         traceback.format_exc())
            return
        self.ui.statusLabel.text = _("{count} scans of the patient, in study-date order.").format(count=count)

    def onSaveReport(self):
        """Ask where, install matplotlib if missing (after asking), and save the patient's one-page report."""
        node = self._parameterNode
        if not node or not node.outputTable:
            self._report(_("Run CSF-net (Apply) first: the report shows its results."))
            return
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            if not self._confirm(_("The report is drawn with matplotlib, which is not installed. Install it now?")):
                return
            slicer.util.pip_install("matplotlib")
        path = qt.QFileDialog.getSaveFileName(None, _("Save the CSF-net report"), "csfnet-report.pdf",
                                              _("PDF (*.pdf)")) if self.showDialogs else "csfnet-report.pdf"
        if not path:
            return
        done, saved = self._busy(lambda: self.logic.saveReport(node, path),
                                 _("The report could not be saved: {error}"))
        if not done:
            return
        self.ui.statusLabel.text = _("Report saved: {path} (and a PNG beside it).").format(path=saved)

    def onExportDicom(self):
        """DICOM SEG + SR of each scan into a folder; where highdicom cannot run in this Slicer, say why."""
        node = self._parameterNode
        if not node or not node.outputTable:
            self._report(_("Run CSF-net (Apply) first: the DICOM files hold its results."))
            return
        problem = self.logic.dicomExportProblem()
        if problem:
            self._report(problem)
            return
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder for the DICOM files")) if self.showDialogs \
            else "csfnet-dicom"
        if not folder:
            return
        done, written = self._busy(lambda: self.logic.exportDicom(node, folder),
                                   _("The DICOM files could not be written: {error}"))
        if not done:
            return
        self.ui.statusLabel.text = _("{count} DICOM files written to {folder}.").format(count=len(written),
                                                                                       folder=folder)

    def onFindInOtherScan(self):
        """Each nodule pointed at in some scans only is found in the others, and its point added there."""
        self._stopPairPlacement()
        done, placed = self._busy(lambda: self.logic.findInOtherScan(self._parameterNode),
                                  _("The nodules could not be matched: {error}"))
        if not done:
            return
        if not placed:
            self.ui.statusLabel.text = _("Every nodule already has a point in both scans.")
            return
        lines = []
        for scan, placement in placed:
            match = placement.match
            if match.found:
                lines.append(_("Nodule {label}: found in the {scan} scan ({moved:.1f} mm from the registration)."
                               ).format(label=placement.label, scan=scan, moved=match.moved_mm or 0.0))
            else:
                lines.append(_("Nodule {label}: {status} in the {scan} scan ({note}).").format(
                    label=placement.label, status=match.status, scan=scan, note=match.note or "-"))
        text = "\n".join(lines)  # each line translated above
        self.ui.statusLabel.text = text

    def onPairPointPlaced(self, caller, event):
        if self._pair is None or caller is not self._pair[0]:
            return  # a point placed some other way, or in the other list
        node = self._parameterNode
        fiducials, label, observed, baselineNext = self._pair
        fiducials.SetNthControlPointLabel(fiducials.GetNumberOfControlPoints() - 1, label)
        if baselineNext:
            self._pair = (node.followupFiducials, label, observed, False)
            # after the markups widget has finished this placement (it ends place mode when it returns)
            qt.QTimer.singleShot(0, self._placeFollowupPoint)
            self.ui.statusLabel.text = _("Now click nodule {label} in the follow-up scan.").format(label=label)
        else:
            self._stopPairPlacement()
            self.ui.statusLabel.text = _("Nodule {label} placed in both scans.").format(label=label)

    def _placeFollowupPoint(self):
        if self._pair is not None:  # not stopped meanwhile (module left, scene closed)
            self._startPlacing(self._pair[0], self._parameterNode.followupVolume)

    def _stopPairPlacement(self):
        """End a pair placement this panel started: its observers go, and the mouse leaves place mode."""
        if self._pair is None:
            return
        observed = self._pair[2]
        self._pair = None
        for fiducials in observed:
            self.removeObserver(fiducials, fiducials.PointPositionDefinedEvent, self.onPairPointPlaced)
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        if interaction is not None and interaction.GetCurrentInteractionMode() == interaction.Place:
            interaction.SwitchToViewTransformMode()

    def _startPlacing(self, fiducials, volume):
        """Show `volume` (keeping the user's zoom unless the views were empty) and place one point in `fiducials`."""
        backgrounds = [composite.GetBackgroundVolumeID()
                       for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")]
        if volume and volume.GetID() not in backgrounds:
            slicer.util.setSliceViewerLayers(background=volume, fit=not any(backgrounds))
        markupsLogic = slicer.modules.markups.logic()
        markupsLogic.SetActiveList(fiducials)
        markupsLogic.StartPlaceMode(False)  # one point, then back to the usual mouse mode

    def _busy(self, action: Callable, failure: str):
        """`action()` under the wait cursor: (True, its result), or (False, None) with `failure` (a text with
        {error}) reported."""
        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            return True, action()
        except Exception as error:
            self._report(failure.format(error=error), traceback.format_exc())
            return False, None
        finally:
            slicer.app.restoreOverrideCursor()

    def _confirm(self, text: str) -> bool:
        return slicer.util.confirmOkCancelDisplay(text) if self.showDialogs else True

    def _report(self, text: str, details: str = "") -> None:
        """An error in the status line and the log, and in a message box unless dialogs are off."""
        self.ui.statusLabel.text = text
        logging.error(f"CSF-net: {text}\n{details}".rstrip())
        if self.showDialogs:
            slicer.util.errorDisplay(text, **({"detailedText": details} if details else {}))

    def _torchReady(self) -> bool:
        """Whether torch is usable, installing it first (after asking) when it is missing."""
        status = self.torchInstaller.status()
        if status.missing and self._confirm(_(
                "CSF-net needs PyTorch, which is not installed yet. Install it now? This can take several "
                "minutes and download a few GB (a build that matches this computer's GPU, if it has one).")):
            self.ui.statusLabel.text = _("Installing PyTorch...")
            slicer.app.processEvents()
            try:
                status = self.torchInstaller.install()
            except Exception as error:  # pip or the download failed
                self._report(_("PyTorch could not be installed: {error}").format(error=error), traceback.format_exc())
                return False
        if not status.usable:
            self._report(_("CSF-net cannot run: {problem}.").format(problem=status.problem))
        return status.usable

    def onApplyButton(self):
        """Apply, or Cancel while running (the run stops at its next step and the scene stays as it was)."""
        if self._running:
            self._cancelRequested = True
            self.ui.statusLabel.text = _("Cancelling at the next step...")
            return
        if not self._torchReady():
            return
        history = bool(self._parameterNode.laterVolumes)
        samePosition = not history and not self._parameterNode.baselineFiducials
        if samePosition and not self._confirm(_(
                "There is no baseline nodule list. Use each follow-up point at the same physical position in "
                "the baseline scan? (Right only when the two scans are registered.)")):
            return
        self._running, self._cancelRequested = True, False
        self._setInputsEnabled(False)
        self.ui.applyButton.text = _("Cancel")
        self.ui.progressBar.show()
        started = time.perf_counter()
        try:
            if history:
                tables = self.logic.processHistory(self._parameterNode, self.onProgress)
            else:
                tables = [self.logic.process(self._parameterNode, self.onProgress, samePosition)]
        except Cancelled:
            self.ui.statusLabel.text = _("Cancelled: the scene is as it was.")
            return
        except Exception as error:
            self._report(_("CSF-net could not run: {error}").format(error=error), traceback.format_exc())
            return
        finally:
            self._running = False
            self._setInputsEnabled(True)
            self.ui.applyButton.text = _("Apply")
            self.ui.progressBar.hide()
            self.updateApplyButton()
        table = tables[-1]
        self._parameterNode.outputTable = table
        self.showResults(table)
        rows = self.logic.tableRows(table)
        text = _("{count} nodule(s) on {device} in {seconds:.1f} s. {note}").format(
            count=len(rows), device=rows[0]["device"], seconds=time.perf_counter() - started,
            note=rows[0]["model_note"])
        if history:
            text = _("A table for each pair of scans ({tables}) and the volumes over every scan. ").format(
                tables=", ".join(t.GetName() for t in tables)) + text
        self.ui.statusLabel.text = text

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
        self._refreshNoduleChooser()
        self._hideOutputVolumes()
        self.logic.showTable(table)
        chooser = self.ui.noduleComboBox
        if chooser.count:
            chooser.blockSignals(True)
            chooser.currentIndex = 0
            chooser.blockSignals(False)
            self.onNoduleSelected(0)

    def onShowAttentionToggled(self, checked):
        if not self._isEntered():  # the binding stays while the module is left: leave the views alone then
            return
        self.onNoduleSelected(self.ui.noduleComboBox.currentIndex)

    def onNoduleSelected(self, index):
        node = self._parameterNode
        if index < 0 or not node or not node.outputTable:
            return
        self.logic.showNodule(node.outputTable, self.ui.noduleComboBox.itemText(index), node.followupVolume,
                              self.ui.showAttentionCheckBox.checked)


def _panelOption(option: str) -> str:
    """How the panel names a library option in an error message."""
    return {"device": _("the Device setting (Model section)")}.get(option, option)


class CSFNetLogic(ScriptedLoadableModuleLogic):
    """Drives CSFNetLib for the panel and for scripts; opens no dialogs (asking is the panel's job).

    It keeps the models it loaded for the next run (a checkpoint file that changed since is loaded
    again). Every instance hands out the same parameter-node wrapper while the node is the same: each
    new wrapper adds observers to the node that nothing removes.
    """

    _parameterNode = None  # the wrapper handed out last, shared by all instances (the Sample Data button makes one)
    _guardedNode = None  # the node whose unknown choices are reset as they arrive (scene import, scripts)
    _guardTag = None

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._predictors = None  # a CSFNetLib.inference.PredictorCache, made at the first run (it needs torch)
        self._registrations = None  # a CSFNetLib.scene.matching.Registrations, made at the first matching

    def getParameterNode(self) -> "CSFNetParameterNode":
        from CSFNetLib.scene.parameter_node import keep_choices_known

        node = super().getParameterNode()
        if CSFNetLogic._guardedNode is not node:  # before the wrapper, which refuses values it does not know
            choices = {"settings.model": MODEL_NAMES, "settings.device": list(DEVICES),
                       "settings.attentionMethod": list(ATTENTION_METHODS)}
            choices.update({f"clinical.{field}": choice_labels(field) for field in FIELDS})
            CSFNetLogic.releaseParameterNode()
            CSFNetLogic._guardTag = keep_choices_known(node, choices)
            CSFNetLogic._guardedNode = node
        if CSFNetLogic._parameterNode is None or CSFNetLogic._parameterNode.parameterNode is not node:
            CSFNetLogic._parameterNode = CSFNetParameterNode(node)
        return CSFNetLogic._parameterNode

    @staticmethod
    def releaseParameterNode() -> None:
        """Forget the parameter node and stop guarding it (module reload: the reloaded logic starts afresh)."""
        if CSFNetLogic._guardedNode is not None:
            CSFNetLogic._guardedNode.RemoveObserver(CSFNetLogic._guardTag)
        CSFNetLogic._guardedNode = CSFNetLogic._guardTag = CSFNetLogic._parameterNode = None

    def process(self, parameterNode: "CSFNetParameterNode", progress: Optional[Callable[[str, float], None]] = None,
                samePosition: bool = False) -> "vtkMRMLTableNode":
        """Run CSF-net on the panel's inputs; returns the results table node. torch must be usable.

        Without a baseline list, the follow-up points are used at the same position in the baseline
        scan only when `samePosition` says so.
        """
        from CSFNetLib.scene.logic import predict_scene

        settings = parameterNode.settings
        try:
            return predict_scene(
                slicer.mrmlScene, parameterNode.baselineVolume, parameterNode.followupVolume,
                parameterNode.baselineFiducials, parameterNode.followupFiducials, **self._modelInputs(parameterNode),
                same_position=samePosition, interval_days=settings.intervalDays or None,
                table=parameterNode.outputTable, progress=progress)
        except UsageError as error:
            raise ValueError(error.worded(_panelOption)) from error

    def processHistory(self, parameterNode: "CSFNetParameterNode",
                       progress: Optional[Callable[[str, float], None]] = None) -> List["vtkMRMLTableNode"]:
        """Run CSF-net on each consecutive pair of the panel's scans (baseline, follow-up, later scans); the
        results tables, one per pair. Every later scan needs its nodule list ("Find the nodules...")."""
        from CSFNetLib.scene.history import predict_history, scan_nodules

        volumes = self.historyScans(parameterNode)
        days = self.historyDays(parameterNode, volumes)
        lists = [parameterNode.baselineFiducials, parameterNode.followupFiducials]
        for k, volume in enumerate(volumes[2:], start=2):
            lists.append(scan_nodules(slicer.mrmlScene, volume, create=False))
            if lists[-1] is None:
                raise ValueError(_("The scan T{k} '{name}' has no nodule list yet: press \"Find the nodules in the "
                                   "other scans\" first.").format(k=k, name=volume.GetName()))
        try:
            return predict_history(slicer.mrmlScene, volumes, lists, days=days, progress=progress,
                                   **self._modelInputs(parameterNode))
        except UsageError as error:
            raise ValueError(error.worded(_panelOption)) from error

    def saveReport(self, parameterNode: "CSFNetParameterNode", path: str) -> str:
        """The one-page report of the panel's scans, nodule lists and results; the PDF's path."""
        from CSFNetLib.scene.exports import save_scene_report

        volumes, lists, tables, days = self._outputsOf(parameterNode)
        return str(save_scene_report(volumes, lists, tables, path, days=days))

    @staticmethod
    def dicomExportProblem() -> str:
        """Why this Slicer cannot write DICOM SEG + SR (highdicom needs Python 3.10 and pydicom 3), or ''."""
        try:
            import highdicom  # noqa: F401
        except ImportError:
            try:
                import pydicom

                found = _("pydicom {version}").format(version=pydicom.__version__)
            except ImportError:
                found = _("no pydicom")
            return _("DICOM export needs highdicom, which needs Python 3.10 or later and pydicom 3; this Slicer "
                     "has Python {python} and {found}, and the module does not replace Slicer's pydicom. Save the "
                     "scene and run `csfnet predict --dicom-out` on the DICOM scans, or install highdicom here "
                     "where Python and pydicom allow it (slicer.util.pip_install('highdicom')).").format(
                python=".".join(map(str, sys.version_info[:2])), found=found)
        return ""

    def exportDicom(self, parameterNode: "CSFNetParameterNode", folder: str) -> List[str]:
        """DICOM SEG + SR of each of the panel's scans into `folder`/T0, T1, ...; the files."""
        from CSFNetLib.scene.exports import export_scene_dicom

        volumes, lists, tables, days = self._outputsOf(parameterNode)
        written = export_scene_dicom(volumes, lists, tables, folder, files_of=slicer.dicomDatabase.fileForInstance,
                                     days=days)
        return [str(path) for path in written]

    def _outputsOf(self, parameterNode: "CSFNetParameterNode"):
        """The panel's scans, their nodule lists, the results tables (one per pair of scans when later scans are
        chosen, else the results table) and the scans' days."""
        from CSFNetLib.scene.history import history_table_name, scan_nodules

        volumes = self.historyScans(parameterNode)
        lists = [parameterNode.baselineFiducials, parameterNode.followupFiducials]
        lists += [scan_nodules(slicer.mrmlScene, volume, create=False) for volume in volumes[2:]]
        if len(volumes) > 2:
            names = [history_table_name(f"T{k}-T{k + 1}") for k in range(len(volumes) - 1)]
            tables = [table for table in map(slicer.mrmlScene.GetFirstNodeByName, names) if table is not None]
        else:
            tables = [parameterNode.outputTable]
        return volumes, lists, tables, self.historyDays(parameterNode, volumes)

    @staticmethod
    def historyScans(parameterNode: "CSFNetParameterNode") -> List["vtkMRMLScalarVolumeNode"]:
        """The panel's scans in time order: baseline, follow-up, then the later scans by study date when every
        one has a date, else as listed."""
        from CSFNetLib.scene.history import study_date

        if not parameterNode.baselineVolume or not parameterNode.followupVolume:
            raise ValueError(_("Choose the baseline and the follow-up volume."))
        first = [parameterNode.baselineVolume, parameterNode.followupVolume]
        later = [volume for volume in parameterNode.laterVolumes if volume is not None and volume not in first]
        dates = [study_date(slicer.mrmlScene, volume) for volume in later]
        if None not in dates:
            later = [later[i] for i in sorted(range(len(later)), key=lambda i: dates[i])]
        return first + later

    @staticmethod
    def historyDays(parameterNode: "CSFNetParameterNode", volumes) -> Optional[List[float]]:
        """Each scan's days since the baseline: as typed, else from the study dates, else None (no VDT)."""
        from CSFNetLib.scene.history import days_since_first, study_date, typed_days

        settings = parameterNode.settings
        dates = [study_date(slicer.mrmlScene, volume) for volume in volumes]
        if settings.laterDays.strip() or None in dates:
            return typed_days(settings.intervalDays, settings.laterDays, len(volumes) - 2)
        return days_since_first(dates)

    def takePatientScans(self, parameterNode: "CSFNetParameterNode") -> int:
        """Baseline, follow-up and later scans from the studies of the baseline's (or follow-up's) patient,
        in study-date order, with the days from the dates; how many scans."""
        from CSFNetLib.scene.history import days_since_first, patient_scans

        chosen = parameterNode.baselineVolume or parameterNode.followupVolume
        if not chosen:
            raise ValueError(_("Choose a scan of the patient (baseline or follow-up) first."))
        scans = patient_scans(slicer.mrmlScene, chosen)
        if len(scans) < 2:
            raise ValueError(_("'{name}' lies in no patient with another study: load the studies through the DICOM "
                               "module, or choose the scans by hand.").format(name=chosen.GetName()))
        volumes = [volume for volume, _date in scans]
        days = days_since_first([date for _volume, date in scans])
        with slicer.util.NodeModify(parameterNode.parameterNode):
            parameterNode.baselineVolume, parameterNode.followupVolume = volumes[0], volumes[1]
            parameterNode.laterVolumes = volumes[2:]
            parameterNode.settings.intervalDays = days[1] if days else 0.0
            parameterNode.settings.laterDays = ", ".join(f"{d:g}" for d in days[2:]) if days else ""
        return len(volumes)

    def _modelInputs(self, parameterNode: "CSFNetParameterNode") -> dict:
        """The model and clinical options of a run, as `predict_scene` and `predict_history` take them."""
        from CSFNetLib.inference import PredictorCache

        if self._predictors is None:
            self._predictors = PredictorCache()
        settings = parameterNode.settings
        checkpoint = settings.checkpointPath if settings.model == BROWSE else self.modelPath(settings.model)
        if not checkpoint:
            raise ValueError(_("Choose a checkpoint file, or one of the shipped models."))
        clinical = record_from_choices({field: getattr(parameterNode.clinical, field) for field in FIELDS})
        return dict(clinical=clinical, checkpoint=checkpoint, device=settings.device,
                    attention=settings.showAttention, attention_method=settings.attentionMethod,
                    predictors=self._predictors)

    def findInOtherScan(self, parameterNode: "CSFNetParameterNode"):
        """Match every nodule pointed at in some scans only into the others (baseline, follow-up, later scans);
        [(scan name, PlacedMatch)].

        A missing nodule list is made; each pair of volumes is registered once while neither changes.
        """
        from CSFNetLib.scene.history import match_history, scan_nodules
        from CSFNetLib.scene.matching import Registrations

        volumes = self.historyScans(parameterNode)
        if self._registrations is None:
            self._registrations = Registrations()
        for attribute, name in (("baselineFiducials", _("baseline nodules")),
                                ("followupFiducials", _("follow-up nodules"))):
            if not getattr(parameterNode, attribute):
                setattr(parameterNode, attribute,
                        slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name))
        lists = [parameterNode.baselineFiducials, parameterNode.followupFiducials]
        lists += [scan_nodules(slicer.mrmlScene, volume) for volume in volumes[2:]]
        names = [_("baseline"), _("follow-up")] + [_("T{k} '{name}'").format(k=k, name=volume.GetName())
                                                   for k, volume in enumerate(volumes[2:], start=2)]
        return [(names[k], match) for k, match in match_history(volumes, lists, self._registrations)]

    @staticmethod
    def modelPath(name: str) -> str:
        from CSFNetLib.shipped_weights import model_path

        return str(model_path(name))

    @staticmethod
    def tableRows(table: "vtkMRMLTableNode"):
        from CSFNetLib.scene.results_table import table_rows

        return table_rows(table)

    def loadSampleData(self):
        """The synthetic pair with its nodule marked in both scans, generated once into Slicer's cache,
        set as the panel's inputs. The scripting entry point for the sample (see `_loadSampleData`)."""
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
        """A layout with a table view showing the results table, and a plot view with the nodules'
        volumes over time when the run measured them."""
        from CSFNetLib.scene.results_table import growth_chart

        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # no main window (batch)
            return
        applicationLogic = slicer.app.applicationLogic()
        chart = growth_chart(table)
        if chart is None:
            layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
        else:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
            applicationLogic.GetSelectionNode().SetActivePlotChartID(chart.GetID())
            applicationLogic.PropagatePlotChartSelection()
        applicationLogic.GetSelectionNode().SetActiveTableID(table.GetID())
        applicationLogic.PropagateTableSelection()

    @staticmethod
    def showNodule(table: "vtkMRMLTableNode", nodule: str, followupVolume: "vtkMRMLScalarVolumeNode",
                   showAttention: bool = True) -> None:
        """The follow-up scan with the nodule's attention labels over it (or none), the slice views centred on it."""
        from CSFNetLib.scene.results_table import nodule_attention

        try:
            heat, labels = nodule_attention(table, nodule, "T1")
        except ValueError:  # run without attention maps
            heat, labels = None, None
        slicer.util.setSliceViewerLayers(background=followupVolume, label=labels if showAttention else None,
                                         labelOpacity=0.6)
        if heat is not None:
            bounds = [0.0] * 6
            heat.GetRASBounds(bounds)
            centre = [(bounds[2 * i] + bounds[2 * i + 1]) / 2.0 for i in range(3)]
            slicer.modules.markups.logic().JumpSlicesToLocation(centre[0], centre[1], centre[2], True)


class _StandInTorch:
    """A torch installer that reports `status` and records install requests (no download)."""

    def __init__(self, status):
        self.current = status
        self.installs = 0

    def status(self):
        return self.current

    def install(self):
        self.installs += 1
        return self.current


class _FailingLogic(CSFNetLogic):
    """The real logic, except that every run fails as a bad input would."""

    def __init__(self):
        CSFNetLogic.__init__(self)
        self.moduleName = "CSFNet"  # the module's parameter node, not one of its own
        self.runs = 0

    def process(self, parameterNode, progress=None, samePosition=False):
        self.runs += 1
        raise ValueError("follow-up fiducials point 1 lies outside the scan")


class CSFNetTest(ScriptedLoadableModuleTest):
    """Inside Slicer: the panel driven as a user drives it, on the sample pair, with the demo weights on the CPU.

    The tests that run the network are skipped where torch is not installed: a test never downloads a
    few GB onto a build server.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()
        self._undo = []  # what tearDown undoes, last first

    def tearDown(self):
        failed = []
        for action in reversed(self._undo):
            try:
                action()
            except Exception:
                logging.exception(f"CSFNetTest: undoing {action} failed")
                failed.append(action)
        if failed:
            raise AssertionError(f"undoing {failed} failed (see the log)")

    def runTest(self):
        for test in (self.test_ApplyThroughThePanelGivesTableAndOverlay, self.test_CancelLeavesTheSceneAsItWas,
                     self.test_PanelReportsFailuresAndAsksBeforeInstallingTorch,
                     self.test_ReenteringKeepsOneBindingAndImportedScenesAreRepaired,
                     self.test_PatientStudiesGiveTheWholeHistoryFromOneClick):
            self.setUp()
            try:
                test()
            except unittest.SkipTest as skip:
                self.delayDisplay(f"Skipped {test.__name__}: {skip}")
            finally:
                self.tearDown()
        self.delayDisplay("Test passed")

    def _needTorch(self):
        status = TorchInstaller().status()
        if not status.usable:
            self.skipTest(f"it runs the network, and {status.problem}")

    def _panel(self, **kwargs):
        """A stand-alone panel (no module to enter), answering every question with OK."""
        widget = CSFNetWidget(showDialogs=False, **kwargs)
        self._undo += [widget.parent.deleteLater,
                       lambda: slicer.app.moduleManager().disconnect("moduleAboutToBeUnloaded(QString)",
                                                                     widget._onModuleAboutToBeUnloaded),
                       widget.cleanup]
        return widget

    @staticmethod
    def _sceneNodeIDs():
        return {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}

    def _choose(self, widget, nodes):
        """Pick the sample's scans and lists in the panel's selectors, and the CPU."""
        widget.ui.baselineVolumeSelector.setCurrentNode(nodes.baseline_volume)
        widget.ui.followupVolumeSelector.setCurrentNode(nodes.followup_volume)
        widget.ui.baselineFiducialsSelector.setCurrentNode(nodes.baseline_fiducials)
        widget.ui.followupFiducialsSelector.setCurrentNode(nodes.followup_fiducials)
        widget.ui.deviceComboBox.currentText = "cpu"
        widget.ui.modelComboBox.currentText = MODEL_NAMES[0]

    def test_ApplyThroughThePanelGivesTableAndOverlay(self):
        from CSFNetLib.scene.results_table import nodule_attention

        self._needTorch()
        self.delayDisplay("Generating (first time) and loading the sample pair; Apply in the panel")
        widget = self._panel()
        nodes = widget.logic.loadSampleData()
        self._choose(widget, nodes)
        widget.ui.intervalDaysSpinBox.value = 588  # the sample's scans are 588 days apart
        self.assertTrue(widget.ui.applyButton.enabled)
        widget.ui.applyButton.click()

        self.delayDisplay("Checking the table, the nodule chooser and the overlay")
        table = widget.logic.getParameterNode().outputTable
        self.assertIsNotNone(table, widget.ui.statusLabel.text)
        rows = widget.logic.tableRows(table)
        self.assertEqual([row["nodule"] for row in rows], ["1"])
        self.assertTrue(0.0 <= rows[0]["p_malignant"] <= 1.0)
        self.assertIn("synthetic phantoms", rows[0]["model_note"])
        self.assertIn("synthetic phantoms", widget.ui.statusLabel.text)
        self.assertEqual(widget.ui.noduleComboBox.currentText, "1")
        self.assertEqual(widget.ui.applyButton.text, "Apply")
        # measured: a solid nodule growing from 10 to 30 mm in 588 days (VDT about 120 days)
        self.assertFalse(rows[0]["measure_error"])
        self.assertEqual((rows[0]["type"], rows[0]["growth_class"]), ("solid", "VDT < 400 d"))
        self.assertGreater(rows[0]["diameter_mm"], 20.0)
        from CSFNetLib.scene.results_table import growth_chart

        self.assertIsNotNone(growth_chart(table))
        self.assertEqual(slicer.app.layoutManager().layout, slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)

        heat, labels = nodule_attention(table, "1", "T1")
        self.assertEqual(set(slicer.util.arrayFromVolume(labels).ravel().tolist()), {0, 1, 2, 3})
        composite = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")[0]
        self.assertEqual(composite.GetLabelVolumeID(), labels.GetID())
        self.assertEqual(composite.GetBackgroundVolumeID(), nodes.followup_volume.GetID())
        bounds = [0.0] * 6
        heat.GetRASBounds(bounds)
        position = [0.0, 0.0, 0.0]
        nodes.followup_fiducials.GetNthControlPointPositionWorld(0, position)
        for axis in range(3):  # the map sits on the nodule
            self.assertAlmostEqual((bounds[2 * axis] + bounds[2 * axis + 1]) / 2.0, position[axis], delta=0.5)
        self.assertIn(heat.GetID(), list(widget.ui.baselineVolumeSelector.sortFilterProxyModel().hiddenNodeIDs))

        widget.ui.showAttentionCheckBox.checked = False  # the overlay goes at once, and comes back
        self.assertFalse(composite.GetLabelVolumeID())
        widget.ui.showAttentionCheckBox.checked = True
        self.assertEqual(composite.GetLabelVolumeID(), labels.GetID())

        self.delayDisplay("Another attention method: the next Apply makes its maps")
        from CSFNetLib.scene.results_table import ATTENTION_METHOD_ATTRIBUTE

        self.assertEqual(table.GetAttribute(ATTENTION_METHOD_ATTRIBUTE), DEFAULT_ATTENTION_METHOD)
        widget.ui.attentionMethodComboBox.currentText = "gradcam"
        self.assertEqual(widget.logic.getParameterNode().settings.attentionMethod, "gradcam")
        widget.ui.applyButton.click()
        self.assertEqual(table.GetAttribute(ATTENTION_METHOD_ATTRIBUTE), "gradcam")
        heat, labels = nodule_attention(table, "1", "T1")
        self.assertEqual(composite.GetLabelVolumeID(), labels.GetID())

    def test_PatientStudiesGiveTheWholeHistoryFromOneClick(self):
        from CSFNetLib.scene.nodes import add_fiducials, add_volume_node
        from CSFNetLib.synth import synthesize_patient

        self.delayDisplay("A patient with three studies: one click in the baseline, the nodule found in the others")
        patient = synthesize_patient(3, 1, "small", scans=3)
        tree = slicer.mrmlScene.GetSubjectHierarchyNode()
        subject = tree.CreateSubjectItem(tree.GetSceneItemID(), "phantom patient")
        volumes = {}
        for timepoint, date in (("T2", "20230101"), ("T0", "20210101"), ("T1", "20220101")):  # loaded out of order
            study = tree.CreateStudyItem(subject, f"study {timepoint}")
            tree.SetItemAttribute(study, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMStudyDateAttributeName(),
                                  date)
            volumes[timepoint] = add_volume_node(slicer.mrmlScene, patient.images[timepoint], f"CT {timepoint}")
            tree.CreateItem(study, volumes[timepoint])
        widget = self._panel()
        widget.ui.baselineVolumeSelector.setCurrentNode(volumes["T1"])
        widget.ui.patientScansButton.click()
        node = widget.logic.getParameterNode()
        self.assertEqual([node.baselineVolume, node.followupVolume, *node.laterVolumes],
                         [volumes["T0"], volumes["T1"], volumes["T2"]], widget.ui.statusLabel.text)
        self.assertEqual((node.settings.intervalDays, node.settings.laterDays), (365.0, "730"))
        self.assertEqual(widget.ui.laterVolumesSelector.checkState(volumes["T2"]), qt.Qt.Checked)

        nodule = patient.nodules[0]
        node.baselineFiducials = add_fiducials(slicer.mrmlScene, "baseline nodules",
                                               [patient.nodule_center_lps(nodule, "T0")], ["1"])
        widget.ui.findInOtherScanButton.click()
        from CSFNetLib.scene.history import scan_nodules

        for fiducials in (node.followupFiducials, scan_nodules(slicer.mrmlScene, volumes["T2"], create=False)):
            self.assertEqual(fiducials.GetNumberOfControlPoints(), 1, widget.ui.statusLabel.text)
            self.assertEqual(fiducials.GetNthControlPointPositionStatus(0), fiducials.PositionDefined)

        self._needTorch()
        self.delayDisplay("Apply: a table per pair of scans and the volumes over all three")
        widget.ui.deviceComboBox.currentText = "cpu"
        widget.ui.modelComboBox.currentText = MODEL_NAMES[0]
        widget.ui.applyButton.click()
        self.assertIn("CSF-net results T1-T2", widget.ui.statusLabel.text)
        rows = widget.logic.tableRows(node.outputTable)
        self.assertEqual([row["nodule"] for row in rows], ["1"])
        self.assertTrue(0.0 <= rows[0]["p_malignant"] <= 1.0)

    def test_CancelLeavesTheSceneAsItWas(self):
        self._needTorch()
        self.delayDisplay("Apply, then Cancel at once")
        widget = self._panel()
        self._choose(widget, widget.logic.loadSampleData())
        before = self._sceneNodeIDs()
        qt.QTimer.singleShot(0, widget.ui.applyButton.click)  # runs at the run's first progress step: Cancel
        widget.ui.applyButton.click()
        self.assertIn("Cancelled", widget.ui.statusLabel.text)
        self.assertEqual(self._sceneNodeIDs(), before)
        self.assertIsNone(widget.logic.getParameterNode().outputTable)
        self.assertEqual(widget.ui.applyButton.text, "Apply")
        self.assertTrue(widget.ui.inputsCollapsibleButton.enabled)

    def test_PanelReportsFailuresAndAsksBeforeInstallingTorch(self):
        from CSFNetLib.torch_setup import TorchStatus

        self.delayDisplay("A panel with stand-in logic and torch installer")
        logic = _FailingLogic()
        torch = _StandInTorch(TorchStatus(None, "torch is not installed"))
        widget = self._panel(logic=logic, torchInstaller=torch)
        self._choose(widget, logic.loadSampleData())
        before = self._sceneNodeIDs()
        widget.ui.applyButton.click()  # torch missing: install asked for (answered OK), fails, nothing runs
        self.assertEqual((torch.installs, logic.runs), (1, 0))
        self.assertIn("torch is not installed", widget.ui.statusLabel.text)

        torch.current = TorchStatus("2.5.1")
        widget.ui.applyButton.click()  # torch there: the run fails; the error is shown, the panel usable again
        self.assertEqual((torch.installs, logic.runs), (1, 1))
        self.assertIn("outside the scan", widget.ui.statusLabel.text)
        self.assertEqual(self._sceneNodeIDs(), before)
        self.assertTrue(widget.ui.applyButton.enabled)
        self.assertTrue(widget.ui.inputsCollapsibleButton.enabled)

    def test_ReenteringKeepsOneBindingAndImportedScenesAreRepaired(self):
        import shutil
        import tempfile
        import warnings

        self.delayDisplay("Leaving and entering the module; a model name from elsewhere; importing such a scene")
        widget = self._panel()
        widget.ui.modelComboBox.currentText = BROWSE
        node = widget.logic.getParameterNode()
        bindings = node._nextParameterGUIsTag  # the wrapper's count of connectParametersToGui calls
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _entry in range(5):
                widget.exit()
                widget.enter()
        self.assertEqual([str(w.message) for w in caught], [])
        self.assertIs(widget.logic.getParameterNode(), node)
        self.assertEqual(node.settings.model, BROWSE)  # the user's choice survives re-entry
        for _close in range(3):
            slicer.mrmlScene.Clear()  # File > Close Scene: the singleton node stays, emptied
        self.assertIs(widget.logic.getParameterNode(), node)
        self.assertEqual(node.settings.model, MODEL_NAMES[0])  # its default again
        self.assertEqual(node._nextParameterGUIsTag, bindings)  # bound once: each binding leaves an observer

        node.parameterNode.SetParameter("settings.model", "a model installed elsewhere")
        self.assertEqual(node.settings.model, MODEL_NAMES[0])  # reset before the panel saw it

        folder = tempfile.mkdtemp()
        url, root = slicer.mrmlScene.GetURL(), slicer.mrmlScene.GetRootDirectory()
        self._undo += [lambda: shutil.rmtree(folder, True), lambda: slicer.mrmlScene.SetURL(url),
                       lambda: slicer.mrmlScene.SetRootDirectory(root)]
        path = os.path.join(folder, "elsewhere.mrml")
        slicer.mrmlScene.SetURL(path)
        self.assertTrue(slicer.mrmlScene.Commit())
        with open(path, encoding="utf-8") as scene:
            text = scene.read()
        self.assertIn(MODEL_NAMES[0], text)
        with open(path, "w", encoding="utf-8") as scene:  # as saved where another model was installed
            scene.write(text.replace(MODEL_NAMES[0], "a model installed elsewhere"))
        widget.ui.modelComboBox.currentText = BROWSE
        slicer.util.loadScene(path)  # imported into the open scene: the parameter node takes the saved values
        self.assertEqual(widget.logic.getParameterNode().settings.model, MODEL_NAMES[0])  # not BROWSE: reset
        self.assertEqual(widget.ui.modelComboBox.currentText, MODEL_NAMES[0])
