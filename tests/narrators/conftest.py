"""Fixtures of the narrator tests."""

from __future__ import annotations

import pytest
from chat_server import ChatServer


@pytest.fixture
def chat_server():
    """A scripted chat-completions endpoint on 127.0.0.1 (chat_server.ChatServer), closed after the test."""
    server = ChatServer()
    yield server
    server.close()
