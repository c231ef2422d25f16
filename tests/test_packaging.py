"""pyproject.toml and environment.yml (conda / Binder) must not drift apart.

Every runtime dependency and every `lab` extra of pyproject.toml appears in environment.yml with
the same lower bound, and environment.yml lists nothing else besides python, pip and the pip
section. PyYAML is not a dependency, so environment.yml is read by a small parser below that
knows only the plain subset of YAML an environment file needs, and says so when it meets more.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
ENVIRONMENT = ROOT / "environment.yml"

# PyPI name -> conda-forge name, where they differ (normalised names).
CONDA_NAME: dict[str, str] = {}
# Allowed in environment.yml without a pyproject counterpart.
CONDA_ONLY = {"python", "pip"}
# Runtime dependencies conda-forge does not package: environment.yml's `pip: [-e .]` installs
# them from PyPI with kvmviz itself, and its comment says so.
PIP_ONLY = {"perfetto"}


# --- a minimal YAML reader for environment.yml ----------------------------------------------


class SimpleYamlError(ValueError):
    pass


def _strip_comment(line: str) -> str:
    """Drop a `# comment` that is not inside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str, where: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[:1] in ("[", "{", "&", "*", "!", "|", ">"):
        raise SimpleYamlError(f"{where}: unsupported YAML here: {text!r}")
    return text


def _flow_list(text: str, where: str) -> list[str]:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise SimpleYamlError(f"{where}: expected a [flow, list], got {text!r}")
    inner = text[1:-1].strip()
    return [_scalar(x, where) for x in re.findall(r"""'[^']*'|"[^"]*"|[^,]+""", inner) if x.strip()]


def parse_environment_yml(text: str, source: str = "environment.yml") -> dict:
    """Parse the subset of YAML used by conda environment files.

    Supports top-level `key: scalar`, top-level `key:` followed by `- item` lines, and list items
    of the form `- key:` followed by a nested `- item` list or `- key: [a, b]` (the pip section).
    Anything else raises SimpleYamlError naming the line.
    """
    doc: dict = {}
    current: list | None = None  # the top-level list being filled
    nested: list | None = None  # the list of a `- pip:` item being filled
    item_indent = nested_indent = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source} line {lineno}"
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise SimpleYamlError(f"{where}: tabs in indentation are not YAML")
        line = _strip_comment(raw)
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0:
            m = re.fullmatch(r"([A-Za-z_][\w-]*)\s*:(?:\s+(.*))?", body)
            if not m:
                raise SimpleYamlError(f"{where}: expected `key:` or `key: value`, got {body!r}")
            key, value = m.groups()
            if key in doc:
                raise SimpleYamlError(f"{where}: duplicate key {key!r}")
            current = nested = None
            item_indent = nested_indent = None
            if value:
                doc[key] = (
                    _flow_list(value, where) if value.startswith("[") else _scalar(value, where)
                )
            else:
                doc[key] = current = []
            continue
        if not body.startswith("- ") and body != "-":
            raise SimpleYamlError(f"{where}: expected a `- item` list entry, got {body!r}")
        item = body[1:].strip()
        if current is None:
            raise SimpleYamlError(f"{where}: list item outside a top-level list")
        if item_indent is None:
            item_indent = indent
        if indent == item_indent:
            nested = None
            nested_indent = None
            m = re.fullmatch(r"([A-Za-z_][\w-]*)\s*:(?:\s+(.*))?", item)
            if m and not re.search(r"[<>=!~]", m.group(1)):
                key, value = m.groups()
                sub = _flow_list(value, where) if value else []
                current.append({key: sub})
                nested = None if value else sub
            else:
                current.append(_scalar(item, where))
        elif indent > item_indent and nested is not None:
            if nested_indent is None:
                nested_indent = indent
            if indent != nested_indent:
                raise SimpleYamlError(f"{where}: inconsistent indentation in nested list")
            nested.append(_scalar(item, where))
        else:
            raise SimpleYamlError(f"{where}: unexpected indentation (only one nested list allowed)")
    return doc


# --- requirement strings ----------------------------------------------------------------------

_REQ = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(req: str) -> tuple[str, str | None]:
    """`'numpy>=1.24,<3 ; python_version>"3"'` -> `('numpy', '1.24')`: name and `>=` bound."""
    m = _REQ.fullmatch(req.split(";", 1)[0])
    if not m:
        raise ValueError(f"cannot parse requirement {req!r}")
    name, spec = m.groups()
    lower = None
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part.startswith(">="):
            lower = part[2:].strip()
        elif part.startswith(("==", "=", "~=", ">")) and not part.startswith(">="):
            raise ValueError(f"{req!r}: only `>=` lower bounds are compared; got {part!r}")
    return normalise(name), lower


def pyproject_requirements(pyproject: dict) -> dict[str, str | None]:
    """Runtime dependencies and the `lab` extra, as {conda name: lower bound}."""
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    reqs += project.get("optional-dependencies", {}).get("lab", [])
    out: dict[str, str | None] = {}
    for req in reqs:
        name, lower = split_requirement(req)
        out[CONDA_NAME.get(name, name)] = lower
    return out


