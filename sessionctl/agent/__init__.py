"""The agent side of the loop: launch an agent per session, bound it, read its transcript, audit it.

``presets`` turns a campaign's ``agent:`` block into an argv, ``transcript`` parses Claude Code's
stream-json and Codex's JSONL, ``launch`` runs one agent under a wall-clock and cost bound,
``audit`` judges what the session left behind, and ``loop`` is ``sessionctl run``.
"""
