"""Replays every Fixtures/conformance transcript against `socketio-server --profile conformance`."""

import asyncio

import pytest

import transcripts

CASES = transcripts.load_all("conformance")


@pytest.mark.parametrize("name,transcript", CASES, ids=[c[0] for c in CASES])
def test_transcript(conformance_server, name, transcript):
    asyncio.run(asyncio.wait_for(transcripts.replay(conformance_server.port, transcript), 30))
