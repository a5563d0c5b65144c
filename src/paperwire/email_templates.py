"""The email templates, read, compiled and checked once per renderer (render.py renders with them).

``email.mjml.j2`` is compiled by MRML (mjml-python) to an HTML Jinja template once, kept by
its source for the life of the process; MRML keeps the Jinja syntax intact. Two Jinja
environments then read it and the other templates of ``templates_dir``: the HTML one with
autoescape, the text one without. Every template the frames name, at any depth, is loaded
at start, so that a missing, broken or non-UTF-8 template is one ``ConfigError`` naming the
file and line before any reader, not a failure per reader.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (ChoiceLoader, DictLoader, Environment, FileSystemLoader, StrictUndefined, Template,
                    TemplateError, TemplateNotFound, TemplateSyntaxError, nodes, pass_eval_context)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape
from mjml import mjml2html

from .errors import ConfigError
from .mail import as_references
from .normalize import not_utf8

MJML_FRAME = "email.mjml.j2"  # the HTML part's frame, as written
HTML_FRAME = "email.html.j2"  # the name the compiled email.mjml.j2 goes by in the HTML environment
TEXT_FRAME = "email.txt.j2"
SHARED_BLOCKS_KEPT = 8192  # rendered blocks kept per template environment (include_shared)


# Where a line break is never rendered: after a closing or opening layout tag, before the next tag.
_STRUCTURAL_END = re.compile(
    r"(?:</(?:td|tr|tbody|table|div|head|style|p|h[1-6])>|<(?:body|tr|tbody|td|table|div)\b[^<>]*>|<!\[endif\]-->)(?=<)")
# Longest line of markup the compiled template keeps, so that a line with a value in it
# stays under the 990 characters mail.py sends without a transfer encoding unless the
# value itself is huge (then the HTML part goes quoted-printable).
COMPILED_LINE_CHARS = 200


def compile_mjml(source: str) -> str:
    """MJML (with Jinja inside) -> HTML Jinja source; indentation dropped to keep it lean.

    Only leading whitespace after a newline is removed: the newline itself stays, so
    words and inline elements on neighbouring lines keep their space.
    """
    html = mjml2html(source, disable_comments=True, fonts={})  # no web-font imports: system fonts only
    html = re.sub(r"\n[ \t]+", "\n", html)
    return "\n".join(piece for line in html.split("\n") for piece in _short_lines(line))


def _short_lines(line: str) -> list[str]:
    """MRML writes the layout tables as a few very long lines: those are broken after
    structural tags into lines of at most COMPILED_LINE_CHARS where possible, so the HTML
    part can go out as 7-bit text without a transfer encoding (see mail.py)."""
    if len(line) <= COMPILED_LINE_CHARS:
        return [line]
    pieces: list[str] = []
    start = candidate = 0  # the current line starts at start; candidate: its last break so far
    for match in _STRUCTURAL_END.finditer(line):
        end = match.end()
        while end - start > COMPILED_LINE_CHARS:
            cut = candidate if candidate > start else end
            pieces.append(line[start:cut])
            start = cut
        candidate = end
    pieces.append(line[start:])
    return pieces


@lru_cache(maxsize=8)  # keyed by the MJML source (and its file's name): compiled once per process (~8 ms)
def compiled_html(source: str, filename: str = MJML_FRAME) -> str:
    """The compiled template for ``source`` (see ``compile_mjml``). Its Jinja is parsed first,
    so that a syntax error is reported on the MJML file's own lines (``TemplateSyntaxError``
    naming ``filename``), not on the compiled HTML's."""
    Environment().parse(source, MJML_FRAME, filename)
    html = compile_mjml(source)
    if left := _MJML_TAG.search(html):  # MRML has no strict mode: a misspelt element would reach readers
        written = re.search(rf"<{re.escape(left[1])}(?![\w-])", source, re.IGNORECASE)
        line = source[:written.start() if written else 0].count("\n") + 1
        raise ValueError(f"line {line}: <{left[1]}> is no MJML element (MRML would leave it in the email as written)")
    return html


_MJML_TAG = re.compile(r"<(mj-[\w-]+)", re.IGNORECASE)


