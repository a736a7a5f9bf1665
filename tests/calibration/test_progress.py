"""Progress callbacks: a redrawn bar on a terminal, a few plain lines elsewhere, sub-stage scaling."""
import io

from emcgen.progress import make_progress, report, scaled


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = make_progress("calibrating", out)
    for k in range(101):
        p(k / 100)
    assert out.getvalue().splitlines() == [f"calibrating: {v}%" for v in (0, 25, 50, 75, 100)]


def test_plain_lines_skip_unreached_steps():
    out = io.StringIO()
    p = make_progress("loading", out)
    p(0.6)
    p(0.61)
    p(1.5)  # clamped to 1
    assert out.getvalue().splitlines() == ["loading: 50%", "loading: 100%"]


def test_bar_is_redrawn_in_place_on_a_terminal():
    out = FakeTerminal()
    p = make_progress("kld", out)
    for f in (0.0, 0.001, 0.5, 0.5, 1.0, 1.0):
        p(f)
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert len(frames) == 3  # 0%, 50%, 100%; repeated percentages are not redrawn
    assert frames[1] == "kld [" + "#" * 15 + "-" * 15 + "]  50%"
    assert frames[2] == "kld [" + "#" * 30 + "] 100%\n"
    assert text.count("\n") == 1


def test_scaled_and_report():
    seen = []
    sub = scaled(seen.append, 0.5, 0.9)
    sub(0.0)
    sub(0.5)
    sub(2.0)
    report(seen.append, -1)
    report(None, 0.3)  # no callback: nothing happens
    assert scaled(None, 0, 1) is None
    assert seen == [0.5, 0.7, 0.9, 0.0]
