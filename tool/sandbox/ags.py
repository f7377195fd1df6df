"""Assignment and Grade Services 2.0: line items, scores and results of the course.

Routes (rules in `paths.py`): the line item container (GET list, POST create), one line
item (GET, PUT, DELETE), its `/scores` (POST) and `/results` (GET). In Moodle mode every
URL carries `?type_id=<deployment_id>`, and `/scores`, `/results` come before that query.

Canvas mode follows Canvas's code (instructure/canvas-lms):

* creating a line item with a `resourceLinkId` looks up the *assignment* of that link and
  answers 404 when there is none — a Course Navigation or module link is no assignment
  (app/controllers/lti/ims/concerns/gradebook_services.rb, `prepare_line_item_for_ags!`);
  with an assignment's link it *attaches* a second line item to that assignment, which
  stores results but writes no grade (app/models/lti/line_item.rb `assignment_line_item?`,
  app/controllers/lti/ims/scores_controller.rb `score_submission`);
* without a `resourceLinkId` it creates a new assignment, a gradebook column of its own
  (app/models/lti/line_item.rb, `create_line_item!`);
* the line item Canvas made with an assignment ("coupled") cannot be deleted: 401
  (app/controllers/lti/ims/line_items_controller.rb, `destroy`);
* a concluded course answers every call 422, or 404 without the
  `ags_improved_course_concluded_response_codes` flag (gradebook_services.rb,
  `verify_course_not_concluded`, `Course.not_completed.find`);
* results report the score and maximum as the tool sent them, and no timestamp
  (app/serializers/lti/ims/results_serializer.rb);
* containers page 10 items by default, 100 at most (see paging.py).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from tool.sandbox.errors import ServiceError, canvas_not_found
from tool.sandbox.guard import service_endpoint
from tool.sandbox.paging import paginate
from tool.sandbox.platform import CONCLUDED, Platform
from tool.sandbox.scoring import Target, apply_score, canvas_result_score
from tool.sandbox.store import LineItem, Result, ScorePost
from tool.sandbox.tokens import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE

LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
MOODLE_RESULTS_BUG = (
    "<!DOCTYPE html>\n<html dir=\"ltr\" lang=\"en\"><head><title>Error | Sandbox Moodle</title></head>\n"
    "<body id=\"page-mod-lti-services\"><div class=\"errorbox alert alert-danger\" role=\"alert\">"
    "<p class=\"errormessage\">Exception - Call to a member function out() on null</p>"
    "<p class=\"errorcode\"><a href=\"https://docs.moodle.org/en/error/moodle/generalexceptionmessage\">"
    "More information about this error</a></p></div></body></html>\n"
)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def json_response(data: Any, media_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer with an AGS media type."""
    return Response(json.dumps(data), status=status, content_type=media_type, headers=headers or {})


def read_json(expected_type: str) -> Any:
    """The request body as JSON, after checking its media type (415 otherwise)."""
    if request.mimetype != expected_type:
        raise ServiceError(415, f"Content-Type must be {expected_type}, not {request.mimetype or 'missing'}")
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        raise ServiceError(400, "The body is not valid JSON") from None


