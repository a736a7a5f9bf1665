"""Calibration and test inputs: image folders, single images and arrays -> float32 batches (N, H, W, C).

Why here and not in each target: every target calibrates on the same samples, and the K210 target must
know how pixels became model inputs so it can fold that normalization into its first layer (the kmodel
takes raw uint8 pixels). So normalization is named ("dataset functions", as in the seed's
`save_kmodel(..., dataset_func='img_0_1')`) and each built-in also states its affine form.

Dataset functions map one uint8 sample (H, W, C) to float32 of the same shape:
    img_0_1     pixels / 255            affine (scale 1/255,   offset 0)
    img_neg1_1  pixels / 127.5 - 1      affine (scale 1/127.5, offset -1)
    img_0_255   pixels as float         affine (scale 1,       offset 0)
`register_dataset_func(name, fn, affine=None)` adds user functions; `affine=(scale, offset)` declares
that fn(x) == x * scale + offset (emcgen trusts that declaration; it does not probe fn).

Images (load_dataset on a folder or an image file, load_image, load_image_uint8), step by step:
  1. read with PIL (.bmp, .png, .jpg, .jpeg; case-insensitive); 8-bit modes only (1, L, LA, P, PA, RGB,
     RGBA, RGBX, CMYK, YCbCr); the EXIF orientation tag is not applied;
  2. channels: a grey model (C=1) gets PIL's convert('L') (ITU-R 601-2 luma, L = R*299/1000 +
     G*587/1000 + B*114/1000, from RGB for colour modes); an RGB model (C=3) gets convert('RGB')
     (grey is replicated, palettes are looked up, alpha is dropped, not composited). Other channel
     counts cannot come from images;
  3. size: when the image is not W x H it is resized to exactly W x H with PIL's BILINEAR filter
     (Image.resize, which also averages over the source pixels when shrinking); the aspect ratio is
     NOT kept and nothing is cropped. Deterministic for a given Pillow version;
  4. the dataset function.
A folder contributes its image files in sorted file-name order (plain string sort, no recursion; other
files are ignored). Unreadable or corrupt images in a folder are skipped: `read_dataset` returns them,
`load_dataset` logs one warning line; it is an error when none is left.

Arrays (.npy, or .npz with an array named 'x', 'images' or 'inputs', or its only array): shape
(N, H, W, C), (N, H, W) for a grey model, or (H, W, C) for one sample. uint8 arrays (and other integer
arrays whose values are all in 0..255) are pixels and go through the dataset function; float arrays are
taken as already normalized model inputs and the dataset function is NOT applied.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import EmcError, FormatError
from .progress import Progress, report

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_KEYS = ("x", "images", "inputs")
_PIL_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


# ---- dataset functions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetFunc:
    """A named normalization: fn maps a uint8 (H, W, C) sample to float32; affine = (scale, offset) or None."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    affine: tuple[float, float] | None = None


def _img_0_1(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255.0)


