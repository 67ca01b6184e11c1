import pytest

from hirelc.pipeline import JobConfig
from hirelc.result_file import action_labels


def test_action_labels_follow_the_action_space():
    assert action_labels("releq", {}, (2, 4, 8)) == ["2", "4", "8"]
    assert action_labels("releq", {"action_space": "restricted"}, (2, 4, 8)) == ["decrement", "keep", "increment"]


@pytest.mark.parametrize("bad, message", [
    ({"method": "nope"}, "unknown search method 'nope'"),
    ({"max_evaluations": 0}, "max_evaluations must be >= 1"),
    ({"search_steps": -1}, "search_steps must be >= 0"),
    ({"bits": (3,)}, "at least two distinct bitwidths"),
    ({"finetune_lr": 0}, "finetune_lr must be a learning rate"),
    ({"finetune_lr": 3}, "finetune_lr must be a learning rate"),
])
def test_job_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        JobConfig(**bad)


def test_job_config_round_trips_through_json_types():
    config = JobConfig(bits=(8, 2, 4), options={"agent": "mlp"})
    assert JobConfig.from_dict(config.to_dict()) == config
    assert config.bits == (2, 4, 8)
