"""Errors a user fixes by asking differently, typed so that each front end can catch them and word them.

The library's messages name its own parameters (`pass overwrite=True`); a front end names its own
controls instead: `error.worded(command_line_option)` reads `pass --overwrite`. The types also
derive from the builtin error a caller would expect (FileExistsError, ValueError).
"""

from typing import Callable, Dict

#: How a front end spells one of the library's options, given the option's parameter name.
OptionWording = Callable[[str], str]

_FLAGS = ("overwrite", "resume", "distributed")  # options that are switched on rather than given a value


def parameter_name(option: str) -> str:
    """The library's own spelling: its keyword parameter (`overwrite=True` for a switch)."""
    return f"{option}=True" if option in _FLAGS else option


def command_line_option(option: str) -> str:
    """The `csfnet` command's and the batch script's spelling: `attention_dir` is `--attention-dir`."""
    return "--" + option.replace("_", "-")


class _Wording(Dict[str, str]):
    """The facts of a message, and any other field taken as an option to be spelt."""

    def __init__(self, facts: Dict[str, object], spell: OptionWording):
        super().__init__({key: str(value) for key, value in facts.items()})
        self.spell = spell

    def __missing__(self, option: str) -> str:
        return self.spell(option)


class UsageError(Exception):
    """A run that cannot go ahead as asked. `template` holds {fields}: the facts given as keywords, and
    the options to change, which `worded` spells as the front end says."""

    def __init__(self, template: str, **facts: object):
        self.template, self.facts = template, facts
        super().__init__(self.worded(parameter_name))

    def worded(self, spell: OptionWording) -> str:
        return self.template.format_map(_Wording(self.facts, spell))


class ResultsExist(UsageError, FileExistsError):
    """A results file (or a folder of outputs) is already there; the user may ask to overwrite it."""


class InterruptedRun(UsageError, FileExistsError):
    """An interrupted run's rows wait beside the results file; the user may resume it or start again."""


class OtherRun(UsageError, ValueError):
    """A run to be resumed (or a run folder) was started with other inputs or settings."""


class DeviceUnavailable(UsageError, ValueError):
    """The device asked for is not there, or a precision is asked for where it is not offered."""


class UnusableOptions(UsageError, ValueError):
    """Options that cannot be used together, or an option value the run cannot use."""
