"""The one demo key: the emulator's default key and the gateway's default upstream key.

A leaf module (no imports) so that the gateway's settings can share it without importing the
emulator, and the emulator without importing the gateway: an emulator started on its own
(compose's `--profile emulator`, no `--api-key`) accepts a gateway started with no
`GENLOOK_API_KEY`.
"""

# Fixed so a demo can be restarted without re-pasting the key; the emulator prints it at start.
DEMO_API_KEY = "gk_demo_0000000000000000000000000000000000000000000"
