"""The contract every layer shares, with no third-party imports and nothing else of ours.

- `record`: the `requests.csv` columns and `RequestRecord` (one row per request)
- `result`: `StreamResult`, what one streamed request produced (stamps, usage, errors)
- `measure`: the metric definitions — TTFT, ITL, E2E, TPOT, token counts — from a result's stamps
- `slo`: `Slo`, the profiles and the SLO grammar (what a *good* request is)
- `stage`: `Stage`, the load level a request is labelled with
- `durations`, `quantiles`, `tokens`: the one duration grammar, the percentile rules, the token rule
- `errors`: the user-mistake errors and how a process ends on one

The load path, the analysis, the arena and the simulated engine all read these definitions, so a
figure means the same thing wherever it is shown.
"""
