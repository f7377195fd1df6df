"""The one table mapping LTI role URIs to Tally roles."""

import pytest

from tool.lti.claims import Role, is_staff, map_role, map_roles

M = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
I = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"
S = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (M + "Instructor", Role.TEACHER),
        (M + "TeachingAssistant", Role.MODERATOR),
        ("http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant", Role.MODERATOR),
        (M + "ContentDeveloper", Role.MODERATOR),
        (M + "Mentor", None),
        (M + "Administrator", Role.ADMIN),
        (I + "Administrator", Role.ADMIN),
        (S + "Administrator", Role.SUPER_ADMIN),
        (S + "SysAdmin", Role.SUPER_ADMIN),
        (M + "Learner", Role.STUDENT),
        ("http://purl.imsglobal.org/vocab/lis/v2/membership/Learner#Learner", Role.STUDENT),
        # Canvas sends institution Student/Learner to everyone enrolled anywhere: not a course role.
        (I + "Student", None),
        (I + "Learner", None),
        (S + "User", None),
        ("http://purl.imsglobal.org/vocab/lti/system/person#TestUser", None),
        # Deprecated short names (LTI 1.3 §A.2.3.1 allows them in the roles claim).
        ("Instructor", Role.TEACHER),
        ("Learner", Role.STUDENT),
        ("TeachingAssistant", Role.MODERATOR),
        ("http://example.com/roles#Wizard", None),
        ("", None),
    ],
)
def test_each_lti_role_maps_to_its_tally_role(uri: str, expected: Role | None) -> None:
    assert map_role(uri) == expected


def test_several_roles_are_deduplicated_strongest_first() -> None:
    roles = map_roles([M + "Learner", S + "Administrator", M + "Instructor", I + "Administrator", M + "Instructor"])
    assert roles == (Role.SUPER_ADMIN, Role.ADMIN, Role.TEACHER, Role.STUDENT)


def test_no_role_and_unknown_roles_give_no_tally_role() -> None:
    assert map_roles([]) == ()
    assert map_roles(["urn:x:unknown", 42]) == ()  # type: ignore[list-item]


def test_only_grading_roles_count_as_staff() -> None:
    assert is_staff([Role.MODERATOR])
    assert not is_staff([Role.STUDENT])
    assert not is_staff([])
