"""Parsing rules on hand-written log lines, each the shape PostgreSQL writes."""

from __future__ import annotations

from ops_project.queries.pglog import Entry
from ops_project.queries.prefix import prefix_regex
from ops_project.queries.statements import StatementStats, calls


def test_connection_lines_with_unknown_user_are_entries_not_continuations():
    regex = prefix_regex("%m [%p] %q%u@%d ")
    line = "2026-12-01 08:00:00.001 UTC [4242] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1"
    m = regex.match(line)
    assert m is not None and m["pid"] == "4242" and m["severity"] == "LOG"
    assert regex.match("2026-12-01 08:00:00.001 UTC [17] LOG:  checkpoint starting: time")["pid"] == "17"


def test_a_failed_statement_does_not_take_the_next_steps_duration():
    """log_statement=all + log_duration, extended protocol: a statement that errors (a statement_timeout) never
    logs its duration; the next statement's parse duration must not be booked as its call."""
    entries = [
        Entry("t1", "7", "LOG", "execute <unnamed>: SELECT pg_sleep(30)"),
        Entry("t2", "7", "ERROR", "canceling statement due to statement timeout"),
        Entry("t3", "7", "LOG", "duration: 0.200 ms"),  # the next statement's parse
        Entry("t4", "7", "LOG", "duration: 0.100 ms"),  # ... and bind
        Entry("t5", "7", "LOG", "execute <unnamed>: SELECT 1"),
        Entry("t6", "7", "LOG", "duration: 0.300 ms"),
    ]
    stats = StatementStats()
    got = [(c.sql, c.duration_ms) for c in calls(entries, stats)]
    assert got == [("SELECT 1", 0.3)]
    assert round(stats.parse_bind_ms, 3) == 0.3


def test_simple_and_extended_one_line_forms():
    entries = [
        Entry("t1", "1", "LOG", "duration: 1.500 ms  statement: SELECT 1"),
        Entry("t2", "2", "LOG", "duration: 0.010 ms  parse S_1: SELECT $1"),
        Entry("t3", "2", "LOG", "duration: 0.020 ms  bind S_1: SELECT $1"),
        Entry("t4", "2", "DETAIL", "parameters: $1 = '5'"),
        Entry("t5", "2", "LOG", "duration: 0.030 ms  execute S_1: SELECT $1"),
        Entry("t6", "3", "LOG", "duration: 2.000 ms  statement: SELECT 2\nFROM t"),
        Entry("t7", "3", "LOG", "automatic vacuum of table \"x\": index scans: 0"),
    ]
    got = [(c.sql, c.duration_ms) for c in calls(entries)]
    assert got == [("SELECT 1", 1.5), ("SELECT $1", 0.03), ("SELECT 2\nFROM t", 2.0)]


def test_literals_never_reach_the_text_of_a_statement_that_does_not_parse():
    from ops_project.queries.fingerprint import cheap_key, postgres

    for sql in ["SELEC name FROM customers WHERE email = E'o\\'brien@example.com'",
                "SELEC $$secret-value$$ FROM x", "SELEC $tag$multi\nline secret$tag$ FROM x",
                "SELEC * FROM c WHERE card = '4111-1111' AND n = 42"]:
        fp = postgres(sql)
        assert not fp.parsed and fp.id.startswith("text:")
        for secret in ("brien", "secret", "4111", "42"):
            assert secret not in fp.query, (sql, fp.query)
    assert cheap_key("select $1, ?, :name from t where a in (1, 2, 3)") == "select ?, ?, ? from t where a in (?)"
