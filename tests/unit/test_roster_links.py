"""Reading an NRPS roster: Link headers, member fields and statuses, and what a member does to a person."""

import pytest

from tool.lti.nrps import Link, Member, MemberStatus, next_page_url, parse_link_header, parse_member, parse_status
from tool.lti.roster import PersonFields, membership_status, merge_person

BASE = "https://lms.example/api/lti/courses/7/names_and_roles?page=1"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ('<https://lms.example/r?page=2>; rel="next"', "https://lms.example/r?page=2"),
        ("<https://lms.example/r?page=2>; rel=next", "https://lms.example/r?page=2"),
        ('<https://lms.example/r?page=2>; REL="Next"', "https://lms.example/r?page=2"),
        # Canvas sends current, next, first and last in one header.
        ('<https://lms.example/r?page=1>; rel="current",<https://lms.example/r?page=2>; rel="next",'
         '<https://lms.example/r?page=1>; rel="first",<https://lms.example/r?page=3>; rel="last"',
         "https://lms.example/r?page=2"),
        ('<https://lms.example/r?page=3>; rel="last", <https://lms.example/r?page=2>; rel="next"',
         "https://lms.example/r?page=2"),
        # One link may carry several relation types.
        ('<https://lms.example/r?page=2>; rel="next last"', "https://lms.example/r?page=2"),
        # Relative targets resolve against the page that answered.
        ('</api/lti/courses/7/names_and_roles?page=2>; rel="next"',
         "https://lms.example/api/lti/courses/7/names_and_roles?page=2"),
        ('<names_and_roles?page=2>; rel="next"', "https://lms.example/api/lti/courses/7/names_and_roles?page=2"),
        # Commas and semicolons inside the URL or a quoted parameter do not split links.
        ('<https://lms.example/r?ids=1,2;x=3>; title="a, b; c"; rel="next"', "https://lms.example/r?ids=1,2;x=3"),
        # Moodle keeps type_id and pages with from/limit.
        ('<https://moodle.example/mod/lti/services.php/CourseSection/2/bindings/1/memberships?limit=40&from=40>;'
         ' rel="next"',
         "https://moodle.example/mod/lti/services.php/CourseSection/2/bindings/1/memberships?limit=40&from=40"),
        ('<https://lms.example/r?page=3>; rel="last"', None),
        ('<https://lms.example/r?page=2>; rel="prev"', None),
        ("<https://lms.example/r?page=2>", None),
        # Garbage before a good link is skipped, not fatal.
        ('nonsense, <https://lms.example/r?page=2>; rel="next"', "https://lms.example/r?page=2"),
        # A parameter given twice counts the first time (RFC 8288 §3).
        ('<https://lms.example/r?page=2>; rel="last"; rel="next"', None),
    ],
)
def test_the_next_page_is_found_in_every_shape_of_link_header(header: str | None, expected: str | None) -> None:
    assert next_page_url(header, base_url=BASE) == expected


def test_a_link_header_keeps_every_link_with_its_parameters() -> None:
    links = parse_link_header('<a?p=1>; rel="first"; title="Page \\"one\\"", <b>; rel=next', base_url="https://x.example/r/")

    assert links == [
        Link(url="https://x.example/r/a?p=1", rel=("first",), params={"rel": "first", "title": 'Page "one"'}),
        Link(url="https://x.example/r/b", rel=("next",), params={"rel": "next"}),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, MemberStatus.ACTIVE),
        ("", MemberStatus.ACTIVE),
        ("Active", MemberStatus.ACTIVE),
        ("Inactive", MemberStatus.INACTIVE),
        ("Deleted", MemberStatus.DELETED),
        ("deleted", MemberStatus.DELETED),
        (" INACTIVE ", MemberStatus.INACTIVE),
        ("Suspended", MemberStatus.ACTIVE),
    ],
)
def test_a_member_status_is_read_with_absent_meaning_active(value: object, expected: MemberStatus) -> None:
    assert parse_status(value) == expected


@pytest.mark.parametrize(
    ("status", "membership"),
    [(MemberStatus.ACTIVE, "active"), (MemberStatus.INACTIVE, "inactive"), (MemberStatus.DELETED, "deleted")],
)
def test_each_member_status_maps_to_a_membership_status(status: MemberStatus, membership: str) -> None:
    assert membership_status(status) == membership


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"user_id": "3", "roles": ["Learner"]}, Member(user_id="3", roles=("Learner",))),
        ({"user_id": 42, "status": "Deleted", "name": "Ann Lee", "email": "ann@example.edu"},
         Member(user_id="42", status=MemberStatus.DELETED, name="Ann Lee", email="ann@example.edu")),
        ({"user_id": "3", "name": None, "roles": "Learner"}, Member(user_id="3")),
        ({"user_id": "3", "roles": ["Learner", 7, None]}, Member(user_id="3", roles=("Learner",))),
        ({"user_id": ""}, None),
        ({"user_id": True}, None),
        ({"name": "Nobody"}, None),
        ("not a member", None),
    ],
)
def test_a_member_is_read_leniently_and_needs_a_user_id(data: object, expected: Member | None) -> None:
    assert parse_member(data) == expected


KNOWN = PersonFields(name="Ann Lee", given_name="Ann", family_name="Lee", email="ann@example.edu")


@pytest.mark.parametrize(
    ("known", "member", "expected"),
    [
        (None, Member(user_id="1", given_name="Ann", family_name="Lee"),
         PersonFields(name="Ann Lee", given_name="Ann", family_name="Lee")),
        (KNOWN, Member(user_id="1"), KNOWN),
        (KNOWN, Member(user_id="1", email="ann.lee@example.edu"),
         PersonFields(name="Ann Lee", given_name="Ann", family_name="Lee", email="ann.lee@example.edu")),
        (KNOWN, Member(user_id="1", name="Ann Lee-Smith", family_name="Lee-Smith"),
         PersonFields(name="Ann Lee-Smith", given_name="Ann", family_name="Lee-Smith", email="ann@example.edu")),
    ],
)
def test_a_member_without_a_name_or_email_never_erases_the_known_one(
    known: PersonFields | None, member: Member, expected: PersonFields
) -> None:
    assert merge_person(known, member) == expected
