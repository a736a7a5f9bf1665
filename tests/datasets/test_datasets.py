"""Dataset loading: image folders, single images and arrays -> float32 (N, H, W, C).

Expected values come from PIL called directly in the test (decode, convert, resize), from hand-computed
pixel arithmetic, or from the numbers written into the test files themselves.
"""
import logging

import numpy as np
import pytest
import support
from PIL import Image

from emcgen import datasets
from emcgen.errors import EmcError, FormatError


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    """User registrations in one test must not leak into another."""
    monkeypatch.setattr(datasets, "_FUNCS", dict(datasets._FUNCS))


def rgb_pattern(w, h, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pil_expected(path, size, mode):
    """What the documented rule says, computed with PIL directly: convert, resize bilinear, as uint8."""
    with Image.open(path) as im:
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


@pytest.fixture
def image_folder(tmp_path):
    """Five readable images of different formats, modes and sizes, plus files that must be ignored."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(rgb_pattern(32, 32, 1)).save(d / "a_rgb.png")
    Image.fromarray(rgb_pattern(32, 32, 2)[..., 0]).save(d / "b_grey.bmp")
    Image.fromarray(rgb_pattern(40, 20, 3)).save(d / "c_wide.jpg", quality=90)
    pal = Image.fromarray(rgb_pattern(16, 16, 4)[..., 0] % 4).convert("P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30] + [0] * (256 * 3 - 12))
    pal.save(d / "d_palette.png")
    rgba = np.dstack([rgb_pattern(32, 32, 5), np.zeros((32, 32), np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "E_alpha.PNG")
    (d / "notes.txt").write_text("not an image")
    (d / "sub").mkdir()
    Image.fromarray(rgb_pattern(32, 32, 6)).save(d / "sub" / "nested.png")
    return d


# ---- dataset functions --------------------------------------------------------------------------------
def test_builtin_functions_arithmetic():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    k = np.arange(256, dtype=np.float64).reshape(16, 16, 1)
    f01 = datasets.get_dataset_func("img_0_1").fn(pixels)
    fn1 = datasets.get_dataset_func("img_neg1_1").fn(pixels)
    f255 = datasets.get_dataset_func("img_0_255").fn(pixels)
    for out in (f01, fn1, f255):
        assert out.dtype == np.float32 and out.shape == pixels.shape
    np.testing.assert_allclose(f01, k / 255.0, rtol=1e-7, atol=0)
    np.testing.assert_allclose(fn1, k * 2.0 / 255.0 - 1.0, rtol=0, atol=1.2e-7)
    np.testing.assert_array_equal(f255, k)
    # hand-picked values
    assert f01.flat[0] == 0.0 and f01.flat[255] == 1.0 and abs(f01.flat[51] - 0.2) < 1e-7
    assert fn1.flat[0] == -1.0 and fn1.flat[255] == 1.0 and abs(fn1.flat[51] - (-0.6)) < 1e-7


@pytest.mark.parametrize("name,affine", [("img_0_1", (1 / 255, 0.0)), ("img_neg1_1", (2 / 255, -1.0)),
                                         ("img_0_255", (1.0, 0.0))])
def test_builtin_affine_forms(name, affine):
    scale, offset = datasets.dataset_func_affine(name)
    assert scale == pytest.approx(affine[0], rel=1e-15) and offset == affine[1]
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    folded = pixels.astype(np.float64) * scale + offset
    np.testing.assert_allclose(datasets.get_dataset_func(name).fn(pixels), folded, rtol=0, atol=2.5e-7)


def test_register_user_function(tmp_path):
    datasets.register_dataset_func("centered", lambda x: x.astype(np.float32) - 128.0, affine=(1, -128))
    datasets.register_dataset_func("squares", lambda x: (x.astype(np.float32) / 255) ** 2)
    assert datasets.dataset_func_affine("centered") == (1.0, -128.0)
    assert datasets.dataset_func_affine("squares") is None
    assert {"img_0_1", "img_neg1_1", "img_0_255", "centered", "squares"} <= set(datasets.dataset_funcs())
    p = tmp_path / "one.png"
    Image.fromarray(np.full((4, 4, 3), 51, np.uint8)).save(p)
    assert np.all(datasets.load_dataset(p, (4, 4, 3), "centered") == 51 - 128)
    np.testing.assert_allclose(datasets.load_dataset(p, (4, 4, 3), "squares"), 0.04, rtol=1e-6)
    # a bare callable works too
    np.testing.assert_array_equal(datasets.load_image(p, (4, 4, 3), lambda x: x * 2.0), np.full((1, 4, 4, 3), 102))


def test_register_errors():
    with pytest.raises(EmcError, match="img_0_1.*built in"):
        datasets.register_dataset_func("img_0_1", lambda x: x)
    datasets.register_dataset_func("mine", lambda x: x)
    with pytest.raises(EmcError, match="'mine' is already registered"):
        datasets.register_dataset_func("mine", lambda x: x)
    datasets.register_dataset_func("mine", lambda x: x * 0.5, affine=(0.5, 0), replace=True)
    assert datasets.dataset_func_affine("mine") == (0.5, 0.0)
    with pytest.raises(EmcError, match="'bad'.*scale"):
        datasets.register_dataset_func("bad", lambda x: x, affine=(0, 1))
    with pytest.raises(EmcError, match="not callable"):
        datasets.register_dataset_func("notfn", 3)


def test_unknown_function_lists_known_ones(tmp_path):
    with pytest.raises(EmcError, match=r"unknown dataset function 'img_01'; known: img_0_1, img_neg1_1, img_0_255"):
        datasets.load_dataset(tmp_path, (4, 4, 3), "img_01")
    with pytest.raises(EmcError, match="'nope'"):
        datasets.dataset_func_affine("nope")


def test_function_must_keep_shape(tmp_path):
    p = tmp_path / "one.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(p)
    with pytest.raises(EmcError, match=r"'flat' returned shape \(48,\).*one.png.*\(4, 4, 3\)"):
        datasets.load_dataset(p, (4, 4, 3), datasets.DatasetFunc("flat", lambda x: x.ravel()))


# ---- images -------------------------------------------------------------------------------------------
def test_folder_rgb_model(image_folder):
    ds = datasets.read_dataset(image_folder, (32, 32, 3), "img_0_1")
    names = [p.split("/")[-1] for p in ds.files]
    # sorted by file name (plain string order: upper case first), txt and sub-folder ignored
    assert names == ["E_alpha.PNG", "a_rgb.png", "b_grey.bmp", "c_wide.jpg", "d_palette.png"]
    assert ds.x.shape == (5, 32, 32, 3) and ds.x.dtype == np.float32 and not ds.skipped
    for i, name in enumerate(names):
        want = pil_expected(image_folder / name, (32, 32), "RGB").astype(np.float64) / 255
        np.testing.assert_allclose(ds.x[i], want, rtol=0, atol=1e-7, err_msg=name)


def test_folder_grey_model_uses_itu601(image_folder):
    x = datasets.load_dataset(image_folder, (32, 32, 1), "img_0_255")
    names = ["E_alpha.PNG", "a_rgb.png", "b_grey.bmp", "c_wide.jpg", "d_palette.png"]
    for i, name in enumerate(names):
        np.testing.assert_array_equal(x[i], pil_expected(image_folder / name, (32, 32), "L"), err_msg=name)


def test_colour_conversions_by_hand(tmp_path):
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]], np.uint8)
    Image.fromarray(px).save(tmp_path / "c.png")
    grey = datasets.load_image_uint8(tmp_path / "c.png", (1, 4, 1))[0, :, 0].astype(int)
    luma = px.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.abs(grey - luma[0]) <= 1), (grey, luma)
    # grey -> RGB replicates; RGBA -> RGB drops alpha (no compositing); palette is looked up
    Image.fromarray(np.array([[7, 200]], np.uint8)).save(tmp_path / "g.png")
    assert datasets.load_image_uint8(tmp_path / "g.png", (1, 2, 3)).tolist() == [[[7, 7, 7], [200, 200, 200]]]
    Image.fromarray(np.array([[[10, 20, 30, 0]]], np.uint8), "RGBA").save(tmp_path / "a.png")
    assert datasets.load_image_uint8(tmp_path / "a.png", (1, 1, 3)).tolist() == [[[10, 20, 30]]]
    pal = Image.new("P", (2, 1))
    pal.putpalette([1, 2, 3, 250, 251, 252] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    assert datasets.load_image_uint8(tmp_path / "p.png", (1, 2, 3)).tolist() == [[[1, 2, 3], [250, 251, 252]]]


def test_resize_rule_is_pil_bilinear_without_keeping_aspect(tmp_path):
    # hand-computed: PIL bilinear (pixel centres, triangle filter) widening [0, 255] to 4 pixels
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "two.png")
    row = datasets.load_image_uint8(tmp_path / "two.png", (1, 4, 1))[0, :, 0].astype(int)
    assert np.all(np.abs(row - [0, 64, 191, 255]) <= 1), row  # not nearest [0,0,255,255], not [0,85,170,255]
    # shrink + stretch: 40x20 to 16x24 (aspect ratio changes), compared with PIL directly
    Image.fromarray(rgb_pattern(40, 20, 9)).save(tmp_path / "w.png")
    got = datasets.load_image_uint8(tmp_path / "w.png", (24, 16, 3))
    want = np.asarray(Image.open(tmp_path / "w.png").resize((16, 24), Image.Resampling.BILINEAR))
    assert got.shape == (24, 16, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    # graph shapes with a batch dimension are accepted
    np.testing.assert_array_equal(datasets.load_image_uint8(tmp_path / "w.png", (1, 24, 16, 3)), got)


def test_load_image_single(tmp_path):
    Image.fromarray(rgb_pattern(8, 6, 3)).save(tmp_path / "x.bmp")
    x = datasets.load_image(tmp_path / "x.bmp", (6, 8, 3), "img_neg1_1")
    assert x.shape == (1, 6, 8, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], rgb_pattern(8, 6, 3) / 127.5 - 1, atol=2e-7)
    with pytest.raises(EmcError, match=r"y\.npy: not an image file"):
        np.save(tmp_path / "y.npy", np.zeros((6, 8, 3)))
        datasets.load_image(tmp_path / "y.npy", (6, 8, 3))
    with pytest.raises(EmcError, match=r"nothere\.png: no such file"):
        datasets.load_image_uint8(tmp_path / "nothere.png", (6, 8, 3))


def test_single_image_as_dataset(tmp_path):
    Image.fromarray(rgb_pattern(8, 8, 1)).save(tmp_path / "x.jpeg")
    x = datasets.load_dataset(tmp_path / "x.jpeg", (8, 8, 3))
    np.testing.assert_allclose(x[0], pil_expected(tmp_path / "x.jpeg", (8, 8), "RGB") / 255.0, atol=1e-7)


def test_limit_and_progress(image_folder):
    seen = []
    x = datasets.load_dataset(image_folder, (32, 32, 3), limit=2, progress=seen.append)
    assert x.shape[0] == 2
    assert seen == sorted(seen) and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    with pytest.raises(EmcError, match="limit.*0"):
        datasets.load_dataset(image_folder, (32, 32, 3), limit=0)


# ---- errors -------------------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    with pytest.raises(EmcError, match=f"{tmp_path / 'nope'}: no such file or folder"):
        datasets.load_dataset(tmp_path / "nope", (4, 4, 3))


def test_empty_folder(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(EmcError, match=f"dataset folder {tmp_path} has no image files"):
        datasets.load_dataset(tmp_path, (4, 4, 3))


def test_corrupt_files_skipped_and_counted(tmp_path, caplog):
    Image.fromarray(rgb_pattern(8, 8, 1)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"this is not a png")
    Image.fromarray(rgb_pattern(64, 64, 2)).save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    (tmp_path / "full.jpg").unlink()
    ds = datasets.read_dataset(tmp_path, (8, 8, 3))
    assert ds.x.shape == (1, 8, 8, 3)
    assert sorted(f.split("/")[-1] for f, _ in ds.skipped) == ["bad.png", "cut.jpg"]
    with caplog.at_level(logging.WARNING, logger="emcgen.datasets"):
        datasets.load_dataset(tmp_path, (8, 8, 3))
    assert len(caplog.records) == 1
    assert "skipped 2 unreadable image file(s)" in caplog.text and "bad.png" in caplog.text


def test_folder_without_readable_image(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(EmcError, match=f"dataset folder {tmp_path}: none of its 2 image files could be read"):
        datasets.load_dataset(tmp_path, (4, 4, 3))


def test_corrupt_single_image_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(FormatError, match=r"a\.png: cannot read the image"):
        datasets.load_image(tmp_path / "a.png", (4, 4, 3))


def test_images_cannot_feed_four_channels(image_folder):
    with pytest.raises(EmcError, match="4 channels"):
        datasets.load_dataset(image_folder, (32, 32, 4))


def test_unsupported_file_type_and_shape(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(EmcError, match=r"x\.csv: unsupported file type \.csv"):
        datasets.load_dataset(tmp_path / "x.csv", (4, 4, 3))
    with pytest.raises(EmcError, match=r"input shape \(784,\) is not an image shape"):
        datasets.load_dataset(tmp_path, (784,))


def test_sixteen_bit_image_mode_rejected(tmp_path):
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(FormatError, match=r"deep\.png: image mode I.* is not supported"):
        datasets.load_image(tmp_path / "deep.png", (4, 4, 1))


# ---- arrays -------------------------------------------------------------------------------------------
def test_npy_uint8_goes_through_function(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (5, 4, 3, 2), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    x = datasets.load_dataset(tmp_path / "a.npy", (4, 3, 2), "img_0_1")
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, a / 255.0, atol=1e-7)
    assert datasets.load_dataset(tmp_path / "a.npy", (4, 3, 2), limit=3).shape == (3, 4, 3, 2)


def test_npy_float_taken_as_normalized(tmp_path):
    a = np.random.default_rng(1).normal(size=(3, 4, 4, 1)) * 7
    np.save(tmp_path / "f.npy", a)
    x = datasets.load_dataset(tmp_path / "f.npy", (4, 4, 1), "img_0_1")
    np.testing.assert_array_equal(x, a.astype(np.float32))
    np.save(tmp_path / "nan.npy", np.full((1, 4, 4, 1), np.nan))
    with pytest.raises(FormatError, match=r"nan\.npy.*NaN"):
        datasets.load_dataset(tmp_path / "nan.npy", (4, 4, 1))


def test_npy_shapes(tmp_path):
    grey = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.save(tmp_path / "g.npy", grey)
    x = datasets.load_dataset(tmp_path / "g.npy", (3, 4, 1), "img_0_255")
    np.testing.assert_array_equal(x, grey[..., None])
    one = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    np.save(tmp_path / "one.npy", one)
    np.testing.assert_array_equal(datasets.load_dataset(tmp_path / "one.npy", (3, 4, 3), "img_0_255"), one[None])
    with pytest.raises(FormatError, match=r"one\.npy: array shape \(3, 4, 3\); expected \(N, 8, 8, 3\)"):
        datasets.load_dataset(tmp_path / "one.npy", (8, 8, 3))
    with pytest.raises(FormatError, match=r"g\.npy: array shape \(2, 3, 4\); expected \(N, 3, 4, 3\) or"):
        datasets.load_dataset(tmp_path / "g.npy", (3, 4, 3))


def test_npy_integer_arrays(tmp_path):
    np.save(tmp_path / "i.npy", np.array([[[[0], [255]]]], np.int64))
    np.testing.assert_array_equal(datasets.load_dataset(tmp_path / "i.npy", (1, 2, 1)).ravel(), [0.0, 1.0])
    np.save(tmp_path / "big.npy", np.array([[[[0], [300]]]], np.int64))
    with pytest.raises(FormatError, match=r"big\.npy: integer array values span 0\.\.300"):
        datasets.load_dataset(tmp_path / "big.npy", (1, 2, 1))


def test_npz_key_choice(tmp_path):
    imgs = np.random.default_rng(2).integers(0, 256, (6, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "m.npz", labels=np.arange(6), images=imgs)
    np.testing.assert_allclose(datasets.load_dataset(tmp_path / "m.npz", (5, 5, 1)), imgs[..., None] / 255.0,
                               atol=1e-7)
    np.savez(tmp_path / "only.npz", whatever=imgs)
    assert datasets.load_dataset(tmp_path / "only.npz", (5, 5, 1)).shape == (6, 5, 5, 1)
    np.savez(tmp_path / "two.npz", a=imgs, b=imgs)
    with pytest.raises(FormatError, match=r"two\.npz: cannot tell which array.*x, images, inputs.*a, b"):
        datasets.load_dataset(tmp_path / "two.npz", (5, 5, 1))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(FormatError, match=r"junk\.npy: cannot read the array file"):
        datasets.load_dataset(tmp_path / "junk.npy", (5, 5, 1))


# ---- shared data --------------------------------------------------------------------------------------
def test_maix_emc_cifar10_dataset():
    folder = support.shared("models", "maix-emc", "cifar10_dataset")
    ds = datasets.read_dataset(folder, (1, 32, 32, 3), "img_0_1")
    assert ds.x.shape == (10, 32, 32, 3) and not ds.skipped
    assert [f.split("/")[-1] for f in ds.files][-3:] == ["0_1485.jpg", "1.bmp", "111.jpg"]
    for i, f in enumerate(ds.files):
        want = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255
        np.testing.assert_allclose(ds.x[i], want, atol=1e-7)


def test_mnist_npz():
    path = support.shared("datasets", "mnist10k.npz")
    x = datasets.load_dataset(path, (28, 28, 1), "img_0_1", limit=50)
    with np.load(path) as z:
        want = z["images"][:50, :, :, None] / 255.0
    assert x.shape == (50, 28, 28, 1)
    np.testing.assert_allclose(x, want, atol=1e-7)
