"""Plug-in points of the noise model: one registry per part, chosen by a ``"kind"`` key.

A noise model holds one object of each part:

========== ================================================ ===========================
part       what it answers                                  built in
========== ================================================ ===========================
programming the conductance a write reaches for a target    ``"table"`` (per scheme)
read_noise  current noise of a read                         ``"johnson_shot"``
retention   the conductance at a time after programming     ``"none"``
periphery   input DAC and output ADC                        ``"dac_adc"``
========== ================================================ ===========================

A new kind is a class with a ``kind`` class attribute, ``to_dict()`` (which writes ``"kind"``),
a ``from_dict(doc)`` classmethod and the part's methods (see the built-in classes), registered
with ``@register(PART_REGISTRY)``. The analog layers ask the noise model for samplers and
converters; they never build them from its fields, so a new kind needs no change there.
"""

from __future__ import annotations

PROGRAMMING_MODELS: dict[str, type] = {}
READ_NOISE_MODELS: dict[str, type] = {}
RETENTION_MODELS: dict[str, type] = {}
PERIPHERY_MODELS: dict[str, type] = {}

_PARTS = {"programming": PROGRAMMING_MODELS, "read_noise": READ_NOISE_MODELS,
          "retention": RETENTION_MODELS, "periphery": PERIPHERY_MODELS}


def register(registry: dict):
    """Class decorator: add a part implementation to ``registry`` under its ``kind``."""
    def add(cls: type) -> type:
        kind = getattr(cls, "kind", None)
        if not isinstance(kind, str) or not kind:
            raise TypeError(f"{cls.__name__} needs a class attribute 'kind' (str)")
        for verb in ("to_dict", "from_dict"):
            if not callable(getattr(cls, verb, None)):
                raise TypeError(f"{cls.__name__} ({kind!r}) needs a method {verb}()")
        registry[kind] = cls
        return cls
    return add


def build(part: str, doc: dict, default_kind: str, where: str):
    """The part ``part`` of a noise-model document, by its ``"kind"`` (default
    ``default_kind`` for files written before parts had kinds).

    Raises
    ------
    ValueError
        Naming the part and the registered kinds when the kind is unknown.
    """
    registry = _PARTS[part]
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: {part} must be an object, got {type(doc).__name__}")
    kind = doc.get("kind", default_kind)
    try:
        cls = registry[kind]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: {part}.kind {kind!r} is not registered (known: "
                         f"{', '.join(sorted(registry))})") from None
    return cls.from_dict(doc)
