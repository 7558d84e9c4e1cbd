"""Synthetic longitudinal chest CT: patients, anatomy, nodules that grow or not, two scans each."""

from .cohort_writer import write_cohort
from .patient import SyntheticPatient, synthesize_patient

__all__ = ["SyntheticPatient", "synthesize_patient", "write_cohort"]
