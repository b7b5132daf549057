"""Genlook's v1 wire format, shared by the emulator (which serves it as Genlook does) and the
gateway's `/tryon/v1` surface (service/api/genlook_compat/): the error envelope, Zod-style
field issues, and every accepted request shape reduced to one canonical input.

A leaf: it imports neither the emulator nor the service, so each can use it without the other.
"""
