"""Make the package's docstrings read as their authors meant under numpydoc.

Three habits of cnnative's docstrings trip numpydoc or docutils, and this hook, run on each
docstring before numpydoc sees it, copes with them:

* A paragraph of prose after the entries of a Parameters (Attributes, Returns, ...) section,
  such as ``Conv2D``'s note on the shapes of its ``params``.  numpydoc would take it for one
  more entry, its first line for a parameter's name.  Such paragraphs are moved in front of
  the first section, into the extended summary, in their order.
* An entry whose first line wraps onto unindented lines (``Network.fit``'s Returns), which
  numpydoc would read as several entries: the wrapped lines become its description.
* A starred name inside a tuple in prose, as in ``("N", *input_shape)``, which docutils reads
  as the start of an emphasis that never ends.  The star is escaped.

Literal blocks and double-backquoted literals are left as written.
"""
import re

# Sections whose body is a list of entries "name : type" (or a bare type), each followed by
# an indented description.
_ENTRY_SECTIONS = {"parameters", "other parameters", "attributes", "returns", "yields",
                   "receives", "raises", "warns", "warnings", "methods"}
# An entry's first line: names (possibly starred, dotted, several separated by commas),
# optionally followed by " : type".
_ENTRY = re.compile(r"^\*{0,2}[A-Za-z_][\w.]*(\s*,\s*\*{0,2}[A-Za-z_][\w.]*)*(\s+:.*)?$")
# A star opening a name right after "(", "[" or ", ", with the bracket closing before any
# other star on the line: Python's unpacking in a written-out tuple, never emphasis.
_UNPACKING_STAR = re.compile(r"(?:(?<=[(\[])|(?<=, ))\*(?=[A-Za-z_][\w.]*[^*]*?[)\]])")


def _is_header(lines, index):
    """Whether lines[index] is a section title (the next line underlines it with dashes)."""
    return (index + 1 < len(lines) and lines[index].strip() != ""
            and re.fullmatch(r"-{3,}", lines[index + 1].strip() or "x") is not None
            and not lines[index].startswith(" "))


def _move_prose(lines):
    """lines with prose paragraphs inside entry sections moved before the first section, and
    an entry's first line that wraps onto unindented lines given those as its description."""
    if not any(_is_header(lines, i) for i in range(len(lines))):
        return lines
    kept, prose, section = [], [], None
    index = 0
    while index < len(lines):
        if _is_header(lines, index):
            section = lines[index].strip().lower()
            kept += lines[index:index + 2]
            index += 2
            continue
        line = lines[index]
        if section not in _ENTRY_SECTIONS or not line.strip() or line.startswith(" "):
            kept.append(line)
            index += 1
            continue
        previous = lines[index - 1]
        paragraph_start = previous.strip() == ""
        after_entry = not paragraph_start and not previous.startswith(" ") \
            and re.fullmatch(r"-{3,}", previous.strip()) is None
        is_entry = _ENTRY.match(line) is not None
        # A sentence glued to an entry without a blank line (BatchNorm2D's docstring is two
        # docstrings joined) is prose, as is any unindented paragraph that isn't an entry.
        glued_sentence = (not paragraph_start and not is_entry and line[0].isupper()
                          and line.rstrip().endswith("."))
        if paragraph_start or glued_sentence:
            end = index
            while end < len(lines) and lines[end].strip() and not lines[end].startswith(" ") \
                    and not _is_header(lines, end):
                end += 1
            block = lines[index:end]
            described = end < len(lines) and lines[end].startswith(" ")
            entries = all(_ENTRY.match(item) for item in block)
            # A run of entry lines, or one line with an indented description, is an entry;
            # anything else unindented is prose.
            if not entries and not (len(block) == 1 and described):
                prose += block + [""]
                index = end
                continue
        elif after_entry and not is_entry:
            # The entry's line wrapped without indentation: the rest is its description.
            kept.append("    " + line)
            index += 1
            continue
        kept.append(line)
        index += 1
    if not prose:
        return kept
    cut = next(i for i in range(len(kept)) if _is_header(kept, i))
    return kept[:cut] + prose + kept[cut:]


def _escape_stars(lines):
    """lines with the unpacking stars escaped, outside literal blocks and inline literals."""
    escaped, literal_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and (not line.strip() or indent > literal_indent):
            escaped.append(line)
            continue
        literal_indent = None
        parts = line.split("``")
        # Even parts are outside double-backquoted literals.
        for index in range(0, len(parts), 2):
            parts[index] = _UNPACKING_STAR.sub(r"\\*", parts[index])
        escaped.append("``".join(parts))
        # A paragraph ending in "::" or a directive starts a block whose body is indented
        # deeper; code there is shown as written.
        if line.rstrip().endswith("::") or re.match(r"\s*\.\. [\w:-]+::", line):
            literal_indent = indent
    return escaped


def process_docstring(app, what, name, obj, options, lines):
    lines[:] = _escape_stars(_move_prose(list(lines)))


def setup(app):
    # Before numpydoc (priority 500), which parses the sections.
    app.connect("autodoc-process-docstring", process_docstring, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
