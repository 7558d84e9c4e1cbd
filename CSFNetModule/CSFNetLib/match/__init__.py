"""One click, every scan: a nodule of one scan found in the patient's other scans (lung registration, the
nodule's neighbourhood aligned, the segmentation deciding found / not present / why undecided)."""
