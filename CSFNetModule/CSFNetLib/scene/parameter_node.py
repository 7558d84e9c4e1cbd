"""The module's parameter node: values the panel cannot show are reset before anything reads them.

A scene saved where other models were installed (another machine, an older version) holds a model
name the panel's choice list lacks, and a scene from another version may hold clinical labels since
renamed. The parameter-node wrapper checks every value against its choices whenever the node
changes, and raises (inside a VTK callback) on one it does not know. `keep_choices_known` resets such
values first: at once, and on every later change (a scene import, a script) before other observers run.
"""

from typing import Mapping, Optional, Sequence

import vtk

#: Observers of higher priority run first; the wrapper's own observers have priority 0.
BEFORE_OTHER_OBSERVERS = 100.0


def reset_unknown_choice(node, parameter: str, choices: Sequence[str]) -> Optional[str]:
    """Set `parameter` to `choices[0]` (the panel's default) when it holds anything else, nothing included
    (a scene from a version without it); the value replaced ("" when there was none), or None."""
    value = node.GetParameter(parameter)
    if value in choices:
        return None
    node.SetParameter(parameter, choices[0])
    return value


def keep_choices_known(node, choices: Mapping[str, Sequence[str]]) -> int:
    """Reset every parameter of `choices` that holds an unknown value, now and whenever `node` changes,
    before its other observers see the change; the observer's tag."""
    def reset(caller, event=None) -> None:  # the node comes as `caller`: no reference to it is kept here
        for parameter, known in choices.items():
            reset_unknown_choice(caller, parameter, known)

    reset(node)
    return node.AddObserver(vtk.vtkCommand.ModifiedEvent, reset, BEFORE_OTHER_OBSERVERS)
