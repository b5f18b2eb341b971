"""Each page's own state (dashboard/session.py): drawings, kept drawings and shown jobs never cross pages; bounded."""

import time

import numpy as np
import pytest

from layerscope.dashboard import create_app
from layerscope.dashboard.jobs import Job
from layerscope.dashboard.live import ROUTE
from layerscope.dashboard.session import HEADER, MAX_KEPT, Sessions
from layerscope.dashboard.state import LIVE
from layerscope.errors import LayerscopeError
from tests.unit.test_server_guard import LOCAL

A, B = "a" * 32, "b" * 32
LINE = [[[0.5, 0.15], [0.5, 0.5], [0.5, 0.85]]]  # a vertical stroke
BAR = [[[0.15, 0.5], [0.5, 0.5], [0.85, 0.5]]]  # a horizontal one


@pytest.fixture
def app(tiny_run):
    return create_app(tiny_run)


def post(app, strokes, version, session=None):
    headers = {**LOCAL, **({HEADER: session} if session else {})}
    return app.server.test_client().post("/" + ROUTE, json={"strokes": strokes, "version": version}, headers=headers)


def test_a_drawing_belongs_to_the_page_that_drew_it(app):
    state = app.layerscope_state
    assert post(app, LINE, 5, A).status_code == 200
    a = state.sessions.get(A)
    assert LIVE in a.drawings and a.live_version == 5
    b = state.sessions.get(B)
    assert LIVE not in b.drawings and b.live_version == -1  # another page sees nothing of it
    assert LIVE not in state.sessions.default.drawings  # nor does a client without a session
    # B's strokes, older by version than A's, are not "stale": each page counts its own versions
    answer = post(app, BAR, 1, B).get_json()
    assert "stale" not in answer and "bars" in answer
    assert not np.array_equal(a.drawings[LIVE], b.drawings[LIVE])
    with app.server.test_request_context(headers={HEADER: B}):
        assert state.drawings is b.drawings and state.live_version == 1


def test_kept_drawings_are_numbered_per_page_and_never_cached_across_pages(app):
    state = app.layerscope_state
    post(app, LINE, 1, A)
    post(app, BAR, 1, B)
    thumbs = {}
    for session in (A, B):
        with app.server.test_request_context(headers={HEADER: session}):
            assert state.keep_drawing() == "draw:1"
            thumbs[session] = state.thumbnail("draw:1")
            assert state.name("draw:1") == "drawing 1"
    assert thumbs[A] != thumbs[B]  # a thumbnail cached by key would show A's drawing to B
    with app.server.test_request_context(headers={HEADER: "c" * 32}):
        with pytest.raises(LayerscopeError, match="there is no image 'draw:1'"):
            state.image_key("draw:1")


def test_a_page_keeps_at_most_max_kept_drawings(app):
    state = app.layerscope_state
    post(app, LINE, 1, A)
    with app.server.test_request_context(headers={HEADER: A}):
        keys = [state.keep_drawing() for _ in range(MAX_KEPT)]
        assert keys[-1] == f"draw:{MAX_KEPT}" and len(set(keys)) == MAX_KEPT
        with pytest.raises(LayerscopeError, match=f"kept {MAX_KEPT} drawings"):
            state.keep_drawing()


def test_a_malformed_session_header_is_a_400_of_one_sentence(app):
    response = post(app, LINE, 1, "not-a-session")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("the X-Layerscope-Session header is not a session id")


def test_sessions_are_bounded_by_number_and_idle_time():
    now = [0.0]
    sessions = Sessions(limit=3, idle=100.0, clock=lambda: now[0])
    ids = [f"{i:032x}" for i in range(4)]
    first, second, third = (sessions.get(i) for i in ids[:3])
    assert sessions.get(ids[0]) is first  # used again: now the most recent
    sessions.get(ids[3])  # a fourth page: the least recently used (ids[1]) goes
    assert len(sessions) == 3
    assert sessions.get(ids[0]) is first and sessions.get(ids[1]) is not second  # forgotten: a fresh scratch
    now[0] = 1000.0  # all idle too long
    assert sessions.get(ids[0]) is not first  # forgotten: a fresh scratch
    assert len(sessions) == 1
    assert sessions.get(None) is sessions.default
    with pytest.raises(LayerscopeError, match="32 hex digits"):
        sessions.get("A" * 32)


def test_a_finished_job_is_waited_for_only_by_pages_that_have_not_shown_it():
    sessions = Sessions()
    job = Job("fc2", "tsne")
    waiting = sessions.get(A)  # open while the job runs
    assert not waiting.seen(job)
    job.ended, job.finished = waiting.born + 1.0, True
    other = sessions.get(B)
    other.born = job.ended + 1.0  # opened after it finished: nothing to wait for
    assert other.seen(job) and not waiting.seen(job)
    waiting.mark_seen(job)  # its panel redrew
    assert waiting.seen(job)
    assert not sessions.get("c" * 32).seen(Job("fc1", "pca"))  # unfinished: not seen by anyone


def test_a_pages_scratch_is_born_with_its_first_request(app):
    # the page's first request is the card of the image it opens on; a job its first callback starts and sees finish
    # at once (a PCA of a few images) must count as finishing after the page opened, so the page redraws for it
    state = app.layerscope_state
    client = app.server.test_client()
    assert client.get("/_layerscope/selected?image=0", headers={**LOCAL, HEADER: A}).status_code == 200
    answered = time.monotonic()
    assert len(state.sessions) == 1  # made by that request, not by the first callback that asks for it
    opened = state.sessions.get(A)
    assert opened.born <= answered
    job = Job("fc2", "pca")
    job.ended, job.finished = answered, True  # started and finished by the page's next request
    assert not opened.seen(job)
    # a malformed id makes no scratch, and the request is still answered (refused where the session matters)
    assert client.get("/_layerscope/selected?image=0", headers={**LOCAL, HEADER: "nope"}).status_code == 200
    assert len(state.sessions) == 1
