import io

from hirelc.progress import Progress, eta_seconds, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(total: int, seconds_per_item: float, interval: float = 30.0, done: int = 0) -> list[str]:
    log, clock = io.StringIO(), FakeClock()
    with Progress("search", total=total, unit="evaluations", done=done, stream=log, clock=clock,
                  interval=interval) as p:
        for i in range(done, total):
            clock.now += seconds_per_item
            p.advance(status=f"best val acc {i}%")
    return log.getvalue().splitlines()


def test_a_non_terminal_gets_plain_lines_with_count_best_elapsed_and_eta():
    lines = run(total=100, seconds_per_item=0.1)
    assert lines[0] == "search: 1/100 evaluations (1%), best val acc 0%, elapsed 0s, ETA 10s"
    assert lines[-1] == "search: 100/100 evaluations (100%), best val acc 99%, elapsed 10s, done"
    # one line per ~10 % when items are fast: the first, every tenth, and the final one
    assert len(lines) == 11


def test_slow_items_print_a_line_at_least_every_interval():
    lines = run(total=20, seconds_per_item=50.0, interval=60.0)
    # 10 % is 2 items (100 s) here, more than the interval, so every other item reports
    assert len(lines) == 11
    assert "ETA 15m50s" in lines[0]  # 19 items left at a measured 50 s each


def test_items_done_before_do_not_make_the_eta_optimistic():
    lines = run(total=10, seconds_per_item=5.0, done=8)  # 8 replayed from a journal
    assert lines[0].startswith("search: 9/10 evaluations (90%)")
    assert lines[0].endswith("ETA 5s")  # 1 left x 5 s measured here, not 10 s / 9 items


def test_disabled_progress_prints_nothing():
    log = io.StringIO()
    with Progress("x", total=3, stream=log, enabled=False) as p:
        p.advance()
        p.print("hello")
    assert log.getvalue() == ""


def test_announce_states_the_expected_duration_after_the_first_item():
    log, clock = io.StringIO(), FakeClock()
    with Progress("pareto", total=625, unit="evaluations", stream=log, clock=clock, announce=True) as p:
        clock.now = 2.0
        p.advance()
    assert ("pareto: 624 evaluations to go; measured 2s per computed one so far, so expect up to 20m48s more"
            in log.getvalue())


def test_cache_hits_neither_trigger_the_estimate_nor_shorten_the_eta():
    log, clock = io.StringIO(), FakeClock()
    with Progress("pareto", total=10, unit="evaluations", stream=log, clock=clock, announce=True) as p:
        for _ in range(4):  # four cache hits, nearly free
            clock.now += 0.01
            p.advance(computed=False)
        assert "to go" not in log.getvalue()
        clock.now += 3.0
        p.advance()  # the first computed one
    text = log.getvalue()
    assert "5 evaluations to go; measured 3s per computed one so far, so expect up to 15s more" in text
    assert "pareto: 5/10 evaluations (50%), elapsed 3s, ETA 15s" in text


def test_total_can_arrive_with_the_first_update():
    log, clock = io.StringIO(), FakeClock()
    with Progress("final fine-tune", unit="steps", stream=log, clock=clock) as p:
        clock.now = 1.0
        p.update(1, 188)
    assert log.getvalue().startswith("final fine-tune: 1/188 steps (1%)")


def test_durations_and_eta():
    assert [format_duration(s) for s in (0, 59.4, 60, 3599, 3600)] == ["0s", "59s", "1m00s", "59m59s", "1h00m"]
    assert format_duration(float("nan")) == "?"
    assert eta_seconds(0, 10.0, 5) != eta_seconds(0, 10.0, 5)  # nan before anything was measured