class SharedIncludes:
    """The ``include_shared`` filter: ``{{ "name.j2" | include_shared(paper=item.paper) }}`` is
    template ``name.j2`` rendered with exactly these values and nothing else, kept for every
    reader who passes the same values. (A filter rather than a function: Jinja calls filters
    directly and functions through the context, ~1.5 µs more per paper and part.)

    The key is the complete input of the rendering (the template's name and every value,
    with its type, since ``1 == True``: ``lru_cache(typed=True)`` builds it in C), so the
    block can depend on nothing the key leaves out: a template that reads a value it was
    not given fails (StrictUndefined), and a per-reader value passed in makes the block per
    reader. Values must be frozen (hashable; lists are passed as tuples). Inside a tuple,
    values are compared by equality only (a ``Markup`` and an equal ``str`` are one key), so
    a field that holds markup must always hold markup, as ``PaperView``'s do.
    """

    def __init__(self, env: Environment, size: int = SHARED_BLOCKS_KEPT) -> None:
        self.env = env
        self.rendered_by_values = lru_cache(maxsize=size, typed=True)(self._render)

    def __call__(self, name: str, **values: Any) -> str:
        try:
            return self.rendered_by_values(name, **values)
        except TypeError:
            if all(map(_hashable, values.values())):
                raise  # raised by the rendering itself
        values = {key: _frozen(value) for key, value in values.items()}  # Jinja makes lists, not tuples
        unfrozen = [key for key, value in values.items() if not _hashable(value)]
        if unfrozen:
            raise TemplateError(f"include_shared({name!r}): {', '.join(unfrozen)} must be frozen "
                                f"(a str, number, list, tuple or frozen dataclass)")
        return self.rendered_by_values(name, **values)

    def _render(self, name: str, **values: Any) -> str:
        output = self.env.get_template(name).render(values)
        return Markup(output) if self.env.autoescape else output


