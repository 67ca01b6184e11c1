"""Model registry, TrainRecipe validation and import strings."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from torch import nn

from hirelc.importing import import_object, is_import_string
from hirelc.zoo import TrainRecipe, create_model, default_recipe, get_model_entry, list_models, register_model
from hirelc.zoo import registry

EXPECTED = ["cnn1d", "lenet5", "mobilenetv2", "releq_lenet", "resnet20", "simplenet", "vgg11", "vit_tiny"]


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "user_zoo_mod.py").write_text(textwrap.dedent('''
        from torch import nn

        def mlp(in_channels, image_size, num_classes=10, hidden=16):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, hidden),
                                 nn.ReLU(), nn.Linear(hidden, num_classes))

        def fixed():
            return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def not_a_model(**kwargs):
            return "model"
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_zoo_mod"
    sys.modules.pop("user_zoo_mod", None)


def test_list_models_and_patterns() -> None:
    assert list_models() == EXPECTED
    assert list_models("*lenet*") == ["lenet5", "mobilenetv2", "releq_lenet", "simplenet"]  # glob, like timm
    assert list_models("vit*") == ["vit_tiny"]
    assert list_models("nothing*") == []


def test_every_model_has_a_description_and_recipe() -> None:
    for name in list_models():
        entry = get_model_entry(name)
        assert entry.description and isinstance(entry.recipe, TrainRecipe)
        assert default_recipe(name) is entry.recipe


def test_unknown_model_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet21'; registered: cnn1d, lenet5, "):
        create_model("resnet21")
    with pytest.raises(ValueError, match="in_channels must be a positive integer"):
        create_model("lenet5", in_channels=0)
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        create_model("lenet5", image_size=28.0)  # type: ignore[arg-type]


def test_import_string_models(user_module: str) -> None:
    model = create_model(f"{user_module}:mlp", in_channels=3, num_classes=5, image_size=4, hidden=7)
    assert model[1].in_features == 48 and model[1].out_features == 7 and model[3].out_features == 5
    assert isinstance(create_model(f"{user_module}:fixed", 1, 10, 8), nn.Module)  # accepts no shape kwargs
    with pytest.raises(TypeError, match="returned str, not an nn.Module"):
        create_model(f"{user_module}:not_a_model")
    assert default_recipe(f"{user_module}:mlp") == TrainRecipe()


def test_register_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model(recipe=TrainRecipe(epochs=2))
    def tiny(in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> nn.Module:
        """A linear classifier."""
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))

    assert "tiny" in list_models() and get_model_entry("tiny").description == "A linear classifier."
    assert default_recipe("tiny").epochs == 2
    assert create_model("tiny", 2, 3, 4)[1].in_features == 32
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny")(lambda **kw: nn.Identity())


def test_train_recipe_validation_and_round_trip() -> None:
    recipe = TrainRecipe(epochs=3, optimizer="sgd", lr=0.1, schedule="onecycle", grad_clip=1.0)
    assert TrainRecipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.hash() == TrainRecipe.from_dict(recipe.to_dict()).hash()
    assert recipe.hash() != recipe.replace(lr=0.2).hash()
    for bad, match in [
        ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
        ({"schedule": "step"}, "unknown schedule"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"lr": 0.0}, "lr must be a number in \\(0.0, inf\\)"),
        ({"label_smoothing": 1.0}, "label_smoothing must be a number in \\[0.0, 1.0\\)"),
        ({"warmup_epochs": 20.0}, "warmup_epochs must be a number in \\[0.0, 10.0\\]"),
        ({"batch_size": True}, "batch_size must be an integer"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainRecipe(**bad)
    with pytest.raises(ValueError, match="unknown TrainRecipe fields \\['epoch'\\]"):
        TrainRecipe.from_dict({"epoch": 3})


def test_import_object_errors() -> None:
    assert import_object("os.path:join")("a", "b").endswith("b")
    assert is_import_string("a.b:c.d") and not is_import_string("cifar10:/data") and not is_import_string("lenet5")
    with pytest.raises(ValueError, match="expected 'package.module:attribute'"):
        import_object("os.path.join")
    with pytest.raises(ImportError, match="module 'no_such_module_xyz' not found"):
        import_object("no_such_module_xyz:f")
    with pytest.raises(AttributeError, match="module 'os' has no attribute 'nope'"):
        import_object("os:nope")
    with pytest.raises(TypeError, match="'sep' is a str, not a callable"):
        import_object("os:sep")
    assert import_object("os:sep", callable_required=False) in ("/", "\\")
