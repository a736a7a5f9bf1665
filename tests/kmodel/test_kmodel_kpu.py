"""K210_CONV emulation against a plain-Python transcription of docs/kmodel_v3.md §3.8-§3.10.

The reference below loops over every element with Python integers, exactly as the formulas read; it
shares no code with emcgen.kmodel.kpu. The hardware vector (test_kmodel_emulator) validates the 3x3
8-bit path on real silicon; these tests extend bit-exactness to 1x1, depthwise, 16-bit weights, every
pool type, nonzero arg_w/arg_add/pad_value, every KPU-RAM layout width and the DMA input path."""

import numpy as np
import pytest

from emcgen.kmodel import (
    activation,
    assemble,
    batch_norm,
    check,
    conv_registers,
    k210_conv,
    kpu,
    load,
    run,
    trace,
)
from emcgen.kmodel.layout import byte_addresses, row_layout, sdk_byte_addresses

# ---- the reference ---------------------------------------------------------------------------------------


def ref_accumulate(x, w, k, depthwise, pad_value, arg_x, shr_x, arg_w, shr_w, arg_add):
    c_in, h, wd = x.shape
    oc = w.shape[0]
    p = k // 2
    acc = np.zeros((oc, h, wd), dtype=object)
    for o in range(oc):
        for y in range(h):
            for xx in range(wd):
                total = 0
                for c in [o] if depthwise else range(c_in):
                    prod = sx = sw = 0
                    for ky in range(k):
                        for kx in range(k):
                            yy, xq = y + ky - p, xx + kx - p
                            v = int(x[c, yy, xq]) if 0 <= yy < h and 0 <= xq < wd else pad_value
                            wt = int(w[o, ky, kx]) if depthwise else int(w[o, c, ky, kx])
                            prod, sx, sw = prod + v * wt, sx + v, sw + wt
                    total += prod + ((arg_x * sx) >> shr_x) + ((arg_w * sw) >> shr_w) + arg_add
                acc[o, y, xx] = total
    return acc


def ref_activate(bn, xs, ymul, shift, bias):
    s = 0
    for i in range(16):
        if bn > xs[i]:
            s = i
    t = (bn - xs[s]) * ymul[s]
    q, r = divmod(t, 1 << shift[s])
    half = (1 << shift[s]) // 2
    if shift[s] and (r > half or (r == half and q % 2 == 1)):  # nearest, ties to even
        q += 1
    return min(max(q + bias[s], 0), 255)


