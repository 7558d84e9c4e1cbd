"""The module's parameter node as it arrives from a saved scene: values the panel can no longer show.

A scene saved with a model that is not installed here (another machine, an older version) holds a
model name the panel's choice list lacks; shown as is, the parameter-node binding raises inside a
VTK callback. The panel resets such values on every parameter node it takes, and after a scene import.
"""

from typing import Optional, Sequence


def reset_unknown_choice(node, parameter: str, choices: Sequence[str]) -> Optional[str]:
    """Set `parameter` to `choices[0]` when it holds something else than one of `choices` (an unset
    parameter is left for the defaults); the value replaced, or None when nothing was."""
    value = node.GetParameter(parameter)
    if value == "" or value in choices:
        return None
    node.SetParameter(parameter, choices[0])
    return value
