"""KalamDB's JSON operators and functions, rewritten to the engine's JSON UDFs before planning.

KalamDB reads ``->`` (json_get), ``->>`` (json_as_text) and ``?`` (json_contains) through
datafusion-functions-json's expression planner, which DataFusion Python cannot register. So the
statement's tokens (the one tokenizer: strings, quoted names and comments are single tokens and
never touched) are rewritten to calls of the engine's UDFs, and so are calls of the public
function names (``json_get(j, 'a', 0)``), whose paths are variadic:

- every JSON function becomes ``kalam_<name>(json, path)`` where ``path`` is one text in
  DuckDB's JSON path syntax (``$."a"[0]``), built here for literal keys (string) and indexes
  (integer), and at run time by ``kalam_json_path_elem`` for any other expression (its Arrow
  type decides: an integer type is an index, anything else a key);
- operators take PostgreSQL's precedence: ``->``, ``->>`` and ``?`` bind tighter than
  comparisons, LIKE, IS, NOT, AND and OR, looser than ``. :: * / % ^ + -`` (so
  ``j->>'n'::int`` casts the key; write ``(j->>'n')::int``); they are left-associative, and a
  chain of ``->`` is one path (``j->'a'->>'b'`` is ``json_as_text(j, 'a', 'b')``);
- ``?`` is the operator only after an operand and not followed by a digit (``?1`` stays a
  placeholder).

Anything the rewrite cannot read (unbalanced brackets, an operator without an operand) is left
as written, and DataFusion reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.tokens import Token, TokenType

from kalam_engine.model.errors import InvalidSqlError
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement

# Public name -> the engine's UDF (json, path).
FUNCTIONS = {name: "kalam_" + name for name in (
    "json_get", "json_get_str", "json_get_int", "json_get_float", "json_get_bool",
    "json_as_text", "json_contains", "json_length", "json_object_keys")}
PATH_ELEMENT_UDF = "kalam_json_path_elem"
_OPERATORS = {"->": "json_get", "->>": "json_as_text", "?": "json_contains"}
_TIGHT_BINARY = {".", "::", "*", "/", "%", "^", "+", "-"}
_SIGNS = {"+", "-"}
_OPENERS = {TokenType.L_PAREN: TokenType.R_PAREN, TokenType.L_BRACKET: TokenType.R_BRACKET,
            TokenType.L_BRACE: TokenType.R_BRACE}
_CLOSERS = set(_OPENERS.values())
# Words that end an operand (clauses, logical and comparison keywords); any other word is a name
# (a column called ``json`` or ``date`` is still an operand).
_STRUCTURAL = frozenset({
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "OFFSET", "AS", "ON",
    "USING", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "NATURAL", "AND", "OR",
    "NOT", "IS", "IN", "LIKE", "ILIKE", "SIMILAR", "BETWEEN", "WHEN", "THEN", "ELSE", "END",
    "CASE", "UNION", "INTERSECT", "EXCEPT", "ALL", "DISTINCT", "ASC", "DESC", "NULLS", "WITH",
    "VALUES", "SET", "RETURNING", "INTO", "FILTER", "OVER", "PARTITION", "WINDOW", "ROWS",
    "RANGE", "QUALIFY", "ESCAPE", "COLLATE", "AT", "EXISTS", "ANY", "SOME", "LATERAL",
    "EXPLAIN", "ANALYZE", "VERBOSE", "SHOW", "DESCRIBE", "INTERVAL"})
_SELECT_LIST_END = frozenset({"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET",
                              "UNION", "INTERSECT", "EXCEPT", "INTO", "WINDOW", "QUALIFY"})
_QUOTED = {TokenType.STRING, TokenType.IDENTIFIER, TokenType.NATIONAL_STRING,
           TokenType.HEREDOC_STRING, TokenType.BYTE_STRING, TokenType.HEX_STRING,
           TokenType.BIT_STRING, TokenType.NUMBER}


class _Unreadable(Exception):
    """The statement is not one the rewrite can read; it is left as written."""


@dataclass
class _JsonCall:
    """A rewritten call: which function, its JSON operand text and its path parts."""

    name: str
    json: str
    path: list[str]


@dataclass
class _Node:
    """A token, or a bracketed group / CASE ... END (its inside already rewritten)."""

    pre: str  # the text between the previous node and this one (spaces, comments)
    text: str
    token: Token | None = None
    inner: list[_Node] = field(default_factory=list)
    opener: TokenType | None = None
    call: _JsonCall | None = None  # set when this node is a rewritten JSON call
    span: tuple[int, int] = (0, 0)  # where the node was in the statement's text

    @property
    def word(self) -> str:
        tok = self.token
        if tok is None or tok.token_type in _QUOTED or tok.token_type is TokenType.PARAMETER:
            return ""
        return tok.text.upper() if tok.text[:1].isalpha() or tok.text[:1] == "_" else ""

    def is_text(self, *texts: str) -> bool:
        return self.token is not None and self.token.token_type not in _QUOTED and \
            self.token.text in texts

    def is_operand(self) -> bool:
        """Whether this node alone can be (the start of) an operand."""
        if self.opener is not None or self.call is not None:
            return True
        tok = self.token
        if tok is None:
            return False
        if tok.token_type in _QUOTED or tok.token_type is TokenType.PARAMETER:
            return True
        word = self.word
        return bool(word) and word not in _STRUCTURAL


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key_part(key: str) -> str:
    return '."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _static_part(nodes: list[_Node], sql: str) -> str | None:
    """The path part of a literal key or index (``None`` for an expression); a negative index
    matches nothing."""
    if len(nodes) == 1 and nodes[0].token is not None:
        tok = nodes[0].token
        raw = sql[tok.start:tok.end + 1]
        if tok.token_type is TokenType.STRING and raw.startswith("'") and raw.endswith("'"):
            key = raw[1:-1].replace("''", "'")
            return _key_part(key) if key else ""  # DuckDB's paths cannot name an empty key
        if tok.token_type is TokenType.NUMBER and raw.isdigit():
            return f"[{int(raw)}]"
    if len(nodes) == 2 and nodes[0].is_text("-") and nodes[1].token is not None and \
            nodes[1].token.token_type is TokenType.NUMBER and nodes[1].token.text.isdigit():
        return ""  # a negative index: no element
    return None


def _path_expression(parts: list[str]) -> str:
    """SQL text of the DuckDB path from its parts (literal ``$."a"`` parts or SQL expressions
    marked by a leading NUL); NULL when a part can match nothing."""
    if any(p == "" for p in parts):
        return "CAST(NULL AS VARCHAR)"
    if all(not p.startswith("\0") for p in parts):
        return _quote("$" + "".join(parts))
    pieces = [_quote("$")] + [p[1:] if p.startswith("\0") else _quote(p) for p in parts]
    return "(" + " || ".join(pieces) + ")"


def _path_part(nodes: list[_Node], sql: str) -> str:
    static = _static_part(nodes, sql)
    if static is not None:
        return static
    expr = _join(nodes)
    return f"\0{PATH_ELEMENT_UDF}(CAST(({expr}) AS VARCHAR), arrow_typeof(({expr})))"


def _join(nodes: list[_Node]) -> str:
    if not nodes:
        return ""
    return nodes[0].text + "".join(n.pre + n.text for n in nodes[1:])


def _call_node(first: _Node, last: _Node, call: _JsonCall) -> _Node:
    text = f"{FUNCTIONS[call.name]}({call.json}, {_path_expression(call.path)})"
    return _Node(first.pre, text, call=call, span=(first.span[0], last.span[1]))


class _Reader:
    def __init__(self, stmt: ParsedStatement) -> None:
        self.sql = stmt.text
        self.tokens = stmt.tokens
        self.pos = 0
        self.last_end = 0  # offset just after the previous token

    def _take(self) -> tuple[str, Token]:
        tok = self.tokens[self.pos]
        self.pos += 1
        pre = self.sql[self.last_end:tok.start]
        self.last_end = tok.end + 1
        return pre, tok

    def sequence(self, closer: TokenType | None, case: bool) -> list[_Node]:
        """Nodes up to (not including) ``closer`` / END / the end of the text, rewritten."""
        nodes: list[_Node] = []
        while self.pos < len(self.tokens):
            tok = self.tokens[self.pos]
            kind = tok.token_type
            if kind in _CLOSERS:
                if kind is not closer:
                    raise _Unreadable
                break
            if case and kind is TokenType.END:
                break
            pre, tok = self._take()
            if kind in _OPENERS:
                inner = self.sequence(_OPENERS[kind], False)
                if self.pos >= len(self.tokens):
                    raise _Unreadable
                close_pre, close = self._take()
                nodes.append(_Node(pre, tok.text + _join_all(inner) + close_pre + close.text,
                                   token=None, inner=inner, opener=kind,
                                   span=(tok.start, close.end + 1)))
            elif kind is TokenType.CASE:
                inner = self.sequence(None, True)
                if self.pos >= len(self.tokens):
                    raise _Unreadable
                end_pre, end = self._take()
                nodes.append(_Node(pre, tok.text + _join_all(inner) + end_pre + end.text,
                                   inner=inner, opener=TokenType.CASE,
                                   span=(tok.start, end.end + 1)))
            elif kind is TokenType.PARAMETER and self.pos < len(self.tokens) and \
                    self.tokens[self.pos].start == tok.end + 1:
                _, number = self._take()  # $1 is one operand
                nodes.append(_Node(pre, tok.text + number.text, token=tok,
                                   span=(tok.start, number.end + 1)))
            else:
                nodes.append(_Node(pre, self.sql[tok.start:tok.end + 1], token=tok,
                                   span=(tok.start, tok.end + 1)))
        if closer is None and not case and self.pos < len(self.tokens):
            raise _Unreadable
        return _rewrite_level(nodes, self.sql)


def _join_all(nodes: list[_Node]) -> str:
    return "".join(n.pre + n.text for n in nodes)


def _is_operator(nodes: list[_Node], i: int) -> str | None:
    """The JSON function of the operator at ``nodes[i]``, if it is one."""
    node = nodes[i]
    tok = node.token
    if tok is None:
        return None
    if tok.token_type in (TokenType.ARROW, TokenType.DARROW):
        return _OPERATORS[tok.text]
    if tok.token_type is TokenType.PLACEHOLDER and tok.text == "?" and i > 0 and \
            nodes[i - 1].is_operand() and not (
                i + 1 < len(nodes) and nodes[i + 1].token is not None
                and nodes[i + 1].token.token_type is TokenType.NUMBER and nodes[i + 1].pre == ""):
        return _OPERATORS["?"]
    return None


def _postfix(before: _Node, node: _Node) -> bool:
    """Whether ``node`` continues the operand ``before``: a call's arguments after a name,
    a subscript after any operand."""
    if not before.is_operand():
        return False
    if node.opener is TokenType.L_BRACKET:
        return True
    return node.opener is TokenType.L_PAREN and before.opener is None and before.call is None


def _operand_start(nodes: list[_Node], end: int) -> int:
    """Start of the operand that ends just before ``end`` (``end`` when there is none)."""
    i = end - 1
    if i < 0 or not nodes[i].is_operand():
        return end
    while True:
        if i > 0 and _postfix(nodes[i - 1], nodes[i]):
            i -= 1  # f(x), a[1]
            continue
        if i >= 2 and nodes[i - 1].is_text(*_TIGHT_BINARY) and nodes[i - 2].is_operand():
            i -= 2
            continue
        if i >= 1 and nodes[i - 1].is_text(*_SIGNS):
            i -= 1  # a sign (a binary + or - was taken above)
            continue
        return i


def _operand_end(nodes: list[_Node], start: int) -> int:
    """End (exclusive) of the operand starting at ``start`` (``start`` when there is none)."""
    i = start
    while i < len(nodes) and nodes[i].is_text(*_SIGNS):
        i += 1
    if i >= len(nodes) or not nodes[i].is_operand():
        return start
    i += 1
    while i < len(nodes):
        if _postfix(nodes[i - 1], nodes[i]):
            i += 1
            continue
        if nodes[i].is_text(*_TIGHT_BINARY):
            j = i + 1
            while j < len(nodes) and nodes[j].is_text(*_SIGNS):
                j += 1
            if j < len(nodes) and nodes[j].is_operand():
                i = j + 1
                continue
        break
    return i


def _rewrite_calls(nodes: list[_Node], sql: str) -> list[_Node]:
    """``json_get(j, 'a', 0)`` (a public JSON function called by name) -> its UDF call."""
    out: list[_Node] = []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        name = node.word.lower() if node.token is not None else ""
        if name in FUNCTIONS and i + 1 < len(nodes) and \
                nodes[i + 1].opener is TokenType.L_PAREN and \
                not (i > 0 and nodes[i - 1].is_text(".")):
            args = _split_args(nodes[i + 1].inner)
            if not args or not args[0]:
                raise InvalidSqlError(
                    f"{name}() needs a JSON value: {name}(json, key_or_index, ...)",
                    hint="e.g. json_get(doc, 'user', 0)")
            if any(not arg for arg in args):
                raise InvalidSqlError(f"{name}() has an empty argument",
                                      hint="remove the extra comma")
            call = _JsonCall(name, _join(args[0]), [_path_part(a, sql) for a in args[1:]])
            out.append(_call_node(node, nodes[i + 1], call))
            i += 2
            continue
        out.append(node)
        i += 1
    return out


def _split_args(inner: list[_Node]) -> list[list[_Node]]:
    if not inner:
        return []
    args: list[list[_Node]] = [[]]
    for node in inner:
        if node.token is not None and node.token.token_type is TokenType.COMMA:
            args.append([])
        else:
            args[-1].append(node)
    return args


def _rewrite_level(nodes: list[_Node], sql: str) -> list[_Node]:
    """Rewrite the calls, then the operators left to right, at one bracket level."""
    nodes = _rewrite_calls(nodes, sql)
    i = 0
    while i < len(nodes):
        name = _is_operator(nodes, i)
        if name is None:
            i += 1
            continue
        start = _operand_start(nodes, i)
        end = _operand_end(nodes, i + 1)
        if start == i or end == i + 1:
            raise _Unreadable
        left, right = nodes[start:i], nodes[i + 1:end]
        part = _path_part(right, sql)
        inner = left[0].call if len(left) == 1 else None
        if inner is not None and inner.name == "json_get":  # a chain is one path
            call = _JsonCall(name, inner.json, [*inner.path, part])
        else:
            call = _JsonCall(name, _join(left), [part])
        nodes[start:end] = [_call_node(left[0], right[-1], call)]
        i = start + 1
    return _named_columns(nodes, sql)


def _named_columns(nodes: list[_Node], sql: str) -> list[_Node]:
    """In a SELECT list, a column that is one JSON call and has no alias is named as written
    (``j->>'name'``), not after the engine's UDF."""
    if not nodes or nodes[0].word != "SELECT":
        return nodes
    item_start, aliased = 1, False
    for i in range(1, len(nodes) + 1):
        node = nodes[i] if i < len(nodes) else None
        word = node.word if node is not None else "FROM"
        if word in ("DISTINCT", "ALL") and i == item_start:
            item_start = i + 1
            continue
        if word == "AS":
            aliased = True
            continue
        comma = node is not None and node.token is not None and \
            node.token.token_type is TokenType.COMMA
        if not comma and word not in _SELECT_LIST_END:
            continue
        item = nodes[item_start:i]
        if len(item) == 1 and item[0].call is not None and not aliased:
            name = sql[item[0].span[0]:item[0].span[1]]
            item[0].text += ' AS "' + name.replace('"', '""') + '"'
        if not comma:
            break
        item_start, aliased = i + 1, False
    return nodes


def rewrite_json(sql: str | ParsedStatement) -> str:
    """``sql`` with its JSON operators and JSON function calls turned into the engine's UDF
    calls (the text itself when it has none, or cannot be read)."""
    text = sql.text if isinstance(sql, ParsedStatement) else sql
    if "->" not in text and "?" not in text and "json_" not in text.lower():
        return text
    return _rewrite(as_parsed(sql))


@per_statement
def _rewrite(stmt: ParsedStatement) -> str:
    reader = _Reader(stmt)
    try:
        nodes = reader.sequence(None, False)
    except _Unreadable:
        return stmt.text
    return _join_all(nodes) + stmt.text[reader.last_end:]
