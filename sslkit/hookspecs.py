"""The hooks a plugin implements. Each returns a list of :class:`~sslkit.interfaces.Component`.

A plugin module looks like this::

    from sslkit import Component, hookimpl

    @hookimpl
    def sslkit_pretexts():
        return [Component("jigsaw", Jigsaw, "solve 2x2 jigsaw puzzles", {"grid": 2})]

and is announced in its distribution's ``pyproject.toml``::

    [project.entry-points.sslkit]
    jigsaw = "sslkit_jigsaw"
"""

from __future__ import annotations

import pluggy

from sslkit.interfaces import Component

hookspec = pluggy.HookspecMarker("sslkit")
hookimpl = pluggy.HookimplMarker("sslkit")


@hookspec
def sslkit_datasets() -> list[Component]:
    """Dataset providers: factory ``(root, download, **options) -> DatasetBundle``."""


@hookspec
def sslkit_encoders() -> list[Component]:
    """Encoders: factory ``(in_chans, image_size, **options) -> nn.Module`` with ``feature_dim``."""


@hookspec
def sslkit_pretexts() -> list[Component]:
    """Pretext tasks: factory ``(encoder, info, **options) -> Pretext``."""


@hookspec
def sslkit_evaluators() -> list[Component]:
    """Evaluators: factory ``(**options) -> Evaluator``."""


@hookspec
def sslkit_selectors() -> list[Component]:
    """Selectors (which pool images to label): factory ``(**options) -> Selector``."""
