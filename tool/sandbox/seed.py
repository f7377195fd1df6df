"""The seeded course, resource links and people, shaped like the mode's platform sends them."""

from __future__ import annotations

import hashlib
import unicodedata
import uuid

from tool.sandbox.store import LIS, ROLE_INSTRUCTOR, ROLE_LEARNER, ROLE_TA, Course, ResourceLink, SandboxUser

COURSE = Course(id="SANDBOX-101", label="SBX101", title="Sandbox Course 101")
# rl-1 is graded (Moodle: an activity with its grade item; Canvas: an external-tool assignment);
# rl-2 has no gradebook column of its own (Moodle: an activity without one; Canvas: a module link).
RESOURCE_LINKS = (
    ResourceLink(id="rl-1", title="Tally: Week 1", description="Points for the first week's exercises",
                 kind="assignment"),
    ResourceLink(id="rl-2", title="Tally: Final exam", description="The final exam", kind="link"),
)
SEED_LINE_ITEM = {"label": "Tally: Week 1", "score_maximum": 100.0, "resource_link_id": "rl-1"}


def opaque_course_id(course: Course) -> str:
    """Canvas's opaque id of a course (`Lti::Asset.opaque_identifier_for`): 40 hex digits.

    Canvas launches its Course Navigation placement with this as the resource link id
    (lib/lti/messages/resource_link_request.rb, `launch_resource_link_id`).
    """
    return hashlib.sha1(f"course:{course.id}".encode()).hexdigest()


def course_navigation_link(course: Course) -> ResourceLink:
    """Canvas's Course Navigation placement: the course's opaque id, titled with the course's name."""
    return ResourceLink(id=opaque_course_id(course), title=course.title, kind="course_navigation")

# (kind, given name, family name); students 4..11 are the seeded class.
PEOPLE = (
    ("admin", "Ada", "Admin"),
    ("teacher", "Theresa", "Lindqvist"),
    ("ta", "Tomás", "Okafor"),
    ("student", "Amara", "Nwosu"),
    ("student", "Ben", "Hartmann"),
    ("student", "Chen", "Wei"),
    ("student", "Dana", "Kowalczyk"),
    ("student", "Elif", "Yılmaz"),
    ("student", "Farid", "Haddad"),
    ("student", "Greta", "Sørensen"),
    ("student", "Hiro", "Tanaka"),
)
EXTRA_GIVEN = ("Ines", "Jonas", "Kemal", "Lena", "Mateo", "Nia", "Oskar", "Priya", "Quentin", "Rosa")
EXTRA_FAMILY = ("Abara", "Becker", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Huber", "Ivanova", "Jensen")

_UNFOLDABLE = str.maketrans({"ı": "i", "ø": "o", "ß": "ss", "ł": "l"})

# Canvas subs are opaque and stable per user; uuid5 keeps them the same across restarts.
_CANVAS_NAMESPACE = uuid.UUID("6f0f3b8e-5a51-4d3c-9a0e-7b1f1f8a2c10")


def roles_for(kind: str, mode: str) -> list[str]:
    """The LTI role URIs the mode's platform sends for a kind of person."""
    if mode == "moodle":
        if kind == "admin":
            # Moodle sends both admin roles and Instructor for site admins.
            return [LIS + "institution/person#Administrator", ROLE_INSTRUCTOR, LIS + "system/person#Administrator"]
        if kind in ("teacher", "ta"):
            # Moodle decides on mod/lti:manage, which non-editing teachers hold too: a TA arrives
            # as a plain Instructor, never as TeachingAssistant.
            return [ROLE_INSTRUCTOR]
        return [ROLE_LEARNER]
    user_role = LIS + "system/person#User"
    if kind == "admin":
        # A Canvas account admin who is not enrolled gets institution and system roles only.
        return [LIS + "institution/person#Administrator", LIS + "system/person#SysAdmin", user_role]
    if kind == "teacher":
        return [LIS + "institution/person#Instructor", ROLE_INSTRUCTOR, user_role]
    if kind == "ta":
        return [LIS + "institution/person#Instructor", ROLE_TA, user_role]
    return [LIS + "institution/person#Student", ROLE_LEARNER, user_role]


def user_id_for(number: int, mode: str) -> str:
    """The `sub` of the n-th user: Moodle's numeric id (admin is 2), Canvas's opaque UUID."""
    if mode == "moodle":
        return str(number + 2)
    return str(uuid.uuid5(_CANVAS_NAMESPACE, f"user-{number}"))


def make_user(number: int, kind: str, given: str, family: str, mode: str) -> SandboxUser:
    """One person with an email derived from the name."""
    # Email local parts are ASCII: "Tomás Yılmaz" -> tomas.yilmaz (ı and ø do not decompose).
    folded = unicodedata.normalize("NFKD", f"{given}.{family}".lower().translate(_UNFOLDABLE))
    ascii_name = folded.encode("ascii", "ignore").decode()
    return SandboxUser(
        id=user_id_for(number, mode),
        name=f"{given} {family}",
        given_name=given,
        family_name=family,
        email=f"{ascii_name}@example.edu",
        roles=roles_for(kind, mode),
        kind=kind,
        # A site/account admin is not enrolled in the course: launches work, scores do not.
        enrolled=kind != "admin",
    )


def student_view_user(number: int) -> SandboxUser:
    """Canvas's Student View user: the fake "Test Student" a teacher becomes to preview a course."""
    user = make_user(number, "student", "Test", "Student", "canvas")
    user.test_student = True
    user.email = ""
    return user


def seed_users(mode: str) -> dict[str, SandboxUser]:
    """The seeded people keyed by `sub`."""
    users = [make_user(n, kind, given, family, mode) for n, (kind, given, family) in enumerate(PEOPLE)]
    return {u.id: u for u in users}


def extra_student(number: int, mode: str) -> SandboxUser:
    """A generated student for roster and paging tests."""
    index = number - len(PEOPLE)
    given = EXTRA_GIVEN[index % len(EXTRA_GIVEN)]
    family = EXTRA_FAMILY[(index // len(EXTRA_GIVEN)) % len(EXTRA_FAMILY)]
    if index >= len(EXTRA_GIVEN) * len(EXTRA_FAMILY):
        family = f"{family}{index // 100 + 1}"
    return make_user(number, "student", given, family, mode)
