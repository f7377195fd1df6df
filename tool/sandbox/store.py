"""The sandbox's in-memory data: users, the course, resource links, assignments, line items, results, posts.

Canvas mode keeps Canvas's own model (instructure/canvas-lms): a gradebook column is an
*assignment*; line items belong to an assignment, and only the assignment's first line item
(`Lti::LineItem#assignment_line_item?`) writes grades; the others store results only.

Everything sits behind one re-entrant lock (`Store.lock`): the services check and then write
(e.g. "is this timestamp newer than the stored one?"), and that must be atomic when a tool
posts scores in parallel.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
ROLE_LEARNER = LIS + "membership#Learner"
ROLE_INSTRUCTOR = LIS + "membership#Instructor"
ROLE_TA = LIS + "membership/Instructor#TeachingAssistant"


@dataclass
class SandboxUser:
    """A person of the platform; `id` is the LTI `sub` (Moodle: "3"; Canvas: a UUID)."""

    id: str
    name: str
    given_name: str
    family_name: str
    email: str
    roles: list[str]
    kind: str  # "teacher" | "ta" | "student" | "admin"
    enrolled: bool = True  # False: not in the course roster (scores refused, absent from NRPS)
    status: str = "Active"  # NRPS status: Active | Inactive | Deleted
    test_student: bool = False  # Canvas's Student View user ("Test Student")

    @property
    def is_student(self) -> bool:
        """True for an enrolled learner who may receive scores."""
        return self.enrolled and self.kind == "student" and self.status == "Active"


@dataclass(frozen=True)
class Course:
    """The one course (LTI context) of the sandbox."""

    id: str
    label: str
    title: str
    type: str = "http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"


LINK_KINDS = ("assignment", "link", "course_navigation")


@dataclass(frozen=True)
class ResourceLink:
    """One placement of the tool in the course.

    `kind` matters in Canvas mode: an "assignment" link is an external-tool assignment (its
    launches carry the assignment's line item), a "link" is a module item or page link, and
    "course_navigation" is the course menu entry, whose id is the course's opaque id.
    """

    id: str
    title: str
    description: str = ""
    custom: tuple[tuple[str, str], ...] = ()  # custom parameters every launch of the link carries
    kind: str = "assignment"


@dataclass
class Assignment:
    """A Canvas assignment: the gradebook column. Tool-made ones have no resource link."""

    id: int
    title: str
    points_possible: float
    resource_link_id: str | None = None  # the external-tool link a teacher placed, if any
    published: bool = True
    grading_period_closed: bool = False


@dataclass
class LineItem:
    """A gradebook column; `resource_link_id` ties it to a placement."""

    id: int
    label: str
    score_maximum: float
    resource_link_id: str | None = None
    resource_id: str | None = None
    tag: str | None = None
    start_date_time: str | None = None
    end_date_time: str | None = None
    created_by_tool: bool = True  # False for the activity's own item (Moodle) / assignment (Canvas)
    assignment_id: int | None = None  # Canvas: the assignment the line item belongs to


@dataclass
class Result:
    """The current grade of one user in one line item, as the platform keeps it."""

    line_item_id: int
    user_id: str
    raw: float | None = None  # the score rescaled to the line item's maximum
    final: float | None = None  # what the gradebook shows (Moodle clamps raw into [0, max])
    comment: str | None = None  # Moodle: one feedback text
    comments: list[str] = field(default_factory=list)  # Canvas: every comment ever sent
    activity_progress: str | None = None
    grading_progress: str | None = None
    timestamp: dt.datetime | None = None
    timestamp_text: str | None = None
    attempts: int = 0  # Canvas: one submission attempt per score unless new_submission is false
    needs_grading: bool = False  # Canvas: PendingManual flags the submission
    # Canvas's Lti::Result keeps the score as the tool sent it (result_score / result_maximum);
    # `raw` above is the submission's score, the grade the gradebook shows.
    result_score: float | None = None
    result_maximum: float | None = None
    edited_by_teacher: bool = False  # the grade was last set in the gradebook, not by the tool


@dataclass(frozen=True)
class ScorePost:
    """One score POST that reached the platform, accepted or refused."""

    line_item_id: int
    user_id: str | None
    body: Any
    status: int
    message: str
    received_at: dt.datetime

    @property
    def accepted(self) -> bool:
        """True when the platform stored the score."""
        return 200 <= self.status < 300


class Store:
    """All mutable sandbox data behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.line_items: dict[int, LineItem] = {}
        self.assignments: dict[int, Assignment] = {}
        self.results: dict[tuple[int, str], Result] = {}
        self.score_posts: list[ScorePost] = []
        self._next_line_item_id = 1
        self._next_assignment_id = 1

    def add_assignment(self, **fields: Any) -> Assignment:
        """Create an assignment with the next numeric id."""
        with self.lock:
            assignment = Assignment(id=self._next_assignment_id, **fields)
            self._next_assignment_id += 1
            self.assignments[assignment.id] = assignment
            return assignment

    def assignment_of(self, item: LineItem) -> Assignment | None:
        """The assignment a line item belongs to (Canvas), if any."""
        with self.lock:
            return self.assignments.get(item.assignment_id) if item.assignment_id is not None else None

    def is_assignment_line_item(self, item: LineItem) -> bool:
        """True for the first line item of its assignment: the one that writes grades (Canvas)."""
        with self.lock:
            if item.assignment_id is None:
                return True
            return min(li.id for li in self.line_items.values() if li.assignment_id == item.assignment_id) == item.id

    def assignment_line_item(self, assignment_id: int) -> LineItem | None:
        """The first line item of an assignment."""
        with self.lock:
            items = [li for li in self.line_items.values() if li.assignment_id == assignment_id]
            return min(items, key=lambda li: li.id) if items else None

    def add_line_item(self, **fields: Any) -> LineItem:
        """Create a line item with the next numeric id."""
        with self.lock:
            item = LineItem(id=self._next_line_item_id, **fields)
            self._next_line_item_id += 1
            self.line_items[item.id] = item
            return item

    def delete_line_item(self, item_id: int) -> None:
        """Remove a line item and every result in it."""
        with self.lock:
            self.line_items.pop(item_id, None)
            for key in [k for k in self.results if k[0] == item_id]:
                del self.results[key]

    def line_items_of(self, resource_link_id: str) -> list[LineItem]:
        """The line items tied to one resource link, oldest first."""
        with self.lock:
            return [li for li in self.line_items.values() if li.resource_link_id == resource_link_id]

    def result(self, line_item_id: int, user_id: str) -> Result | None:
        """The current result of a user in a line item, if any score arrived."""
        with self.lock:
            return self.results.get((line_item_id, user_id))

    def results_of(self, line_item_id: int) -> list[Result]:
        """Every result of one line item."""
        with self.lock:
            return [r for (li, _), r in self.results.items() if li == line_item_id]

    def posts_for(self, line_item_id: int, user_id: str | None = None) -> list[ScorePost]:
        """The score posts to a line item (optionally for one user), oldest first."""
        with self.lock:
            return [
                p for p in self.score_posts
                if p.line_item_id == line_item_id and (user_id is None or p.user_id == user_id)
            ]

    def record_post(self, post: ScorePost) -> None:
        """Keep a score post in the history."""
        with self.lock:
            self.score_posts.append(post)
