"""The one SQL front end: ParsedStatement, the splitter, and how often a statement is read."""

from __future__ import annotations

import ast
import contextlib
import gc
import itertools
import weakref
from pathlib import Path

import datafusion
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as hs

import kalam_engine
from kalam_engine.sql import statements as st
from kalam_engine.sql import tokens as sql_tokens
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, split_parsed
from kalam_engine.sql.parser import is_read_only, parse_statement
from kalam_engine.sql.tokens import split_statements, tokenize
from kalam_jupyter.sqltext import bind_parameters

_UNIQUE = itertools.count()


class ReadCounter:
    """Counts the real tokenizer's and the real sqlglot parser's runs (both still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tokenized: list[str] = []
        self.parsed: list[str] = []
        tokenize_real = sql_tokens._KalamTokenizer.tokenize
        parse_real = sqlglot.parse

        def counting_tokenize(tokenizer, sql, *args, **kwargs):
            self.tokenized.append(sql)
            return tokenize_real(tokenizer, sql, *args, **kwargs)

        def counting_parse(sql, *args, **kwargs):
            self.parsed.append(sql)
            return parse_real(sql, *args, **kwargs)

        monkeypatch.setattr(sql_tokens._KalamTokenizer, "tokenize", counting_tokenize)
        monkeypatch.setattr(sqlglot, "parse", counting_parse)

    def reset(self) -> None:
        self.tokenized.clear()
        self.parsed.clear()


@pytest.fixture
def loaded(chat):
    chat.execute("INSERT INTO app.messages (id, body, score) VALUES (3, 'c', 30), (1, 'a', 10), "
                 "(2, 'b', 20)", user="alice")
    return chat


def fresh(sql: str) -> str:
    """``sql`` with a comment no earlier statement had, so no cache knows its text."""
    return f"/* fresh {next(_UNIQUE)} */ {sql}"


def test_a_select_is_tokenized_once_and_parsed_once_per_execute(loaded, monkeypatch):
    counter = ReadCounter(monkeypatch)
    sql = fresh("SELECT id, body FROM app.messages WHERE score > $1 LIMIT 10")
    rows = loaded.execute(sql, user="alice", params=[5]).to_arrow()
    assert rows["id"].to_pylist() == [1, 2, 3]  # default ORDER BY, decided on the tree
    assert counter.tokenized == [sql]
    assert counter.parsed == [sql]
    counter.reset()
    loaded.execute(sql, user="alice", params=[15])  # a repeated statement is not read again
    assert counter.tokenized == [] and counter.parsed == []


def test_a_point_lookup_and_a_multi_statement_request_read_each_statement_once(
        loaded, monkeypatch):
    counter = ReadCounter(monkeypatch)
    lookup = fresh("SELECT * FROM app.messages WHERE id = $1")
    assert loaded.execute(lookup, user="alice", params=[2]).to_arrow()["body"].to_pylist() \
        == ["b"]
    assert len(counter.tokenized) == 1 and len(counter.parsed) == 1
    counter.reset()
    request = f'{fresh("SELECT 1 AS one")}; {fresh("SELECT body FROM app.messages")}'
    result = loaded.execute(request, user="alice")
    assert result.to_arrow()["body"].to_pylist() == ["a", "b", "c"]
    assert counter.tokenized == [request]  # the split's tokens serve every statement
    assert len(counter.parsed) == 2  # one tree per statement


@pytest.fixture
def planned(monkeypatch) -> list[str]:
    """The texts DataFusion is asked to plan (it still plans them)."""
    texts: list[str] = []
    real = datafusion.SessionContext.sql_with_options

    def counting(self, query, *args, **kwargs):
        texts.append(query)
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(datafusion.SessionContext, "sql_with_options", counting)
    return texts


def test_default_order_is_decided_without_planning_twice(loaded, planned):
    with pytest.raises(kalam_engine.InvalidSqlError):
        loaded.execute(fresh("SELECT nope FROM app.messages"), user="alice")
    assert len(planned) == 1  # planned once: no second try without the ORDER BY
    planned.clear()
    # aggregates DataFusion knows but sqlglot does not must not get the ORDER BY
    for sql, column, expected in (
            ("SELECT approx_distinct(score) AS n FROM app.messages", "n", [3]),
            ("SELECT bool_and(score > 0) AS b FROM app.messages", "b", [True]),
            ("SELECT count(*) AS n FROM app.messages LIMIT 1", "n", [3]),
            ("SELECT max(id) + 1 AS n FROM app.messages", "n", [4])):
        rows = loaded.execute(fresh(sql), user="alice").to_arrow()
        assert rows[column].to_pylist() == expected
    assert len(planned) == 4 and not any("ORDER BY" in text for text in planned)
    planned.clear()
    rows = loaded.execute(fresh("SELECT body FROM app.messages m LIMIT 2 OFFSET 1"),
                          user="alice").to_arrow()
    assert rows["body"].to_pylist() == ["b", "c"]
    assert len(planned) == 1 and 'ORDER BY "id" LIMIT 2 OFFSET 1' in planned[0]
    rows = loaded.execute(fresh("SELECT sum(score) OVER () AS s, id FROM app.messages"),
                          user="alice").to_arrow()
    assert rows["id"].to_pylist() == [1, 2, 3]  # a window is not an aggregate of the query


@pytest.mark.parametrize("sql", [
    "SELECT DISTINCT body FROM app.messages",
    "SELECT body, count(*) AS n FROM app.messages GROUP BY body",
    "SELECT body FROM app.messages GROUP BY body HAVING count(*) > 0",
    "SELECT m.id FROM app.messages m JOIN app.rooms r ON r.id = m.id",
    "SELECT m.id FROM app.messages m, app.rooms r",
    "SELECT id FROM app.messages UNION ALL SELECT id FROM app.messages",
    "SELECT id FROM (SELECT id FROM app.messages) AS s",
    "SELECT id FROM app.messages ORDER BY score DESC",
    "WITH s AS (SELECT id FROM app.messages) SELECT id FROM s",
    'SELECT id FROM app."Messages"',
])
def test_no_default_order_where_the_tree_does_not_allow_it(loaded, planned, sql):
    # the mixed-case name does not exist: only what was planned matters here
    with contextlib.suppress(kalam_engine.TableNotFoundError):
        loaded.execute(sql, user="alice")
    assert len(planned) == 1
    assert 'ORDER BY "id"' not in planned[0]


def test_split_tokens_are_the_tokens_of_each_statement():
    request = "  SELECT 'a;b' ; /* c; */ SELECT $$x;y$$, (1;\n2) ;;\n -- end\n SHOW TABLES"
    pieces = split_parsed(request)
    assert [p.text for p in pieces] == split_statements(request)
    for piece in pieces:
        mine = [(t.token_type, t.text, t.start, t.end) for t in piece.tokens]
        alone = [(t.token_type, t.text, t.start, t.end) for t in tokenize(piece.text)]
        assert mine == alone
        assert as_parsed(piece.text) is piece  # the same statement everywhere


_PARTS = ("SELECT 1", "SELECT 'a;b'", "/* x; */ SELECT 2", "SELECT $$;$$", "SHOW TABLES",
          "INSERT INTO t VALUES (1, ';')", "-- c;\nSELECT 3", "SELECT (1)", "  ", "\n")


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.sampled_from(_PARTS), min_size=1, max_size=5),
       hs.sampled_from([";", " ;", ";\n", "; -- note\n"]))
def test_split_is_the_one_splitter(parts, separator):
    request = separator.join(parts)
    if len(request) % 2:  # known as one statement first (tokens read): the split checks it
        assert as_parsed(request).tokens is not None
    pieces = split_parsed(request)
    assert [p.text for p in pieces] == [text for text, _ in sql_tokens.split_pieces(request)]
    assert [p.text for p in pieces] == split_statements(request)
    for piece in pieces:
        assert [(t.text, t.start, t.end) for t in piece.tokens] == \
            [(t.text, t.start, t.end) for t in tokenize(piece.text)]


def test_parsed_statement_is_a_read_only_value():
    stmt = as_parsed("SELECT a FROM t WHERE b = 1")
    assert stmt.kind == "SELECT"
    assert stmt.tree is not None and stmt.tree is stmt.tree  # parsed once, kept
    with pytest.raises(AttributeError):
        stmt.text = "DROP TABLE t"  # type: ignore[misc]
    other = ParsedStatement("SELECT a FROM t WHERE b = 1")
    assert other == stmt and hash(other) == hash(stmt) and other is not stmt
    assert as_parsed("SELECT (").tree is None  # unreadable for sqlglot: DataFusion decides
    assert as_parsed("/* c */ -- d\n  select 1").kind == "SELECT"


def test_parse_statement_takes_the_parsed_statement():
    stmt = split_parsed("SELECT 1; SHOW COLUMNS FROM app.messages")
    query = parse_statement(stmt[0])
    assert isinstance(query, st.QueryStatement) and query.parsed is stmt[0]
    assert query.sql == "SELECT 1" and query.verb == "SELECT"
    show = parse_statement(stmt[1])
    assert isinstance(show, st.QueryStatement) and show.verb == "SHOW"
    assert is_read_only(stmt[0]) and not is_read_only(as_parsed("DELETE FROM t WHERE true"))
    assert parse_statement("SELECT 1") == parse_statement(as_parsed("SELECT 1"))
    assert parse_statement("SHOW TABLES") is parse_statement("SHOW TABLES")  # cached by text


def test_binding_reads_the_engines_tokens_and_never_binds_quoted_text():
    sql = "SELECT $$:a$$, x::int, ':b', /* :c */ \"d:e\", E'\\':f', :g -- :h\nFROM t"
    bound = bind_parameters(as_parsed(sql), {"g": 7})
    assert bound.params == [7] and bound.names == ["g"]
    assert bound.sql == sql.replace(":g", "$1")
    assert bind_parameters(sql, {"g": 7}) == bound


def test_the_sql_package_does_not_import_live():
    root = Path(kalam_engine.__file__).parent / "sql"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("kalam_engine.live"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("kalam_engine.live") for a in node.names)


def test_caches_keep_texts_and_results_not_the_statements_tokens_or_trees(loaded):
    from kalam_engine.query.point_lookup import point_lookup_shape
    from kalam_engine.query.prefetch import table_references
    from kalam_engine.query.vector_search import top_k_request
    from kalam_engine.sql import parsed as parsed_module
    from kalam_engine.sql.json_rewrite import rewrite_json
    from kalam_engine.sql.params import placeholders_used

    wide = ", ".join(f"'w{i}'" for i in range(8_000))  # about 60 KB of text
    big = f"SELECT id FROM app.messages WHERE id = $1 AND body IN ({wide}) AND body->>'k' = 'x'"
    stmt = split_parsed(big)[0]
    assert stmt.tree is not None and stmt.tokens
    parse_statement(stmt), placeholders_used(stmt), point_lookup_shape(stmt)
    table_references(stmt), rewrite_json(stmt), top_k_request(stmt)
    ref = weakref.ref(stmt)
    del stmt
    gc.collect()
    assert ref() is None  # too long to be kept among the recent statements; no cache holds it
    result = loaded.execute(big, user="alice", params=[1])
    assert result.row_count == 0
    for i in range(3_000):  # the recent statements stay within their bound
        as_parsed(f"SELECT {i} AS n, 'padding padding padding padding padding padding'")
    assert parsed_module._STATEMENTS._chars <= 1 << 18


def test_parameters_without_spaces_are_parameters_not_dollar_quotes() -> None:
    """``$1,$2`` is two parameters (a dollar-quote tag never starts with a digit), while
    ``$$..$$`` and ``$tag$..$tag$`` stay strings."""
    import kalam_engine
    from kalam_engine.sql.tokens import tokenize

    kinds = [t.token_type.name for t in tokenize("SELECT $1,$2,$t$x$t$,$$y$$")]
    assert kinds == ["SELECT", "PARAMETER", "NUMBER", "COMMA", "PARAMETER", "NUMBER", "COMMA",
                     "HEREDOC_STRING", "COMMA", "HEREDOC_STRING"]
    db = kalam_engine.connect()
    try:
        row = db.execute("SELECT $1,$2", params=[1, "a"]).to_pandas().iloc[0].tolist()
        assert row == [1, "a"]
    finally:
        db.close()
