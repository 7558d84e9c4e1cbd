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

from ..errors import ResultsExist

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

    An existing file is kept unless `overwrite`. Both are written in a temporary folder and moved into
    place (MRML empties the folder it saves a scene into), so a failed save never leaves half a scene
    where the user's files were and nothing else in the folder is touched.
    """
    path = Path(path)
    kind = scene_kind(path)
    if path.exists() and not overwrite:
        raise ResultsExist("{path} exists; pass {overwrite} to replace it", path=path)
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
        with tempfile.TemporaryDirectory(prefix=".csfnet-", dir=path.parent) as folder:
            staged = Path(folder).resolve() / path.stem  # MRML empties the folder it saves into: not the user's
            staged.mkdir()
            if not scene.SaveSceneToSlicerDataBundleDirectory(str(staged)):
                raise OSError(f"{path}: the scene could not be written")
            _move_staged_scene(staged, path, overwrite)
    return path


def _move_staged_scene(staged: Path, path: Path, overwrite: bool) -> None:
    """Move a scene saved into `staged` (its .mrml, Data/ and <name>_Private/ files) to `path` and its
    folder; nothing moves if a data file is in the way. (MRML leaves the scene's own file names as they
    were before the save, so nothing in the scene points into `staged`.)"""
    target = path.parent.resolve()
    scene_file = staged / f"{staged.name}.mrml"
    moves = [(f, target / f.relative_to(staged)) for f in staged.rglob("*") if f.is_file() and f != scene_file]
    in_the_way = [to for _, to in moves if to.exists()]
    if in_the_way and not overwrite:
        raise FileExistsError(f"saving {path} would overwrite {len(in_the_way)} data file(s) there, e.g. "
                              f"{in_the_way[0]}; pass overwrite or save into another folder")
    for source, to in moves:
        to.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, to)
    os.replace(scene_file, path)


@contextlib.contextmanager
def _working_directory_kept() -> Iterator[None]:
    """MRML's zip code changes the working directory and may not change it back when it fails."""
    folder = os.getcwd()
    try:
        yield
    finally:
        os.chdir(folder)
