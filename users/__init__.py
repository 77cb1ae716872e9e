"""Goodput's Locust users, and nothing else: single-shot chat and completions, multi-turn agent
sessions, and the open-loop user. Each turns the workload into requests and hands every request to
`loadgen.request.perform`, which measures and records it the same way for all of them."""
