"""Everything that needs 3D Slicer's MRML (slicer, vtk): scene nodes, scene files, the scene logic, batch runs.

The rest of CSFNetLib imports without slicer or vtk; only this subpackage speaks MRML, and it runs
the same inside the Slicer application and on slicer-core in plain Python.
"""
