"""emcgen: an embedded neural-network compiler.

Converts TensorLayer, Keras and TFLite models into kmodel v3 files for the Kendryte K210 KPU, Kendryte
standalone-SDK C projects, and STM32 / CMSIS-NN C projects. Importing emcgen never imports TensorFlow;
only the TensorLayer and Keras frontends do, when they are used.

    import emcgen
    emcgen.save_kmodel(net, "model.kmodel", "dataset_dir")          # the seed's API
    from emcgen.convert import convert
    report = convert("model.h5", "stm32", "out/project", dataset="dataset_dir")
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import EmcError  # noqa: E402

__all__ = ["EmcError", "__version__", "load_model", "save_kmodel"]


def load_model(source, **kwargs):
    """Read a model (file path or in-memory TensorLayer/Keras object) into the IR; see emcgen.frontends."""
    from .frontends import load_model as _load
    return _load(source, **kwargs)


def save_kmodel(network, filepath, dataset_dir, dataset_func="img_0_1", quant_func="minmax",
                quant_bit=8, version=3, sm_flag=False):
    """The seed's API (Maix-EMC): convert `network` to a kmodel v3 file calibrated on `dataset_dir`."""
    from .targets.k210.kmodel_target import save_kmodel as _save
    return _save(network, filepath, dataset_dir, dataset_func=dataset_func, quant_func=quant_func,
                 quant_bit=quant_bit, version=version, sm_flag=sm_flag)
