import pickle

import pytest
import torch

from CSFNetLib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from CSFNetLib.cli import main
from CSFNetLib.clinical import FIELDS, ClinicalVocabulary
from CSFNetLib.model import build_model
from CSFNetLib.preprocessing import Preprocessing


@pytest.fixture
def saved(tmp_path):
    vocabulary = ClinicalVocabulary.fit([{"race": 1, "age": 61, "gender": 2}, {"race": 2, "age": 70, "gender": 1}])
    torch.manual_seed(0)
    model = build_model("small", vocabulary).eval()
    preprocessing = Preprocessing(lung_mask=True)
    path = save_checkpoint(tmp_path / "model.pt", model, preprocessing, vocabulary, metadata={"trained_on": "test"})
    return path, model, preprocessing, vocabulary


def test_round_trip_restores_weights_settings_and_vocabulary(saved):
    path, model, preprocessing, vocabulary = saved
    ckpt = load_checkpoint(path)
    assert ckpt.model_config == model.config
    assert ckpt.preprocessing == preprocessing
    assert ckpt.vocabulary == vocabulary
    assert ckpt.metadata == {"trained_on": "test"}
    assert {"csfnet", "torch", "numpy", "SimpleITK", "python"} <= set(ckpt.versions)
    restored = ckpt.build_model()
    assert not restored.training
    t0, t1 = torch.rand(2, 2, 1, 16, 64, 64)
    clinical = torch.tensor([vocabulary.encode({"race": 2, "age": 61}), vocabulary.encode({})])
    with torch.inference_mode():
        assert torch.equal(restored(t0, t1, clinical), model(t0, t1, clinical))


def test_save_leaves_no_temporary_files_and_a_shareable_file(saved):
    path = saved[0]
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]
    assert path.stat().st_mode & 0o044  # readable by others, as the umask allows (mkstemp alone gives 0600)


def test_preprocessing_that_does_not_fit_the_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ROIs but the model takes"):
        save_checkpoint(tmp_path / "x.pt", build_model("small"), Preprocessing(roi_size_zyx=(8, 32, 32)),
                        ClinicalVocabulary.default())


def test_truncated_file_is_refused(saved, tmp_path):
    data = saved[0].read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: not a readable checkpoint"):
        load_checkpoint(truncated)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


class _CreatesAFile:
    """Unpickling this would run open(path, 'w'): the classic pickle payload."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "csfnet-checkpoint", "payload": _CreatesAFile(marker)}, hostile)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(hostile)
    assert not marker.exists()


def test_weights_from_another_configuration_are_refused(saved, tmp_path):
    path, _, preprocessing, vocabulary = saved
    payload = torch.load(path, weights_only=True)
    payload["model_config"] = build_model("full", vocabulary).config.to_dict()
    mixed = tmp_path / "mixed.pt"
    torch.save(payload, mixed)
    with pytest.raises(CheckpointError, match="do not fit configuration 'full'"):
        load_checkpoint(mixed).build_model()


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(build_model("small").state_dict(), path)
    with pytest.raises(CheckpointError, match="weights.pt: not a CSF-net checkpoint: a bare state dict"):
        load_checkpoint(path)


def test_vocabulary_must_fit_the_model(tmp_path):
    model = build_model("small")
    small_vocabulary = ClinicalVocabulary({f: [] for f in FIELDS})
    with pytest.raises(ValueError, match="vocabulary has 2 rows"):
        save_checkpoint(tmp_path / "x.pt", model, Preprocessing(), small_vocabulary)


FOREIGN_FILES = {
    "notes.pt": (b"these are my model notes\nepoch 10\n", "a text file \\(first line: 'these are my model notes'\\)"),
    "page.pt": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "an HTML page"),
    "empty.pt": (b"", "empty"),
    "keras.pt": (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file"),
    "weights.pt": (len(b'{"a":1}').to_bytes(8, "little") + b'{"a":1}', "a safetensors file"),
    "random.pt": (bytes(range(200, 256)) * 4, "binary data of an unknown kind"),
}


@pytest.mark.parametrize("name", FOREIGN_FILES)
def test_a_file_that_is_no_checkpoint_is_named_for_what_it_is(tmp_path, name):
    data, kind = FOREIGN_FILES[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(CheckpointError, match=f"{name}: not a checkpoint: it is {kind}"):
        load_checkpoint(tmp_path / name)


def test_a_plain_pickle_is_named(tmp_path):
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(CheckpointError, match="plain.pt: not a checkpoint: it is a plain Python pickle"):
        load_checkpoint(tmp_path / "plain.pt")


def test_the_command_line_names_a_text_file_given_as_checkpoint(tmp_path, capsys):
    (tmp_path / "model.pt").write_text("not a model\n")
    code = main(["predict", "--cases", str(tmp_path / "cases.csv"), "--checkpoint", str(tmp_path / "model.pt"),
                 "--out", str(tmp_path / "results.csv")])
    error = capsys.readouterr().err
    assert code != 0 and "model.pt: not a checkpoint: it is a text file" in error
