"""Who a visitor is and what they may start (``explorer.admission``): a browser keeps its id, and fair use admits one
expensive job per visitor, a few per address and a bounded room."""

from explorer.admission import FairUse, Owners, client_address, opaque

def test_a_browser_keeps_its_id_across_sessions_and_restarts(tmp_path):
    owners = Owners(tmp_path / "secret")
    secret = owners.secret()
    assert len(secret) == 64 and Owners(tmp_path / "secret").secret() == secret  # kept on disk
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0
    first = owners.identify("session-1", None)
    assert owners.identify("session-2", first) == first and owners.owner("session-2") == first
    assert owners.identify("session-3", "<script>") != "<script>"  # a forged value is not an id
    assert owners.owner("unknown-session") == "unknown-session" and owners.owner(None) == "api"
    assert opaque(first) != first and len(opaque(first)) == 16
    assert client_address("10.0.0.1", "203.0.113.9, 10.0.0.1", trust_forwarded=True) == "203.0.113.9"
    assert client_address("127.0.0.1", "203.0.113.9", trust_forwarded=False) == "127.0.0.1"



def test_fair_use_admits_one_job_per_visitor_a_few_per_address_and_a_bounded_room():
    now = [0.0]
    fair = FairUse(per_address=2, room=3, ttl=60, clock=lambda: now[0])
    assert fair.admit("atlas", "v1", "home") is None
    assert "already have a channel view running" in fair.admit("atlas", "v1", "home")  # one per visitor and endpoint
    assert fair.admit("report", "v1", "home") is None  # another endpoint: its own ticket
    assert fair.admit("atlas", "v2", "home") is None
    assert "Your address already has 2 of these (channel view)" in fair.admit("atlas", "v3", "home")
    assert "busy with 3 long requests" in fair.admit("atlas", "v4", "office")  # the room is full
    with fair.job("atlas", "v1"):
        pass  # a job gives its ticket back however it ends
    assert fair.admit("atlas", "v4", "office") is None and len(fair) == 3
    now[0] = 61  # tickets of jobs that never ran lapse
    assert len(fair) == 0 and fair.admit("atlas", "v1", "home") is None
