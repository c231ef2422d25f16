"""What every exercise is: the :class:`Exercise` a learner answers, and the :class:`Generator`
that draws one from a seed.

An :class:`Exercise` holds its question, its answer and why; it reads a typed answer
(:meth:`Exercise.parse`) and says whether it is right (:meth:`Exercise.check`). Two answer
shapes have their own reading: :class:`ZappedGfnsExercise` (pairs of gfns, in any order) and
:class:`CallbackOrderExercise` (callback names, ``start`` / ``end`` short for the
invalidation pair).

A :class:`Generator` is one kind of ``kvmviz quiz``. Calling it with a seed runs the same steps
for every kind, each a method a kind overrides (the hooks, in the order they run):

1. :meth:`Generator.scene` draws what the question asks about from the seed (and checks the
   kind's options): a :class:`Scene`, the parameters the question states. Every random draw
   happens here, in the order the kind has always made them, so a seed keeps its question.
2. :meth:`Generator.answer` computes the answer from the scene with the model itself
   (``kernels.rule``, ``MemslotLayout.gfn_ranges``, ``rwlock.replay``, ``simulate``), never
   from a hand-written key.
3. :meth:`Generator.question` writes the question in Markdown, with ``?`` nowhere: the scene in
   words.
4. :meth:`Generator.explain` says why the answer is right, citing the kernel rule.
5. :meth:`Generator.options` names the options that change the question (``policy``), so
   ``quiz(kind, seed, **options)`` asks it again.

The exercise keeps its scene (:attr:`Exercise.scene`): a test computes the answer from the
scene's parameters with an oracle of its own.
"""

from __future__ import annotations

import html
import re
import types
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .._shared._checks import check_int, check_seed
from .render import markdown_to_html

__all__ = [
    "CallbackOrderExercise",
    "Exercise",
    "Generator",
    "Scene",
    "ZappedGfnsExercise",
]


class Scene(types.SimpleNamespace):
    """The parameters one exercise asks about, by name: ``scene.kernel``, ``scene.layout``.

    What :meth:`Generator.scene` drew for a seed, and everything the question states that the
    answer depends on (a kind that computes its scene with the model, such as a run of the
    engine, keeps that too). Each generator's docstring names its scene's fields.
    """


