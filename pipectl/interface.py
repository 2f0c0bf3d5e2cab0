"""The extension points: a Check, a Playbook and a Renderer, and the context they are given.

Third-party packages implement these and register them under the entry-point groups `pipectl.checks`,
`pipectl.playbooks` and `pipectl.renderers`, exactly as the built-ins do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pipectl.model import DoctorResult, Finding, Severity, Status

if TYPE_CHECKING:
    from pipectl.config import PipelineConfig
    from pipectl.repair import Step


@dataclass
class Context:
    """What a check may use: the loaded config and the time it has. Shared by all checks of a run."""

    config: PipelineConfig
    timeout: float = 5.0
    environ: dict[str, str] = field(default_factory=dict)
    """The environment the checks judge (the process environment plus `.env`)."""


class Check(ABC):
    """One concern of the pipeline, looked at read-only. Subclass, set the class attributes, write `run`.

    The class docstring is the catalog entry: three paragraphs headed Detects, Why it matters, Fix.
    `run` may be a plain method (it is run in a thread) or `async def`; either way the runner bounds it
    with the run's timeout, and an exception becomes an ERROR finding instead of a crash.
    """

    id: ClassVar[str]
    component: ClassVar[str]
    severity: ClassVar[Severity] = Severity.P1
    libraries: ClassVar[tuple[str, ...]] = ()
    """Client libraries the check's connectors import (`psycopg`, `botocore.session`): imported before the clock
    starts, so a busy machine's slow imports are never taken for a slow system."""

    def applies(self, ctx: Context) -> str | None:
        """Why this check has nothing to look at in this pipeline (it is then SKIPPED), or None."""
        return None

    @abstractmethod
    def run(self, ctx: Context) -> Iterable[Finding] | Awaitable[Iterable[Finding]]:
        """The findings about this concern; at least one, so a healthy pipeline shows it was looked at."""

    def finding(self, status: Status, summary: str, **fields: Any) -> Finding:
        """A finding of this check, with its id, component and default severity filled in."""
        fields.setdefault("severity", self.severity)
        fields.setdefault("component", self.component)
        return Finding(check=self.id, status=status, summary=summary, **fields)

    def ok(self, summary: str, **fields: Any) -> Finding:
        return self.finding(Status.OK, summary, **fields)

    def warn(self, summary: str, **fields: Any) -> Finding:
        return self.finding(Status.WARN, summary, **fields)

    def fail(self, summary: str, **fields: Any) -> Finding:
        return self.finding(Status.FAIL, summary, **fields)

    def error(self, summary: str, **fields: Any) -> Finding:
        return self.finding(Status.ERROR, summary, **fields)

    def skipped(self, reason: str, **fields: Any) -> Finding:
        return self.finding(Status.SKIPPED, reason, **fields)


@dataclass
class PlaybookContext:
    """What a playbook builds its steps from."""

    config: PipelineConfig
    environ: dict[str, str] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda text: None


class Playbook(ABC):
    """A named repair made of steps (see `pipectl.repair.Step`), each with its own verify.

    The class docstring is the catalog entry: its first paragraph says which incident it repairs.
    """

    name: ClassVar[str]

    @abstractmethod
    def steps(self, ctx: PlaybookContext) -> list[Step]:
        """The steps, in order; building them must not change anything."""


@dataclass(frozen=True)
class RenderOptions:
    """How the terminal renderer may decorate; machine formats ignore it."""

    color: bool = False
    width: int = 100
    """Columns to fit: the terminal's width when writing to one."""
    show_all: bool = False
    """Every passing check on its own line; by default they fold into one line per component."""


class Renderer(Protocol):
    """Turns a doctor result into text. Pure: it never writes, so it can be tested as a string."""

    def __call__(self, result: DoctorResult, options: RenderOptions) -> str: ...
