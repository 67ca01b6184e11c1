"""Datasets: a registry of embedded and file-format datasets, and deterministic splits.

>>> from hirelc.data import load_dataset, list_datasets
>>> data = load_dataset("mnist5k", seed=0)
>>> print(data)
mnist5k (split seed 0): train 3,000 / val 1,000 / test 1,000; 10 classes; 1x28x28
"""

from hirelc.data.formats import DatasetFormatError
from hirelc.data.registry import (
    DatasetEntry,
    list_datasets,
    load_dataset,
    register_dataset,
    splits_from_datasets,
)
from hirelc.data.splits import DataSplits, RawData, batch_loader, make_splits, stratified_split

__all__ = [
    "DataSplits",
    "DatasetEntry",
    "DatasetFormatError",
    "RawData",
    "batch_loader",
    "list_datasets",
    "load_dataset",
    "make_splits",
    "register_dataset",
    "splits_from_datasets",
    "stratified_split",
]