@dataclass
class Exercise:
    """One generated question.

    Attributes
    ----------
    kind : str
        The generator's key in :data:`KINDS`, spelled as ``kvmviz quiz`` spells it
        (``"takes-lock"``, ``"grant-order"``, ...).
    seed : int
    question : str
        Markdown text of the question.
    answer : object
        The right answer (look only after trying!).
    explanation : str
        Why that is the answer, citing the kernel rule.
    options : dict
        The generator's options besides the seed that change the question (``policy`` for
        ``grant-order`` and ``reader-wait``): ``quiz(kind, seed, **options)`` asks it again.
    scene : Scene
        What the question asks about, as parameters (:meth:`Generator.scene`): the kernel, the
        layout, the ranges, the requests, ... An empty :class:`Scene` for an exercise made by
        hand.
    """

    kind: str
    seed: int
    question: str
    answer: object = field(repr=False)
    explanation: str = field(repr=False)
    options: dict = field(default_factory=dict, repr=False)
    scene: Scene = field(default_factory=Scene, repr=False, compare=False)

    @property
    def command(self) -> str:
        """The command line that prints this question: ``kvmviz quiz KIND -s SEED [...]``.

        Examples
        --------
        >>> from kvmviz.exercises import grant_order
        >>> grant_order(seed=2, policy="reader-pref").command
        'kvmviz quiz grant-order -s 2 --policy reader-pref'
        """
        extra = "".join(f" --{name} {value}" for name, value in self.options.items())
        return f"kvmviz quiz {self.kind} -s {self.seed}{extra}"

    def _label(self) -> str:
        extra = "".join(f", {name} {value}" for name, value in self.options.items())
        return f"{self.kind}, seed {self.seed}{extra}"

    def parse(self, text: str):
        """The answer typed in ``text``, in the shape of :attr:`answer`.

        Raises
        ------
        ValueError
            With a sentence saying how to type the answer, if ``text`` cannot be read.
        """
        return _parse(text, self.answer)

    def check(self, answer) -> tuple[bool, str]:
        """Whether ``answer`` is right, and a sentence saying why.

        ``answer`` is a value of the answer's type or the text a learner types (read by
        :meth:`parse`, so ``"0x4f 0x53"``, ``"yes"`` or ``"7 µs"`` are understood); text that
        cannot be read is not right, and the sentence says how to type it.

        Examples
        --------
        >>> from kvmviz.exercises import takes_lock_question
        >>> q = takes_lock_question(seed=1)
        >>> q.check(q.answer)[0]
        True
        """
        if isinstance(answer, str) and not isinstance(self.answer, str):
            try:
                answer = self.parse(answer)
            except ValueError as error:
                return False, f"Not understood: {error}."
        right = self._matches(answer)
        verdict = "Right!" if right else f"Not quite: the answer is {self._shown()}."
        return right, f"{verdict} {self.explanation}"

    def _matches(self, answer) -> bool:
        return _normalise(answer) == _normalise(self.answer)

    def _shown(self) -> str:
        return repr(self.answer)

    def reveal(self) -> str:
        """The answer with its explanation."""
        return f"Answer: {self._shown()}. {self.explanation}"

    def _repr_markdown_(self) -> str:
        return f"**Exercise ({self._label()})**\n\n{self.question}"

    def __str__(self) -> str:
        return f"[{self._label()}] {self.question}"

    def widget(self):
        """An ipywidgets box: the question, a text box, Check and Reveal buttons."""
        import ipywidgets as w

        text = w.Text(placeholder="your answer", description="answer")
        out = w.HTML()
        check, reveal = w.Button(description="Check"), w.Button(description="Reveal answer")

        def on_check(_):
            try:
                value = self.parse(text.value)
            except ValueError as error:
                out.value = f"<i>{html.escape(str(error))}</i>"
                return
            ok, why = self.check(value)
            out.value = markdown_to_html(f"**{'✔' if ok else '✘'}** {why}")

        check.on_click(on_check)
        reveal.on_click(lambda _: setattr(out, "value", markdown_to_html(self.reveal())))
        question = w.HTML(markdown_to_html(self.question))
        question.add_class("kvmviz-question")
        return w.VBox([question, w.HBox([text, check, reveal]), out])


