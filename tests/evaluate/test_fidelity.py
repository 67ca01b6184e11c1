import pytest

from hirelc.evaluate import Fidelity


def test_constructors_and_keys():
    assert Fidelity.none().key() == "none"
    assert Fidelity.short(200).key() == "short-200"
    assert Fidelity.final(3).key() == "final-3"
    assert not Fidelity.none().finetunes and Fidelity.short(1).finetunes


@pytest.mark.parametrize("f", [Fidelity.none(), Fidelity.short(7), Fidelity.final(2)])
def test_json_and_parse_round_trip(f):
    assert Fidelity.from_json(f.to_json()) == f
    assert Fidelity.from_dict(f.to_dict()) == f
    assert Fidelity.parse(f.key()) == f
    assert Fidelity.parse(f.key().replace("-", ":")) == f


def test_keys_are_distinct():
    fids = [Fidelity.none(), Fidelity.short(3), Fidelity.short(30), Fidelity.final(3)]
    assert len({f.key() for f in fids}) == len(fids)
    assert len(set(fids)) == len(fids)  # frozen + hashable: usable as a dict key


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Fidelity.short(0), "steps >= 1"),
        (lambda: Fidelity.final(0), "epochs >= 1"),
        (lambda: Fidelity("fast"), "unknown fidelity kind"),
        (lambda: Fidelity("none", steps=3), "takes no steps"),
        (lambda: Fidelity("short", steps=True), "non-negative integer"),
        (lambda: Fidelity.short(2.5), "non-negative integer"),
        (lambda: Fidelity.parse("short"), "cannot parse fidelity"),
        (lambda: Fidelity.from_json('{"kind": "none", "x": 1}'), "unknown Fidelity fields"),
        (lambda: Fidelity.from_json("nope"), "not a fidelity JSON"),
    ],
)
def test_invalid(make, match):
    with pytest.raises(ValueError, match=match):
        make()
