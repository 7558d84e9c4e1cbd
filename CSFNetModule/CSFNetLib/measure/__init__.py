"""A nodule's own measurements: its segmentation from one point, size, type, growth and Lung-RADS category."""