def ref_pool(y, t):
    c, h, w = y.shape
    if t == 0:
        return y
    if t in (8, 9):
        out = np.zeros_like(y)
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    if t == 8:  # mean, out-of-range coordinates clamped to the edge
                        vals = [
                            int(y[ch, min(i + a, h - 1), min(j + b, w - 1)]) for a in (0, 1) for b in (0, 1)
                        ]
                        out[ch, i, j] = sum(vals) // 4
                    else:  # max, out of range = 0
                        vals = [
                            int(y[ch, i + a, j + b]) if i + a < h and j + b < w else 0
                            for a in (0, 1)
                            for b in (0, 1)
                        ]
                        out[ch, i, j] = max(vals)
        return out
    s = {1: 2, 2: 2, 3: 4, 4: 4, 5: 2, 6: 2, 7: 4}[t]
    out = np.zeros((c, h // s, w // s), dtype=np.uint8)
    for ch in range(c):
        for i in range(h // s):
            for j in range(w // s):
                win = [int(y[ch, s * i + a, s * j + b]) for a in range(s) for b in range(s)]
                out[ch, i, j] = {
                    1: max(win),
                    3: max(win),
                    2: sum(win) // 4,
                    4: sum(win) // 16,
                    5: win[0],
                    7: win[0],
                    6: int(y[ch, 2 * i, 2 * j + 1]),
                }[t]
    return out


def reference(x, p):
    """(accumulator, output) of one layer; also picks the activation table so that its segment starts
    are sampled from this layer's batch-norm values (diverse outputs, and exact bn == x_start ties)."""
    acc = ref_accumulate(
        x, p["w"], p["k"], p["dw"], p["pad"], p["arg_x"], p["shr_x"], p["arg_w"], p["shr_w"], p["arg_add"]
    )
    bn = np.zeros(acc.shape, dtype=object)
    for o in range(acc.shape[0]):
        for idx in np.ndindex(acc.shape[1:]):
            bn[(o, *idx)] = ((int(acc[(o, *idx)]) * int(p["mul"][o])) >> int(p["sh"][o])) + int(p["add"][o])
    rng = np.random.default_rng(p["seed"])
    flat = np.array(bn.reshape(-1).tolist(), dtype=np.int64)
    p["xs"] = np.concatenate([[-(2**35)], np.sort(rng.choice(flat, 15))])
    spread = max(int(flat.max() - flat.min()), 1)
    p["ymul"] = rng.integers(2**12, 2**14, 16)
    p["ash"] = np.array([max(int(np.log2(m * spread / 200)), 1) for m in p["ymul"]]) + rng.integers(0, 2, 16)
    p["bias"] = rng.integers(0, 128, 16)
    out = np.zeros(acc.shape, dtype=np.uint8)
    table = [[int(v) for v in p[n]] for n in ("xs", "ymul", "ash", "bias")]
    for idx in np.ndindex(acc.shape):
        out[idx] = ref_activate(bn[idx], *table)
    return acc, ref_pool(out, p["pool"])


# ---- models built with the public constructors -------------------------------------------------------------


def params(seed, c, oc, k, dw, pool, bits=8):
    rng = np.random.default_rng(seed)
    wmax = 256 if bits == 8 else 65536
    w = rng.integers(0, wmax, (oc, k, k) if dw else (oc, c, k, k)).astype(
        np.uint8 if bits == 8 else np.uint16
    )
    p = dict(
        seed=seed,
        w=w,
        k=k,
        dw=dw,
        pool=pool,
        pad=int(rng.integers(0, 256)),
        arg_x=int(rng.integers(-(2**20), 2**20)),
        shr_x=int(rng.integers(8, 16)),
        arg_w=int(rng.integers(-(2**20), 2**20)),
        shr_w=int(rng.integers(8, 16)),
        arg_add=int(rng.integers(-(2**20), 2**20)),
    )
    taps = k * k * (1 if dw else c)
    bound = taps * 255 * wmax + (1 if dw else c) * (2**20 * (k * k * 255 + k * k * wmax) // 2**8 + 2**20)
    mul = max(1, 2**30 // bound)  # keeps bn = (acc * mul) >> 15 within about +-2^15
    p.update(
        mul=rng.integers(mul // 2 + 1, mul + 2, oc), add=rng.integers(-(2**12), 2**12, oc), sh=np.full(oc, 15)
    )
    return p


def conv_layer(in_shape, oc, p, src, dst, main_out=None, bits=8):
    regs = conv_registers(
        in_shape=in_shape,
        out_channels=oc,
        kernel=p["k"],
        src_line=src,
        dst_line=dst,
        pool_type=p["pool"],
        depthwise=p["dw"],
        pad_value=p["pad"],
        weight_bits=bits,
        arg_x=p["arg_x"],
        shr_x=p["shr_x"],
        arg_w=p["arg_w"],
        shr_w=p["shr_w"],
        arg_add=p["arg_add"],
    )
    return k210_conv(
        regs,
        p["w"],
        batch_norm(p["mul"], p["add"], p["sh"]),
        activation(p["xs"], p["ymul"], p["ash"], p["bias"]),
        main_mem_out_address=main_out,
    )


POOL_STRIDE = {1: 2, 2: 2, 3: 4, 4: 4, 5: 2, 6: 2, 7: 4, 8: 1, 9: 1}
CASES = [  # (name, (C, H, W), out channels, kernel, depthwise, pool, weight bits)
    ("3x3 groups4", (6, 6, 6), 5, 3, False, 0, 8),
    ("1x1 groups2", (3, 5, 20), 4, 1, False, 0, 8),
    ("dw 3x3", (5, 4, 9), 5, 3, True, 0, 8),
    ("dw 1x1", (4, 4, 4), 4, 1, True, 0, 8),
    ("16-bit", (3, 4, 6), 3, 3, False, 0, 16),
    ("16-bit dw", (3, 4, 6), 3, 3, True, 0, 16),
    ("wide row_len 2", (2, 4, 70), 2, 1, False, 0, 8),
    ("DMA input W=64", (3, 4, 64), 2, 3, False, 0, 8),
] + [(f"pool {t}", (3, 8, 8) if POOL_STRIDE[t] < 4 else (2, 16, 16), 3, 3, False, t, 8) for t in range(1, 10)]


@pytest.mark.parametrize("name,shape,oc,k,dw,pool,bits", CASES, ids=[c[0] for c in CASES])
def test_conv_matches_reference(name, shape, oc, k, dw, pool, bits):
    seed = sum(map(ord, name))
    p = params(seed, shape[0], oc, k, dw, pool, bits)
    x = np.random.default_rng(seed + 1).integers(0, 256, shape).astype(np.uint8)
    acc_ref, out_ref = reference(x, p)  # also fills in p's activation table
    regs_only = conv_layer(shape, oc, p, 0, 20000).regs
    np.testing.assert_array_equal(kpu.convolve(x, p["w"], regs_only), acc_ref.astype(np.int64))
    n = out_ref.size
    conv = conv_layer(shape, oc, p, src=100, dst=20000, main_out=0, bits=bits)
    km = assemble([conv], [(0, n)], main_mem_usage=-(-n // 8) * 8, eight_bit=bits == 8)
    assert check(km) == []
    km = load(km.to_bytes())  # through the writer and reader as well
    (out,) = run(km, x)
    np.testing.assert_array_equal(out, out_ref)
    assert len(np.unique(out_ref)) >= 8  # not a degenerate (all clamped) case


def test_two_convs_through_kpu_ram():
    """conv 1 (20 wide, 2 channels per line -> pool 1 -> 10 wide, 4 per line) writes KPU RAM only;
    conv 2 reads it back with the other layout."""
    p1 = params(7, 3, 4, 3, False, 1)
    p2 = params(8, 4, 3, 1, False, 0)
    x = np.random.default_rng(9).integers(0, 256, (3, 8, 20)).astype(np.uint8)
    _, mid = reference(x, p1)
    _, expected = reference(mid, p2)
    c1 = conv_layer((3, 8, 20), 4, p1, src=0, dst=1000)
    c2 = conv_layer((4, 4, 10), 3, p2, src=1000, dst=2000, main_out=8)
    km = assemble([c1, c2], [(8, expected.size)], main_mem_usage=8 + -(-expected.size // 8) * 8)
    assert check(km) == []
    emu = trace(km, x)
    np.testing.assert_array_equal(emu.layers[0].data, mid)
    np.testing.assert_array_equal(emu.outputs[0], expected)


# ---- KPU-RAM layout (docs §3.8), numbers worked out by hand ------------------------------------------------


def test_row_layout_table():
    assert [row_layout(w) for w in (1, 16, 17, 32, 33, 64, 65, 320)] == [
        (4, 1, 16),
        (4, 1, 16),
        (2, 1, 32),
        (2, 1, 32),
        (1, 1, 64),
        (1, 1, 64),
        (1, 2, 64),
        (1, 5, 64),
    ]


def test_byte_address_examples():
    # W=10, H=6 (4 channels per line, 16-byte pitch), base line 7: (c5, y2, x3) = 448+384+16+128+3
    assert sdk_byte_addresses(7, 6, 6, 10)[5, 2, 3] == 979
    # W=100 (2 lines per row), H=3: (c1, y1, x70) = 1*2*3*64 + 1*2*64 + 70
    assert sdk_byte_addresses(0, 2, 3, 100)[1, 1, 70] == 582
    # a width that is a multiple of 64 is dense CHW
    a = sdk_byte_addresses(0, 3, 4, 64)
    assert a.reshape(-1).tolist() == list(range(3 * 4 * 64))
    assert byte_addresses(1, 2, 1, 1, 5, 1, 1)[1, 0, 0] == 64 + 5 * 64


def test_activation_tie_rule_and_strict_segment_select():
    act = activation(
        x_start=[-(2**35), 0] + [2**34] * 14,
        y_mul=[0, 1] + [0] * 14,
        shift_number=[0, 1] + [0] * 14,
        bias=[7, 0] + [0] * 14,
    )
    bn = np.array([-5, 0, 1, 2, 3, 5], dtype=np.int64)
    # bn = 0 equals segment 1's start and stays in segment 0 (bias 7); 1/2 -> 0 and 5/2 -> 2 (ties to
    # even, kpu.ACTIVATION_TIES), 3/2 -> 2, 2/2 -> 1
    assert kpu.ACTIVATION_TIES == "even" and kpu.SEGMENT_SELECT_STRICT
    assert kpu.activate(bn, act).tolist() == [7, 7, 0, 1, 2, 2]


def test_pool_examples():
    y = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    assert kpu.pool(y, 1).tolist() == [[[5, 7], [13, 15]]]
    assert kpu.pool(y, 2).tolist() == [[[2, 4], [10, 12]]]  # (0+1+4+5)//4 = 2
    assert kpu.pool(y, 3).tolist() == [[[15]]] and kpu.pool(y, 4).tolist() == [[[7]]]
    assert kpu.pool(y, 5).tolist() == [[[0, 2], [8, 10]]] and kpu.pool(y, 7).tolist() == [[[0]]]
    assert kpu.pool(y, 9)[0, 3].tolist() == [13, 14, 15, 15] and kpu.pool(y, 9)[0, 0, 3] == 7
    assert kpu.pool(y, 8)[0, 3].tolist() == [12, 13, 14, 15] and kpu.pool(y, 8)[0, 0, 0] == 2
