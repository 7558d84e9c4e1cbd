"""Results as DICOM: a Segmentation of the nodules and a TID 1500 Structured Report per scan (needs the
`dicom` extra: highdicom and pydicom)."""
