"""Host side of the generated K210 project's model_io.c: built with gcc -Wall -Wextra -Werror and
ASan/UBSan into a small harness, compared with numpy implementations written here from model_io.h's
contract (input packing and resize, RGB565, luma, dequantize, softmax, top-k with ties, CRC-32 vs zlib).
"""
from __future__ import annotations

import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import support
from test_project_k210 import c_array, c_define, cifar_build

from emcgen.targets.k210 import project as k210

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_io.h"

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(len > 0 ? (size_t)len : 1);
    if (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) { perror(path); exit(2); }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void spill(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(path); exit(2); }
    fclose(f);
}

int main(int argc, char **argv)
{
    size_t n = 0;
    if (argc < 2) return 2;
    const char *op = argv[1];
    if (!strcmp(op, "pack") && argc == 10) {
        int fmt = atoi(argv[2]), sw = atoi(argv[3]), sh = atoi(argv[4]);
        int dw = atoi(argv[5]), dh = atoi(argv[6]), dc = atoi(argv[7]);
        void *in = slurp(argv[8], &n);
        size_t size = (size_t)(dw > 0 ? dw : 0) * (size_t)(dh > 0 ? dh : 0) * (size_t)(dc > 0 ? dc : 0);
        uint8_t *out = malloc(size ? size : 1);
        int rc = emc_pack_input(in, (emc_pixel_format_t)fmt, sw, sh, out, dw, dh, dc);
        printf("%d\n", rc);
        if (rc == 0) spill(argv[9], out, size);
        free(in); free(out);
    } else if (!strcmp(op, "dequant") && argc == 6) {
        uint8_t *q = slurp(argv[4], &n);
        float *out = malloc((n ? n : 1) * sizeof(float));
        emc_dequantize_u8(q, n, strtof(argv[2], NULL), strtof(argv[3], NULL), out);
        spill(argv[5], out, n * sizeof(float));
        free(q); free(out);
    } else if (!strcmp(op, "softmax") && argc == 4) {
        float *x = slurp(argv[2], &n);
        n /= sizeof(float);
        float *out = malloc((n ? n : 1) * sizeof(float));
        emc_softmax(x, n, out);
        spill(argv[3], out, n * sizeof(float));
        free(x); free(out);
    } else if (!strcmp(op, "topk") && argc == 5) {
        float *x = slurp(argv[3], &n);
        n /= sizeof(float);
        size_t k = (size_t)strtoul(argv[2], NULL, 10);
        size_t *idx = malloc((k ? k : 1) * sizeof(size_t));
        size_t got = emc_top_k(x, n, k, idx);
        uint64_t *out = malloc((got ? got : 1) * sizeof(uint64_t));
        for (size_t i = 0; i < got; i++) out[i] = idx[i];
        spill(argv[4], out, got * sizeof(uint64_t));
        printf("%zu %zu\n", got, emc_argmax(x, n));
        free(x); free(idx); free(out);
    } else if (!strcmp(op, "crc") && argc == 3) {
        void *d = slurp(argv[2], &n);
        printf("%08lx\n", (unsigned long)emc_crc32(d, n));
        free(d);
    } else if (!strcmp(op, "maxdiff") && argc == 4) {
        size_t m = 0;
        float *a = slurp(argv[2], &n), *b = slurp(argv[3], &m);
        printf("%a\n", (double)emc_max_abs_diff(a, b, n / sizeof(float)));
        free(a); free(b);
    } else if (!strcmp(op, "pixel") && argc == 3) {
        uint8_t rgb[3];
        emc_rgb565_to_rgb888((uint16_t)strtoul(argv[2], NULL, 0), rgb);
        printf("%u %u %u %u\n", rgb[0], rgb[1], rgb[2], emc_luma(rgb[0], rgb[1], rgb[2]));
    } else {
        return 2;
    }
    return 0;
}
"""

FORMATS = {"rgb888": 0, "rgb565": 1, "grey": 2}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k210io") / "io"
    k210.render_project(cifar_build(), out, {"k210_camera": "rgb565", "k210_camera_size": "50x37"})
    return out


@pytest.fixture(scope="module")
def harness(project) -> Path:
    gcc = support.tool("gcc")
    (project / "harness.c").write_text(HARNESS)
    exe = project / "harness"
    cmd = [gcc, "-std=gnu99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-I", str(project / "src"), str(project / "harness.c"),
           str(project / "src/model_io.c"), "-lm", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


class Run:
    def __init__(self, exe: Path, tmp: Path):
        self.exe, self.tmp, self.n = exe, tmp, 0

    def file(self, data: bytes) -> str:
        self.n += 1
        path = self.tmp / f"in{self.n}.bin"
        path.write_bytes(data)
        return str(path)

    def __call__(self, *args) -> tuple[str, bytes]:
        out = self.tmp / f"out{self.n}.bin"
        r = subprocess.run([str(self.exe), *map(str, args), *([] if args[0] in ("crc", "maxdiff", "pixel")
                                                              else [str(out)])],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip(), (out.read_bytes() if out.exists() else b"")


@pytest.fixture
def run(harness, tmp_path):
    return Run(harness, tmp_path)


# ---- numpy references (from model_io.h's contract, written independently of project.py) ---------------

def ref_pixels_rgb(frame: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "rgb565":
        v = frame.astype(np.int64)
        r5, g6, b5 = v // 2048 % 32, v // 32 % 64, v % 32
        return np.stack([r5 * 8 + r5 // 4, g6 * 4 + g6 // 16, b5 * 8 + b5 // 4], -1)
    if fmt == "grey":
        return np.stack([frame.astype(np.int64)] * 3, -1)
    return frame.astype(np.int64)


def ref_pack(frame: np.ndarray, fmt: str, dw: int, dh: int, dc: int) -> np.ndarray:
    sh, sw = frame.shape[:2]
    rows = [y * sh // dh for y in range(dh)]
    cols = [x * sw // dw for x in range(dw)]
    rgb = ref_pixels_rgb(frame, fmt)[np.ix_(rows, cols)]
    if dc == 3:
        return np.moveaxis(rgb, -1, 0).astype(np.uint8)
    if fmt == "grey":
        return rgb[None, :, :, 0].astype(np.uint8)
    y = (77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) // 256
    return y[None].astype(np.uint8)


def random_frame(rng, fmt: str, w: int, h: int) -> np.ndarray:
    if fmt == "rgb565":
        return rng.integers(0, 65536, (h, w), dtype=np.uint16)
    if fmt == "grey":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- tests ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["rgb888", "rgb565", "grey"])
@pytest.mark.parametrize("dc", [3, 1])
@pytest.mark.parametrize("src,dst", [((32, 24), (32, 24)), ((320, 240), (32, 32)), ((7, 5), (28, 28)),
                                     ((64, 48), (17, 13))])
def test_pack_matches_numpy(run, fmt, dc, src, dst):
    rng = np.random.default_rng(hash((fmt, dc, src, dst)) % 2**32)
    frame = random_frame(rng, fmt, *src)
    rc, out = run("pack", FORMATS[fmt], src[0], src[1], dst[0], dst[1], dc, run.file(frame.tobytes()))
    assert rc == "0"
    want = ref_pack(frame, fmt, dst[0], dst[1], dc)
    np.testing.assert_array_equal(np.frombuffer(out, np.uint8).reshape(dc, dst[1], dst[0]), want)
    # the Python reference that computed the project's EMC_TEST_FRAME_PACKED_CRC32 agrees as well
    np.testing.assert_array_equal(k210.pack_input(frame, fmt, dst[1], dst[0], dc), want)


def test_pack_rgb888_same_size_is_plain_hwc_to_chw(run):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    _, out = run("pack", 0, 40, 24, 40, 24, 3, run.file(img.tobytes()))
    assert out == np.ascontiguousarray(img.transpose(2, 0, 1)).tobytes()


def test_pack_rejects_bad_arguments(run):
    f = run.file(bytes(64))
    for args in [(0, 0, 4, 4, 4, 3), (0, 4, 4, 4, 4, 2), (0, 4, 4, 4, 0, 3), (7, 4, 4, 4, 4, 3)]:
        rc, _ = run("pack", *args, f)
        assert rc == "-1", args


def test_rgb565_and_luma_extremes(run):
    assert run("pixel", "0xffff")[0] == "255 255 255 255"
    assert run("pixel", "0x0000")[0] == "0 0 0 0"
    assert run("pixel", "0xf800")[0] == f"255 0 0 {(77 * 255 + 128) >> 8}"
    assert run("pixel", "0x07e0")[0] == f"0 255 0 {(150 * 255 + 128) >> 8}"
    # luma against floating-point BT.601 within one step
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (1, 500, 3), dtype=np.uint8)
    _, out = run("pack", 0, 500, 1, 500, 1, 1, run.file(rgb.tobytes()))
    exact = rgb[0] @ np.array([0.299, 0.587, 0.114])
    assert np.abs(np.frombuffer(out, np.uint8) - exact).max() <= 1.0


def test_embedded_camera_frame_packs_to_the_recorded_crc(project, run):
    """What main.c checks on the chip: the rgb565 50x37 test frame packed by model_io.c -> the CRC in test_data.h."""
    text = (project / "src/test_data.c").read_text()
    frame = np.array([int(v, 16) for v in re.findall(r"0x([0-9a-f]{4})\b", c_array(text, "emc_test_frame"))],
                     np.uint16)
    assert frame.size == 50 * 37
    _, out = run("pack", 1, 50, 37, 32, 32, 3, run.file(frame.tobytes()))
    header = (project / "src/test_data.h").read_text()
    assert int(c_define(header, "EMC_TEST_FRAME_PACKED_CRC32").rstrip("u"), 16) == zlib.crc32(out)
    np.testing.assert_array_equal(np.frombuffer(out, np.uint8).reshape(3, 32, 32),
                                  ref_pack(frame.reshape(37, 50), "rgb565", 32, 32, 3))


def test_dequantize(run):
    q = np.arange(256, dtype=np.uint8)
    for scale, bias in [(0.0235294, -3.0), (1.0, 0.0), (-0.5, 7.25)]:
        _, out = run("dequant", float.hex(float(np.float32(scale))), float.hex(float(np.float32(bias))),
                     run.file(q.tobytes()))
        want = q.astype(np.float32) * np.float32(scale) + np.float32(bias)
        np.testing.assert_array_equal(np.frombuffer(out, np.float32), want)


def test_softmax(run):
    rng = np.random.default_rng(3)
    for x in [rng.normal(0, 4, 10), np.array([1000.0, 1000.0, -1000.0]), np.array([-5.0]), rng.normal(0, 30, 1000)]:
        x = x.astype(np.float32)
        _, out = run("softmax", run.file(x.tobytes()))
        e = np.exp(x.astype(np.float64) - x.max())
        got = np.frombuffer(out, np.float32)
        np.testing.assert_allclose(got, e / e.sum(), rtol=2e-6, atol=1e-7)
        assert abs(float(got.astype(np.float64).sum()) - 1) < 1e-5


@pytest.mark.parametrize("case", ["ties", "all_equal", "random", "nan", "k_larger", "k_zero", "empty", "neg"])
def test_top_k_with_ties(run, case):
    rng = np.random.default_rng(4)
    x, k = {
        "ties": (np.array([1, 3, 3, 2, 3, 0, 2], np.float32), 4),
        "all_equal": (np.full(9, 0.5, np.float32), 5),
        "random": (rng.integers(-3, 4, 200).astype(np.float32), 10),
        "nan": (np.array([np.nan, 1, np.nan, -np.inf, 5, 1], np.float32), 6),
        "k_larger": (np.array([2, 1, 2], np.float32), 7),
        "k_zero": (np.array([2, 1], np.float32), 0),
        "empty": (np.array([], np.float32), 3),
        "neg": (np.array([-0.0, 0.0, -1e-30, -np.inf], np.float32), 4),
    }[case]
    text, out = run("topk", k, run.file(x.tobytes()))
    got = np.frombuffer(out, np.uint64).tolist()
    # reference: order by value, largest first; ties by index; NaN after every number (stable sort of -x)
    key = [(1, 0.0, i) if np.isnan(v) else (0, -float(v), i) for i, v in enumerate(x)]
    want = [i for *_, i in sorted(key)][:k]
    assert got == want
    count, argmax = map(int, text.split())
    assert count == len(want)
    assert argmax == (sorted(key)[0][2] if len(x) else 0)
    if case in ("ties", "random"):
        assert got == np.argsort(-x, kind="stable")[:k].tolist()


def test_crc32_matches_zlib(run):
    rng = np.random.default_rng(5)
    for data in [b"", b"123456789", rng.integers(0, 256, 100_003, dtype=np.uint8).tobytes()]:
        assert int(run("crc", run.file(data))[0], 16) == zlib.crc32(data)
    assert run("crc", run.file(b"123456789"))[0] == "cbf43926"      # the CRC-32 check value


def test_max_abs_diff(run):
    a = np.array([1.0, -2.0, 3.5], np.float32)
    b = np.array([1.0, -2.25, 3.0], np.float32)
    assert float.fromhex(run("maxdiff", run.file(a.tobytes()), run.file(b.tobytes()))[0]) == 0.5
    c = np.array([1.0, np.nan, 3.0], np.float32)
    assert run("maxdiff", run.file(a.tobytes()), run.file(c.tobytes()))[0].lstrip("-") == "nan"
