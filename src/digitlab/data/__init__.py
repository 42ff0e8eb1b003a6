"""Data: sources (registry), the in-memory Dataset, and loaders."""

from digitlab.data import balance, csvfile, dataset, folder, idx, loader, mnist, sources, userdata
from digitlab.data.dataset import Dataset, Split, cache_dir
from digitlab.data.loader import DeviceLoader, TorchLoader, make_loader
from digitlab.data.sources import SOURCES, load_dataset

__all__ = ["SOURCES", "Dataset", "DeviceLoader", "Split", "TorchLoader", "balance", "cache_dir",
           "csvfile", "dataset", "folder", "idx", "load_dataset", "loader", "make_loader", "mnist",
           "sources", "userdata"]