class AgsService:
    """The AGS views of one platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.store = platform.store

    @property
    def canvas(self) -> bool:
        """True in Canvas mode."""
        return self.platform.mode == "canvas"

    # -- helpers ---------------------------------------------------------------------------

    def _enter(self, context_id: str, *scopes: str) -> None:
        """The checks every call passes first, in the platform's order."""
        if self.canvas:
            # Canvas checks the token (LtiServices) before it looks at the course.
            self._authorize(*scopes)
            if context_id != self.platform.course.id:
                raise canvas_not_found()
            if self.platform.course_concluded == 404:
                raise canvas_not_found()
            if self.platform.course_concluded == 422:
                raise ServiceError(422, CONCLUDED)
            return
        if context_id != self.platform.course.id:
            raise ServiceError(404, "No such course")
        type_id = request.args.get("type_id")
        if type_id is not None and type_id != self.platform.deployment_id:
            # A tool that appends /scores after the query string lands here with "1/scores".
            raise ServiceError(400, f"Invalid type_id {type_id!r}")
        self._authorize(*scopes)

    def _authorize(self, *scopes: str) -> None:
        self.platform.tokens.authorize(request.headers.get("Authorization"), scopes)

    def _item(self, item_id: int) -> LineItem:
        item = self.store.line_items.get(item_id)
        if item is None:
            if self.canvas:
                raise canvas_not_found()
            raise ServiceError(404, "Line item not found")
        return item

    def line_item_json(self, item: LineItem) -> dict[str, Any]:
        """A line item as AGS JSON."""
        data: dict[str, Any] = {
            "id": self.platform.paths.lineitem_url(item.id),
            "label": item.label,
            "scoreMaximum": _number(item.score_maximum),
        }
        optional = {"resourceLinkId": item.resource_link_id, "resourceId": item.resource_id, "tag": item.tag,
                    "startDateTime": item.start_date_time, "endDateTime": item.end_date_time}
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    def result_json(self, item: LineItem, result: Result) -> dict[str, Any]:
        """A result as AGS JSON: Moodle reports the final, bounded grade; Canvas what the tool sent."""
        data: dict[str, Any] = {
            "id": self.platform.paths.result_id(item.id, result.user_id),
            "scoreOf": self.platform.paths.lineitem_url(item.id),
            "userId": result.user_id,
        }
        if self.canvas:
            score = canvas_result_score(result, self.store.assignment_of(item))
            maximum = result.result_maximum
            if score is not None:
                data["resultScore"] = _number(score)
            if maximum is not None:
                data["resultMaximum"] = _number(maximum)
            if result.comment is not None:
                data["comment"] = result.comment
            return data
        data["resultMaximum"] = _number(item.score_maximum)
        if result.final is not None:
            data["resultScore"] = _number(result.final)
        if result.comment is not None:
            data["comment"] = result.comment
        if result.timestamp_text is not None:
            data["timestamp"] = result.timestamp_text
        return data

    def _line_item_fields(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ServiceError(400, "The line item must be a JSON object")
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ServiceError(400, "label is required")
        maximum = body.get("scoreMaximum")
        if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or maximum <= 0:
            raise ServiceError(400, "scoreMaximum must be a number greater than 0")
        fields: dict[str, Any] = {"label": label, "score_maximum": float(maximum)}
        for key, attr in (("resourceId", "resource_id"), ("tag", "tag"),
                          ("startDateTime", "start_date_time"), ("endDateTime", "end_date_time")):
            value = body.get(key)
            if value is not None and not isinstance(value, str):
                raise ServiceError(400, f"{key} must be a string")
            fields[attr] = value
        return fields

    # -- line items ------------------------------------------------------------------------

    def list_line_items(self, context_id: str) -> Response:
        """GET the container, filtered by resource_link_id, resource_id, tag; paged by limit."""
        self._enter(context_id, SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY)
        with self.store.lock:
            items = sorted(self.store.line_items.values(), key=lambda li: li.id)
            rlid = request.args.get("resource_link_id")
            if rlid is not None and self.canvas:
                # Canvas filters by the *assignment* the link belongs to: every line item of it.
                assignment = self.platform.assignment_of_link(rlid)
                items = [li for li in items if assignment is not None and li.assignment_id == assignment.id]
            elif rlid is not None:
                items = [li for li in items if li.resource_link_id == rlid]
        for arg, attr in (("resource_id", "resource_id"), ("tag", "tag")):
            if arg in request.args:
                items = [li for li in items if getattr(li, attr) == request.args[arg]]
        page = paginate(items, mode=self.platform.mode, url=self.platform.config.base_url + request.path,
                        args=dict(request.args))
        return json_response([self.line_item_json(li) for li in page.items], LINEITEM_CONTAINER_TYPE,
                             headers=page.headers())

    def create_line_item(self, context_id: str) -> Response:
        """POST a new line item (a manual grade item in Moodle; in Canvas see the module docstring)."""
        self._enter(context_id, SCOPE_LINEITEM)
        body = read_json(LINEITEM_TYPE)
        if self.canvas:
            return self._create_canvas_line_item(body)
        fields = self._line_item_fields(body)
        link_id = body.get("resourceLinkId")
        if link_id is not None and link_id not in self.platform.resource_links:
            raise ServiceError(400, f"Unknown resourceLinkId {link_id!r}")
        item = self.store.add_line_item(resource_link_id=link_id, created_by_tool=True, **fields)
        return json_response(self.line_item_json(item), LINEITEM_TYPE, status=201)

    def _create_canvas_line_item(self, body: Any) -> Response:
        link_id = body.get("resourceLinkId") if isinstance(body, dict) else None
        with self.store.lock:
            if link_id is not None:
                assignment = self.platform.assignment_of_link(str(link_id))
                if assignment is None:
                    raise canvas_not_found()  # `Assignment.find_by(lti_context_id:)` found none
                fields = self._line_item_fields(body)
                # Attached to the assignment: a result store, not a gradebook column.
                item = self.store.add_line_item(resource_link_id=str(link_id), created_by_tool=True,
                                                assignment_id=assignment.id, **fields)
            else:
                fields = self._line_item_fields(body)
                assignment = self.store.add_assignment(title=fields["label"], points_possible=fields["score_maximum"])
                item = self.store.add_line_item(created_by_tool=True, assignment_id=assignment.id, **fields)
        return json_response(self.line_item_json(item), LINEITEM_TYPE, status=201)

    def get_line_item(self, context_id: str, item_id: int) -> Response:
        """GET one line item."""
        self._enter(context_id, SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY)
        return json_response(self.line_item_json(self._item(item_id)), LINEITEM_TYPE)

    def update_line_item(self, context_id: str, item_id: int) -> Response:
        """PUT a line item: label, scoreMaximum, resourceId, tag, dates (resourceLinkId stays)."""
        self._enter(context_id, SCOPE_LINEITEM)
        fields = self._line_item_fields(read_json(LINEITEM_TYPE))
        with self.store.lock:
            item = self._item(item_id)
            for attr, value in fields.items():
                setattr(item, attr, value)
            assignment = self.store.assignment_of(item)
            if assignment is not None and self.store.is_assignment_line_item(item):
                # `update_assignment`: the column follows its own line item's label and maximum.
                assignment.title, assignment.points_possible = item.label, item.score_maximum
        return json_response(self.line_item_json(item), LINEITEM_TYPE)

    def delete_line_item(self, context_id: str, item_id: int) -> Response:
        """DELETE a tool-created line item."""
        self._enter(context_id, SCOPE_LINEITEM)
        item = self._item(item_id)
        if not item.created_by_tool:
            # The activity's own grade item (Moodle) / the line item Canvas made with the
            # assignment ("coupled", `head :unauthorized`) goes with the activity, not through AGS.
            if self.canvas:
                raise ServiceError(401, "coupled line item", body="")
            raise ServiceError(403, "Cannot delete the line item the platform created for the resource link")
        self.store.delete_line_item(item_id)
        return Response(status=204)

    # -- scores and results ----------------------------------------------------------------

    def post_score(self, context_id: str, item_id: int) -> Response:
        """POST a score; the platform's rules decide (see scoring.py)."""
        self._enter(context_id, SCOPE_SCORE)
        body = read_json(SCORE_TYPE)
        item = self._item(item_id)
        user_id = body.get("userId") if isinstance(body, dict) else None
        with self.store.lock:
            user = self.platform.users.get(user_id) if isinstance(user_id, str) else None
            stored = self.store.results.get((item.id, user.id)) if user is not None else None
            target = Target(item, self.store.assignment_of(item), self.store.is_assignment_line_item(item))
            result = apply_score(self.platform.mode, target, user, body, stored, self.platform.now())
            self.store.results[(item.id, result.user_id)] = result
            self.store.record_post(ScorePost(item.id, result.user_id, body, 200, "OK", self.platform.now()))
        if self.canvas:
            return Response(json.dumps({"resultUrl": self.platform.paths.result_id(item.id, result.user_id)}),
                            status=200, content_type=SCORE_TYPE)
        return Response("", status=200)

    def record_refused_score(self, response: Response, kwargs: dict[str, Any]) -> None:
        """Keep a refused score post in the history with the status answered."""
        raw = request.get_data(as_text=True)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        user_id = body.get("userId") if isinstance(body, dict) and isinstance(body.get("userId"), str) else None
        message = response.status.partition(" ")[2]
        if self.canvas:
            message = _canvas_words(response) or message
        self.store.record_post(ScorePost(kwargs.get("item_id", 0), user_id, body, response.status_code,
                                         message, self.platform.now()))

    def list_results(self, context_id: str, item_id: int) -> Response:
        """GET the results of a line item, filtered by user_id, paged by limit."""
        self._enter(context_id, SCOPE_RESULT_READONLY)
        item = self._item(item_id)
        if self.platform.mode == "moodle" and request.args.get("limit") and "type_id" in request.args:
            # Moodle 4.5.6's results.php builds its paging link only when type_id is absent, and
            # Moodle always sends type_id: with `limit` it fails with an HTML error page.
            return Response(MOODLE_RESULTS_BUG, status=404, content_type="text/html; charset=utf-8")
        results = sorted(self.store.results_of(item.id), key=lambda r: r.user_id)
        if "user_id" in request.args:
            results = [r for r in results if r.user_id == request.args["user_id"]]
        page = paginate(results, mode=self.platform.mode, url=self.platform.config.base_url + request.path,
                        args=dict(request.args))
        return json_response([self.result_json(item, r) for r in page.items], RESULT_CONTAINER_TYPE,
                             headers=page.headers())


def _canvas_words(response: Response) -> str:
    """The message of a Canvas error answer (render_error's object, or a list of errors), or the body."""
    data = response.get_json(silent=True) if response.is_json else None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, dict) and isinstance(errors.get("message"), str):
            return errors["message"]
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
    return response.get_data(as_text=True).strip()[:200]


def register(app: Flask, platform: Platform) -> None:
    """Add the AGS routes to the sandbox app."""
    service = AgsService(platform)
    guarded = service_endpoint(platform)
    paths = platform.paths
    app.add_url_rule(paths.lineitems_rule, "ags_list_line_items", guarded(service.list_line_items), methods=["GET"])
    app.add_url_rule(paths.lineitems_rule, "ags_create_line_item", guarded(service.create_line_item),
                     methods=["POST"])
    app.add_url_rule(paths.lineitem_rule, "ags_get_line_item", guarded(service.get_line_item),
                     methods=["GET"])
    app.add_url_rule(paths.lineitem_rule, "ags_update_line_item", guarded(service.update_line_item),
                     methods=["PUT"])
    app.add_url_rule(paths.lineitem_rule, "ags_delete_line_item", guarded(service.delete_line_item),
                     methods=["DELETE"])
    app.add_url_rule(paths.lineitem_rule + "/scores", "ags_post_score",
                     service_endpoint(platform, on_refusal=service.record_refused_score)(service.post_score),
                     methods=["POST"])
    app.add_url_rule(paths.lineitem_rule + "/results", "ags_list_results", guarded(service.list_results),
                     methods=["GET"])
