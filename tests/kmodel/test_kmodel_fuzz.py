"""Fuzz: random truncations, bit flips and hostile values in real kmodels load or raise FormatError.

Nothing else is allowed (no IndexError, struct.error, MemoryError, hang). A file that still loads must
also write back to exactly the mutated bytes and survive verify/inspect (checked on a sample, to keep
the test at a few seconds)."""

import random
import time

import kmodel_testdata as td
import pytest

from emcgen.errors import FormatError
from emcgen.kmodel import check, describe, load

CASES = 12_000


def mutate(rng: random.Random, raw: bytes) -> bytes:
    d = bytearray(raw)
    kind = rng.random()
    if kind < 0.25:  # truncation anywhere
        return bytes(d[: rng.randrange(len(d))])
    if kind < 0.35:  # hostile 32-bit value at a 4-aligned field
        span = min(len(d), 4096) // 4
        i = 4 * rng.randrange(span)
        d[i : i + 4] = rng.choice(
            [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0, 1, len(raw), len(raw) + 8]
        ).to_bytes(4, "little")
        return bytes(d)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):  # bit flips, mostly in headers, bodies and payload
        hi = len(d) if rng.random() < 0.3 else min(len(d), 2048)
        i = rng.randrange(hi)
        d[i] ^= 1 << rng.randrange(8)
    return bytes(d)


def test_fuzz_load_raises_only_format_error():
    sources = [td.data("iris"), td.data("cifar_hw")]
    rng = random.Random(20261126)
    loaded = rejected = 0
    start = time.perf_counter()
    for case in range(CASES):
        raw = sources[case % 2]
        bad = mutate(rng, raw)
        try:
            km = load(bad)
        except FormatError as exc:
            msg = str(exc)
            assert msg.startswith("kmodel bytes: ") and "\n" not in msg
            rejected += 1
            continue
        except Exception as exc:  # pragma: no cover - the failure we look for
            pytest.fail(f"case {case}: {type(exc).__name__}: {exc}")
        loaded += 1
        if raw is sources[0] or case % 20 == 1:
            assert km.to_bytes() == bad, f"case {case}: mutated file does not round-trip"
        if case % 25 == 1:
            check(km, runtime=None)
            describe(km)
    elapsed = time.perf_counter() - start
    assert loaded + rejected == CASES
    assert loaded > 1000 and rejected > 1000  # both outcomes were exercised
    print(f"{CASES} fuzz cases: {loaded} loaded, {rejected} rejected, {elapsed:.2f} s")


@pytest.mark.parametrize(
    "mutation,message",
    [
        (lambda d: d[:20], "too short for the 28-byte kmodel v3 header"),
        (lambda d: (4).to_bytes(4, "little") + d[4:], "version 4; only kmodel version 3"),
        (lambda d: b"KMDL" + d[4:], "'KMDL' = kmodel v4 or later"),
        (lambda d: d[:8] + (1).to_bytes(4, "little") + d[12:], "arch 1; kmodel v3 requires arch 0"),
        (lambda d: d[:12] + (0xFFFFFFF).to_bytes(4, "little") + d[16:], "past the end of the file"),
        (lambda d: d[:36] + (77).to_bytes(4, "little") + d[40:], "layer 0 has unknown type 77"),
        (lambda d: d[:40] + (0xFFFFFF00).to_bytes(4, "little") + d[44:], "truncated"),
        (lambda d: d[: 52 + 12] + (0x7FFFFFFF).to_bytes(4, "little") + d[68:], "need"),
        (lambda d: d[:400], "truncated"),
    ],
)
def test_specific_corruptions_of_iris(mutation, message):
    with pytest.raises(FormatError, match=message):
        load(mutation(td.data("iris")))


def test_conv_payload_offset_outside_file():
    raw = bytearray(td.data("cifar_hw"))
    raw[108 + 12 : 108 + 16] = (len(raw) - 10).to_bytes(4, "little")  # layer 0 weights_offset
    with pytest.raises(
        FormatError, match=r"layer 0 \(K210_CONV\) at offset 108: weights .* outside the file"
    ):
        load(bytes(raw))


def test_unreadable_path(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        load(tmp_path / "missing.kmodel")


def test_fuzz_emulator_raises_only_emc_errors():
    """Corrupt-but-loadable models either run or raise an EmcError (no numpy error, no huge allocation)."""
    from emcgen.errors import EmcError
    from emcgen.kmodel import run

    cases = [(td.data("iris"), [5.1, 3.8, 1.9, 0.4], 400), (td.data("cifar_hw"), bytes(range(256)) * 12, 25)]
    rng = random.Random(7)
    ran = 0
    for raw, data, count in cases:
        for case in range(count):
            d = bytearray(raw)
            for _ in range(rng.choice([1, 2, 4])):
                i = rng.randrange(min(len(d), 2048))
                d[i] ^= 1 << rng.randrange(8)
            try:
                km = load(bytes(d))
            except FormatError:
                continue
            try:
                run(km, data)
                ran += 1
            except EmcError:
                pass
            except Exception as exc:  # pragma: no cover - the failure we look for
                pytest.fail(f"case {case}: {type(exc).__name__}: {exc}")
    assert ran > 100
