"""The console's charts and words (SPEC §8b): every figure is said in words, never by colour or length alone."""

from __future__ import annotations

import pytest

from account_doctor_console.app import TEMPLATES, when
from account_doctor_console.charts import BAR_WIDTH, Bar, Day, bar_chart, count, daily_chart
from account_doctor_console.pages import incident_actions, report_charts, timeline


def drawn(chart: object) -> str:
    return TEMPLATES.from_string('{% from "charts.html" import svg %}{{ svg(chart) }}').render(chart=chart)


def test_bars_scale_to_the_largest_and_carry_their_label_and_number() -> None:
    chart = bar_chart("By cause", [Bar("oauth_revoked", 4, "4 accounts"), Bar("unknown", 1, "1 account")], summary="s")
    lengths = [bar.length for bar in chart.bars]
    assert lengths == [BAR_WIDTH, BAR_WIDTH / 4]
    svg = drawn(chart)
    assert 'role="img"' in svg
    assert "<title>By cause</title>" in svg
    assert ">oauth_revoked</text>" in svg
    assert ">4 accounts</text>" in svg
    assert ">1 account</text>" in svg


def test_an_empty_chart_draws_nothing() -> None:
    assert drawn(bar_chart("By cause", [], summary="none")).strip() == ""


def test_a_zero_bar_has_no_length_but_keeps_its_words() -> None:
    chart = bar_chart("t", [Bar("a", 0, "0 accounts"), Bar("b", 0, "0 accounts")], summary="s")
    assert [bar.length for bar in chart.bars] == [0.0, 0.0]
    assert drawn(chart).count(">0 accounts</text>") == 2


def test_chart_text_is_escaped() -> None:
    svg = drawn(bar_chart("<b>", [Bar("<script>", 1, "1 <i>")], summary="<desc>"))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "<title>&lt;b&gt;</title>" in svg


def test_recoveries_per_day_are_hatched_as_well_as_coloured_and_summed_in_words() -> None:
    chart = daily_chart([Day("2026-11-30", 3, 1), Day("2026-12-01", 0, 2)])
    assert [bar.bar.series for bar in chart.bars] == ["first", "second", "first", "second"]
    assert chart.summary.startswith("3 failures and 3 recoveries over 2 days")
    svg = drawn(chart)
    assert svg.count('fill="url(#hatch-failures-and-recoveries-per-day)"') == 2
    assert 'id="hatch-failures-and-recoveries-per-day"' in svg
    assert ">1 recovery</text>" in svg


@pytest.mark.parametrize(
    ("number", "noun", "said"),
    [(0, "account", "0 accounts"), (1, "account", "1 account"), (2, "recovery", "2 recoveries"), (1, "day", "1 day")],
)
def test_counts_are_said_in_words(number: int, noun: str, said: str) -> None:
    assert count(number, noun) == said


def test_the_recovery_report_becomes_two_charts() -> None:
    report = {
        "daily": [{"date": "2026-12-01", "failures": 5, "recovered": 4}],
        "causes": [
            {"cause": "oauth_revoked", "median_hours_to_recover": 8},
            {"cause": "unknown", "median_hours_to_recover": None},
        ],
    }
    charts = report_charts(report)
    assert [bar.bar.label for bar in charts["daily"].bars] == ["2026-12-01 failures", "2026-12-01 recovered"]
    assert [bar.bar.text for bar in charts["recover"].bars] == ["8 h"]
    assert charts["recover"].summary == "oauth_revoked: 8 hours"


@pytest.mark.parametrize(
    ("incident", "release", "resolve"),
    [
        (
            {"kind": "connector", "status": "open", "held_emails": 3, "released_at": None},
            "Release sends the held reconnect email to 3 customers at most",
            "The 3 emails held stay held",
        ),
        ({"kind": "connector", "status": "open", "held_emails": 1, "released_at": "x"}, None, "sends no email"),
        ({"kind": "domain", "status": "open", "held_emails": 0}, None, "sends no email to anyone."),
        ({"kind": "domain", "status": "resolved", "held_emails": 0}, None, None),
    ],
    ids=["connector-held", "connector-released", "domain-open", "domain-resolved"],
)
def test_what_release_and_resolve_would_do_is_said_before_either_is_done(
    incident: dict[str, object], release: str | None, resolve: str | None
) -> None:
    actions = incident_actions(incident)
    if release is None:
        assert actions["release"] is None
    else:
        assert release in str(actions["release"])
    if resolve is None:
        assert actions["resolve"] is None
    else:
        assert resolve in str(actions["resolve"])


def test_the_timeline_orders_events_and_verdicts_newest_first() -> None:
    entries = timeline(
        [{"occurred_at": "2026-12-01T10:00:00Z"}, {"occurred_at": "2026-12-01T12:00:00Z"}],
        [{"diagnosed_at": "2026-12-01T10:02:00Z"}],
    )
    assert [(entry.kind, entry.at) for entry in entries] == [
        ("event", "2026-12-01T12:00:00Z"),
        ("verdict", "2026-12-01T10:02:00Z"),
        ("event", "2026-12-01T10:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("2026-12-01T17:50:54Z", "2026-12-01 17:50 UTC"), ("not a time", "not a time"), (None, "")],
)
def test_times_read_as_people_read_them(value: object, shown: str) -> None:
    assert when(value) == shown
