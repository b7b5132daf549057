"""Operations: see and steer the queue. One module per concern: `pauses` (pause flags and the
gateway's intake gate), `heartbeats` (live workers), `queue` (arq's queue, read without SCAN),
`failed` (the failed try-on and delivery lists), `retry` (the one safe retry), `control` (all
of them over one connection, and the snapshot), `history` (the dashboard's samples), `errors`
(what they refuse). The HTTP API is `service.api.ops`, the CLI `service.cli_ops`, the worker
side `workers.ops`; docs/ops.md explains how to use them.
"""
