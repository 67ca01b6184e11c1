"""Model zoo: `create_model(name, in_channels, num_classes, image_size)` and `list_models()`.

>>> from hirelc.zoo import create_model, list_models
>>> model = create_model("resnet20", in_channels=1, num_classes=10, image_size=28)
>>> list_models("re*")
['releq_lenet', 'resnet20']
"""

from hirelc.zoo import models as _models  # noqa: F401  (registers the built-in entries)
from hirelc.zoo.recipe import TrainRecipe
from hirelc.zoo.registry import (
    ModelEntry,
    create_model,
    default_recipe,
    get_model_entry,
    list_models,
    register_model,
)

__all__ = [
    "ModelEntry",
    "TrainRecipe",
    "create_model",
    "default_recipe",
    "get_model_entry",
    "list_models",
    "register_model",
]
