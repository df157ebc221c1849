"""Replication lag from positions the watch saw: right when the primary is idle, and when it writes."""

from __future__ import annotations

from recovery.watch.probes import Position, parse_lsn, probe_http, replication_lag


def test_an_lsn_reads_as_a_byte_position() -> None:
    assert parse_lsn("0/3000060") == 0x3000060
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848


def test_an_idle_primary_shows_no_lag_however_long_it_has_been_quiet() -> None:
    seen = (Position(at=0.0, lsn=1000),)
    assert replication_lag(seen, replayed=1000, now=3600.0) == (0, 0.0)


def test_lag_seconds_count_from_when_the_primary_was_first_seen_past_the_replayed_position() -> None:
    seen = (Position(10.0, 1000), Position(11.0, 1500), Position(12.0, 2000))
    assert replication_lag(seen, replayed=1000, now=12.5) == (1000, 1.5)
    assert replication_lag(seen, replayed=1500, now=12.5) == (500, 0.5)
    assert replication_lag(seen, replayed=2000, now=12.5) == (0, 0.0)


def test_nothing_seen_is_no_lag() -> None:
    assert replication_lag((), replayed=5, now=1.0) == (0, 0.0)


def test_a_closed_port_is_a_failed_probe_not_an_exception() -> None:
    found = probe_http("service", "primary", "http://127.0.0.1:9")
    assert not found.ok and found.problem is not None and "did not answer" in found.problem
