"""Opening and saving MRML scenes (.mrb bundles and .mrml with their data files), in Slicer or out of it.

Inside the Slicer application its own scene is used, which already has every module logic.
Outside it (slicer-core) a scene needs the application, markups and tables logics, and a data IO
manager with a cache folder to unpack bundles: `standalone_scene` makes one and keeps them alive.
"""

import contextlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, List, Union

import slicer

PathLike = Union[str, Path]
SCENE_SUFFIXES = (".mrb", ".mrml")


class StandaloneScene:
    """A scene with what slicer-core needs to read and write scene files; `close()` removes its cache."""

    def __init__(self):
        self.scene = slicer.vtkMRMLScene()
        self._cache = tempfile.TemporaryDirectory(prefix="csfnet-scene-")
        cache = slicer.vtkCacheManager()
        cache.SetRemoteCacheDirectory(self._cache.name)
        io_manager = slicer.vtkDataIOManager()
        io_manager.SetCacheManager(cache)
        self.scene.SetCacheManager(cache)
        self.scene.SetDataIOManager(io_manager)
        self._keep: List[object] = [cache, io_manager]
        for logic_class in (slicer.vtkSlicerApplicationLogic, slicer.vtkSlicerSubjectHierarchyModuleLogic,
                            slicer.vtkSlicerMarkupsLogic, slicer.vtkSlicerTablesLogic):
            logic = logic_class()
            logic.SetMRMLScene(self.scene)
            self._keep.append(logic)

    def close(self) -> None:
        self.scene.Clear(True)
        self._keep.clear()
        self._cache.cleanup()


class ApplicationScene:
    """Slicer's own scene, inside the application (every module logic is already attached)."""

    def __init__(self):
        self.scene = slicer.mrmlScene

    def close(self) -> None:
        self.scene.Clear(False)


def scene_for_scripts() -> Union[ApplicationScene, StandaloneScene]:
    """The scene a script should work in: the application's inside Slicer, else a standalone one."""
    return ApplicationScene() if hasattr(slicer, "app") else StandaloneScene()


def scene_kind(path: PathLike) -> str:
    """'.mrb' or '.mrml', or a ValueError naming the file."""
    suffix = Path(path).suffix.lower()
    if suffix not in SCENE_SUFFIXES:
        raise ValueError(f"{path}: not a scene file (expected one of {', '.join(SCENE_SUFFIXES)})")
    return suffix


def load_scene(scene, path: PathLike) -> None:
    """Replace the scene's content with the scene file at `path`."""
    path = Path(path)
    kind = scene_kind(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such scene file")
    if kind == ".mrb" and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a Slicer bundle (.mrb files are zip archives)")
    scene.Clear(False)
    if kind == ".mrb":
        with _working_directory_kept():
            loaded = scene.ReadFromMRB(str(path.resolve()), True)
    else:
        scene.SetURL(str(path.resolve()))
        loaded = scene.Connect()
    if not loaded:
        raise ValueError(f"{path}: the scene could not be read (see the MRML log above)")


def save_scene(scene, path: PathLike, overwrite: bool = False) -> Path:
    """Write the scene with all its data: a .mrb bundle, or a .mrml with a Data folder beside it.

    An existing file is kept unless `overwrite`; a .mrb is written in a temporary folder and moved,
    so a failed save never leaves half a bundle where the user's file was.
    """
    path = Path(path)
    kind = scene_kind(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLStorableNode") and node.GetSaveWithScene() and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
    if kind == ".mrb":
        with tempfile.TemporaryDirectory(prefix=".csfnet-", dir=path.parent) as folder:
            partial = Path(folder).resolve() / path.name  # the bundle's inner folder is named after the file
            with _working_directory_kept():
                written = scene.WriteToMRB(str(partial))
            if not written:
                raise OSError(f"{path}: the scene could not be written")
            os.replace(partial, path)
    else:
        written = path.parent / f"{path.parent.name}.mrml"  # the name MRML gives a scene saved into a folder
        if written != path and written.exists():
            raise FileExistsError(f"{written} would be overwritten while saving {path}; save into another folder")
        if not scene.SaveSceneToSlicerDataBundleDirectory(str(path.parent.resolve())):
            raise OSError(f"{path}: the scene could not be written")
        if written != path:
            os.replace(written, path)
    return path


@contextlib.contextmanager
def _working_directory_kept() -> Iterator[None]:
    """MRML's zip code changes the working directory and may not change it back when it fails."""
    folder = os.getcwd()
    try:
        yield
    finally:
        os.chdir(folder)