def conda_requirements(env: dict) -> tuple[dict[str, str | None], list]:
    """Conda packages of environment.yml as {name: lower bound}, and the pip section(s)."""
    conda: dict[str, str | None] = {}
    pip_sections = []
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            assert list(dep) == ["pip"], f"environment.yml: unexpected mapping entry {dep!r}"
            pip_sections.append(dep["pip"])
            continue
        name, lower = split_requirement(dep.replace(" ", ""))
        assert name not in conda, f"environment.yml lists {name!r} twice"
        conda[name] = lower
    return conda, pip_sections


def compare(pyproject: dict, env: dict) -> list[str]:
    """Human-readable list of every way the two files disagree (empty when in step)."""
    want = pyproject_requirements(pyproject)
    have, _ = conda_requirements(env)
    problems = []
    for name, lower in sorted(want.items()):
        if name in PIP_ONLY:
            if name in have:
                problems.append(f"{name} is not on conda-forge: leave it to `pip: [-e .]`")
            continue
        if name not in have:
            bound = f">={lower}" if lower else ""
            problems.append(
                f"missing from environment.yml: {name}{bound} (it is in pyproject.toml)"
            )
        elif have[name] != lower:
            problems.append(
                f"lower bound of {name} differs: pyproject.toml >={lower}, "
                f"environment.yml >={have[name]}"
            )
    for name in sorted(set(have) - set(want) - CONDA_ONLY):
        problems.append(
            f"environment.yml lists {name}, which is neither a runtime dependency nor in the "
            "`lab` extra of pyproject.toml"
        )
    requires_python = pyproject["project"].get("requires-python", "")
    py_lower = requires_python.removeprefix(">=").strip() if requires_python else None
    if "python" not in have:
        problems.append("environment.yml does not pin python")
    elif have["python"] != py_lower:
        problems.append(
            f"python bound differs: requires-python {requires_python!r}, "
            f"environment.yml python>={have['python']}"
        )
    return problems


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def environment() -> dict:
    try:
        return parse_environment_yml(ENVIRONMENT.read_text(encoding="utf-8"))
    except SimpleYamlError as e:
        pytest.fail(
            f"{e}\nenvironment.yml is read without PyYAML by tests/test_packaging.py; keep it a "
            "plain list or extend parse_environment_yml()."
        )


def test_environment_header(environment):
    assert environment.get("name") == "kvmviz"
    assert environment.get("channels") == ["conda-forge"], "use conda-forge only"


def test_environment_matches_pyproject(pyproject, environment):
    problems = compare(pyproject, environment)
    assert not problems, "pyproject.toml and environment.yml drifted apart:\n  " + "\n  ".join(
        problems
    )


def test_environment_installs_the_package_with_pip(environment):
    conda, pip_sections = conda_requirements(environment)
    assert "pip" in conda, "environment.yml needs `- pip` before its pip section"
    assert pip_sections == [["-e ."]], f"expected `- pip: [-e .]`, got {pip_sections!r}"


def test_parser_handles_comments_quotes_and_flow_lists():
    text = (
        "# header\n"
        "name: 'kvmviz'  # trailing\n"
        "channels: [conda-forge]\n"
        "dependencies:\n"
        "  - numpy >=1.24\n"
        '  - "pandas>=2.0"\n'
        "  - pip\n"
        '  - pip: ["-e .", "x#y"]\n'
    )
    assert parse_environment_yml(text) == {
        "name": "kvmviz",
        "channels": ["conda-forge"],
        "dependencies": ["numpy >=1.24", "pandas>=2.0", "pip", {"pip": ["-e .", "x#y"]}],
    }


def test_parser_rejects_what_it_does_not_understand():
    with pytest.raises(SimpleYamlError, match="line 2"):
        parse_environment_yml("dependencies:\n  numpy: 1\n")


def test_compare_reports_drift(pyproject, environment):
    """The check itself bites: each kind of drift is reported by name."""
    drifted = {**environment, "dependencies": list(environment["dependencies"])}
    deps = drifted["dependencies"]
    deps.remove(next(d for d in deps if isinstance(d, str) and d.startswith("seaborn")))
    i = next(i for i, d in enumerate(deps) if isinstance(d, str) and d.startswith("numpy"))
    deps[i] = "numpy>=1.0"
    deps.insert(0, "scipy>=1.10")
    problems = "\n".join(compare(pyproject, drifted))
    assert "missing from environment.yml: seaborn" in problems
    assert "lower bound of numpy differs" in problems
    assert "environment.yml lists scipy" in problems


def test_pip_only_dependencies_are_named_in_environment_yml():
    """Each dependency left to pip is named in environment.yml's comments, so that a conda user
    reading it knows where it comes from."""
    text = ENVIRONMENT.read_text(encoding="utf-8")
    comments = " ".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for name in PIP_ONLY:
        assert name in comments, f"environment.yml should say that pip installs {name}"