# -- reading a typed answer --------------------------------------------------------------------
def _normalise(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, tuple | list):
        return [_normalise(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "y"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "n"):
        return False
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


_TRUE, _FALSE = ("true", "yes", "y"), ("false", "no", "n")
# A number as typed: decimal or 0x hex, optionally followed by the unit the question asks in
# (µs as the micro sign or the Greek mu, or "us"; memslots for the walk threshold).
_NUMBER = re.compile(
    r"^\s*(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?))"
    r"\s*(?:µs|μs|us|memslots?|slots?)?\s*$"
)


def _number(token: str) -> float | int:
    match = _NUMBER.match(token)
    if match is None:
        raise ValueError(f"{token!r} is not a number")
    number = match["number"]
    if number.lower().lstrip("+-").startswith("0x"):
        return int(number, 16)
    value = float(number)
    return int(value) if value.is_integer() else value


def _parse(text: str, like):
    """Parse a typed answer into the shape of ``like``.

    Booleans: ``True`` / ``False`` or ``yes`` / ``no`` (any case). Numbers: decimal or ``0x``
    hex, a trailing ``µs`` allowed. Lists of numbers: separated by spaces, commas or
    semicolons, brackets ignored (``[0x4f, 0x53)``), leading zeros fine (``08`` is 8).
    Anything else is returned as typed. Text that is not of the expected shape raises
    ``ValueError`` with a sentence saying how to type it.
    """
    text = text.strip()
    if isinstance(like, bool | np.bool_):
        word = text.lower().rstrip(".!")
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("type True or False (yes or no also work)")
    if isinstance(like, int | float | np.integer | np.floating):
        try:
            return _number(text)
        except ValueError:
            raise ValueError("type a number, e.g. 7") from None
    if isinstance(like, list):
        try:
            # Brackets are decoration: "[0x4f, 0x53)" is the pair 0x4f 0x53.
            bare = text.translate(str.maketrans(",;[]()", "      "))
            return [_number(x) for x in bare.split()]
        except ValueError:
            raise ValueError("type numbers separated by spaces, e.g. 0 5 12") from None
    return text


# -- the two answer shapes of their own --------------------------------------------------------
class ZappedGfnsExercise(Exercise):
    """An :class:`Exercise` whose answer is one ``gfn_start, gfn_end`` pair per memslot.

    The answer is flattened, ``[gfn_start, gfn_end, ...]`` with ``gfn_end`` exclusive, in the
    order of :meth:`MemslotLayout.gfn_ranges`; :meth:`check` accepts the pairs in any order
    (each pair kept whole), as numbers or as text such as ``"0xec 0xef, 0xfffec 0xfffef"``.
    """

    def parse(self, text: str) -> list:
        """The pairs typed in ``text``, flattened; an odd count of numbers is refused."""
        numbers = _parse(text, [])
        if len(numbers) % 2:
            raise ValueError(
                f"type one gfn_start gfn_end pair per memslot (an even count of numbers); "
                f"got {len(numbers)}"
            )
        return numbers

    def _matches(self, answer) -> bool:
        numbers = _normalise(list(answer)) if isinstance(answer, list | tuple) else None
        if numbers is None or len(numbers) % 2:
            return False
        return _pairs(numbers) == _pairs(_normalise(self.answer))

    def _shown(self) -> str:
        return " ".join(str(x) for x in self.answer)


def _pairs(numbers: list) -> list:
    """``[a, b, c, d]`` as the sorted pairs ``[(a, b), (c, d)]``: one per memslot."""
    return sorted(zip(numbers[::2], numbers[1::2], strict=True))


_CALLBACK_ALIASES = {"start": "invalidate_range_start", "end": "invalidate_range_end"}


class CallbackOrderExercise(Exercise):
    """An :class:`Exercise` whose answer is a sequence of callback names.

    :meth:`check` accepts a list or a string such as ``"start, change_pte, end"``: names may be
    separated by commas, spaces or arrows, and ``start`` / ``end`` stand for
    ``invalidate_range_start`` / ``invalidate_range_end``.
    """

    def check(self, answer) -> tuple[bool, str]:
        """Whether ``answer`` names the right callbacks in the right order, and why."""
        right = _callback_sequence(answer) == tuple(self.answer)
        verdict = "Right!" if right else f"Not quite: the answer is {' -> '.join(self.answer)}."
        return right, f"{verdict} {self.explanation}"

    def reveal(self) -> str:
        """The answer with its explanation."""
        return f"Answer: {' -> '.join(self.answer)}. {self.explanation}"


def _callback_sequence(answer) -> tuple[str, ...]:
    if answer is None:
        return ()
    if isinstance(answer, str):
        for separator in ("→", "->", ",", ";"):
            answer = answer.replace(separator, " ")
        answer = answer.split()
    names = (str(name).strip().lower().removeprefix(".") for name in answer)
    return tuple(_CALLBACK_ALIASES.get(name, name) for name in names)


# -- the seed ----------------------------------------------------------------------------------
def _rng(salt: str, seed: int) -> np.random.Generator:
    # Seeds derive from readable strings, so two kinds with one seed differ. The salts are the
    # generators' first names (underscored) and stay so: a seed keeps its question, and
    # docs/workshop.md keeps its answers.
    return np.random.default_rng([check_seed(seed), *salt.encode()])


def _case(salt: str, seed: int, n_cases: int) -> int:
    """The case a seed asks about, among ``n_cases``: one fixed shuffle of them, walked in turn.

    For a kind whose questions are few enough to list (the edges of a layout's memslots, the
    windows of a trace), seeds ``0 .. n_cases - 1`` ask ``n_cases`` different questions, and
    seed ``s`` asks what seed ``s % n_cases`` asks: two seeds give one question only if they
    are a multiple of ``n_cases`` apart. (Drawing with :func:`_rng` instead repeats a question
    among a hundred seeds as soon as the cases are a few hundred: the birthday problem.)

    Examples
    --------
    >>> sorted(_case("doc", s, 5) for s in range(5))
    [0, 1, 2, 3, 4]
    >>> _case("doc", 7, 5) == _case("doc", 2, 5)
    True
    """
    n_cases = check_int(n_cases, "n_cases", minimum=1)
    order = np.random.default_rng([*salt.encode()]).permutation(n_cases)
    return int(order[check_seed(seed) % n_cases])


# -- the generator -----------------------------------------------------------------------------
class Generator:
    """One kind of exercise: a seed in, an :class:`Exercise` out, in documented steps.

    A kind subclasses this, sets :attr:`kind` and :attr:`salt`, and overrides the hooks
    :meth:`scene`, :meth:`answer`, :meth:`question` and :meth:`explain` (and :meth:`options`
    and :attr:`exercise` where it differs). Calling an instance runs them in that order::

        scene = self.scene(seed, **options)     # every random draw, every option checked
        answer = self.answer(scene)             # the model's answer
        Exercise(kind, seed, self.question(scene), answer, self.explain(scene, answer),
                 self.options(scene), scene)

    The public generator functions (``takes_lock_question(seed=...)``, ...) call an instance:
    they keep their signatures and docstrings.
    """

    kind: ClassVar[str]
    """The kind's key in :data:`KINDS`, as ``kvmviz quiz`` spells it (``"takes-lock"``)."""

    salt: ClassVar[str]
    """What the seed is mixed with (:meth:`rng`, :meth:`case`): the generator's first name,
    underscored (``"takes_lock"``). It never changes, so a seed keeps its question."""

    exercise: ClassVar[type[Exercise]] = Exercise
    """The class of the exercise made: :class:`Exercise`, or a subclass that reads its
    answer's shape (:class:`ZappedGfnsExercise`, :class:`CallbackOrderExercise`)."""

    def __call__(self, seed: int = 0, **options) -> Exercise:
        """The exercise of ``seed`` (with the kind's ``options``)."""
        scene = self.scene(seed, **options)
        answer = self.answer(scene)
        return self.exercise(
            self.kind,
            check_seed(seed),
            self.question(scene),
            answer,
            self.explain(scene, answer),
            self.options(scene),
            scene,
        )

    def rng(self, seed: int) -> np.random.Generator:
        """The random numbers of ``seed`` for this kind (seeded with :attr:`salt`)."""
        return _rng(self.salt, seed)

    def case(self, seed: int, n_cases: int) -> int:
        """The case ``seed`` asks about among ``n_cases`` listed ones: a fixed shuffle walked in
        turn, so seeds ``0 .. n_cases - 1`` ask every case once."""
        return _case(self.salt, seed, n_cases)

    # -- the hooks ------------------------------------------------------------------------------
    def scene(self, seed: int, **options) -> Scene:
        """Draw what the question of ``seed`` asks about; check the options first.

        Returns
        -------
        Scene
            Every parameter the question states and the answer depends on.
        """
        raise NotImplementedError(f"{type(self).__name__} draws no scene")

    def answer(self, scene: Scene):
        """The right answer to the question about ``scene``, computed by the model."""
        raise NotImplementedError(f"{type(self).__name__} computes no answer")

    def question(self, scene: Scene) -> str:
        """The question about ``scene``, in Markdown (the answer nowhere in it)."""
        raise NotImplementedError(f"{type(self).__name__} asks no question")

    def explain(self, scene: Scene, answer) -> str:
        """Why ``answer`` is the answer, citing the kernel rule or the model's computation."""
        raise NotImplementedError(f"{type(self).__name__} explains nothing")

    def options(self, scene: Scene) -> dict:
        """The options that changed the question (none by default): the exercise's
        :attr:`Exercise.options`."""
        return {}
