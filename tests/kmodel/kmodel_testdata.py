"""The real kmodel v3 files the kmodel tests use, reached through tests/support.py (skip or CI failure)."""

import support

FILES = {
    "iris": ("fixtures", "kmodel_v3", "nncase-v0.1.0-rc5_iris.kmodel"),
    "yolo": ("fixtures", "kmodel_v3", "nncase-v0.1.0-rc5_yolo.kmodel"),
    "cifar_hw": ("fixtures", "kmodel_v3", "maix-emc_cifar10_output.kmodel"),
    "cifar": ("models", "maix-emc", "cifar10.kmodel"),
    "mbnet": ("models", "maix-emc", "mbnetv1_0.75.kmodel"),
}
NNCASE = ("iris", "yolo")
MAIX_EMC = ("cifar_hw", "cifar", "mbnet")


def path(key: str):
    return support.shared(*FILES[key])


def data(key: str) -> bytes:
    return path(key).read_bytes()


def model(key: str):
    from emcgen.kmodel import load

    return load(path(key))


def shared(*parts):
    return support.shared(*parts)
