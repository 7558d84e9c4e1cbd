"""A scan's nodule measurements as a DICOM Comprehensive 3D SR following TID 1500 (Measurement Report).

One measurement group per nodule, referencing its segment in the scan's SEG, in segment order, with
the same measurements in the same order in every group (3D Slicer's QuantitativeReporting builds its
table's columns from the first group and matches tracking identifiers to segments by position): volume,
mean diameter, solid-part diameter and, at a follow-up scan, the volume doubling time against the scan
before and CSF-net's probability of cancer (DCM 111047). A value that could not be measured is 0 with the
qualifier "Measurement failure" (DCM 114006), a VDT of a nodule that is not growing is 0 with "Not a
number" (DCM 114000). The nodule's type and Lung-RADS category are qualitative evaluations. Volume
doubling time, solid-part diameter, type and Lung-RADS have no standard codes: they use the private
coding scheme 99CSFNET. The tracking UID is the same for the same nodule at every scan.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

from ..checkpoint import ModelCard
from ..version import __version__
from .segmentation import MANUFACTURER
from .source import SourceSeries

PRIVATE_SCHEME = "99CSFNET"


@dataclass(frozen=True)
class NoduleFinding:
    """What is reported of one nodule at one scan (None: not measured)."""

    label: str
    tracking_uid: str
    segment_number: int
    volume_mm3: Optional[float]
    diameter_mm: Optional[float]
    solid_diameter_mm: Optional[float]
    nodule_type: str  # solid, part-solid, non-solid ("" when not measured)
    lung_rads: str  # the category, e.g. "4A" ("" when none)
    vdt_days: Optional[float] = None  # against the scan before (follow-up scans)
    p_malignant: Optional[float] = None  # CSF-net's probability (follow-up scans)


def write_structured_report(series: SourceSeries, segmentation, findings: Sequence[NoduleFinding], path, *,
                            follow_up: bool, model: Optional[ModelCard] = None, series_number: int = 902):
    """The SR of one scan's nodules, saved at `path`; the dataset. A `follow_up` scan's groups carry the VDT
    against the scan before, and with `model` CSF-net's probability."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["SlicerCSFNet", __version__]), name="CSF-net",
            manufacturer_name=MANUFACTURER, model_name="CSF-net"))
    measuring = hd.sr.AlgorithmIdentification(name="CSF-net nodule measurement", version=__version__)
    predicting = (hd.sr.AlgorithmIdentification(name=model.name, version=model.version, parameters=[model.note])
                  if model is not None else None)
    source = hd.sr.SourceSeriesForSegmentation(series.first.SeriesInstanceUID)
    groups = []
    for finding in findings:
        measurements = [
            _measurement(codes.SCT.Volume, finding.volume_mm3, codes.UCUM.CubicMillimeter, measuring),
            _measurement(codes.SCT.Diameter, finding.diameter_mm, codes.UCUM.Millimeter, measuring,
                         derivation=codes.SCT.Mean),
            _measurement(_private("SOLIDDIAM", "Solid component diameter"), finding.solid_diameter_mm,
                         codes.UCUM.Millimeter, measuring),
        ]
        if follow_up:
            measurements.append(_measurement(_private("VDT", "Volume doubling time"), finding.vdt_days,
                                             hd.sr.CodedConcept("d", "UCUM", "day"), measuring,
                                             missing=codes.DCM.NotANumber))
        if follow_up and predicting is not None:
            measurements.append(_measurement(codes.DCM.ProbabilityOfCancer, finding.p_malignant, codes.UCUM.NoUnits,
                                             predicting))
        evaluations = [hd.sr.QualitativeEvaluation(_private("NODTYPE", "Nodule type"),
                                                   _private(f"TYPE-{finding.nodule_type or 'unknown'}",
                                                            finding.nodule_type or "not measured"))]
        if finding.lung_rads:
            evaluations.append(hd.sr.QualitativeEvaluation(
                _private("LUNGRADS", "Lung-RADS v2022 category"),
                _private(f"LR-{finding.lung_rads}", f"Lung-RADS {finding.lung_rads}")))
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=finding.tracking_uid,
                                                         identifier=f"nodule {finding.label}"),
            referenced_segment=hd.sr.ReferencedSegment(segmentation.SOPClassUID, segmentation.SOPInstanceUID,
                                                       finding.segment_number, source_series=source),
            finding_type=codes.SCT.Nodule, finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
            measurements=measurements, qualitative_evaluations=evaluations))
    report = hd.sr.MeasurementReport(observation_context=hd.sr.ObservationContext(observer_device_context=device),
                                     procedure_reported=hd.sr.CodedConcept("24627-2", "LN", "CT Chest"),
                                     imaging_measurements=groups)
    note = f"; {model.name}: {model.note}" if model is not None and model.note else ""
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*series.datasets, segmentation], content=report, series_instance_uid=generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, series_description=f"CSF-net nodule report{note}"[:64])
    sr.save_as(path)
    return sr


def _measurement(name, value: Optional[float], unit, algorithm, derivation=None, missing=None):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if value is None:
        return hd.sr.Measurement(name=name, value=0.0, unit=unit, algorithm_id=algorithm, derivation=derivation,
                                 qualifier=missing or codes.DCM.MeasurementFailure)
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, algorithm_id=algorithm, derivation=derivation)


def _private(value: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value, PRIVATE_SCHEME, meaning)
