"""Model registry (timm-style): `create_model(name, ...)`, `list_models(pattern)`.

An entry point is a function `(in_channels, num_classes, image_size, **kwargs) -> nn.Module`
decorated with `@register_model(recipe=...)`; the recipe is the default way to train it.
`create_model` also accepts "package.module:factory" import strings for users' own models.

>>> model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
>>> list_models("resnet*")
['resnet20']
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from hirelc.importing import FactoryError, import_object, is_import_string
from hirelc.zoo.recipe import TrainRecipe

ModelFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, a one-line description and its default recipe."""

    name: str
    factory: ModelFactory
    description: str
    recipe: TrainRecipe


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str | None = None, *, recipe: TrainRecipe | None = None, description: str | None = None
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory under `name` (default: the function's name).

    >>> @register_model(recipe=TrainRecipe(epochs=1))
    ... def tiny_mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> nn.Module:
    ...     '''A one-layer perceptron.'''
    ...     return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))
    >>> get_model_entry("tiny_mlp").description
    'A one-layer perceptron.'
    """

    def decorate(factory: ModelFactory) -> ModelFactory:
        key = name or factory.__name__
        if key in _MODELS and _MODELS[key].factory is not factory:
            raise ValueError(f"model {key!r} is already registered")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        _MODELS[key] = ModelEntry(key, factory, doc, recipe or TrainRecipe())
        return factory

    return decorate


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally filtered by a glob (`"vit*"`).

    >>> "vit_tiny" in list_models("vit*")
    True
    """
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry for `name`, or a ValueError listing the registered names."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name]


def default_recipe(name: str) -> TrainRecipe:
    """The registered training recipe of a model (a generic one for import strings).

    >>> default_recipe("lenet5").optimizer
    'adamw'
    """
    return TrainRecipe() if is_import_string(name) and name not in _MODELS else get_model_entry(name).recipe


def create_model(
    name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, **kwargs: object
) -> nn.Module:
    """Build a fresh (untrained) model by registered name or "package.module:factory".

    Extra keyword arguments go to the factory (e.g. `width_mult=0.5` for mobilenetv2).
    An import-string factory is passed whichever of in_channels / num_classes /
    image_size it accepts.

    >>> create_model("resnet20", in_channels=3, num_classes=100, image_size=32).fc.out_features
    100
    """
    shape = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    for arg, value in shape.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"create_model({name!r}): {arg} must be a positive integer, got {value!r}")
    if name not in _MODELS and is_import_string(name):
        factory = import_object(name)
        try:
            model = factory(**_accepted(factory, shape), **kwargs)
        except Exception as e:  # the user's code: one line naming the factory, cause chained
            raise FactoryError(f"model factory {name!r} failed: {type(e).__name__}: {e}") from e
    else:
        model = get_model_entry(name).factory(**shape, **kwargs)
    if not isinstance(model, nn.Module):
        raise FactoryError(f"model factory {name!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _accepted(func: Callable[..., object], offered: dict[str, int]) -> dict[str, int]:
    params = inspect.signature(func).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return offered
    return {k: v for k, v in offered.items() if k in {p.name for p in params}}