def _img_neg1_1(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _img_0_255(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32)


_BUILTIN_FUNCS = (
    DatasetFunc("img_0_1", _img_0_1, (1.0 / 255.0, 0.0)),
    DatasetFunc("img_neg1_1", _img_neg1_1, (1.0 / 127.5, -1.0)),
    DatasetFunc("img_0_255", _img_0_255, (1.0, 0.0)),
)
_FUNCS: dict[str, DatasetFunc] = {f.name: f for f in _BUILTIN_FUNCS}


def dataset_funcs() -> list[str]:
    """Names of the known dataset functions (built-ins first, then user ones in registration order)."""
    return list(_FUNCS)


def register_dataset_func(name: str, fn: Callable[[np.ndarray], np.ndarray],
                          affine: tuple[float, float] | None = None, *, replace: bool = False) -> None:
    """Make `fn` available as dataset function `name`.

    fn receives one uint8 sample (H, W, C) and returns an array of the same shape (cast to float32).
    affine=(scale, offset) declares fn(x) == x * scale + offset, which lets targets fold it into the
    first layer. A taken name is an error unless replace=True; built-ins cannot be replaced.
    """
    if not isinstance(name, str) or not name:
        raise EmcError(f"dataset function name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise EmcError(f"dataset function {name!r}: {fn!r} is not callable")
    if any(f.name == name for f in _BUILTIN_FUNCS):
        raise EmcError(f"dataset function {name!r} is built in and cannot be replaced; choose another name")
    if name in _FUNCS and not replace:
        raise EmcError(f"dataset function {name!r} is already registered; pass replace=True to replace it")
    if affine is not None:
        try:
            scale, offset = (float(v) for v in affine)
        except (TypeError, ValueError):
            raise EmcError(f"dataset function {name!r}: affine must be (scale, offset), got {affine!r}") from None
        if not (np.isfinite(scale) and np.isfinite(offset)) or scale == 0.0:
            raise EmcError(f"dataset function {name!r}: affine {affine!r} needs a finite non-zero scale "
                           "and a finite offset")
        affine = (scale, offset)
    _FUNCS[name] = DatasetFunc(name, fn, affine)


def get_dataset_func(func: str | Callable | DatasetFunc) -> DatasetFunc:
    """A DatasetFunc from a registered name, a DatasetFunc, or a bare callable (not affine)."""
    if isinstance(func, DatasetFunc):
        return func
    if isinstance(func, str):
        try:
            return _FUNCS[func]
        except KeyError:
            raise EmcError(f"unknown dataset function {func!r}; known: {', '.join(_FUNCS)}") from None
    if callable(func):
        return DatasetFunc(getattr(func, "__name__", "custom"), func, None)
    raise EmcError(f"dataset function must be a name or a callable, got {func!r}")


def dataset_func_affine(name: str) -> tuple[float, float] | None:
    """(scale, offset) with fn(pixels) == pixels * scale + offset, or None when fn is not declared affine."""
    return get_dataset_func(name).affine


# ---- shapes ---------------------------------------------------------------------------------------------
def _hwc(input_shape) -> tuple[int, int, int]:
    """(H, W, C) from (H, W, C) or a graph shape (1, H, W, C)."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise EmcError(f"input shape {input_shape!r} is not a tuple of integers") from None
    if len(shape) == 4 and shape[0] in (1, -1, 0):
        shape = shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise EmcError(f"input shape {tuple(input_shape)} is not an image shape (H, W, C); image and array "
                       "datasets feed NHWC model inputs")
    return shape  # type: ignore[return-value]


# ---- images ---------------------------------------------------------------------------------------------
def _read_image(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file -> uint8 (H, W, C): PIL read, channel conversion, bilinear resize (see module doc)."""
    h, w, c = shape
    if c not in (1, 3):
        raise EmcError(f"{path}: the model input has {c} channels; images can only feed 1 (grey) or 3 (RGB) "
                       "channels; give an .npy array instead")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in _PIL_MODES:
                raise FormatError(f"{path}: image mode {im.mode} is not supported; supported: 8-bit "
                                  f"{', '.join(_PIL_MODES)}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PIL warns about palette transparency it then drops
                if c == 3:
                    im = im.convert("RGB") if im.mode != "RGB" else im
                elif im.mode in ("1", "L", "LA"):
                    im = im.convert("L") if im.mode != "L" else im
                else:
                    im = (im if im.mode == "RGB" else im.convert("RGB")).convert("L")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except _PIL_ERRORS as exc:
        raise FormatError(f"{path}: cannot read the image ({_reason(exc)})") from None
    return np.ascontiguousarray(pixels.reshape(h, w, c))


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _apply(fn: DatasetFunc, pixels: np.ndarray, where: str) -> np.ndarray:
    """Run the dataset function on one uint8 sample and check that it kept the shape."""
    out = np.asarray(fn.fn(pixels))
    if out.shape != pixels.shape:
        raise EmcError(f"dataset function {fn.name!r} returned shape {out.shape} for {where} of shape "
                       f"{pixels.shape}; it must keep the shape")
    if not np.issubdtype(out.dtype, np.number) or np.iscomplexobj(out):
        raise EmcError(f"dataset function {fn.name!r} returned {out.dtype} for {where}; expected real numbers")
    return out.astype(np.float32, copy=False)


def load_image_uint8(path, input_shape) -> np.ndarray:
    """The raw pixels (H, W, C) uint8 of one image after channel conversion and resize (for the K210)."""
    path = Path(path)
    if not path.exists():
        raise EmcError(f"{path}: no such file")
    if path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES:
        raise EmcError(f"{path}: not an image file; expected {', '.join(IMAGE_SUFFIXES)}")
    return _read_image(path, _hwc(input_shape))


def load_image(path, input_shape, func: str | Callable = "img_0_1") -> np.ndarray:
    """One image file -> float32 (1, H, W, C) model input (pixels through the dataset function)."""
    fn = get_dataset_func(func)
    pixels = load_image_uint8(path, input_shape)
    return _apply(fn, pixels, str(path))[None]


# ---- arrays ---------------------------------------------------------------------------------------------
def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            key = next((k for k in NPZ_KEYS if k in names), None)
            if key is None:
                if len(names) != 1:
                    raise FormatError(f"{path}: cannot tell which array holds the inputs; name it one of "
                                      f"{', '.join(NPZ_KEYS)} (arrays found: {', '.join(names) or 'none'})")
                key = names[0]
            return z[key]
    except FormatError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise FormatError(f"{path}: cannot read the array file ({_reason(exc)})") from None


def _array_samples(path: Path, arr: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    h, w, c = shape
    if arr.shape == (h, w, c):
        return arr[None]
    if arr.ndim == 4 and arr.shape[1:] == (h, w, c):
        return arr
    if c == 1 and arr.ndim == 3 and arr.shape[1:] == (h, w):
        return arr[..., None]
    grey = f", (N, {h}, {w})" if c == 1 else ""
    raise FormatError(f"{path}: array shape {arr.shape}; expected (N, {h}, {w}, {c}){grey} or ({h}, {w}, {c}) "
                      "for one sample")


def _array_dataset(path: Path, shape, fn: DatasetFunc, limit: int | None, progress: Progress | None):
    arr = _read_array(path)
    samples = _array_samples(path, arr, shape)
    if limit is not None:
        samples = samples[:limit]
    if samples.shape[0] == 0:
        raise EmcError(f"{path}: the array holds no samples (shape {arr.shape})")
    kind = samples.dtype.kind
    if kind == "f":
        x = np.array(samples, dtype=np.float32)
        if not np.isfinite(x).all():
            raise FormatError(f"{path}: the float array contains NaN or infinity")
        report(progress, 1.0)
        return x
    if kind in "iu":
        pixels = np.asarray(samples)
        if pixels.dtype != np.uint8:
            lo, hi = int(pixels.min()), int(pixels.max())
            if lo < 0 or hi > 255:
                raise FormatError(f"{path}: integer array values span {lo}..{hi}; pixels must be 0..255 "
                                  "(or give a float array of normalized inputs)")
            pixels = pixels.astype(np.uint8)
        n = pixels.shape[0]
        x = np.empty(pixels.shape, np.float32)
        step = max(1, n // 100)
        for i in range(n):
            x[i] = _apply(fn, np.ascontiguousarray(pixels[i]), f"sample {i} of {path}")
            if progress is not None and (i + 1) % step == 0:
                report(progress, (i + 1) / n)
        report(progress, 1.0)
        return x
    raise FormatError(f"{path}: array dtype {samples.dtype} is not supported; expected uint8 pixels or "
                      "float inputs")


# ---- datasets -------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """What read_dataset found: the samples, the files they came from, and the files it skipped."""

    x: np.ndarray
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def skipped_line(self) -> str:
        """One line naming the skipped files (empty when none was skipped)."""
        if not self.skipped:
            return ""
        shown = "; ".join(f"{Path(f).name} ({why})" for f, why in self.skipped[:3])
        more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        return f"skipped {len(self.skipped)} unreadable image file(s): {shown}{more}"


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=lambda p: p.name)


def _check_limit(limit):
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise EmcError(f"dataset limit must be a positive integer or None, got {limit!r}")
    return int(limit)


def read_dataset(path, input_shape, func: str | Callable = "img_0_1", limit: int | None = None,
                 progress: Progress | None = None) -> Dataset:
    """Load samples for a model input of shape (H, W, C) (or (1, H, W, C)); see the module docstring.

    path: a folder of images, one image file, or an .npy / .npz array. limit keeps the first `limit`
    samples (in a folder: the first `limit` readable images in file-name order).
    """
    path = Path(path)
    shape = _hwc(input_shape)
    fn = get_dataset_func(func)
    limit = _check_limit(limit)
    if not path.exists():
        raise EmcError(f"dataset {path}: no such file or folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in ARRAY_SUFFIXES:
            return Dataset(_array_dataset(path, shape, fn, limit, progress), [str(path)])
        if suffix in IMAGE_SUFFIXES:
            x = _apply(fn, _read_image(path, shape), str(path))[None]
            report(progress, 1.0)
            return Dataset(x, [str(path)])
        raise EmcError(f"dataset {path}: unsupported file type {path.suffix or '(none)'}; expected a folder of "
                       f"images, an image ({', '.join(IMAGE_SUFFIXES)}) or an array (.npy, .npz)")
    files = _image_files(path)
    if not files:
        raise EmcError(f"dataset folder {path} has no image files ({', '.join(IMAGE_SUFFIXES)})")
    samples: list[np.ndarray] = []
    used: list[str] = []
    skipped: list[tuple[str, str]] = []
    for i, f in enumerate(files):
        try:
            pixels = _read_image(f, shape)
        except FormatError as exc:
            skipped.append((str(f), str(exc).split(": ", 1)[-1]))
        else:
            samples.append(_apply(fn, pixels, str(f)))
            used.append(str(f))
        report(progress, (i + 1) / len(files))
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        first = f" (first: {Path(skipped[0][0]).name}: {skipped[0][1]})" if skipped else ""
        raise EmcError(f"dataset folder {path}: none of its {len(files)} image files could be read{first}")
    report(progress, 1.0)
    return Dataset(np.stack(samples).astype(np.float32, copy=False), used, skipped)


def load_dataset(path, input_shape, func: str | Callable = "img_0_1", limit: int | None = None,
                 progress: Progress | None = None) -> np.ndarray:
    """float32 (N, H, W, C) samples for a model input (H, W, C); skipped files are logged as one warning."""
    ds = read_dataset(path, input_shape, func, limit, progress)
    if ds.skipped:
        log.warning("dataset %s: %s", path, ds.skipped_line())
    return ds.x