def _frozen(value: Any) -> Any:
    """Lists as tuples (and sets as frozensets), at any depth: a template loops over, indexes
    and joins a ``x.split()`` or ``[a, b]`` alike either way (only a whole one printed shows
    parentheses), and a tuple can be a key."""
    if isinstance(value, list) or type(value) is tuple:  # a named tuple (a paper's view, a link) stays itself
        return tuple(map(_frozen, value))
    if isinstance(value, set):
        return frozenset(map(_frozen, value))
    return value


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class NoTrailingWhitespace(Extension):
    """Text templates are read without whitespace at their lines' ends: invisible in plain
    text, and quoted-printable would write it past RFC 2045's 76 characters on a long line
    (see ``mail._encoded``). The signature delimiter ``-- `` keeps its space (RFC 3676)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _LINE_END_WHITESPACE.sub("", source)


class CharacterReferences(CodeGenerator):
    """Compiles the HTML templates so that what goes straight onto the page is ASCII: the
    templates' own text with each non-ASCII character as a character reference (``·`` as
    ``&#183;``, ``mail.as_references``), and every value shown through ``referenced`` (the
    environment's finalize). That is the form in which the HTML part goes out as 7-bit ASCII
    (mail.py), so a digest's page is sent as it is rendered, and what a mail client or
    browser shows is the same: references read back as their characters, in text and
    attributes alike. What changes is the work: an ASCII string is joined and encoded at
    once, where a single "·" made Python copy and scan the whole page a character at a time
    (bench/README.md, issue 13's floor).

    Text a template captures instead of showing it (a ``{% set %}`` block, a macro, a
    ``{% filter %}`` or ``{% call %}`` block: Jinja renders those into a buffer) keeps its
    characters, so a filter applied to it sees the text as written (``|upper``,
    ``|truncate``); it gets its references when it is shown. (What an ``{% include %}``
    inside it renders is a template's own output: referenced already.) Output no ``{{ }}``
    shows (a ``{% filter %}`` or ``{% call %}`` block's, a recursive loop's) may stay
    non-ASCII: mail.py converts such a page."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> str:
        const = super()._output_child_to_const(node, frame, finalize)  # template data only: finalize is not constant
        return as_references(const) if frame.buffer is None else const

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> None:
        super()._output_child_pre(node, frame, _on_the_page(frame, finalize))

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> None:
        super()._output_child_post(node, frame, _on_the_page(frame, finalize))


def _on_the_page(frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> CodeGenerator._FinalizeInfo:
    """The finalize (``referenced``) for output that goes onto the page; none for output a
    buffer captures (``frame.buffer``), which is referenced when it is shown."""
    return finalize if frame.buffer is None else finalize._replace(src=None)


class CssEscapes(Extension):
    """CSS does not read character references, so the HTML templates' own text inside a
    ``<style>`` element is written with CSS escapes (``→`` as ``\\2192``, see
    ``css_escaped``): ``content: "→"`` shows an arrow. (A value shown inside ``<style>`` is
    still referenced: README.)"""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        in_style = False  # whether the template's text so far has left a <style> element open
        for token in stream:
            if token.type == "data":
                value, in_style = _styles_escaped(token.value, in_style)
                if value is not token.value:
                    token = Token(token.lineno, token.type, value)
            yield token


_STYLE_TAG = re.compile(r"<(/?)style\b", re.IGNORECASE)


def _styles_escaped(text: str, in_style: bool) -> tuple[str, bool]:
    """A template's text (``text`` itself if unchanged) with non-ASCII characters inside
    ``<style>`` as CSS escapes; and whether a ``<style>`` element is still open at its end
    (``in_style``: whether one was at its start)."""
    pieces, start = [], 0
    for tag in _STYLE_TAG.finditer(text):
        pieces.append((text[start:tag.start()], in_style))
        in_style, start = not tag[1], tag.start()
    pieces.append((text[start:], in_style))
    if text.isascii() or all(piece.isascii() for piece, styled in pieces if styled):
        return text, in_style
    return "".join(css_escaped(piece) if styled else piece for piece, styled in pieces), in_style


def css_escaped(css: str) -> str:
    """``css`` with each non-ASCII character as a CSS escape, its code in hex and a space
    (``→`` as ``\\2192 ``): the space ends the escape and is read as part of it, so a
    digit or space after it stays what it was (CSS Syntax 4.3.7)."""
    return "".join(char if char.isascii() else f"\\{ord(char):x} " for char in css)


@pass_eval_context
def referenced(eval_ctx: EvalContext, value: Any) -> Any:
    """A value as the HTML templates show it, non-ASCII characters as references: text is
    escaped first where autoescape is on (it would be), markup is kept; anything else
    (numbers, undefined values) is left to autoescape as it is."""
    if not isinstance(value, str) or value.isascii():
        return value
    if not eval_ctx.autoescape:  # {% autoescape false %}: shown as it is
        return as_references(value)
    return Markup(as_references(value if isinstance(value, Markup) else escape(value)))


_LINE_END_WHITESPACE = re.compile(r"(?<!^--)[ \t]+(?=\r?$)", re.MULTILINE)


def environments(templates_dir: Path, compiled_frame: str,
                 text_filters: Mapping[str, Callable[..., str]]) -> tuple[Environment, Environment]:
    """The HTML environment (autoescape, non-ASCII as character references:
    ``CharacterReferences``; the compiled MJML as ``HTML_FRAME``) and the text one (no
    escaping: a plain-text part shows ``k<n`` or ``<SEG>`` as written, as the HTML part
    does once escaped); both read the paper templates from ``templates_dir``
    and give templates the ``include_shared`` filter (``SharedIncludes``).

    Each paper template's last line break is kept, so a paper's block ends its line. No
    auto-reload: templates are read once per renderer, not checked on every render.
    """
    from_folder = FileSystemLoader(templates_dir, encoding="utf-8-sig")  # an editor's BOM is no character
    options: dict[str, Any] = {"undefined": StrictUndefined, "trim_blocks": True, "lstrip_blocks": True,
                               "keep_trailing_newline": True, "auto_reload": False}
    html_env = Environment(loader=ChoiceLoader([DictLoader({HTML_FRAME: compiled_frame}), from_folder]),
                           autoescape=True, extensions=[CssEscapes], finalize=referenced, **options)
    html_env.code_generator_class = CharacterReferences
    text_env = Environment(loader=from_folder, autoescape=False, extensions=[NoTrailingWhitespace], **options)
    text_env.filters.update(text_filters)
    for env in (html_env, text_env):
        env.filters["include_shared"] = SharedIncludes(env)
    return html_env, text_env


def template_problem(exc: TemplateError, templates_dir: Path) -> ConfigError:
    """A template that is missing or does not parse, as one line naming the file and line."""
    if isinstance(exc, TemplateNotFound):
        return ConfigError(f"setting 'templates_dir': {templates_dir} has no template {exc.name}")
    if isinstance(exc, TemplateSyntaxError):
        where = exc.filename or str(templates_dir / (exc.name or "?"))
        if exc.name == HTML_FRAME:  # an error only the compiled MJML shows: its lines are not the file's
            where = f"{templates_dir / MJML_FRAME} (as compiled by MJML)"
        return ConfigError(f"{where}:{exc.lineno}: {exc.message}")
    return ConfigError(f"templates in {templates_dir}: {exc}")


def failed_at(exc: BaseException, html_env: Environment, templates_dir: Path) -> str | None:
    """The template file and line a rendering error was raised at, for its report: the
    innermost template line of its traceback (Jinja writes the templates' own lines there).
    A line of the compiled MJML, which is not the file's, is traced back to the line of
    ``email.mjml.j2`` that holds its Jinja tags (those naming what the error quotes, if
    any: ``'greting' is undefined``), when one line does."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{frame.filename}:{frame.lineno}"
        if frame.filename == "<template>" and frame.lineno:  # the compiled MJML: the one template without a file
            compiled = html_env.loader.get_source(html_env, HTML_FRAME)[0].split("\n")
            tags = _JINJA_TAG.findall(compiled[frame.lineno - 1]) if frame.lineno <= len(compiled) else []
            quoted = re.findall(r"'(\w+)'", str(exc))
            return _mjml_line([tag for tag in tags if any(name in tag for name in quoted)] or tags,
                              frame.lineno, templates_dir / MJML_FRAME)
    return None


_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}")


def _mjml_line(tags: list[str], compiled_line: int, mjml_file: Path) -> str:
    try:
        source = mjml_file.read_text(encoding="utf-8-sig").split("\n")
    except (OSError, UnicodeDecodeError):
        source = []
    holding = [number for number, text in enumerate(source, 1) if tags and all(tag in text for tag in tags)]
    if len(holding) == 1:
        return f"{mjml_file}:{holding[0]}"
    return f"{mjml_file} (line {compiled_line} as compiled by MJML)"


def not_utf8_template(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    """A template that is not UTF-8 text, as one line naming the file, line and byte."""
    line, reason = not_utf8(exc)
    return ConfigError(f"{path}:{line}: {reason}")


def named_templates(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    """The templates ``tree`` cannot render without, with the line naming each: those named
    by a literal string in extends, import and include (not ``ignore missing`` nor a list of
    choices, which may do without one), and in ``"name.j2" | include_shared(...)``."""
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        if not getattr(node, "ignore_missing", False) and _literal_name(node.template):
            yield node.template.value, node.lineno
    for node in tree.find_all(nodes.Filter):
        if node.name == "include_shared" and _literal_name(node.node):
            yield node.node.value, node.lineno


def _literal_name(node: nodes.Node | None) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str)


def load_all(env: Environment, names: Iterable[str], templates_dir: Path) -> None:
    """Compile ``names`` and, transitively, every template they name (``named_templates``):
    a block the frames include that is missing, broken or not UTF-8 is found when rendering
    starts, not once per reader; a missing one is named with the file and line naming it.
    Each keeps the environment's globals as they are now (a dict: see below)."""
    pending: list[tuple[str, str | None, int]] = [(name, None, 0) for name in names]  # name, named in, at line
    seen = set()
    while pending:
        name, named_in, line = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            template = env.get_template(name)
            # Jinja keeps a template's globals (range, namespace, ...) as a ChainMap over the
            # environment's and copies them into each render's context in Python (~5 µs a
            # render, more than a paper's view); the same values as a dict are copied in C.
            template.globals = dict(template.globals)
            source, _, _ = env.loader.get_source(env, name)
        except UnicodeDecodeError as exc:
            raise not_utf8_template(templates_dir / name, exc) from None
        except TemplateNotFound:
            if named_in is None:
                raise
            where = (_mjml_line([f'"{name}"'], line, templates_dir / MJML_FRAME) if named_in == HTML_FRAME
                     else f"{templates_dir / named_in}:{line}")
            raise ConfigError(f"{where}: no template {name} in {templates_dir}") from None
        pending.extend((named, name, at) for named, at in named_templates(env.parse(source, name)))


def load_frames(templates_dir: Path, text_filters: Mapping[str, Callable[..., str]]) -> tuple[Template, Template]:
    """The HTML and text frames of ``templates_dir``, with every email template compiled now
    (``email*.html.j2``, ``email*.txt.j2`` and all they name, present or not), so that a
    missing file or a syntax error is one ``ConfigError`` naming the file and line.
    ``text_filters`` are the text environment's own filters (render.py's wrapping)."""
    templates_dir = Path(templates_dir)
    frame_file = templates_dir / MJML_FRAME
    try:
        source = frame_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8_template(frame_file, exc) from None
    except OSError as exc:
        raise ConfigError(f"setting 'templates_dir': cannot read {frame_file}: {exc.strerror or exc}") from None
    try:
        frame = compiled_html(source, str(frame_file))
    except TemplateSyntaxError as exc:
        raise template_problem(exc, templates_dir) from None
    except ValueError as exc:  # MRML: not MJML it can read
        raise ConfigError(f"{frame_file}: not valid MJML: {exc}") from None
    html_env, text_env = environments(templates_dir, frame, text_filters)
    try:
        for env, first, kind in ((html_env, HTML_FRAME, ".html.j2"), (text_env, TEXT_FRAME, ".txt.j2")):
            blocks = env.list_templates(filter_func=lambda name, kind=kind: name.startswith("email")
                                        and name.endswith(kind) and "/" not in name)
            load_all(env, [first, *blocks], templates_dir)
        return html_env.get_template(HTML_FRAME), text_env.get_template(TEXT_FRAME)
    except TemplateError as exc:
        raise template_problem(exc, templates_dir) from None
